"""Shared bits of the voice assistant tests: a scripted responder and audio files."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ANSWER = (
    "You asked {n} questions before this one. This is the second sentence of the answer. "
    "And here comes a third sentence, to be spoken last."
)


class ScriptedResponder:
    """A responder with a known answer that says how much history it was given.

    Streams word by word (``delay`` seconds per word) and stops when ``stop`` is set, like
    the real ones; it records every call and when it produced its last word.
    """

    name = "scripted"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[tuple[int, str, bool]] = []
        self.words_sent = 0
        self.finished_at: float | None = None
        self.started = threading.Event()
        self.adapters: list[str | None] = []

    def respond(
        self,
        history: Sequence[Any],
        user_text: str,
        image: Any,
        stop: threading.Event,
        adapter: str | None = None,
    ) -> Iterator[str]:
        self.calls.append((len(history), user_text, image is not None))
        self.adapters.append(adapter)
        self.words_sent, self.finished_at = 0, None
        self.started.set()
        for word in ANSWER.format(n=len(history)).split(" "):
            if stop.is_set():
                return
            if self.delay:
                time.sleep(self.delay)
            self.words_sent += 1
            yield word + " "
        self.finished_at = time.perf_counter()


def write_audio(path: Path, samples: Any, rate: int, subtype: str | None = None) -> Path:
    import soundfile as sf

    sf.write(str(path), samples, rate, subtype=subtype)
    return path


def read_clip(path: Path) -> tuple[Any, int]:
    import soundfile as sf

    return sf.read(str(path), dtype="float32")
