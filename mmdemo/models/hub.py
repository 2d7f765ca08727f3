"""Find model files: a local folder, a tiny build, or the Hugging Face cache / Hub; and fetch
a PEFT adapter from the Hub (``org/repo@revision``: its config and safetensors only).

When a model is neither cached nor reachable the user gets one message that names the model,
the profile and the command that fixes it, within a few seconds (no minutes of retries).
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

from mmdemo.config import Settings
from mmdemo.errors import AdapterError, ModelUnavailableError

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


# Adapters from the Hub ---------------------------------------------------------------------
# The only files fetched from an adapter repo: PEFT's config and safetensors weights (never a
# pickle, never a whole model that happens to share the repo).
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
HUB_ID_RE = re.compile(
    r"^(?:hf://)?(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95})"
    r"(?:@(?P<revision>[A-Za-z0-9][A-Za-z0-9._/-]{0,127}))?$"
)
HUB_ID_FIX = "write it as org/repo@revision (a branch, tag or commit; default main)"


def is_hub_id(spec: str) -> bool:
    """``org/repo`` or ``org/repo@revision`` (optionally ``hf://``): a Hub repo, not a path."""
    return parse_hub_id(spec) is not None


def parse_hub_id(spec: str) -> tuple[str, str] | None:
    """(repo id, revision) of ``org/repo[@revision]``; None when ``spec`` is not one."""
    match = HUB_ID_RE.match(spec.strip())
    if match is None or ".." in spec or "--" in match["repo"]:
        return None
    return match["repo"], match["revision"] or "main"


def download_adapter(
    repo_id: str, revision: str, dest: Path, settings: Settings, max_bytes: int
) -> str:
    """Download a PEFT adapter's config and safetensors weights from ``repo_id`` at
    ``revision`` into ``dest``; returns the commit they came from.

    The Hub is asked first what it would send (a dry run: names and sizes), so a repo without
    safetensors weights or one over ``max_bytes`` is refused before anything is downloaded;
    the files are then fetched from that very commit, whatever the branch does meanwhile.
    """
    from huggingface_hub import snapshot_download

    shown = f"{repo_id}@{revision}"
    if offline_mode(settings):
        raise AdapterError(
            f"cannot fetch the adapter {shown}: offline mode is on",
            fix="unset MMDEMO_OFFLINE / HF_HUB_OFFLINE, or download the adapter elsewhere "
            "and upload it",
        )
    ok, why = hub_reachable()
    if not ok:
        raise AdapterError(
            f"cannot fetch the adapter {shown}: the Hub is {why}",
            fix="check the network (or HF_ENDPOINT), or upload the adapter's files instead",
        )
    patterns = list(ADAPTER_FILES)
    try:
        plan = snapshot_download(
            repo_id, revision=revision, allow_patterns=patterns, local_dir=dest, dry_run=True
        )
    except Exception as exc:  # no such repo or revision, gated, network dropped
        raise AdapterError(
            f"the Hub has no adapter {shown} that can be read: {type(exc).__name__}: {exc}",
            fix=f"check the repo id and the revision; {HUB_ID_FIX}",
        ) from None
    sizes = {f.filename: f.file_size or 0 for f in plan}
    config, weights = ADAPTER_FILES
    if config not in sizes:
        raise AdapterError(
            f"{shown} has no {config} at its top; is it a PEFT adapter repo?",
            fix="use the repo (and revision) of a PEFT adapter",
        )
    if weights not in sizes:
        raise AdapterError(
            f"{shown} has no {weights}; mmdemo loads adapters from safetensors only (a .bin "
            "or .pt pickle can run arbitrary code when loaded and is never fetched)",
            fix="use a revision with safetensors weights (save_pretrained(..., "
            "safe_serialization=True))",
        )
    total = sum(sizes.values())
    if total > max_bytes:
        raise AdapterError(
            f"the adapter {shown} is {total / 2**20:.0f} MB; the limit is "
            f"{max_bytes / 2**20:.0f} MB",
            fix="use a smaller adapter, or raise MMDEMO_MAX_UPLOAD_MB",
        )
    commit = plan[0].commit_hash
    try:
        snapshot_download(repo_id, revision=commit, allow_patterns=patterns, local_dir=dest)
    except Exception as exc:
        raise AdapterError(
            f"the download of {shown} failed: {type(exc).__name__}: {exc}",
            fix="try again; check the network",
        ) from None
    return commit
