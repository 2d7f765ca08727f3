"""Hands-free input for one user: microphone chunks -> VAD endpointing -> utterances, and
barge-in (speech while an answer is running interrupts it)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mmdemo.flows.assistant import Conversation
from mmdemo.flows.audio import SAMPLE_RATE, Clip, chunk_to_16k
from mmdemo.flows.vad import Endpointer, VadConfig


@dataclass(frozen=True)
class Utterance:
    """A finished live utterance, ready for ``VoiceAssistant.turn``."""

    clip: Clip
    hangover_s: float  # silence waited before the end of speech was declared
    detected_at: float  # perf_counter when the end of speech was declared


class LiveListener:
    """Feeds a user's microphone stream to the endpointer; counts what it heard."""

    def __init__(self, conversation: Conversation, vad: VadConfig | None = None) -> None:
        self.conversation = conversation
        self.endpointer = Endpointer(vad or VadConfig())
        self.pending: list[Utterance] = []
        self.utterances = 0  # finished utterances so far (a new one starts a turn)
        self.barge_ins = 0  # answers interrupted by the user speaking

    def hear(self, data: Any, rate: int) -> tuple[int, int]:
        """Process one microphone chunk; returns (utterances, barge_ins) so far."""
        for event in self.endpointer.feed(chunk_to_16k(data, rate)):
            if event.kind == "speech_start" and self.conversation.interrupt():
                self.barge_ins += 1
            elif event.kind == "utterance":
                clip = Clip(event.audio, SAMPLE_RATE, 1, len(event.audio) / SAMPLE_RATE)
                self.pending.append(Utterance(clip, event.hangover_s, time.perf_counter()))
                self.utterances += 1
        return self.utterances, self.barge_ins

    def take(self) -> Utterance | None:
        """The newest finished utterance (older unanswered ones are dropped)."""
        newest = self.pending[-1] if self.pending else None
        self.pending.clear()
        return newest

    def reset(self) -> None:
        self.endpointer.reset()
        self.pending.clear()
