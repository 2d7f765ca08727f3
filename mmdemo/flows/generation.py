"""Streaming generation primitives shared by chat, arena and the voice assistant.

Generation runs in a worker thread; tokens come back through one streamer (``TokenStreamer``),
one ``TokenRow`` per answer. Each row's stop switch is checked by a ``StoppingCriteria`` after
every token, so Stop ends the computation itself (and the row records that Stop ended it).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmdemo.errors import BadInputError, as_out_of_memory


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
    """Times and counts one answer's tokens."""

    start: float = field(default_factory=time.perf_counter)
    first_token: float | None = None
    last_token: float | None = None
    tokens: int = 0  # tokens of the answer (its end-of-sequence token not counted)
    peak_rss: int = 0
    steps: int = 0

    def tick(self) -> None:
        """A decoding step reached this answer."""
        now = time.perf_counter()
        if self.first_token is None:
            self.first_token = now
        self.last_token = now
        self.steps += 1
        if self.steps % 8 == 1:  # reading /proc costs ~30 us; every 8th step is plenty
            self.peak_rss = max(self.peak_rss, _rss())

    @property
    def ttft(self) -> float:
        return (self.first_token or time.perf_counter()) - self.start

    def tokens_per_s(self) -> float:
        if self.first_token is None or self.last_token is None:
            return 0.0
        decode = self.last_token - self.first_token
        n = self.tokens - 1
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
    """A transformers StoppingCriteriaList that stops every row once ``event`` is set (for
    generations that stream nothing; streamed ones stop through ``TokenStreamer.stopping``)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopOnEvent(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full(
                (input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device
            )

    return StoppingCriteriaList([StopOnEvent()])


@dataclass(eq=False)
class TokenRow:
    """One answer (one row of a batch) as it is generated: its new tokens and clock. It ends at
    its end-of-sequence token, at its own token budget, or when its stop switch is set; in
    the last case ``stopped`` says that Stop, not the model, ended it."""

    eos_ids: set[int]
    stop: threading.Event = field(default_factory=threading.Event)
    max_new_tokens: int | None = None  # its own budget inside a batch (None: generate's)
    clock: TokenClock = field(default_factory=TokenClock)
    tokens: list[int] = field(default_factory=list)
    events: queue.Queue = field(default_factory=queue.Queue)  # "step" per token, None at the end
    done: bool = False
    stopped: bool = False  # its stop switch ended it (set by the stopping criterion)

    def take(self, token: int) -> None:
        """The row's next token (ignored once the row has ended)."""
        if self.done:
            return
        self.clock.tick()
        if token in self.eos_ids:
            self.finish()
            return
        self.tokens.append(token)
        self.clock.tokens += 1
        self.events.put("step")
        if self.max_new_tokens is not None and len(self.tokens) >= self.max_new_tokens:
            self.finish()

    def over(self) -> bool:
        """Whether the row has ended; a set stop switch ends it here (asked after every step
        by the stopping criterion, so Stop ends the computation, not just the display)."""
        if not self.done and self.stop.is_set():
            self.stopped = True
            self.finish()
        return self.done

    def finish(self) -> None:
        if not self.done:
            self.done = True
            self.events.put(None)


class TokenStreamer:
    """The transformers streamer for every generation that streams (chat, arena, batches,
    voice): skips the prompt, hands each row's new token to that row, and puts a "step" on
    ``queue`` per decoding step (None at the end) for a consumer of all rows."""

    def __init__(self, rows: Sequence[TokenRow]):
        self.rows = list(rows)
        self.queue: queue.Queue = queue.Queue()
        self._prompt_seen = False

    @classmethod
    def of(cls, count: int, eos_ids: set[int], stop: threading.Event) -> TokenStreamer:
        """``count`` rows that end together when ``stop`` is set."""
        return cls([TokenRow(eos_ids, stop) for _ in range(count)])

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # the first call carries the prompt
            self._prompt_seen = True
            return
        ids = value.reshape(len(self.rows), -1)[:, -1].tolist()
        for row, token in zip(self.rows, ids, strict=True):
            row.take(token)
        self.queue.put("step")

    def end(self) -> None:
        for row in self.rows:
            row.finish()
        self.queue.put(None)

    def stopping(self) -> Any:
        """The StoppingCriteriaList ending each row once it is over (its end, budget or Stop);
        the other rows of a batch go on."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        rows = self.rows

        class RowsOver(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                flags = [row.over() for row in rows]
                return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)

        return StoppingCriteriaList([RowsOver()])


def eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def run_generation(
    model: Any,
    inputs: dict[str, Any],
    streamer: TokenStreamer,
    kwargs: dict[str, Any],
    min_interval: float = 0.05,
) -> Iterator[None]:
    """Run ``model.generate`` in a thread; yield when new tokens arrived, at most every
    ``min_interval`` seconds (the consumer's decoding then never slows generation down).

    Each row ends on its own stop switch (checked after every token). Leaving the iterator
    early (a closed browser tab) sets them all and waits for the worker, so no generation
    keeps running unseen. Running out of memory raises ``OutOfMemoryError``.
    """
    import torch

    errors: list[BaseException] = []

    extra: dict[str, Any] = {"streamer": streamer, "stopping_criteria": streamer.stopping()}
    if callable(kwargs.get("custom_generate")):
        # transformers 5.2x hands a callable decoding loop only the arguments its signature
        # adds, not generate's streamer: give it the streamer under the loop's own name too
        extra["loop_streamer"] = streamer

    def work() -> None:
        try:
            with torch.inference_mode():
                model.generate(**inputs, **kwargs, **extra)
        except BaseException as exc:  # reported to the caller below
            errors.append(exc)
        finally:
            streamer.end()

    def leave() -> None:
        for row in streamer.rows:
            row.stop.set()

    thread = threading.Thread(target=work, name="mmdemo-generate", daemon=True)
    thread.start()
    try:
        yield from throttled(streamer.queue, min_interval, leave)
    finally:
        thread.join()
    if errors:
        raise as_out_of_memory(errors[0])


def throttled(queue: Any, min_interval: float, leave: Callable[[], None]) -> Iterator[None]:
    """Yield when items arrive on ``queue`` (at most every ``min_interval`` s) until a None
    ends it. A consumer that leaves early (a closed tab) calls ``leave`` so the producer ends."""
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
            leave()
