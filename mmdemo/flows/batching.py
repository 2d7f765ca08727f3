"""Concurrent chat requests answered as one batch (dynamic batching over many adapters).

Requests that arrive together (within ``window_s`` of the first, or while a batch is running)
and ask for the same decoding run as one ``generate`` call: their prompts are left-padded into
one batch and each row carries its own LoRA adapter through PEFT's mixed-adapter batches
(``adapter_names=``), as S-LoRA, Punica and LoRAX serve many adapters: no adapter switch on
this path. Each row streams to its own request; Stop (or a closed tab) ends only that row.

A batch of one runs exactly like the serial path (the adapter is activated, no
``adapter_names``). What cannot be batched (non-LoRA adapters, adapters on the vision tower,
model families not verified here) stays on the serial path of ``flows/chat_local.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmdemo.flows.generation import (
    GenerationSettings,
    TokenClock,
    TokenRow,
    TokenStreamer,
    throttled,
)
from mmdemo.models.adapters import AdapterInfo
from mmdemo.models.families import FAMILIES

# model_type values whose padded batches were checked to give each row its solo answer
# (greedy): Idefics3, LLaVA-1.5, InternVL. The 3-D rope families (Qwen2-VL, Qwen2.5-VL,
# GLM-4.1V) are left out; models/families.py says why (Family.serial_reason).
BATCH_FAMILIES = tuple(t for f in FAMILIES.values() if f.mixed_batch for t in f.model_types)
# Keys a single-row input of those families may have; anything else is not batched.
_TEXT_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids")
_IMAGE_KEYS = ("pixel_values", "pixel_attention_mask", "image_grid_thw")


@dataclass(eq=False)
class BatchRequest:
    """One user's answer inside a batch: its inputs, adapter and decoding, and the row the
    batch's streamer fills (its tokens, clock, stop switch and end)."""

    inputs: dict[str, Any]  # single-row model inputs (batch dimension 1)
    info: AdapterInfo | None  # None = base model
    gen: GenerationSettings
    row: TokenRow  # its stop switch ends this row only; its budget is gen.max_new_tokens
    submitted: float = field(default_factory=time.perf_counter)
    queue_wait_s: float = 0.0
    switch_s: float = 0.0
    rows: int = 0  # size of the batch it ran in
    error: BaseException | None = None
    thread: threading.Thread | None = None

    @classmethod
    def make(
        cls,
        inputs: dict[str, Any],
        info: AdapterInfo | None,
        gen: GenerationSettings,
        stop: threading.Event,
        eos_ids: set[int],
    ) -> BatchRequest:
        return cls(inputs, info, gen, TokenRow(eos_ids, stop, gen.max_new_tokens))

    def decoding(self) -> tuple[tuple[str, Any], ...]:
        """Requests batch together only when they decode alike (greedy, or equal sampling)."""
        kwargs = self.gen.generate_kwargs()
        return tuple(sorted((k, v) for k, v in kwargs.items() if k != "max_new_tokens"))

    def updates(self, min_interval: float) -> Iterator[None]:
        """Yield when new tokens arrived (at most every ``min_interval`` s) until the row ends.

        Leaving early (a closed tab) stops this row only; a batch of one is waited for, so
        no generation keeps running unseen."""
        finished = False
        try:
            yield from throttled(self.row.events, min_interval, self.row.stop.set)
            finished = True
        finally:
            if not finished:
                while not self.row.done and self.row.events.get() is not None:
                    pass
            if self.rows <= 1 and self.thread is not None:
                self.thread.join()


def collate(rows: Sequence[dict[str, Any]], pad_id: int) -> dict[str, Any] | None:
    """Single-row inputs as one left-padded batch; None if they cannot be batched.

    Idefics3 (5-D pixels, one slot per image a row): image tensors are padded with all-zero
    images, which Idefics3 drops before its vision tower (as its own processor pads a batch),
    so each row sees only its own images. LLaVA and InternVL (4-D pixels, one entry per image
    or tile): the rows' images are stacked in row order, the order the model fills the image
    tokens of the batch in. 3-D rope families (2-D flat patches): patches and image grids
    are stacked in row order, the token types padded as text."""
    import torch
    from torch.nn.functional import pad

    if any(set(r) - {*_TEXT_KEYS, *_IMAGE_KEYS} for r in rows):
        return None
    if any(r["input_ids"].shape[0] != 1 for r in rows):
        return None
    length = max(r["input_ids"].shape[1] for r in rows)
    fill = {"input_ids": pad_id, "attention_mask": 0, "mm_token_type_ids": 0}  # 0: text
    out = {}
    for key, value in fill.items():
        if not any(key in r for r in rows):
            continue
        # a text-only row of a 3-D rope family may come without token types: all text
        present = [r.get(key, torch.zeros_like(r["input_ids"])) for r in rows]
        out[key] = torch.cat([pad(p, (length - p.shape[1], 0), value=value) for p in present])
    pixels = [r.get("pixel_values") for r in rows]
    present = [p for p in pixels if p is not None]
    if not present:
        return out
    if all(p.dim() == 2 for p in present):  # 3-D rope families: flat patches, a grid per image
        out["pixel_values"] = torch.cat(present)
        out["image_grid_thw"] = torch.cat(
            [r["image_grid_thw"] for r in rows if "image_grid_thw" in r]
        )
        return out
    if all(p.dim() == 4 for p in present):
        if len({tuple(p.shape[1:]) for p in present}) > 1:
            return None
        out["pixel_values"] = torch.cat(present)
        return out
    if any(p.dim() != 5 for p in present):
        return None
    ref = present[0]
    images = max(p.shape[1] for p in present)
    height, width = max(p.shape[3] for p in present), max(p.shape[4] for p in present)
    values = torch.zeros(len(rows), images, 3, height, width, dtype=ref.dtype, device=ref.device)
    mask = torch.zeros(len(rows), images, height, width, dtype=torch.long, device=ref.device)
    for i, r in enumerate(rows):
        p = r.get("pixel_values")
        if p is None:
            continue
        n, h, w = p.shape[1], p.shape[3], p.shape[4]
        values[i, :n, :, :h, :w] = p[0]
        m = r.get("pixel_attention_mask")
        mask[i, :n, :h, :w] = m[0] if m is not None else 1
    out["pixel_values"], out["pixel_attention_mask"] = values, mask
    return out


class Batcher:
    """Gathers compatible requests for one loaded VLM and runs them as batches, one batch at
    a time (each batch pins its adapters through the runtime's lock, like every request)."""

    def __init__(self, bundle: Any, window_s: float = 0.05, max_rows: int = 8):
        self.bundle = bundle
        self.window_s = window_s  # how long the first request waits for company
        self.max_rows = max_rows
        self._lock = threading.Condition()
        self._waiting: list[BatchRequest] = []
        self._busy = False

    def submit(self, request: BatchRequest) -> None:
        """Queue a request; it starts with the next batch."""
        with self._lock:
            self._waiting.append(request)
            self._lock.notify_all()
            if not self._busy:
                self._busy = True
                self._start(gather=True)

    def _start(self, gather: bool) -> None:
        thread = threading.Thread(
            target=self._run_next, args=(gather,), name="mmdemo-generate", daemon=True
        )
        thread.start()

    def _take(self) -> list[BatchRequest]:
        """The oldest request and every waiting one that can share its batch."""
        first = self._waiting[0]
        key = first.decoding()
        batch, adapters = [], set()
        limit = self.bundle.adapters.max_resident
        for req in list(self._waiting):
            if req.row.stop.is_set():  # stopped (or its tab closed) before it started
                self._waiting.remove(req)
                req.row.stopped = True
                req.row.finish()
                continue
            if len(batch) >= self.max_rows or req.decoding() != key:
                continue
            names = adapters | ({req.info.name} if req.info is not None else set())
            if len(names) > limit:
                continue
            adapters = names
            batch.append(req)
            self._waiting.remove(req)
        return batch

    def _run_next(self, gather: bool) -> None:
        with self._lock:
            if gather:  # wait for company, or until a full batch is waiting
                self._lock.wait_for(lambda: len(self._waiting) >= self.max_rows, self.window_s)
            batch = []
            while self._waiting and not batch:
                batch = self._take()
            for req in batch:
                req.thread = threading.current_thread()
                req.rows = len(batch)
        try:
            if batch:
                self._generate(batch)
        finally:
            with self._lock:
                if self._waiting:
                    self._start(gather=False)
                else:
                    self._busy = False

    def _generate(self, batch: list[BatchRequest]) -> None:
        import torch

        runtime, tokenizer = self.bundle.adapters, self.bundle.tokenizer
        try:
            with runtime.pin(tuple(r.info for r in batch)) as pinned:
                started = time.perf_counter()
                for req in batch:
                    req.queue_wait_s = max(0.0, started - req.submitted - pinned.switch_s)
                    req.switch_s = pinned.switch_s if len(batch) == 1 else 0.0
                    req.row.clock = TokenClock()
                pad_id = tokenizer.pad_token_id
                if pad_id is None:
                    pad_id = tokenizer.eos_token_id
                if len(batch) == 1:
                    inputs = batch[0].inputs
                else:
                    inputs = collate([r.inputs for r in batch], pad_id)
                    if inputs is None:
                        raise RuntimeError("these requests cannot share a batch")
                kwargs = batch[0].gen.generate_kwargs()
                kwargs["max_new_tokens"] = max(r.gen.max_new_tokens for r in batch)
                kwargs["pad_token_id"] = pad_id
                if len(batch) > 1 and runtime.peft is not None:
                    kwargs["adapter_names"] = list(pinned.adapters)
                streamer = TokenStreamer([r.row for r in batch])
                route = self.bundle.generate_kwargs(pinned)  # the decode route's loop
                if route:  # transformers hands a callable loop no streamer of its own
                    route["loop_streamer"] = streamer
                with torch.inference_mode():
                    pinned.model.generate(
                        **inputs,
                        **kwargs,
                        **route,
                        streamer=streamer,
                        stopping_criteria=streamer.stopping(),
                    )
        except BaseException as exc:  # every row of the batch reports it
            for req in batch:
                req.error = exc
        finally:
            for req in batch:
                req.row.finish()
