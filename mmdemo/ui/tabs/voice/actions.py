"""The Voice assistant tab's actions, by name: the data API (``answer``, ``stop``, ``clear``,
``choices``) and the handlers the tab wires to its widgets (``respond``, ``respond_live``,
``listen`` ...), which call the same flow and format its updates for the widgets.

API clients keep one conversation per gradio session (``Client`` has one), held here and
bounded; browser pages keep theirs in ``gr.State``.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import gradio as gr

from mmdemo.errors import BadInputError
from mmdemo.flows.assistant import AUDIO_LLM, TurnUpdate, VoiceAssistant, VoiceOptions
from mmdemo.flows.audio import SAMPLE_RATE, Clip, read_audio, wav_bytes
from mmdemo.flows.chat import ChatService
from mmdemo.flows.live import LiveListener
from mmdemo.images import load_image
from mmdemo.ui.sessions import SessionFolders
from mmdemo.ui.tabs.voice.view import (
    AUTO_LANGUAGE,
    DEFAULT_VOICE,
    VoiceSession,
    chat_messages,
    latency_rows,
    options_from,
    pcm16,
    status_md,
)

MAX_API_SESSIONS = 256  # API conversations kept (least recently used dropped first)


class VoiceActions:
    """Everything the Voice tab does, over the shared assistant and chat service."""

    def __init__(
        self,
        assistant: VoiceAssistant,
        chat: ChatService,
        folders: SessionFolders,
        streaming: bool,
    ) -> None:
        self.assistant = assistant
        self.chat = chat
        self.folders = folders
        self.streaming = streaming  # answer audio as WAV chunks (needs ffmpeg in gradio)
        self._api_sessions: OrderedDict[str, VoiceSession] = OrderedDict()
        self._lock = threading.Lock()
        # microphone chunks of one session arrive as parallel events (the stream has no
        # concurrency limit): one lock per live session keeps its listener fed one chunk at a
        # time (the first chunk loads the VAD model; without it a second chunk made a second
        # listener and the utterance was lost)
        self._listening: dict[int, threading.Lock] = {}

    # ---- data ------------------------------------------------------------------------

    def choices(self) -> dict[str, list[str]]:
        """Voices and languages of the loaded backends, and the adapters (loads nothing)."""
        voices, languages = self.assistant.loaded_choices()
        return {
            "voices": [DEFAULT_VOICE, *voices],
            "languages": [AUTO_LANGUAGE, *languages],
            "adapters": self.chat.adapter_choices(),
        }

    def request(
        self,
        question_audio: str | None,
        voice: str,
        language: str,
        speed: float,
        adapter: str,
        mode: str | None = None,
    ) -> tuple[Clip, VoiceOptions]:
        """The question's audio (decoded by the house decoder) and the turn's options."""
        if not question_audio:
            raise BadInputError(
                "there is no question to answer yet",
                fix="record with the microphone or upload an audio file first",
            )
        options = options_from(voice, language, speed, adapter, mode)
        self.assistant.check(options)  # before reading a long file
        clip = read_audio(question_audio, self.assistant.max_input_s, self.assistant.max_audio_s)
        return clip, options

    def answer(
        self,
        sess: VoiceSession,
        question_audio: str | None,
        image: str | None,
        voice: str,
        language: str,
        speed: float,
        adapter: str,
        session_hash: str | None = None,
        mode: str | None = None,
    ) -> dict[str, Any]:
        """One whole turn: transcript (None when the audio LLM heard the question itself),
        answer text, answer audio (a WAV file in the session's folder, or None when nothing
        was spoken), who answered and the stage latencies."""
        import numpy as np

        speech_end = time.perf_counter()
        clip, options = self.request(question_audio, voice, language, speed, adapter, mode)
        picture = load_image(image) if image else None
        chunks, rate, final = [], SAMPLE_RATE, None
        for update in self.assistant.turn(sess.conversation, clip, picture, options, speech_end):
            if update.audio is not None:
                chunks.append(update.audio)
                rate = update.sample_rate
            final = update
        assert final is not None  # a turn always ends with a done update or raises
        audio_path = None
        if chunks:
            folder = self.folders.folder(session_hash)
            audio_path = folder / f"answer-{time.time_ns()}.wav"
            audio_path.write_bytes(wav_bytes(np.concatenate(chunks), rate))
        heard = options.mode == AUDIO_LLM  # no ASR ran: there is no transcript
        return {
            "mode": options.mode,
            "transcript": None if heard else final.transcript,
            "answer": final.answer,
            "answer_audio": str(audio_path) if audio_path else None,
            "answered_by": final.metrics.responder,
            "interrupted": final.interrupted,
            "turn": len(sess.conversation.turns),
            "latency_s": {k: v for k, v in asdict(final.metrics).items() if k != "responder"},
            "notes": list(final.notes),
        }

    def api_session(self, session_hash: str | None) -> VoiceSession:
        """The conversation of an API client's session (made on first use)."""
        key = session_hash or ""
        with self._lock:
            sess = self._api_sessions.pop(key, None) or VoiceSession()
            self._api_sessions[key] = sess
            while len(self._api_sessions) > MAX_API_SESSIONS:
                self._api_sessions.popitem(last=False)
            return sess

    def end_session(self, session_hash: str | None) -> None:
        """Forget a session's conversation and remove its files (the tab was closed)."""
        with self._lock:
            self._api_sessions.pop(session_hash or "", None)
        self.folders.drop(session_hash)

    @staticmethod
    def stop(sess: VoiceSession) -> dict[str, Any]:
        """Cut the answer being spoken; "stopped" says whether there was one."""
        stopped = sess.conversation.interrupt()
        return {
            "stopped": stopped,
            "message": "Stopped: the answer was cut." if stopped else "Nothing to stop.",
        }

    @staticmethod
    def clear(sess: VoiceSession) -> dict[str, Any]:
        """Forget the conversation."""
        sess.conversation.clear()
        if sess.live is not None:
            sess.live.reset()
        return {"cleared": True, "turns": 0, "message": "Conversation cleared."}

    # ---- UI handlers -------------------------------------------------------------------

    def on_load(self) -> tuple[Any, Any, Any]:
        """Fill the voice, language and adapter menus when a page opens."""
        c = self.choices()
        return (
            gr.update(choices=c["voices"]),
            gr.update(choices=c["languages"]),
            gr.update(choices=c["adapters"]),
        )

    def run_turn(
        self,
        sess: VoiceSession,
        clip: Clip,
        image: str | None,
        options: VoiceOptions,
        speech_end: float,
        endpoint_s: float = 0.0,
        progress: Any = None,
    ) -> Iterator[tuple]:
        """Stream a turn to the widgets: chat, answer audio, latency, status, menus."""
        import numpy as np

        picture = load_image(image) if image else None

        def loading(share: float, why: str) -> None:  # first use: why the answer is slow
            if progress is not None:
                progress(share, desc=why)

        self.assistant.prepare(options, picture is not None, loading)
        conv = sess.conversation
        last: TurnUpdate | None = None
        spoken: list[Any] = []
        rate = SAMPLE_RATE
        for update in self.assistant.turn(conv, clip, picture, options, speech_end, endpoint_s):
            last = update
            chunk: Any = None
            if update.audio is not None:
                rate = update.sample_rate
                if self.streaming:
                    chunk = wav_bytes(update.audio, rate)
                else:
                    spoken.append(update.audio)
            if update.done and spoken:
                chunk = (rate, pcm16(np.concatenate(spoken)))
            rows = latency_rows([*conv.metrics, *([] if update.done else [update.metrics])])
            yield chat_messages(conv, update), chunk, rows, status_md(update), gr.skip(), gr.skip()
        if last is not None:  # the models are loaded now: offer their voices and languages
            voices, languages, _ = self.on_load()
            yield gr.skip(), None, gr.skip(), gr.skip(), voices, languages

    def respond(
        self,
        question_audio: str | None,
        image: str | None,
        voice: str,
        language: str,
        speed: float,
        adapter: str,
        mode: str,
        sess: VoiceSession,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's way to ask for one)
    ) -> Iterator[tuple]:
        """Push-to-talk or upload: answer the recorded question (``mode``: the pipeline, or
        the audio LLM hearing the audio itself)."""
        speech_end = time.perf_counter()
        clip, options = self.request(question_audio, voice, language, speed, adapter, mode)
        yield from self.run_turn(sess, clip, image, options, speech_end, progress=progress)

    def respond_live(
        self,
        image: str | None,
        voice: str,
        language: str,
        speed: float,
        adapter: str,
        mode: str,
        sess: VoiceSession,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> Iterator[tuple]:
        """Hands-free: answer the utterance the listener finished, if there is one."""
        utterance = sess.live.take() if sess.live is not None else None
        if utterance is None:
            return
        options = options_from(voice, language, speed, adapter, mode)
        yield from self.run_turn(
            sess,
            utterance.clip,
            image,
            options,
            utterance.detected_at,
            utterance.hangover_s,
            progress,
        )

    def listen(self, chunk: Any, sess: VoiceSession) -> tuple[int, int]:
        """Feed a microphone chunk to the session's listener: (utterances, barge-ins) so far.
        A new utterance count starts a turn; a new barge-in count pauses the answer."""
        with self._lock:
            lock = self._listening.get(id(sess))
            if lock is None:
                lock = self._listening[id(sess)] = threading.Lock()
                weakref.finalize(sess, self._listening.pop, id(sess), None)  # gone with it
        with lock:
            if sess.live is None:
                sess.live = LiveListener(sess.conversation, self.assistant.vad)
            if chunk is None:
                return sess.live.utterances, sess.live.barge_ins
            rate, data = chunk
            return sess.live.hear(data, rate)

    def stop_ui(self, sess: VoiceSession) -> str:
        return self.stop(sess)["message"]

    def clear_ui(self, sess: VoiceSession) -> tuple:
        """Empty the chat, the answer, the latency table and the question."""
        return [], None, [], self.clear(sess)["message"], None
