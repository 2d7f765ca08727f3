"""ModelManager: owns every heavy model of the process.

Backends load lazily on first ``get``, once, under a per-backend lock, and can be unloaded.
One manager is created by the app (or a CLI command, or a test) and passed down; there is no
global instance.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from mmdemo.config import Settings
from mmdemo.errors import MissingDependencyError, MMDemoError, ModelUnavailableError
from mmdemo.models.device import release_memory
from mmdemo.models.extras import ExtraModels
from mmdemo.profiles import BACKENDS

# backend name -> "module:function" of its loader; imported only when that backend loads.
LOADERS: Mapping[str, str] = MappingProxyType(
    {
        "vlm": "mmdemo.models.backends.vlm:load",
        "llm": "mmdemo.models.backends.llm:load",
        "clip": "mmdemo.models.backends.clip:load",
        "asr": "mmdemo.models.backends.asr:load",
        "tts": "mmdemo.models.backends.tts:load",
        "hands": "mmdemo.models.backends.hands:load",
        "alm": "mmdemo.models.backends.alm:load",
    }
)

# What to pip-install when a backend's package is missing.
INSTALL_HINTS: Mapping[str, str] = MappingProxyType(
    {
        "open_clip": "pip install open_clip_torch",
        "faster_whisper": "pip install faster-whisper",
        "hibari": "pip install hibari-tts",
        "mediapipe": "pip install mediapipe",
        "gguf": "pip install gguf",
        "peft": "pip install peft",
        "transformers": "pip install transformers",
        "torch": "pip install torch",
    }
)


@dataclass(frozen=True)
class LoadContext:
    """What a loader needs to know: which model, where, in which precision."""

    backend: str
    model_id: str
    settings: Settings
    device: str
    dtype: str
    dtype_reason: str = ""  # why this dtype (shown in the System tab)


@dataclass
class LoadedModel:
    """What a loader returns: the object flows use, plus facts for the System tab."""

    handle: Any
    device: str
    dtype: str
    params: int = 0
    nbytes: int = 0
    # extra live facts (e.g. loaded adapters); called on every status()
    describe: Callable[[], dict[str, Any]] | None = None
    # release non-Python resources (ONNX sessions, MediaPipe graphs)
    close: Callable[[], None] | None = None


@dataclass(frozen=True)
class ModelStatus:
    """One row of the System tab."""

    backend: str
    model_id: str
    state: str  # not loaded | loading | loaded | error
    device: str = ""
    dtype: str = ""
    dtype_reason: str = ""
    params: int = 0
    nbytes: int = 0
    load_seconds: float = 0.0
    loads: int = 0
    error: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    loaded: LoadedModel | None = None
    state: str = "not loaded"
    error: str = ""
    load_seconds: float = 0.0
    loads: int = 0
    dtype_reason: str = ""


Loader = Callable[[LoadContext], LoadedModel]


class ModelManager:
    """Lazy, thread-safe, unloadable access to the backends named in ``LOADERS``."""

    def __init__(self, settings: Settings, loaders: Mapping[str, str | Loader] | None = None):
        self.settings = settings
        self._loaders: dict[str, str | Loader] = dict(loaders if loaders is not None else LOADERS)
        self._slots = {name: _Slot() for name in self._loaders}
        self._overrides: dict[str, str] = {}
        self._device: str | None = None
        self._device_lock = threading.Lock()
        # other VLMs beside the chat's, for the arena's "Compare base models" (memory-budgeted)
        self.extras = ExtraModels(self)

    @property
    def backends(self) -> tuple[str, ...]:
        return tuple(self._loaders)

    @property
    def device(self) -> str:
        """The device models load on (decided on first use; importing torch then)."""
        with self._device_lock:
            if self._device is None:
                from mmdemo.models.device import pick_device

                self._device = pick_device(self.settings.device)
            return self._device

    def model_id(self, name: str) -> str:
        self._check(name)
        if name in self._overrides:
            return self._overrides[name]
        return self.settings.model_id(name) if name in BACKENDS else name

    def is_loaded(self, name: str) -> bool:
        self._check(name)
        return self._slots[name].loaded is not None

    def get(self, name: str) -> Any:
        """The backend's handle, loading it first if needed (once, even with many callers)."""
        return self.get_loaded(name).handle

    def get_loaded(self, name: str) -> LoadedModel:
        self._check(name)
        slot = self._slots[name]
        loaded = slot.loaded
        if loaded is not None:
            return loaded
        with slot.lock:
            if slot.loaded is not None:
                return slot.loaded
            slot.state, slot.error = "loading", ""
            start = time.perf_counter()
            try:
                loaded, slot.dtype_reason = self._load(name)
            except MMDemoError as exc:
                slot.state, slot.error = "error", str(exc)
                raise
            slot.loaded = loaded
            slot.load_seconds = time.perf_counter() - start
            slot.loads += 1
            slot.state = "loaded"
            return loaded

    def unload(self, name: str) -> bool:
        """Drop a backend's model and free its memory. False if it was not loaded."""
        dropped = self._drop(name)
        if dropped:
            release_memory()
        return dropped

    def unload_all(self) -> None:
        """Drop every model, then free the memory once (a full garbage collection takes
        seconds in a big process: once, not once per model)."""
        dropped = self.extras.unload_all(collect=False) if "vlm" in self._loaders else 0
        dropped += sum(self._drop(name) for name in self._loaders)
        if dropped:
            release_memory()

    def _drop(self, name: str) -> bool:
        self._check(name)
        slot = self._slots[name]
        with slot.lock:
            loaded, slot.loaded = slot.loaded, None
            slot.state = "not loaded" if slot.state != "error" else slot.state
            if loaded is None:
                return False
            if loaded.close is not None:
                loaded.close()
            del loaded
        return True

    def set_model(self, name: str, model_id: str) -> None:
        """Use another model for a backend from now on (the loaded one is unloaded first)."""
        self._check(name)
        if not model_id.strip():
            raise MMDemoError(f"empty model id for {name}")
        self.unload(name)
        self._overrides[name] = model_id.strip()
        self._slots[name].state, self._slots[name].error = "not loaded", ""

    def status(self) -> list[ModelStatus]:
        rows = []
        for name, slot in self._slots.items():
            loaded = slot.loaded
            details: dict[str, Any] = {}
            if loaded is not None and loaded.describe is not None:
                try:
                    details = dict(loaded.describe())
                except Exception as exc:  # status must never break the System tab
                    details = {"describe_error": str(exc)}
            rows.append(
                ModelStatus(
                    backend=name,
                    model_id=self.model_id(name),
                    state=slot.state,
                    device=loaded.device if loaded else "",
                    dtype=loaded.dtype if loaded else "",
                    dtype_reason=slot.dtype_reason if loaded else "",
                    params=loaded.params if loaded else 0,
                    nbytes=loaded.nbytes if loaded else 0,
                    load_seconds=slot.load_seconds if loaded else 0.0,
                    loads=slot.loads,
                    error=slot.error,
                    details=MappingProxyType(details),
                )
            )
        return rows

    def _check(self, name: str) -> None:
        if name not in self._loaders:
            raise MMDemoError(
                f"unknown backend {name!r}", fix=f"use one of {', '.join(self._loaders)}"
            )

    def _load(self, name: str, model_id: str | None = None) -> tuple[LoadedModel, str]:
        """Load backend ``name``'s model (``model_id``: another model of that backend, for
        ``extras``) through its loader; errors become typed ones naming cause and fix."""
        model_id = model_id or self.model_id(name)
        loader = self._loaders[name]
        try:
            if isinstance(loader, str):
                module_name, _, func = loader.partition(":")
                loader = getattr(importlib.import_module(module_name), func)
            from mmdemo.models.device import choose_dtype

            device = self.device
            choice = choose_dtype(device, self.settings.dtype, name)
            ctx = LoadContext(
                backend=name,
                model_id=model_id,
                settings=self.settings,
                device=device,
                dtype=choice.dtype,
                dtype_reason=choice.reason,
            )
            loaded = loader(ctx)
            # a loader may run in another dtype than asked (faster-whisper: int8)
            reason = choice.reason if loaded.dtype == choice.dtype else ""
            return loaded, reason
        except MMDemoError:
            raise
        except ImportError as exc:
            package = (exc.name or str(exc)).split(".")[0]
            hint = INSTALL_HINTS.get(package, f"pip install {package}")
            raise MissingDependencyError(
                f"the {name} backend needs the package '{package}', which is not installed",
                fix=hint,
            ) from exc
        except MemoryError as exc:
            raise ModelUnavailableError(
                f"not enough memory to load the {name} model '{model_id}'",
                backend=name,
                model_id=model_id,
                fix="unload other models in the System tab or pick a smaller model",
            ) from exc
        except Exception as exc:
            raise ModelUnavailableError(
                f"the {name} model '{model_id}' failed to load: {type(exc).__name__}: {exc}",
                backend=name,
                model_id=model_id,
                fix=f"check MMDEMO_{name.upper()}, or try MMDEMO_PROFILE=tiny",
            ) from exc
