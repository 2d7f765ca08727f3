"""System report: versions, device, memory and every backend's state."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from dataclasses import dataclass

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
    )


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def human_count(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f} B"
    if n >= 1e6:
        return f"{n / 1e6:.1f} M"
    if n >= 1e3:
        return f"{n / 1e3:.1f} K"
    return str(n)
