"""Extra base models beside the manager's own: the arena's "Compare base models" loads other
VLMs (a tiny SmolVLM next to a tiny Qwen2.5-VL and a tiny LLaVA) through the manager's loading
path, under a memory budget.

Before a model loads, its footprint is estimated (``memory.estimate_bytes``) and compared with
the free memory (``memory.available_bytes``) minus a margin. When it does not fit, idle extra
models are unloaded least recently used first, each with the reason; when even unloading all
of them would not make room, nothing is unloaded and the load is refused with the cause and a
fix. The manager's own slots (the chat's VLM) are never unloaded here, and an extra model in
use (leased) is never unloaded under its user.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mmdemo.errors import ModelUnavailableError
from mmdemo.models import memory
from mmdemo.models.device import release_memory
from mmdemo.units import human_bytes

if TYPE_CHECKING:
    from mmdemo.models.manager import LoadedModel, ModelManager


@dataclass(frozen=True)
class Eviction:
    """An extra model unloaded to make room, and why."""

    model_id: str
    nbytes: int
    reason: str


@dataclass(frozen=True)
class ExtraModel:
    """What a lease hands out: the loaded model and what loading it took."""

    model_id: str
    loaded: LoadedModel
    load_seconds: float  # 0.0 when it was already loaded
    estimate_bytes: int  # the footprint estimated before loading (0 when already loaded)
    evicted: tuple[Eviction, ...] = ()

    @property
    def handle(self) -> Any:
        return self.loaded.handle


@dataclass
class _Extra:
    loaded: LoadedModel
    leases: int = 0
    use: threading.Lock = field(default_factory=threading.Lock)  # one answer at a time


class ExtraModels:
    """Extra models of one backend, loaded by id, least recently used first out."""

    def __init__(
        self, manager: ModelManager, backend: str = "vlm", margin_bytes: int = memory.MARGIN_BYTES
    ) -> None:
        self.manager = manager
        self.backend = backend
        self.margin_bytes = margin_bytes
        self._models: OrderedDict[str, _Extra] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()  # guards _models and the lease counts
        self._load_lock = threading.Lock()  # one plan-and-load at a time

    def loaded(self) -> list[str]:
        """The loaded extra models, least recently used first."""
        with self._lock:
            return list(self._models)

    def sizes(self) -> dict[str, int]:
        """The loaded extra models and their bytes, least recently used first."""
        with self._lock:
            return {k: e.loaded.nbytes for k, e in self._models.items()}

    @contextmanager
    def lease(self, model_id: str) -> Iterator[ExtraModel]:
        """Use ``model_id`` (loading it first, making room if needed); it is not unloaded
        while the lease is held, and one lease at a time answers with it."""
        got = self._acquire(model_id)
        extra = self._models_get(model_id)
        try:
            with extra.use:
                yield got
        finally:
            with self._lock:
                extra.leases -= 1

    def unload(self, model_id: str, collect: bool = True) -> bool:
        """Unload an idle extra model (False: not loaded or in use); ``collect=False``
        leaves freeing the memory to the caller (``release_memory``)."""
        with self._lock:
            extra = self._models.get(model_id)
            if extra is None or extra.leases:
                return False
            del self._models[model_id]
        _close(extra.loaded, collect)
        return True

    def unload_all(self, collect: bool = True) -> int:
        """Unload every idle extra model; how many."""
        count = sum(self.unload(model_id, collect=False) for model_id in self.loaded())
        if count and collect:
            release_memory()
        return count

    def _models_get(self, model_id: str) -> _Extra:
        with self._lock:
            return self._models[model_id]

    def _acquire(self, model_id: str) -> ExtraModel:
        with self._lock:
            extra = self._models.get(model_id)
            if extra is not None:
                extra.leases += 1
                self._models.move_to_end(model_id)
                return ExtraModel(model_id, extra.loaded, 0.0, 0)
        with self._load_lock:
            with self._lock:  # loaded by another request while this one waited
                extra = self._models.get(model_id)
                if extra is not None:
                    extra.leases += 1
                    self._models.move_to_end(model_id)
                    return ExtraModel(model_id, extra.loaded, 0.0, 0)
            need = self.estimate(model_id)
            evicted = self._make_room(model_id, need)
            start = time.perf_counter()
            loaded, _ = self.manager._load(self.backend, model_id)
            seconds = time.perf_counter() - start
            with self._lock:
                self._models[model_id] = _Extra(loaded, leases=1)
            return ExtraModel(model_id, loaded, seconds, need, evicted)

    def estimate(self, model_id: str) -> int:
        """The bytes loading ``model_id`` will take here (in the dtype it would load in)."""
        from mmdemo.models.device import choose_dtype
        from mmdemo.models.families import by_model_id, check_allowed
        from mmdemo.models.hub import resolve_model_dir

        settings = self.manager.settings
        check_allowed(by_model_id(model_id), model_id, settings)  # before any download
        dtype = choose_dtype(self.manager.device, settings.dtype, self.backend).dtype
        return memory.estimate_bytes(resolve_model_dir(model_id, self.backend, settings), dtype)

    def _make_room(self, model_id: str, need: int) -> tuple[Eviction, ...]:
        """Unload idle extra models, least recently used first, until ``need`` bytes fit;
        refuse (unloading nothing) when even all of them would not make room."""
        device = self.manager.device
        free = memory.available_bytes(device) - self.margin_bytes
        if need <= free:
            return ()
        with self._lock:
            idle = [(k, e) for k, e in self._models.items() if not e.leases]
        plan, freed = [], 0
        for key, extra in idle:
            if need <= free + freed:
                break
            plan.append(key)
            freed += extra.loaded.nbytes
        if need > free + freed:
            where = "GPU memory" if device.startswith("cuda") else "memory"
            raise ModelUnavailableError(
                f"not enough {where} to load '{model_id}' for the arena: it needs about "
                f"{human_bytes(need)}, {human_bytes(max(free, 0))} are free after keeping "
                f"{human_bytes(self.margin_bytes)} for the rest of the app"
                + (
                    f", and unloading the idle extra base models ({', '.join(plan)}) would "
                    f"free only {human_bytes(freed)}"
                    if plan
                    else ""
                ),
                backend=self.backend,
                model_id=model_id,
                fix="compare fewer or smaller base models (a tiny build, or the cpu profile's "
                "models), unload models in the System tab, or free memory on this machine",
            )
        evicted = []
        for key in plan:
            with self._lock:
                extra = self._models.get(key)
                if extra is None or extra.leases:  # taken meanwhile: its bytes stay counted
                    continue
                del self._models[key]
            _close(extra.loaded)
            evicted.append(
                Eviction(
                    key,
                    extra.loaded.nbytes,
                    f"unloaded '{key}' (the least recently used extra base model, "
                    f"{human_bytes(extra.loaded.nbytes)}) to make room for '{model_id}' "
                    f"(needs about {human_bytes(need)}; {human_bytes(max(free, 0))} were free "
                    "after the margin)",
                )
            )
        return tuple(evicted)


def _close(loaded: LoadedModel, collect: bool = True) -> None:
    if loaded.close is not None:
        loaded.close()
    del loaded
    if collect:
        release_memory()
