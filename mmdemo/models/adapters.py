"""AdapterStore: PEFT adapters on disk — discover, read metadata, validate, install, delete.

An adapter is a PEFT folder (``adapter_config.json`` + ``adapter_model.safetensors``) with an
optional ``mmdemo.json`` beside it (base model, method, dataset, metrics, created). Metadata
lives next to the weights; there is no second registry. Pickled weights are never loaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmdemo.config import Settings
from mmdemo.errors import AdapterError
from mmdemo.models.archive import PICKLE_SUFFIXES, safe_extract
from mmdemo.models.files import (
    LOCKS,
    file_lock,
    restore_folders,
    staging_dir,
    sweep_staging,
    sweep_trash,
)

BUILTIN_DIR = Path(__file__).resolve().parents[2] / "assets" / "adapters"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RESERVED = frozenset({"base", "__base__", "none", "default"})
# PEFT warns (and may reinitialize weights) when an adapter name is part of a parameter prefix.
PEFT_PREFIXES = ("lora_", "ia3_", "hada_", "lokr_", "vera_", "oft_", "boft_", "ln_tuning_")
CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
META = "mmdemo.json"
TRASH = ".deleting-"  # a deleted adapter's folder, renamed away before it is removed


@dataclass(frozen=True)
class AdapterInfo:
    """One adapter as the UI and the runtime see it."""

    name: str
    path: Path
    builtin: bool
    peft_type: str
    rank: int | None
    alpha: float | None
    target_modules: tuple[str, ...]
    base_model: str
    base_model_type: str
    method: str
    dataset: str
    metrics: dict[str, float] = field(default_factory=dict)
    created: str = ""
    description: str = ""
    size_bytes: int = 0
    use_dora: bool = False  # DoRA is a LoRA variant PEFT cannot run in mixed-adapter batches
    # DyLoRA: held-out metrics its training measured per rank (rank -> metrics)
    rank_scores: dict[int, dict[str, float]] = field(default_factory=dict)
    # DyLoRA served at a lower rank ("name@r=k", models/dylora.py): k; None: as stored
    serve_rank: int | None = None
    # where it came from, when not trained or uploaded here: "hub:org/repo@commit",
    # "merge:linear(a, b)", "load_lora_adapter:<folder>"
    source: str = ""
    # "load_lora_adapter" when added through /v1/load_lora_adapter (which may unload it again)
    loaded_by: str = ""

    @property
    def is_lora(self) -> bool:
        """Plain LoRA: the adapters PEFT can mix in one batch (``adapter_names=``)."""
        return self.peft_type == "LORA" and not self.use_dora

    def label(self) -> str:
        """One line for dropdowns and arena columns: method, dataset, score."""
        parts = [self.method or self.peft_type.lower()]
        if self.serve_rank is not None:
            parts[0] += f" at r={self.serve_rank}"
        if self.dataset:
            parts.append(self.dataset)
        for key, value in self.metrics.items():
            parts.append(f"{key} {value:.2f}" if isinstance(value, float) else f"{key} {value}")
            break
        return " · ".join(parts)


def check_name(name: str) -> str:
    name = name.strip()
    if not NAME_RE.match(name):
        raise AdapterError(
            f"adapter name {name!r} is not allowed",
            fix="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    if name.lower() in RESERVED or any(name in prefix for prefix in PEFT_PREFIXES):
        raise AdapterError(f"'{name}' is reserved", fix="choose another adapter name")
    if name in _module_attributes():
        raise AdapterError(
            f"'{name}' is the name of a torch module attribute, and PEFT keeps each adapter's "
            "layers in a torch ModuleDict under the adapter's name, so it could not load",
            fix=f"choose another adapter name (e.g. '{name}-adapter')",
        )
    return name


def _module_attributes() -> set[str]:
    """Names a torch ``ModuleDict`` cannot take as keys (its own attributes)."""
    from torch import nn

    return set(dir(nn.ModuleDict)) | set(dir(nn.ParameterDict))


def read_adapter(path: Path, name: str | None = None, builtin: bool = False) -> AdapterInfo:
    """Read and sanity-check an adapter folder (files and configs only, no weights loaded)."""
    path = Path(path)
    if not path.is_dir():
        raise AdapterError(f"{path} is not a folder")
    pickles = sorted(p.name for p in path.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise AdapterError(
            f"{', '.join(pickles)} is a pickle file, which can run arbitrary code when loaded; "
            "mmdemo loads safetensors only",
            fix="re-save the adapter with save_pretrained(..., safe_serialization=True) and "
            f"upload {CONFIG} + {WEIGHTS}",
        )
    if not (path / CONFIG).is_file():
        raise AdapterError(f"no {CONFIG} in the adapter", fix="upload a PEFT adapter folder or zip")
    if not (path / WEIGHTS).is_file():
        raise AdapterError(f"no {WEIGHTS} in the adapter", fix="upload the safetensors weights")
    try:
        config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise AdapterError(f"{CONFIG} is not valid JSON: {exc}") from None
    if not isinstance(config, dict) or "peft_type" not in config:
        raise AdapterError(f"{CONFIG} has no peft_type; is this a PEFT adapter?")
    meta: dict[str, Any] = {}
    if (path / META).is_file():
        try:
            meta = json.loads((path / META).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            meta = {}
    targets = config.get("target_modules") or ()
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
    return AdapterInfo(
        name=name or path.name,
        path=path,
        builtin=builtin,
        peft_type=str(config["peft_type"]).upper(),
        rank=config.get("r"),
        alpha=config.get("lora_alpha"),
        target_modules=targets,
        base_model=str(meta.get("base_model") or config.get("base_model_name_or_path") or ""),
        base_model_type=str(meta.get("base_model_type") or ""),
        method=str(meta.get("method") or str(config["peft_type"]).lower()),
        dataset=str(meta.get("dataset") or ""),
        metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float))},
        created=str(meta.get("created") or ""),
        description=str(meta.get("description") or ""),
        size_bytes=sum(p.stat().st_size for p in path.rglob("*") if p.is_file()),
        use_dora=bool(config.get("use_dora")),
        rank_scores=_rank_scores(meta.get("rank_scores")),
        source=str(meta.get("source") or ""),
        loaded_by=str(meta.get("loaded_by") or ""),
    )


def _rank_scores(value: Any) -> dict[int, dict[str, float]]:
    """``{"2": {"overall": 0.6}}`` from ``mmdemo.json`` as ``{2: {"overall": 0.6}}``; entries
    that are not a rank with numbers are left out."""
    if not isinstance(value, dict):
        return {}
    scores = {}
    for rank, metrics in value.items():
        if str(rank).isdigit() and isinstance(metrics, dict):
            scores[int(rank)] = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    return scores


def install_lock(root: Path) -> contextlib.AbstractContextManager[None]:
    """Held while a new adapter takes its name in ``root`` (uploads and finished runs, in any
    process), so two of them never end up with the same name."""
    return file_lock(Path(root) / LOCKS / "install.lock")


def name_taken(root: Path, name: str, builtin_dir: Path | None = None) -> bool:
    """An adapter (or anything) has ``name`` in ``root``, or a built-in adapter has it."""
    if (Path(root) / name).exists():
        return True
    return builtin_dir is not None and (Path(builtin_dir) / name).is_dir()


def free_name(root: Path, name: str, builtin_dir: Path | None = None) -> str:
    """``name``, or ``name-2``, ``name-3``... the first one no adapter has."""
    candidate, n = name, 1
    while name_taken(root, candidate, builtin_dir):
        n += 1
        candidate = f"{name[: 63 - len(str(n))]}-{n}"
    return candidate


@contextlib.contextmanager
def new_adapter_folder(
    root: Path, name: str, builtin_dir: Path | None = None
) -> Iterator[tuple[str, Path]]:
    """Yield (a free name: ``name`` or ``name-2``..., an empty staging folder) and, when the
    block succeeds, rename the folder to that name in ``root``. The install lock is held
    throughout, so an adapter that appeared meanwhile keeps its name and is never replaced;
    on error (or a crash) nothing is installed."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with install_lock(root):
        final = free_name(root, name, builtin_dir)
        staging = staging_dir(root, final)
        try:
            yield final, staging
            os.rename(staging, root / final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


class AdapterStore:
    """Adapters under ``MMDEMO_HOME/adapters`` (user) and ``assets/adapters`` (built in)."""

    def __init__(self, settings: Settings, builtin_dir: Path | None = BUILTIN_DIR):
        self.root = settings.adapters_dir
        self.builtin_dir = builtin_dir
        self.max_upload_bytes = settings.max_upload_mb * 2**20
        sweep_trash(self.root, TRASH)  # deletions a crash cut short

    def list(self) -> list[AdapterInfo]:
        """All readable adapters, user ones first; unreadable folders are skipped."""
        found: dict[str, AdapterInfo] = {}
        restore_folders(self.root)  # a training run's swap a crash cut in half
        sweep_staging(self.root)  # unfinished writes of processes that died
        for folder, builtin in ((self.root, False), (self.builtin_dir, True)):
            if folder is None or not folder.is_dir():
                continue
            for path in sorted(
                p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
            ):
                if path.name in found:
                    continue
                try:
                    found[path.name] = read_adapter(path, builtin=builtin)
                except AdapterError:
                    continue
        return list(found.values())

    def names(self) -> list[str]:
        return [a.name for a in self.list()]

    def get(self, name: str) -> AdapterInfo:
        """The adapter called ``name``; ``name@r=k`` is a DyLoRA adapter served at rank k."""
        from mmdemo.models.dylora import at_rank, split_rank

        stem, rank = split_rank(name)
        for info in self.list():
            if info.name == stem:
                return info if rank is None else at_rank(info, rank)
        raise AdapterError(f"no adapter called {stem!r}", fix="pick one from the list or upload it")

    def install(
        self, source: Path, name: str | None = None, meta: dict[str, Any] | None = None
    ) -> AdapterInfo:
        """Copy an adapter (folder, .zip, or loose files in a folder) into the store;
        ``meta`` is added to its ``mmdemo.json`` (where it came from, its parents...).

        The copy is made in a temporary folder and renamed into place only when it reads
        cleanly, so a bad upload leaves the store as it was. Either way the files may add up
        to ``max_upload_mb`` at most.
        """
        source = Path(source)
        name = check_name(name or source.stem)
        if name in self.names():
            raise AdapterError(
                f"an adapter called {name!r} already exists",
                fix="delete it first or choose another name",
            )
        self.root.mkdir(parents=True, exist_ok=True)
        staging = staging_dir(self.root, name)
        try:
            if source.is_dir():
                _copy_adapter_files(source, staging, self.max_upload_bytes)
            elif source.suffix.lower() == ".zip":
                safe_extract(source, staging, max_bytes=self.max_upload_bytes)
            else:
                raise AdapterError(
                    f"{source.name} is neither a folder nor a .zip",
                    fix="upload a zip of the PEFT adapter folder",
                )
            folder = _single_subfolder(staging)
            info = read_adapter(folder, name=name)
            if not (folder / META).is_file():
                write_metadata(
                    folder,
                    {
                        "base_model": info.base_model,
                        "method": info.method,
                        "dataset": "",
                        "description": "uploaded",
                        **(meta or {}),
                    },
                )
            elif meta:
                _add_metadata(folder, meta)
            target = self.root / name
            with install_lock(self.root):  # a run finishing now cannot take the name too
                if name_taken(self.root, name, self.builtin_dir):
                    raise AdapterError(
                        f"an adapter called {name!r} appeared while this one was unpacked",
                        fix="choose another name",
                    )
                folder.rename(target)
            return read_adapter(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def delete(self, name: str) -> None:
        info = self.get(name)
        if info.builtin:
            raise AdapterError(f"{name!r} ships with mmdemo and cannot be deleted")
        trash = info.path.with_name(f"{TRASH}{name}-{time.time_ns()}")
        info.path.rename(trash)  # atomic: the adapter disappears at once
        shutil.rmtree(trash, ignore_errors=True)


def write_metadata(folder: Path, meta: dict[str, Any]) -> None:
    meta = {"created": time.strftime("%Y-%m-%dT%H:%M:%S"), **meta}
    (Path(folder) / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")


def _add_metadata(folder: Path, meta: dict[str, Any]) -> None:
    """Add ``meta`` to the adapter's own ``mmdemo.json`` (replaced when unreadable)."""
    try:
        found = json.loads((folder / META).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        found = {}
    found = found if isinstance(found, dict) else {}
    (folder / META).write_text(json.dumps({**found, **meta}, indent=2), encoding="utf-8")


def _copy_adapter_files(source: Path, dest: Path, max_bytes: int) -> None:
    """Copy the files at the top of ``source`` (no links; ``max_bytes`` in all at most)."""
    items = list(source.iterdir())
    total = 0
    for item in items:
        if item.is_symlink():
            raise AdapterError(f"{item.name} is a symbolic link; adapters must be plain files")
        if item.is_file():
            total += item.stat().st_size
    if total > max_bytes:
        raise AdapterError(
            f"the adapter's files add up to {total / 2**20:.0f} MB; the limit is "
            f"{max_bytes / 2**20:.0f} MB",
            fix="use a smaller adapter (lower rank), or raise MMDEMO_MAX_UPLOAD_MB",
        )
    for item in items:
        if item.is_file():
            shutil.copy2(item, dest / item.name)


def _single_subfolder(staging: Path) -> Path:
    """Zips often hold one top folder; use it when the config is not at the top."""
    if (staging / CONFIG).is_file():
        return staging
    subdirs = [p for p in staging.iterdir() if p.is_dir()]
    if len(subdirs) == 1 and (subdirs[0] / CONFIG).is_file():
        return subdirs[0]
    return staging
