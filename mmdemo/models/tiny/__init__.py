"""Tiny builds: real architectures with random weights and locally built tokenizers/processors.

Each build is saved under ``<models_dir>/tiny/<name>/`` and then loaded through the same code
as real weights. Builds are atomic (made in a temporary folder, then renamed), locked across
processes, and rebuilt when ``TINY_VERSION`` changes.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from mmdemo.errors import MMDemoError
from mmdemo.models.files import atomic_folder, file_lock, restore_folder

TINY_VERSION = 3

# name -> (builder "module:function", what it is)
TINY_MODELS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "smolvlm": ("mmdemo.models.tiny.vlm:build_smolvlm", "SmolVLM / Idefics3 VLM"),
        "qwen2vl": ("mmdemo.models.tiny.vlm:build_qwen2vl", "Qwen2-VL VLM"),
        "qwen25vl": ("mmdemo.models.tiny.vlm_families:build_qwen25vl", "Qwen2.5-VL VLM"),
        "llava": ("mmdemo.models.tiny.vlm_families:build_llava", "LLaVA-1.5 VLM (CLIP+Llama)"),
        "internvl": ("mmdemo.models.tiny.vlm_families:build_internvl", "InternVL3 VLM"),
        "glm4v": ("mmdemo.models.tiny.vlm_families:build_glm4v", "GLM-4.1V VLM"),
        "llm": ("mmdemo.models.tiny.text:build_llm", "SmolLM2 / Llama text LLM"),
        "clip": ("mmdemo.models.tiny.clip:build_clip", "open_clip ViT CLIP"),
        "whisper": ("mmdemo.models.tiny.audio:build_whisper", "Whisper ASR (English)"),
        "vits": ("mmdemo.models.tiny.audio:build_vits", "VITS / MMS-TTS TTS"),
        "qwen2audio": (
            "mmdemo.models.tiny.audio_llm:build_qwen2audio",
            "Qwen2-Audio audio LLM (hears speech)",
        ),
    }
)
MARKER = "tiny.json"


def tiny_dir(models_dir: Path, name: str) -> Path:
    return Path(models_dir) / "tiny" / name


def is_built(models_dir: Path, name: str) -> bool:
    marker = tiny_dir(models_dir, name) / MARKER
    try:
        return json.loads(marker.read_text()).get("version") == TINY_VERSION
    except (OSError, ValueError):
        return False


def ensure_built(name: str, models_dir: Path, force: bool = False) -> Path:
    """The folder of tiny build ``name``, building it first if it is missing or stale."""
    if name not in TINY_MODELS:
        raise MMDemoError(
            f"unknown tiny model {name!r}",
            fix=f"use one of {', '.join(f'tiny:{n}' for n in TINY_MODELS)}",
        )
    target = tiny_dir(models_dir, name)
    if not force and is_built(models_dir, name):
        return target
    with file_lock(target.parent / f".{name}.lock"):
        restore_folder(target)  # a crash may have left the last build renamed aside
        if not force and is_built(models_dir, name):
            return target  # another process built it (or it was restored) while we waited
        builder_path, _ = TINY_MODELS[name]
        module_name, _, func = builder_path.partition(":")
        builder = getattr(importlib.import_module(module_name), func)
        start = time.perf_counter()
        with atomic_folder(target) as tmp:
            builder(tmp)
            marker = {"name": name, "version": TINY_VERSION, "seconds": time.perf_counter() - start}
            (tmp / MARKER).write_text(json.dumps(marker), encoding="utf-8")
    return target


def build_all(
    models_dir: Path, names: tuple[str, ...] | None = None, force: bool = False
) -> dict[str, float]:
    """Build the given (default: all) tiny models; returns seconds per build (0 if cached)."""
    timings = {}
    for name in names or tuple(TINY_MODELS):
        start = time.perf_counter()
        was_built = is_built(models_dir, name)
        ensure_built(name, models_dir, force=force)
        timings[name] = 0.0 if (was_built and not force) else time.perf_counter() - start
    return timings
