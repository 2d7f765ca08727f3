"""Streaming generation primitives shared by chat, arena and the voice assistant.

Generation runs in a worker thread; tokens come back through a streamer. A stop event is
checked by a ``StoppingCriteria`` after every token, so Stop ends the computation itself.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mmdemo.errors import BadInputError, OutOfMemoryError


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding knobs the user can set."""

    max_new_tokens: int = 128
    temperature: float = 0.7
    top_p: float = 0.9
    greedy: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.max_new_tokens <= 4096:
            raise BadInputError(f"max new tokens {self.max_new_tokens} is outside 1..4096")
        if not 0.0 < self.temperature <= 5.0:
            raise BadInputError(f"temperature {self.temperature} is outside (0, 5]")
        if not 0.0 < self.top_p <= 1.0:
            raise BadInputError(f"top-p {self.top_p} is outside (0, 1]")

    def generate_kwargs(self) -> dict[str, Any]:
        if self.greedy:
            return {"max_new_tokens": self.max_new_tokens, "do_sample": False}
        return {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": True,
            "temperature": self.temperature,
            "top_p": self.top_p,
        }


@dataclass
class TokenClock:
    """Times and counts generated tokens (per batch row)."""

    start: float = field(default_factory=time.perf_counter)
    first_token: float | None = None
    last_token: float | None = None
    tokens: list[int] = field(default_factory=list)
    peak_rss: int = 0
    steps: int = 0

    def tick(self, rows: int = 1) -> None:
        now = time.perf_counter()
        if self.first_token is None:
            self.first_token = now
            self.tokens = [0] * rows
        self.last_token = now
        self.steps += 1
        if self.steps % 8 == 1:  # reading /proc costs ~30 us; every 8th step is plenty
            self.peak_rss = max(self.peak_rss, _rss())

    @property
    def ttft(self) -> float:
        return (self.first_token or time.perf_counter()) - self.start

    def tokens_per_s(self, row: int = 0) -> float:
        if self.first_token is None or self.last_token is None or not self.tokens:
            return 0.0
        decode = self.last_token - self.first_token
        n = self.tokens[row] - 1
        return n / decode if decode > 0 and n > 0 else 0.0


def _rss() -> int:
    import psutil

    return psutil.Process(os.getpid()).memory_info().rss


def peak_memory_bytes(clock: TokenClock, device: str) -> int:
    """Peak accelerator memory on CUDA, else the peak resident set size seen while generating."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.max_memory_allocated())
    return clock.peak_rss


def stopping_on(event: threading.Event) -> Any:
    """A transformers StoppingCriteriaList that stops every row once ``event`` is set."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopOnEvent(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full(
                (input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device
            )

    return StoppingCriteriaList([StopOnEvent()])


class RowStreamer:
    """A transformers streamer for batches: collects new token ids per row, skips the prompt,
    and stops collecting a row after its end-of-sequence token."""

    def __init__(self, rows: int, eos_ids: set[int], clock: TokenClock):
        import queue

        self.rows = [[] for _ in range(rows)]
        self.done = [False] * rows
        self.eos_ids = eos_ids
        self.clock = clock
        self.queue: queue.Queue = queue.Queue()
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # the first call carries the prompt
            self._prompt_seen = True
            return
        ids = value.reshape(len(self.rows), -1)[:, -1].tolist()
        self.clock.tick(len(self.rows))
        for i, tok in enumerate(ids):
            if self.done[i]:
                continue
            if tok in self.eos_ids:
                self.done[i] = True
                continue
            self.rows[i].append(tok)
            self.clock.tokens[i] += 1
        self.queue.put("step")

    def end(self) -> None:
        self.queue.put(None)


def eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def run_generation(
    model: Any,
    inputs: dict[str, Any],
    streamer: RowStreamer,
    stop: threading.Event,
    kwargs: dict[str, Any],
    min_interval: float = 0.05,
) -> Iterator[None]:
    """Run ``model.generate`` in a thread; yield when new tokens arrived, at most every
    ``min_interval`` seconds (the consumer's decoding then never slows generation down).

    Leaving the iterator early (Stop, a closed browser tab) sets ``stop`` and waits for the
    worker, so no generation keeps running unseen.
    """
    import torch

    errors: list[BaseException] = []

    def work() -> None:
        try:
            with torch.inference_mode():
                model.generate(
                    **inputs, **kwargs, streamer=streamer, stopping_criteria=stopping_on(stop)
                )
        except BaseException as exc:  # reported to the caller below
            errors.append(exc)
        finally:
            streamer.end()

    thread = threading.Thread(target=work, name="mmdemo-generate", daemon=True)
    thread.start()
    try:
        yield from throttled(streamer.queue, min_interval, stop)
    finally:
        thread.join()
    if errors:
        exc = errors[0]
        if type(exc).__name__ == "OutOfMemoryError":
            raise OutOfMemoryError(
                "the device ran out of memory for this answer",
                fix="use fewer images, fewer new tokens, or a smaller model",
            ) from exc
        raise exc


def throttled(queue: Any, min_interval: float, stop: threading.Event) -> Iterator[None]:
    """Yield when items arrive on ``queue`` (at most every ``min_interval`` s) until a None
    ends it. A consumer that leaves early (a closed tab) sets ``stop`` so the producer ends."""
    finished = False
    last = 0.0
    try:
        while queue.get() is not None:
            now = time.perf_counter()
            if now - last >= min_interval:
                last = now
                yield
        finished = True
    finally:
        if not finished:
            stop.set()
