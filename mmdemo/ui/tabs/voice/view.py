"""What the Voice assistant tab shows: chat messages, the latency table, the status line,
and the per-session state it keeps in ``gr.State`` (no gradio needed here)."""

from __future__ import annotations

import copy
from typing import Any

from mmdemo.errors import BadInputError
from mmdemo.flows.assistant import (
    AUDIO_LLM,
    PIPELINE,
    Conversation,
    TurnMetrics,
    TurnUpdate,
    VoiceOptions,
)
from mmdemo.flows.live import LiveListener

AUTO_LANGUAGE, DEFAULT_VOICE = "auto", "default"
# the answer-mode choice: label shown -> mode of the flow (the API takes either)
MODE_LABELS = {
    "Pipeline (ASR -> LLM -> TTS)": PIPELINE,
    "Audio LLM (hears the audio directly)": AUDIO_LLM,
}
DEFAULT_MODE = next(iter(MODE_LABELS))
LATENCY_HEADERS = [
    "turn",
    "answered by",
    "speech s",
    "transcript s",
    "first token s",
    "first audio s",
    "total s",
    "ASR RTF",
    "audio LLM s",
    "TTS s",
]


class VoiceSession:
    """One browser session: its conversation and its live-microphone listener."""

    def __init__(self, conversation: Conversation | None = None) -> None:
        self.conversation = conversation or Conversation()
        self.live: LiveListener | None = None  # made on the first microphone chunk

    def __deepcopy__(self, memo: dict) -> VoiceSession:
        return VoiceSession(copy.deepcopy(self.conversation, memo))


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def latency_rows(metrics: list[TurnMetrics]) -> list[list[str]]:
    rows = []
    for i, m in enumerate(metrics, 1):
        rtf = m.asr_rtf
        rows.append(
            [
                str(i),
                m.responder,
                _seconds(m.speech_s),
                _seconds(m.transcript_s),
                _seconds(m.first_token_s),
                _seconds(m.first_audio_s),
                _seconds(m.total_s),
                "" if rtf is None else f"{rtf:.2f}",
                _seconds(m.model_s),
                _seconds(m.tts_s),
            ]
        )
    return rows


def chat_messages(conversation: Conversation, live: TurnUpdate | None = None) -> list[dict]:
    messages: list[dict] = []
    for turn in conversation.turns:
        messages.append({"role": "user", "content": turn.user + (" 🖼️" if turn.image else "")})
        tail = " _(interrupted)_" if turn.interrupted else ""
        messages.append({"role": "assistant", "content": turn.assistant + tail})
    if live is not None and not live.done:
        messages.append({"role": "user", "content": live.transcript})
        messages.append({"role": "assistant", "content": live.answer or "…"})
    return messages


def status_md(update: TurnUpdate) -> str:
    m = update.metrics
    parts = [f"**heard** {m.speech_s:.1f} s of speech"]
    if m.transcript_s is not None:
        parts.append(f"transcript after {m.transcript_s:.2f} s")
    if m.model_s is not None:  # the audio LLM: model time, then TTS time
        parts.append(f"audio LLM answered after {m.model_s:.2f} s")
        parts.append(f"TTS {m.tts_s:.2f} s")
    if m.first_audio_s is not None:
        parts.append(f"first audio after {m.first_audio_s:.2f} s")
    if m.endpoint_s:
        parts.append(f"end of speech detected after {m.endpoint_s:.2f} s of silence")
    if update.done and m.total_s is not None:
        parts.append(f"done in {m.total_s:.2f} s")
    text = " · ".join(parts)
    if update.notes:
        text += "\n\n" + "\n".join(f"- {n}" for n in update.notes)
    return text


def pcm16(samples: Any) -> Any:
    import numpy as np

    return (np.clip(samples, -1, 1) * 32767).astype(np.int16)


def mode_from(choice: str | None) -> str:
    """The flow's mode for a choice: a label of ``MODE_LABELS``, a mode name, or empty."""
    if choice in (None, ""):
        return PIPELINE
    if choice in MODE_LABELS:
        return MODE_LABELS[choice]
    if choice in MODE_LABELS.values():
        return str(choice)
    raise BadInputError(
        f"unknown answer mode {choice!r}",
        fix=f"use one of {', '.join(MODE_LABELS.values())} (or their labels)",
    )


def options_from(
    voice: str | None,
    language: str | None,
    speed: float | None,
    adapter: str | None = None,
    mode: str | None = None,
) -> VoiceOptions:
    return VoiceOptions(
        voice=None if voice in (None, "", DEFAULT_VOICE) else voice,
        language=None if language in (None, "", AUTO_LANGUAGE) else str(language).strip(),
        speed=float(speed or 1.0),
        adapter=None if adapter in (None, "", "base") else adapter,
        mode=mode_from(mode),
    )
