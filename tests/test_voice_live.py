"""Hands-free: microphone chunks become one utterance at the pause, and speaking while an
answer runs interrupts it (barge-in)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmdemo.flows.assistant import Conversation, VoiceAssistant
from mmdemo.flows.audio import prepare
from mmdemo.flows.live import LiveListener
from mmdemo.flows.responders import Responders
from tests.voice_helpers import ANSWER, ScriptedResponder, read_clip


def mic_chunks(speech: Any, rate: int = 48000, seconds: float = 0.25) -> list[Any]:
    """The browser's view: int16 chunks at 48 kHz, silence before and after the speech."""
    import torch
    import torchaudio.functional as AF

    loud = AF.resample(torch.from_numpy(speech), 16000, rate).numpy()
    stream = np.concatenate([np.zeros(rate // 2), loud, np.zeros(rate)])
    pcm = (stream * 32767).astype(np.int16)
    step = int(rate * seconds)
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


@pytest.fixture(scope="module")
def speech(librivox: list[tuple[Path, str]]) -> Any:
    return read_clip(librivox[1][0])[0]


def test_a_spoken_question_becomes_one_turn(shared_manager: Any, speech: Any) -> None:
    responder = ScriptedResponder()
    assistant = VoiceAssistant(shared_manager, Responders(responder, responder))
    conv = Conversation()
    live = LiveListener(conv, assistant.vad)
    counts = [live.hear(chunk, 48000) for chunk in mic_chunks(speech)]
    assert counts[-1] == (1, 0)
    utterance = live.take()
    assert utterance is not None and live.take() is None
    assert abs(utterance.clip.seconds - len(speech) / 16000) < 0.6
    *_, done = assistant.turn(
        conv, utterance.clip, speech_end=utterance.detected_at, endpoint_s=utterance.hangover_s
    )
    assert done.answer == ANSWER.format(n=0)
    assert 0.5 < done.metrics.endpoint_s < 0.7


def test_speaking_during_an_answer_interrupts_it(shared_manager: Any, speech: Any) -> None:
    responder = ScriptedResponder(delay=0.2)
    assistant = VoiceAssistant(shared_manager, Responders(responder, responder))
    conv = Conversation()
    live = LiveListener(conv, assistant.vad)
    assert live.hear(np.zeros(4000, np.int16), 16000) == (0, 0)  # silence: nothing yet
    answered: list[Any] = []
    worker = threading.Thread(
        target=lambda: answered.extend(assistant.turn(conv, prepare(speech, 16000)))
    )
    worker.start()
    assert responder.started.wait(60)
    for chunk in mic_chunks(speech)[:6]:  # the user starts talking over the answer
        live.hear(chunk, 48000)
    worker.join(60)
    assert live.barge_ins == 1
    assert answered[-1].interrupted and conv.turns[-1].interrupted
