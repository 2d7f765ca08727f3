"""System report (versions, device, memory, every backend's state) and the model management
the System tab offers."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from dataclasses import dataclass

from mmdemo.errors import require_local
from mmdemo.flows.families import FamilyState, family_states
from mmdemo.models.manager import ModelManager, ModelStatus

PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "gradio",
    "open_clip_torch",
    "faster-whisper",
    "hibari-tts",
    "mediapipe",
    "faiss-cpu",
    "av",
)


@dataclass(frozen=True)
class SystemReport:
    profile: str
    device: str
    rss_bytes: int
    accelerator_bytes: int
    models: tuple[ModelStatus, ...]
    versions: tuple[tuple[str, str], ...]
    families: tuple[FamilyState, ...] = ()  # the VLM families and their state on this run


def package_versions(packages: tuple[str, ...] = PACKAGES) -> tuple[tuple[str, str], ...]:
    """(name, version) without importing the packages; 'not installed' when absent."""
    rows = [("python", platform.python_version())]
    for name in packages:
        try:
            rows.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            rows.append((name, "not installed"))
    return tuple(rows)


def process_memory() -> tuple[int, int]:
    """(resident bytes of this process, bytes allocated on the accelerator)."""
    import psutil

    rss = psutil.Process(os.getpid()).memory_info().rss
    accel = 0
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            accel = int(torch.cuda.memory_allocated())
    return rss, accel


def system_report(manager: ModelManager, resolve_device: bool = True) -> SystemReport:
    """Everything the System tab shows. ``resolve_device`` imports torch to name the device."""
    device = manager.device if resolve_device else manager.settings.device
    rss, accel = process_memory()
    return SystemReport(
        profile=manager.settings.resolved_profile if resolve_device else manager.settings.profile,
        device=device,
        rss_bytes=rss,
        accelerator_bytes=accel,
        models=tuple(manager.status()),
        versions=package_versions(),
        families=tuple(family_states(manager)) if resolve_device else (),
    )


class SystemService:
    """Model management as the System tab and its API offer it: the report, and loading,
    unloading or swapping a backend's model (refused when hosted: the server manages them)."""

    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager
        self.settings = manager.settings

    @property
    def backends(self) -> tuple[str, ...]:
        return tuple(self.manager.backends)

    def model_id(self, backend: str) -> str:
        """The model id a backend loads (or has loaded)."""
        return self.manager.model_id(backend)

    def report(self, resolve_device: bool = True) -> SystemReport:
        return system_report(self.manager, resolve_device)

    def load(self, backend: str) -> None:
        """Load a backend's model now (it loads on first use otherwise)."""
        require_local(self.settings, "loading models by hand")
        self.manager.get(backend)

    def unload(self, backend: str) -> bool:
        """Free a backend's model; whether it was loaded."""
        require_local(self.settings, "unloading models")
        return self.manager.unload(backend)

    def set_model(self, backend: str, model_id: str) -> None:
        """Use another model id for a backend (loaded on next use)."""
        require_local(self.settings, "loading another model id")
        self.manager.set_model(backend, model_id)
