"""Voice activity: speech is found in real recordings, not in silence, noise or tones, and the
live endpointer ends an utterance once, at the pause, whatever the chunk size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmdemo.flows.vad import Endpointer, VadConfig, speech_chunks, speech_spans
from tests.voice_helpers import read_clip

RATE = 16000


@pytest.fixture(scope="module")
def utterance(librivox: list[tuple[Path, str]]) -> Any:
    return read_clip(librivox[2][0])[0]  # 5.3 s


def noise(seconds: float, level: float = 0.05, seed: int = 0) -> Any:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * level).astype(np.float32)


@pytest.mark.parametrize(
    ("name", "audio"),
    [
        ("silence", np.zeros(3 * RATE, np.float32)),
        ("white noise", noise(3)),
        ("loud noise", noise(3, 0.5, seed=1)),
        ("440 Hz tone", (0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * RATE) / RATE)).astype("f4")),
    ],
)
def test_no_speech_is_found_where_there_is_none(name: str, audio: Any) -> None:
    assert speech_spans(audio) == [], name


def test_speech_is_found_between_silences(utterance: Any) -> None:
    audio = np.concatenate([np.zeros(RATE, np.float32), utterance, noise(1.5, 0.005)])
    spans = speech_spans(audio)
    assert spans, "the recorded sentence must be heard"
    start, end = spans[0][0], spans[-1][1]
    assert 0.6 * RATE < start < 1.2 * RATE  # speech begins after the leading second
    assert end < len(audio) - 0.8 * RATE  # and ends before the trailing silence


def test_speech_chunks_are_bounded_and_cover_all_speech() -> None:
    audio = noise(95, 0.1)
    spans = [(0, 40 * RATE), (50 * RATE, 95 * RATE)]
    chunks = list(speech_chunks(audio, spans, max_seconds=30))
    assert all(len(c) <= 30 * RATE for c in chunks)
    assert sum(len(c) for c in chunks) == 85 * RATE


@pytest.mark.parametrize("chunk", [160, 512, 4000, 16000])
def test_endpointer_finds_one_utterance_whatever_the_chunk_size(utterance: Any, chunk: int) -> None:
    stream = np.concatenate([np.zeros(RATE // 2, np.float32), utterance, np.zeros(RATE, "f4")])
    endpointer = Endpointer(VadConfig(end_silence_ms=500))
    events = []
    for i in range(0, len(stream), chunk):
        events += endpointer.feed(stream[i : i + chunk])
    assert [e.kind for e in events] == ["speech_start", "utterance"]
    heard = events[1].audio
    assert abs(len(heard) - len(utterance)) < 0.6 * RATE
    assert 0.5 <= events[1].hangover_s <= 0.6 and not events[1].forced


def test_endpointer_ignores_a_click_and_cuts_a_monologue(utterance: Any) -> None:
    endpointer = Endpointer(VadConfig(min_speech_ms=800, end_silence_ms=300))
    click = np.concatenate([utterance[: int(0.2 * RATE)], np.zeros(RATE, np.float32)])
    assert [e.kind for e in endpointer.feed(click)] in (["speech_start"], [])
    monologue = Endpointer(VadConfig(max_utterance_s=2.0))
    events = monologue.feed(utterance)
    cuts = [e for e in events if e.kind == "utterance"]
    assert cuts and cuts[0].forced and len(cuts[0].audio) <= 2.1 * RATE


def test_the_vad_leaves_torch_threads_for_the_models() -> None:
    """silero-vad sets torch to one thread when imported; the app puts the count back."""
    import subprocess
    import sys

    code = (
        "import torch; torch.set_num_threads(2)\n"
        "import numpy as np\n"
        "from mmdemo.flows.vad import Endpointer, speech_spans\n"
        "Endpointer().feed(np.zeros(4096, np.float32)); speech_spans(np.zeros(16000, 'f4'))\n"
        "print(torch.get_num_threads())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "2"
