"""Arena: one image and prompt answered by base and up to 3 adapters side by side, in one go,
and optionally by up to 3 remote models (GPT-4o, Gemini, Claude, ...; see arena_remote).
With a remote VLM (vLLM serving a base and LoRA modules, ...), base and adapters are each
asked from that server at once instead, and the server batches them.

LoRA adapters run as one PEFT mixed-adapter batch (``adapter_names=``). The vision tower
carries no adapter, so the image is encoded once and its features are shared by every row.
Other adapter types fall back to answering one after another.
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmdemo.errors import BadInputError
from mmdemo.flows.arena_models import BaseModelArena
from mmdemo.flows.arena_remote import MAX_REMOTE, RemoteRun
from mmdemo.flows.chat import BASE_NAME, ChatService
from mmdemo.flows.chat_local import model_inputs
from mmdemo.flows.generation import (
    GenerationSettings,
    TokenStreamer,
    eos_token_ids,
    peak_memory_bytes,
    run_generation,
)
from mmdemo.flows.remote import RemoteClient, RemoteEndpoint
from mmdemo.models.lora import BASE, touches_vision

MAX_COLUMNS = 4


@dataclass(frozen=True)
class ArenaColumn:
    adapter: str
    label: str  # method · dataset · score
    text: str
    tokens: int
    tokens_per_s: float
    remote: bool = False  # answered by a remote model
    error: str = ""  # why this column has no answer (a missing key, an unreachable server)


@dataclass(frozen=True)
class ArenaResult:
    columns: tuple[ArenaColumn, ...]
    mode: str  # how the answers were computed
    total_s: float
    ttft_s: float
    queue_wait_s: float
    peak_memory_bytes: int
    done: bool


def encode_image_once(model: Any, inputs: dict[str, Any], rows: int) -> dict[str, Any] | None:
    """Generation kwargs with the image encoded once and shared by ``rows`` rows, or None when
    this model family cannot take pre-encoded image features."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = getattr(base, "model", base)
    encode = getattr(inner, "get_image_features", None)
    if encode is None or "mm_encoder_outputs" not in inspect.signature(base.forward).parameters:
        return None
    params = inspect.signature(encode).parameters
    pixel_kwargs = {k: v for k, v in inputs.items() if k in params}
    if "pixel_values" not in pixel_kwargs:
        return None
    with torch.inference_mode():
        features = encode(**pixel_kwargs, return_dict=True)
    pooled = features["pooler_output"]
    if isinstance(pooled, (list, tuple)):
        features["pooler_output"] = type(pooled)(list(pooled) * rows)
    else:
        features["pooler_output"] = torch.cat([pooled] * rows)
    # everything but the pixels goes on: Qwen2-VL's image_grid_thw and mm_token_type_ids give
    # its image tokens their 3-D rope positions (without them the answers change)
    batch = repeat_rows({k: v for k, v in inputs.items() if not k.startswith("pixel_")}, rows)
    batch["mm_encoder_outputs"] = {"image": features}
    return batch


def repeat_rows(inputs: dict[str, Any], rows: int) -> dict[str, Any]:
    """The same single-row inputs as a batch of ``rows`` (pixel tensors repeated too)."""
    import torch

    out = {}
    for k, v in inputs.items():
        if not torch.is_tensor(v):
            out[k] = v
        elif k in ("image_grid_thw", "pixel_values") and v.dim() == 2:  # Qwen2-VL: flat patches
            out[k] = torch.cat([v] * rows)
        else:
            out[k] = torch.cat([v] * rows) if v.shape[0] == 1 else v
    return out


class ArenaService:
    def __init__(self, chat: ChatService, remotes: Sequence[RemoteEndpoint] = ()):
        self.chat = chat
        self.remotes = {r.label: r for r in remotes}  # remote columns by label
        self._clients: dict[str, RemoteClient] = {}
        # "Compare base models": other VLMs beside the chat's, with the same remote columns
        self.models = BaseModelArena(chat, self.remotes, self._clients)

    def choices(self) -> list[str]:
        """What can be compared: base, the adapters (DyLoRA ones also at lower ranks), then
        the remote models."""
        return [*self.chat.adapter_choices(ranks=True), *self.remotes]

    def stream(
        self,
        image: Any,
        prompt: str,
        adapters: Sequence[str],
        gen: GenerationSettings | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[ArenaResult]:
        prompt = (prompt or "").strip()
        if not prompt:
            raise BadInputError("the prompt is empty", fix="type the question every model answers")
        picked = list(dict.fromkeys(a or BASE_NAME for a in adapters))
        names = [n for n in picked if n not in self.remotes]
        remote = [self.remotes[n] for n in picked if n in self.remotes]
        if not picked:
            raise BadInputError("pick at least one model (base or an adapter)")
        if len(names) > MAX_COLUMNS or len(remote) > MAX_REMOTE:
            raise BadInputError(
                f"the arena compares at most {MAX_COLUMNS} local and {MAX_REMOTE} remote "
                f"models at once; {len(names)} and {len(remote)} were picked"
            )
        gen, stop = gen or GenerationSettings(), stop or threading.Event()
        images = self.chat.prepare_images([image]) if image is not None else []
        # a remote VLM answers base and the adapters itself: their columns are requests too
        served = [e for e in map(self.chat.engine.endpoint, names) if e is not None]
        if served:
            names = []
        run = RemoteRun([*served, *remote], prompt, images, gen, stop, self._clients).start()
        try:
            last = None
            for last in self._local(names, prompt, images, gen, stop):
                yield _with_remote(last, run, len(served), done=False)
            while not run.done:
                run.wait(0.1)
                if not run.done:
                    yield _with_remote(last, run, len(served), done=False)
            yield _with_remote(last, run, len(served), done=True)
        finally:
            if not run.done:  # the consumer left early: the remote requests end too
                stop.set()

    def _local(
        self,
        names: list[str],
        prompt: str,
        images: list[Any],
        gen: GenerationSettings,
        stop: threading.Event,
    ) -> Iterator[ArenaResult]:
        if not names:
            return
        infos = [self.chat.adapter_info(n) for n in names]
        bundle = self.chat.manager.get("vlm")
        mixed = (
            all(i is None or i.is_lora for i in infos)
            and len(names) <= bundle.adapters.max_resident
        )
        messages = [
            {
                "role": "user",
                "content": [{"type": "image"}] * len(images) + [{"type": "text", "text": prompt}],
            }
        ]
        labels = [i.label() if i else "base model, no adapter" for i in infos]
        board = _Board(names, labels, time.perf_counter())
        run = self._batched if mixed else self._sequential
        yield from run(bundle, infos, board, messages, images, gen, stop)

    def _batched(self, bundle, infos, board, messages, images, gen, stop):
        rows = len(infos)
        with bundle.adapters.pin(tuple(infos)) as pinned:
            board.waited = pinned.queue_wait_s
            single = model_inputs(bundle, messages, images)
            shared = None
            if images and not any(touches_vision(i) for i in infos if i is not None):
                shared = encode_image_once(pinned.model, single, rows)
            batch = shared if shared is not None else repeat_rows(single, rows)
            board.mode = "one mixed-adapter batch" + (", image encoded once" if shared else "")
            kwargs = {**gen.generate_kwargs(), **bundle.generate_kwargs(pinned)}
            if bundle.adapters.peft is not None:
                kwargs["adapter_names"] = list(pinned.adapters)
            streamer = TokenStreamer.of(rows, eos_token_ids(pinned.model, bundle.tokenizer), stop)
            for _ in run_generation(pinned.model, batch, streamer, kwargs):
                board.record_rows(bundle.tokenizer, streamer)
                yield board.result(done=False)
        board.record_rows(bundle.tokenizer, streamer)
        board.peak = max(peak_memory_bytes(r.clock, bundle.device) for r in streamer.rows)
        yield board.result(done=True)

    def _sequential(self, bundle, infos, board, messages, images, gen, stop):
        board.mode = "one after another"
        for idx, info in enumerate(infos):
            with bundle.adapters.pin((info,)) as pinned:
                board.waited += pinned.queue_wait_s
                inputs = model_inputs(bundle, messages, images)
                streamer = TokenStreamer.of(1, eos_token_ids(pinned.model, bundle.tokenizer), stop)
                kwargs = {**gen.generate_kwargs(), **bundle.generate_kwargs(pinned)}
                for _ in run_generation(pinned.model, inputs, streamer, kwargs):
                    board.record_rows(bundle.tokenizer, streamer, column=idx)
                    yield board.result(done=False)
            board.record_rows(bundle.tokenizer, streamer, column=idx)
            board.peak = max(board.peak, peak_memory_bytes(streamer.rows[0].clock, bundle.device))
        yield board.result(done=True)


@dataclass
class _Board:
    """The columns as answers stream in."""

    names: list[str]
    labels: list[str]
    started: float
    mode: str = ""
    waited: float = 0.0
    peak: int = 0
    ttft: float | None = None
    texts: list[str] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    speeds: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.names)
        self.texts, self.tokens, self.speeds = [""] * n, [0] * n, [0.0] * n

    def record_rows(
        self, tokenizer: Any, streamer: TokenStreamer, column: int | None = None
    ) -> None:
        """Copy the streamer's rows into the columns (``column``: where a single row goes)."""
        for i, row in enumerate(streamer.rows):
            col = i if column is None else column
            self.texts[col] = tokenizer.decode(row.tokens, skip_special_tokens=True)
            self.tokens[col] = row.clock.tokens
            self.speeds[col] = row.clock.tokens_per_s()
            if self.ttft is None and row.clock.first_token is not None:
                self.ttft = row.clock.ttft

    def result(self, done: bool) -> ArenaResult:
        columns = tuple(
            ArenaColumn(n, label, t.strip(), k, v)
            for n, label, t, k, v in zip(
                self.names, self.labels, self.texts, self.tokens, self.speeds, strict=True
            )
        )
        return ArenaResult(
            columns,
            self.mode,
            time.perf_counter() - self.started,
            self.ttft or 0.0,
            self.waited,
            self.peak,
            done,
        )


def _with_remote(local: ArenaResult | None, run: RemoteRun, served: int, done: bool) -> ArenaResult:
    """The local result with the remote columns after it (done when both are). The first
    ``served`` requests are the remote VLM's base and adapters: the model columns."""
    columns = tuple(
        ArenaColumn(
            s.endpoint.label,
            s.label,
            s.text.strip(),
            s.tokens,
            s.tokens_per_s,
            i >= served,
            s.error,
        )
        for i, s in enumerate(run.slots)
    )
    if local is None:
        others = len(columns) - served
        mode = f"{served} requests to the remote VLM" if served else "remote models only"
        if served and others:
            mode += f" + {others} remote"
        return ArenaResult(columns, mode, run.elapsed_s, run.ttft_s, 0.0, 0, done)
    return dataclasses.replace(
        local,
        columns=(*local.columns, *columns),
        mode=local.mode + (f" + {len(columns)} remote" if columns else ""),
        done=done and local.done,
    )


__all__ = ["BASE", "ArenaColumn", "ArenaResult", "ArenaService"]
