"""Adapters resident on the loaded VLM: validate against it, load through PEFT, keep at most N
(least recently used evicted), and pin one adapter (or a mixed batch) per request.

The runtime belongs to one loaded VLM bundle; unloading the VLM drops it with the model.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.errors import AdapterError
from mmdemo.models import bottleneck
from mmdemo.models.adapters import WEIGHTS, AdapterInfo
from mmdemo.models.dylora import split_rank, truncate_lora
from mmdemo.models.merge import MergeSpec, add_weighted, check_parents
from mmdemo.models.peft_compat import record_active, tuner_layers
from mmdemo.models.row_lora import stacked_rows

BASE = "__base__"  # PEFT's name for "no adapter" in mixed batches
# Parameter name segments that start an adapter's own tensors, per PEFT method.
ADAPTER_PARAM_PREFIXES = ("lora_", "ia3_", "hada_", "lokr_", "vera_", "oft_", "boft_", "ln_tuning")
# Module-name parts of the vision tower and the connector (an adapter there changes images)
VISION_MARKERS = ("vision", "visual", "connector", "merger", "multi_modal_projector", "patch_embed")


@dataclass(frozen=True)
class Pinned:
    """What a request holds while it runs: the model to call and how long it waited."""

    model: Any
    adapters: tuple[str, ...]  # BASE for the base model
    queue_wait_s: float
    switch_s: float


def check_compatible(info: AdapterInfo, model: Any, family: str) -> None:
    """Refuse an adapter that does not fit ``model``, naming the first mismatch.

    Reads only the safetensors header (names and shapes), never the weights.
    """
    from peft import PeftConfig
    from safetensors import safe_open

    if info.base_model_type and info.base_model_type != family:
        raise AdapterError(
            f"adapter {info.name!r} was trained for a {info.base_model_type} model "
            f"({info.base_model or 'unknown base'}); the loaded VLM is a {family} model",
            fix="load the matching base model in the System tab, or use another adapter",
        )
    if info.peft_type == bottleneck.PEFT_TYPE:
        config = bottleneck.BottleneckConfig.load(info.path)
        bottleneck.check_fits(config, model, info.name, info.base_model)
        return
    try:
        PeftConfig.from_pretrained(str(info.path))
    except Exception as exc:
        raise AdapterError(f"adapter {info.name!r} has an unreadable PEFT config: {exc}") from None
    modules = dict(model.named_modules())
    try:
        with safe_open(str(info.path / WEIGHTS), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except Exception as exc:
        raise AdapterError(f"{WEIGHTS} of {info.name!r} is not valid safetensors: {exc}") from None
    if not shapes:
        raise AdapterError(f"adapter {info.name!r} holds no weights")
    for key, shape in shapes.items():
        path = _module_path(key)
        module = modules.get(path) or modules.get(path.removeprefix("model."))
        if module is None:
            raise AdapterError(
                f"adapter {info.name!r} targets '{path}', which the loaded {family} model does not "
                f"have (it was made for {info.base_model or 'another model'})",
                fix="use an adapter trained on this base model",
            )
        base = getattr(module, "base_layer", module)
        in_f, out_f = getattr(base, "in_features", None), getattr(base, "out_features", None)
        if ".lora_A." in key and in_f is not None and shape[-1] != in_f:
            raise _shape_error(info, path, "input", shape[-1], in_f)
        if ".lora_B." in key and out_f is not None and shape[0] != out_f:
            raise _shape_error(info, path, "output", shape[0], out_f)
        if (
            ".lora_A." in key
            and info.rank
            and shape[0] != info.rank
            and not _has_rank_pattern(info)
        ):
            raise AdapterError(
                f"adapter {info.name!r}: {path} has rank {shape[0]} but the config says r={info.rank}"
            )


def touches_vision(info: AdapterInfo) -> bool:
    """True if the adapter has weights in the vision tower or connector."""
    from safetensors import safe_open

    with safe_open(str(info.path / WEIGHTS), framework="pt") as f:
        return any(m in key for key in f.keys() for m in VISION_MARKERS)  # noqa: SIM118


def _has_rank_pattern(info: AdapterInfo) -> bool:
    import json

    config = json.loads((info.path / "adapter_config.json").read_text())
    return bool(config.get("rank_pattern"))


def _shape_error(info: AdapterInfo, path: str, side: str, got: int, want: int) -> AdapterError:
    return AdapterError(
        f"adapter {info.name!r} does not fit the loaded model: {path} has {side} size {want}, "
        f"the adapter expects {got} (it was made for {info.base_model or 'another base model'})",
        fix="use an adapter trained on this base model",
    )


@contextmanager
def adapter_weights(info: AdapterInfo) -> Iterator[Path]:
    """The folder PEFT loads ``info`` from: its own, or (a DyLoRA adapter served at a lower
    rank) a temporary one holding the cut weights, removed once PEFT has read them."""
    if info.serve_rank is None:
        yield info.path
        return
    with tempfile.TemporaryDirectory(prefix="mmdemo-rank-") as tmp:
        yield truncate_lora(info.path, info.serve_rank, Path(tmp))


def _module_path(key: str) -> str:
    """'base_model.model.model.x.q_proj.lora_A.weight' -> 'model.x.q_proj'."""
    parts = key.removeprefix("base_model.model.").split(".")
    for i, part in enumerate(parts):
        if part.startswith(ADAPTER_PARAM_PREFIXES):
            return ".".join(parts[:i])
    return ".".join(parts[:-1])


class AdapterRuntime:
    """PEFT adapters on one VLM, with a per-request pin (a lock held for the generation)."""

    def __init__(self, model: Any, family: str, max_resident: int = 4):
        self.base = model
        self.family = family
        self.max_resident = max_resident
        self.peft: Any = None
        self.resident: OrderedDict[str, AdapterInfo] = OrderedDict()
        self._lock = threading.Lock()  # held for a whole request
        self._layers: list[Any] = []
        self._active: tuple[str, ...] | None = None
        # adapters PEFT cannot hold (bottleneck), attached by hooks beside PEFT's layers
        self.hooked = bottleneck.BottleneckSet(model)

    @property
    def model(self) -> Any:
        """The model to call: the PEFT wrapper once an adapter was loaded, else the base."""
        return self.peft if self.peft is not None else self.base

    def resident_names(self) -> list[str]:
        return list(self.resident)

    @contextmanager
    def pin(self, adapters: tuple[AdapterInfo | None, ...]) -> Iterator[Pinned]:
        """Hold the model for one request with these adapters (None = base) active.

        One adapter: it is made the active one. Several: they are made resident and the
        caller passes ``adapter_names`` (mixed batch); the active set is left as is.
        """
        asked = time.perf_counter()
        with self._lock:
            waited = time.perf_counter() - asked
            start = time.perf_counter()
            names = tuple(self._ensure(a) if a is not None else BASE for a in adapters)
            with ExitStack() as stack:
                if len(names) == 1:
                    self._activate(names[0])
                else:  # a mixed PEFT batch: no hooked adapter may act on every row
                    self.hooked.activate(None)
                    if self.peft is not None:  # each row's LoRA in stacked products
                        stack.enter_context(stacked_rows(self._layers, names))
                yield Pinned(self.model, names, waited, time.perf_counter() - start)

    def load(self, info: AdapterInfo) -> float:
        """Validate and make an adapter resident now (e.g. right after upload); seconds taken."""
        start = time.perf_counter()
        with self._lock:
            self._ensure(info)
        return time.perf_counter() - start

    def merge(self, parents: list[AdapterInfo], spec: MergeSpec, out: Path) -> Path:
        """Merge ``parents`` (made resident first) into a new adapter with PEFT's
        ``add_weighted_adapter`` and save it under ``out``; the served model is left as it
        was (the merged adapter is taken off again). Returns the saved adapter's folder."""
        check_parents(parents, spec)
        if len(parents) > self.max_resident:
            raise AdapterError(
                f"merging {len(parents)} adapters needs them all loaded at once; this server "
                f"keeps {self.max_resident}",
                fix="merge fewer adapters, or raise MMDEMO_MAX_ADAPTERS",
            )
        with self._lock:
            names = [self._ensure(p) for p in parents]
            missing = [n for n in names if n not in self.resident]
            if missing or any(self.resident[n].peft_type != "LORA" for n in names):
                raise AdapterError(f"could not hold {', '.join(names)} loaded together")
            new_name = f"merging-{time.time_ns()}"
            try:
                return add_weighted(self.peft, names, spec, new_name, out)
            finally:
                self._refresh_layers()

    def drop(self, name: str) -> bool:
        """Remove a resident adapter (after it was deleted from the store), with the lower
        ranks of it that were served (DyLoRA's ``name@r=k``)."""
        with self._lock:
            variants = [n for n in self.resident if split_rank(n)[0] == name and n != name]
            dropped = [self._evict(n) for n in (name, *variants)]
            return dropped[0]

    def _ensure(self, info: AdapterInfo) -> str:
        if info.name in self.resident:
            self.resident.move_to_end(info.name)
            return info.name
        check_compatible(info, self.base, self.family)
        if info.peft_type == bottleneck.PEFT_TYPE:
            while len(self.resident) >= self.max_resident:
                self._evict(next(iter(self.resident)))
            self.hooked.add(info.name, bottleneck.BottleneckConfig.load(info.path), info.path)
            self.resident[info.name] = info
            return info.name
        peft_resident = [i for i in self.resident.values() if i.peft_type != bottleneck.PEFT_TYPE]
        if peft_resident and peft_resident[0].peft_type != info.peft_type:
            self._reset()  # PEFT keeps one adapter type per model: start afresh for this one
        while len(self.resident) >= self.max_resident:
            self._evict(next(iter(self.resident)))
        try:
            with adapter_weights(info) as source:
                if self.peft is None:
                    from peft import PeftModel

                    self.peft = PeftModel.from_pretrained(
                        self.base, str(source), adapter_name=info.name, is_trainable=False
                    )
                else:
                    self.peft.load_adapter(str(source), adapter_name=info.name, is_trainable=False)
        except AdapterError:
            raise
        except Exception as exc:
            raise AdapterError(f"PEFT could not load adapter {info.name!r}: {exc}") from exc
        self.peft.eval()
        self.resident[info.name] = info
        self._refresh_layers()
        return info.name

    def _evict(self, name: str) -> bool:
        if name in self.hooked.configs:
            self.hooked.remove(name)
            del self.resident[name]
            return True
        if name not in self.resident or self.peft is None:
            return False
        self.peft.delete_adapter(name)
        del self.resident[name]
        left = list(self.peft.peft_config)
        if not left:  # a PEFT model without adapters has no config to answer with
            self._reset()
            return True
        if self.peft.active_adapter not in left:
            # PEFT keeps naming the deleted adapter when no layer had it active (the base
            # model was served last); its wrapper then fails on the next call. Name a
            # resident one; which one is active on the layers is set per request anyway
            record_active(self.peft, left[0])
        self._refresh_layers()
        return True

    def _reset(self) -> None:
        """Take every adapter out (PEFT's unload restores the original modules)."""
        if self.peft is not None:
            self.base = self.peft.unload()
        self.peft = None
        for name in [n for n in self.resident if n not in self.hooked.configs]:
            del self.resident[name]
        self._layers, self._active = [], None

    def _refresh_layers(self) -> None:
        self._layers = tuner_layers(self.peft)
        self._active = None

    def _activate(self, name: str) -> None:
        """Make ``name`` (or BASE) the active adapter.

        PEFT's ``PeftModel.set_adapter`` walks every module of the model (~2,000 for SmolVLM);
        calling the same public ``set_adapter`` on the cached tuner layers only does the same
        work without the walk. Base = no active adapter on any layer.
        """
        hooked = name in self.hooked.configs
        self.hooked.activate(name if hooked else None)
        target = () if name == BASE or hooked else (name,)
        if self.peft is None or self._active == target:
            return
        for layer in self._layers:
            layer.set_adapter(list(target), inference_mode=True)
        if target:
            record_active(self.peft, name)
        self._active = target
