"""The Voice assistant tab's named endpoints: plain values in, data out.

``/voice(question_audio, image, voice, language, speed, adapter)`` answers a spoken question
(transcript, answer text, answer audio as a WAV file, stage latencies); ``/voice_stop``,
``/voice_clear`` and ``/voice_choices`` stop, forget and list.
``/voice_audio_llm(question_audio, voice, speed)`` has the audio LLM (Qwen2-Audio) hear the
question itself (no ASR) and the TTS speak its answer; its latency splits model and TTS time. Each API client session keeps
its own conversation (see ``VoiceActions.api_session``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from mmdemo.flows.assistant import AUDIO_LLM
from mmdemo.ui.common import guarded
from mmdemo.ui.context import AppContext
from mmdemo.ui.tabs.voice.actions import VoiceActions
from mmdemo.ui.tabs.voice.view import AUTO_LANGUAGE, DEFAULT_VOICE
from mmdemo.ui.uploads import upload_path


def upload_file(path: Path | str | None) -> dict[str, Any] | None:
    """A file path as the FileData dict gradio_client downloads (None stays None)."""
    return FileData(path=str(path)).model_dump() if path else None


def register(ctx: AppContext, actions: VoiceActions, concurrency_limit: int) -> None:
    """The tab's named endpoints: plain values in, data out (see ``VoiceActions``)."""

    def voice(
        question_audio: FileData,
        image: FileData | None = None,
        voice: str = DEFAULT_VOICE,
        language: str = AUTO_LANGUAGE,
        speed: float = 1.0,
        adapter: str = "base",
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> dict:
        """Answer a spoken question (and an optional image): transcript, answer text, answer
        audio (WAV), who answered, stage latencies. Each client session keeps its history."""
        session = request.session_hash if request else None
        data = actions.answer(
            actions.api_session(session),
            upload_path(question_audio, "question_audio"),
            upload_path(image, "image"),
            voice,
            language,
            speed,
            adapter,
            session,
        )
        data["answer_audio"] = upload_file(data["answer_audio"])
        return data

    def voice_audio_llm(
        question_audio: FileData,
        voice: str = DEFAULT_VOICE,
        speed: float = 1.0,
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> dict:
        """Answer a spoken question with the audio LLM, which hears the audio itself (no
        transcript): answer text, answer audio (WAV), latency_s with model_s (speech end ->
        whole answer) and tts_s (TTS compute). Shares the session's history with /voice."""
        session = request.session_hash if request else None
        data = actions.answer(
            actions.api_session(session),
            upload_path(question_audio, "question_audio"),
            None,
            voice,
            AUTO_LANGUAGE,
            speed,
            "base",
            session,
            mode=AUDIO_LLM,
        )
        data["answer_audio"] = upload_file(data["answer_audio"])
        return data

    def voice_stop(request: gr.Request = None) -> dict:  # type: ignore[assignment]
        """Cut the answer being spoken in this session."""
        return actions.stop(actions.api_session(request.session_hash if request else None))

    def voice_clear(request: gr.Request = None) -> dict:  # type: ignore[assignment]
        """Forget this session's conversation."""
        return actions.clear(actions.api_session(request.session_hash if request else None))

    def voice_choices() -> dict:
        """Voices, languages (of the loaded models) and adapters to pick from."""
        return actions.choices()

    gr.api(
        ctx.heavy(guarded(voice)),
        api_name="voice",
        concurrency_id="voice-turn",
        concurrency_limit=concurrency_limit,
    )
    gr.api(
        ctx.heavy(guarded(voice_audio_llm)),
        api_name="voice_audio_llm",
        concurrency_id="voice-turn",
        concurrency_limit=concurrency_limit,
    )
    gr.api(guarded(voice_stop), api_name="voice_stop", queue=False)
    gr.api(guarded(voice_clear), api_name="voice_clear", queue=False)
    gr.api(guarded(voice_choices), api_name="voice_choices", queue=False)
