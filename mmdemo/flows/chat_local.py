"""The chat engine on this machine: the shared VLM from the model manager, with the adapter a
request names pinned for it. Base and LoRA requests that arrive together share one
mixed-adapter batch (``flows/batching.py``); the rest (other adapter types, adapters on the
vision tower, families not verified for batching) run one at a time under the adapter pin.
Both paths are behind one call, ``answer``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from mmdemo.errors import as_out_of_memory
from mmdemo.flows.batching import BATCH_FAMILIES, Batcher, BatchRequest
from mmdemo.flows.conversation import BASE_NAME, AnswerMetrics, ChatUpdate
from mmdemo.flows.generation import (
    GenerationSettings,
    TokenRow,
    TokenStreamer,
    eos_token_ids,
    peak_memory_bytes,
    run_generation,
)
from mmdemo.models.adapters import WEIGHTS, AdapterInfo, AdapterStore
from mmdemo.models.dylora import served_names
from mmdemo.models.families import by_model_type
from mmdemo.models.lora import touches_vision
from mmdemo.models.manager import ModelManager


def model_inputs(bundle: Any, messages: list[dict[str, Any]], images: list[Any]) -> dict[str, Any]:
    """The processor's tensors for chat-template ``messages`` and their images, on the VLM's
    device (a family whose model builds its own inputs, CogVLM2, through its builder)."""
    family = by_model_type(bundle.family)
    builder = family.input_builder() if family is not None else None
    if builder is not None:
        return builder(bundle, messages, images)
    processor = bundle.processor
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[prompt], images=[images] if images else None, return_tensors="pt")
    return {k: v.to(bundle.device) if hasattr(v, "to") else v for k, v in inputs.items()}


class LocalEngine:
    """Answers with the manager's VLM and the adapters of ``store`` (one per app)."""

    where = "this machine's VLM"

    def __init__(self, manager: ModelManager, store: AdapterStore) -> None:
        self.manager = manager
        self.store = store
        # seconds between streamed updates: decoding text for every token would steal CPU
        # from generation on small machines; 0 streams every token
        self.stream_interval = 0.03
        # concurrent LoRA/base requests share one mixed-adapter batch (False: one at a time)
        self.batching = True
        self.batch_window_s = 0.05  # how long a request waits for others to join its batch
        self.batch_max_rows = 8  # most answers in one batch (a full batch starts at once)
        self._batcher: Batcher | None = None
        self._batcher_lock = threading.Lock()
        self._vision_adapters: dict[tuple[str, float], bool] = {}

    @property
    def concurrent_answers(self) -> int:
        return self.batch_max_rows

    @property
    def base_model(self) -> str:
        return self.manager.model_id("vlm")

    def choices(self, ranks: bool = False) -> list[str]:
        if not ranks:
            return [BASE_NAME, *self.store.names()]
        return [BASE_NAME, *(n for a in self.store.list() for n in served_names(a))]

    def adapter(self, name: str | None) -> AdapterInfo | None:
        return None if not name or name == BASE_NAME else self.store.get(name)

    def endpoint(self, name: str | None) -> None:
        return None  # this machine answers every name

    def answer(
        self,
        messages: list[dict[str, Any]],
        images: list[Any],
        adapter: str | None,
        gen: GenerationSettings,
        stop: threading.Event,
    ) -> Iterator[ChatUpdate]:
        info = self.adapter(adapter)
        bundle = self.manager.get("vlm")
        started = time.perf_counter()
        inputs = model_inputs(bundle, messages, images)
        eos = eos_token_ids(bundle.model, bundle.tokenizer)

        def text(row: TokenRow) -> str:
            return bundle.tokenizer.decode(row.tokens, skip_special_tokens=True)

        if self._batchable(bundle, info):
            request = BatchRequest.make(inputs, info, gen, stop, eos)
            self._batcher_for(bundle).submit(request)
            for _ in request.updates(self.stream_interval):
                yield ChatUpdate(text(request.row))
            if request.error is not None:
                raise as_out_of_memory(request.error)
            row, rows = request.row, request.rows
            waited, switched = request.queue_wait_s, request.switch_s
        else:
            with bundle.adapters.pin((info,)) as pinned:
                streamer = TokenStreamer.of(1, eos, stop)
                kwargs = {**gen.generate_kwargs(), **bundle.generate_kwargs(pinned)}
                for _ in run_generation(
                    pinned.model, inputs, streamer, kwargs, self.stream_interval
                ):
                    yield ChatUpdate(text(streamer.rows[0]))
            row, rows = streamer.rows[0], 1
            waited, switched = pinned.queue_wait_s, pinned.switch_s
        metrics = AnswerMetrics(
            adapter=info.name if info else BASE_NAME,
            queue_wait_s=waited,
            switch_s=switched,
            ttft_s=row.clock.ttft,
            tokens=row.clock.tokens,
            tokens_per_s=row.clock.tokens_per_s(),
            total_s=time.perf_counter() - started,
            peak_memory_bytes=peak_memory_bytes(row.clock, bundle.device),
            stopped=row.stopped,
            batch_rows=max(rows, 1),
            prompt_tokens=int(inputs["input_ids"].shape[-1]),
        )
        yield ChatUpdate(text(row).strip(), metrics)

    def _batchable(self, bundle: Any, info: AdapterInfo | None) -> bool:
        """Base and LoRA adapters on the language model batch together; the rest is serial."""
        if not self.batching or bundle.family not in BATCH_FAMILIES:
            return False
        if info is None:
            return True
        if not info.is_lora:
            return False
        weights = info.path / WEIGHTS
        key = (str(weights), weights.stat().st_mtime if weights.exists() else 0.0)
        if key not in self._vision_adapters:  # its rows would not line up with the images'
            self._vision_adapters[key] = touches_vision(info)
        return not self._vision_adapters[key]

    def _batcher_for(self, bundle: Any) -> Batcher:
        """The batcher of the loaded VLM (a reloaded VLM gets a new one)."""
        with self._batcher_lock:
            if self._batcher is None or self._batcher.bundle is not bundle:
                self._batcher = Batcher(bundle, self.batch_window_s)
            self._batcher.window_s = self.batch_window_s
            self._batcher.max_rows = self.batch_max_rows
            return self._batcher
