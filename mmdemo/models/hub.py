"""Find model files: a local folder, a tiny build, or the Hugging Face cache / Hub.

When a model is neither cached nor reachable the user gets one message that names the model,
the profile and the command that fixes it, within a few seconds (no minutes of retries).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from mmdemo.config import Settings
from mmdemo.errors import ModelUnavailableError

# Files a model folder needs; weights as safetensors only (never pickles).
MODEL_FILE_PATTERNS = (
    "*.json",
    "*.safetensors",
    "*.txt",
    "*.model",
    "*.jinja",
    "*.tiktoken",
    "*.py",
)


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_reachable(timeout: float = 3.0) -> tuple[bool, str]:
    """(reachable, reason). A TCP connect to the Hub endpoint, bounded by ``timeout``."""
    url = urlparse(hub_endpoint())
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, ""
    except OSError as exc:
        return False, f"{host}:{port} unreachable: {exc.strerror or exc}"


def offline_mode(settings: Settings) -> bool:
    return settings.offline or os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def unavailable(
    backend: str, model_id: str, settings: Settings, reason: str
) -> ModelUnavailableError:
    """The one message a user sees when a model cannot be had."""
    profile = settings.resolved_profile
    return ModelUnavailableError(
        f"the {backend} model '{model_id}' (profile '{profile}') is not available: {reason}",
        backend=backend,
        model_id=model_id,
        fix=(
            f"on a machine with internet run `python -m mmdemo models download {backend}` "
            f"with the same settings (or `hf download {model_id}`), "
            f"or set MMDEMO_{backend.upper()} to a local folder, "
            "or start with MMDEMO_PROFILE=tiny for offline random-weight models"
        ),
    )


def resolve_repo(
    repo_id: str,
    backend: str,
    settings: Settings,
    allow_patterns: tuple[str, ...] = MODEL_FILE_PATTERNS,
    download: bool = True,
    model_id: str | None = None,
) -> Path:
    """A local folder with the repo's files: from the cache, else downloaded if the Hub answers.

    ``model_id`` is the id the user configured, when it differs from the repo (CLIP tags).
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(
            snapshot_download(repo_id, local_files_only=True, allow_patterns=list(allow_patterns))
        )
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        pass
    shown = model_id or repo_id
    where = (
        f"Hub repo {repo_id} is not in the local Hugging Face cache"
        if model_id
        else ("not in the local Hugging Face cache")
    )
    if offline_mode(settings):
        raise unavailable(backend, shown, settings, f"{where} and offline mode is on")
    if not download:
        raise unavailable(backend, shown, settings, where)
    ok, why = hub_reachable()
    if not ok:
        raise unavailable(backend, shown, settings, f"{where} and the Hub is {why}")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=list(allow_patterns)))
    except Exception as exc:  # repo missing, gated, network dropped mid-way
        raise unavailable(backend, shown, settings, f"download of {repo_id} failed: {exc}") from exc


def resolve_model_dir(model_id: str, backend: str, settings: Settings) -> Path:
    """``tiny:NAME`` -> the local tiny build; a folder -> itself; else a Hub repo id."""
    if model_id.startswith("tiny:"):
        from mmdemo.models.tiny import ensure_built

        return ensure_built(model_id.removeprefix("tiny:"), settings.models_dir)
    path = Path(model_id).expanduser()
    if path.is_dir():
        return path
    if path.is_absolute() or model_id.startswith((".", "~")):
        raise unavailable(backend, model_id, settings, f"the folder {path} does not exist")
    return resolve_repo(model_id, backend, settings)
