"""What a running training job tells the world: its events (``events.py``) written as JSON
lines and read back, step events made from losses (tokens/s, memory, ETA), a stop switch, and
a sampler of peak memory."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmdemo.errors import TrainingStopped
from mmdemo.finetune.events import Event, Step, event_from_dict

Emit = Callable[[Event], None]


class EventLog:
    """Appends each event as one JSON object per line to ``events.jsonl`` (readers poll it),
    stamped with the time, and keeps the events in memory for in-process callers."""

    def __init__(
        self,
        path: Path | None = None,
        echo: Callable[[str], None] | None = None,
        on_event: Callable[[Event], None] | None = None,
    ):
        self.path = path
        self.events: list[Event] = []
        self.echo = echo  # gets a readable line per event
        self.on_event = on_event  # gets the event itself
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)
            if self.path is not None:
                line = {"time": time.time(), **event.to_dict()}
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(line) + "\n")
        if self.echo is not None:
            self.echo(event.describe())
        if self.on_event is not None:
            self.on_event(event)


def read_events(path: Path, offset: int = 0) -> tuple[list[Event], int]:
    """Events appended since byte ``offset`` (complete lines only; a kind this version does not
    know is skipped), and the new offset."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    events = []
    for line in data[:end].splitlines():
        try:
            event = event_from_dict(json.loads(line))
        except (ValueError, TypeError, AttributeError):  # a damaged line
            continue
        if event is not None:
            events.append(event)
    return events, offset + end


class StopSwitch:
    """Set by the user (a file in the run folder, or an event in-process); checked every step."""

    def __init__(self, file: Path | None = None, event: threading.Event | None = None):
        self.file = file
        self.event = event or threading.Event()

    def is_set(self) -> bool:
        return self.event.is_set() or (self.file is not None and self.file.exists())

    def check(self) -> None:
        if self.is_set():
            raise TrainingStopped("the run was stopped before it finished")


class MemorySampler:
    """Peak memory while training: CUDA's allocator peak, else the process's resident set
    sampled every 20 ms by a background thread (peaks inside a step are caught)."""

    def __init__(self, device: str):
        self.device = device
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self) -> int:
        if self.device.startswith("cuda"):
            import torch

            return int(torch.cuda.max_memory_allocated())
        import psutil

        return int(psutil.Process(os.getpid()).memory_info().rss)

    def __enter__(self) -> MemorySampler:
        self.peak = self.current()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats()
            return self

        def run() -> None:
            while not self._stop.wait(0.02):
                self.peak = max(self.peak, self.current())

        self._thread = threading.Thread(target=run, name="mmdemo-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, self.current())


class StepMeter:
    """Turns (step, loss, tokens) into step events with tokens/s and an ETA."""

    def __init__(self, emit: Emit, total_steps: int, memory: MemorySampler):
        self.emit = emit
        self.total = total_steps
        self.memory = memory
        self.start = time.perf_counter()
        self.done = 0
        self.tokens = 0
        self.history: list[tuple[int, float]] = []

    def step(self, stage: str, loss: float, tokens: int, lr: float | None = None) -> None:
        self.done += 1
        self.tokens += tokens
        elapsed = time.perf_counter() - self.start
        per_step = elapsed / self.done
        self.history.append((self.done, loss))
        self.emit(
            Step(
                stage=stage,
                step=self.done,
                total_steps=self.total,
                loss=loss,
                lr=lr,
                tokens_per_s=self.tokens / elapsed if elapsed > 0 else 0.0,
                seconds_per_step=per_step,
                eta_s=per_step * (self.total - self.done),
                peak_memory_bytes=self.memory.peak,
            )
        )
