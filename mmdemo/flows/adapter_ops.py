"""Adapter operations a serving engine offers: fetch an adapter from the Hugging Face Hub,
load and unload adapters at runtime the way vLLM's ``/v1/load_lora_adapter`` does, merge
adapters into a new one, and export base + adapter as one plain transformers model.

Every new adapter goes through the same door as an upload (``ChatService.install_adapter``:
safetensors only, the size limit, weights that fit the loaded VLM) and lands in the adapter
store, so the chat tab, the arena and ``/v1`` all serve it at once. A caller never names a
server path that is opened as given: a runtime ``lora_path`` must be an adapter folder of
this server's store (or a Hub id).
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.config import Settings
from mmdemo.errors import AdapterError, BadInputError, NotAllowedError
from mmdemo.flows.chat import BASE_NAME, ChatService
from mmdemo.flows.limits import require_shared_additions
from mmdemo.models import bottleneck
from mmdemo.models.adapters import NAME_RE, AdapterInfo, check_name
from mmdemo.models.files import staging_dir
from mmdemo.models.hub import HUB_ID_FIX, download_adapter, parse_hub_id
from mmdemo.models.merge import (
    COMBINATIONS,
    MergeSpec,
    check_parents,
    merge_into_base,
    save_model,
    zip_folder,
)

__all__ = ["COMBINATIONS", "AdapterOps", "ExportResult"]

LOADED_BY = "load_lora_adapter"  # the mark of adapters /v1/unload_lora_adapter may remove


class AdapterExistsError(AdapterError):
    """A runtime load names an adapter this server already serves (vLLM: 400)."""


class AdapterNotFoundError(AdapterError):
    """A runtime unload names an adapter this server does not serve (vLLM: 404)."""


@dataclass(frozen=True)
class ExportResult:
    """A merged model written as a zip: which adapter, where, how big, how long it took."""

    adapter: str
    base_model: str
    archive: Path
    nbytes: int
    seconds: float


def local_only(settings: Settings, what: str) -> None:
    """Refuse ``what`` in hosted mode, naming the setting that turns it on."""
    if settings.hosted:
        raise NotAllowedError(
            f"{what} is turned off in hosted mode (MMDEMO_HOSTED; here: {settings.mode_reason})",
            fix="run mmdemo in local mode on a machine you control (--local or "
            "MMDEMO_HOSTED=false)",
        )


class AdapterOps:
    """Hub downloads, runtime load / unload, merges and merged exports over the app's chat
    service (its adapter store and its VLM)."""

    def __init__(self, chat: ChatService, settings: Settings | None = None) -> None:
        self.chat = chat
        self.settings = settings or chat.settings

    @property
    def store(self) -> Any:
        return self.chat.store

    # the Hub -------------------------------------------------------------------------------
    def from_hub(
        self, hub_id: str, name: str = "", meta: dict[str, Any] | None = None
    ) -> AdapterInfo:
        """Download ``org/repo@revision`` (PEFT config + safetensors only), check it like an
        upload and add it as ``name`` (default: the repo's name); local mode only."""
        local_only(self.settings, "loading adapters from the Hugging Face Hub")
        parsed = parse_hub_id(hub_id or "")
        if parsed is None:
            raise BadInputError(f"{(hub_id or '')[:100]!r} is not a Hub repo id", fix=HUB_ID_FIX)
        repo, revision = parsed
        name = check_name(name or repo.rsplit("/", 1)[1])
        if name in self.store.names():
            raise AdapterError(
                f"an adapter called {name!r} already exists", fix="choose another name"
            )
        self.store.root.mkdir(parents=True, exist_ok=True)
        staging = staging_dir(self.store.root, f"hub-{name}")
        try:
            limit = self.settings.max_upload_mb * 2**20
            commit = download_adapter(repo, revision, staging, self.settings, limit)
            source = {
                "source": f"hub:{repo}@{commit}",
                "hub_repo": repo,
                "hub_revision": revision,
                "hub_commit": commit,
                "description": f"from the Hugging Face Hub: {repo}@{revision}",
            }
            return self.chat.install_adapter(staging, name, {**source, **(meta or {})})
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    # runtime load / unload (vLLM's /v1/load_lora_adapter) ------------------------------------
    def load_lora(self, lora_name: str, lora_path: str) -> AdapterInfo:
        """Serve the adapter at ``lora_path`` as ``lora_name`` from now on: an adapter folder
        of this server's store (its name, or its absolute path) is copied under the new name,
        a Hub id is downloaded. Local mode only."""
        local_only(self.settings, "loading adapters at runtime")
        lora_name, lora_path = (lora_name or "").strip(), (lora_path or "").strip()
        if not lora_name or not lora_path:
            raise BadInputError("Both 'lora_name' and 'lora_path' must be provided.")
        name = check_name(lora_name)
        if name in self.chat.adapter_choices():
            raise AdapterExistsError(f"The lora adapter '{name}' has already been loaded.")
        marks = {"loaded_by": LOADED_BY}
        if parse_hub_id(lora_path) is not None:
            return self.from_hub(lora_path, name, marks)
        folder = self.allowed_folder(lora_path)
        meta = {"source": f"{LOADED_BY}:{folder.name}", **marks}
        return self.chat.install_adapter(folder, name, meta)

    def unload_lora(self, lora_name: str) -> None:
        """Stop serving an adapter that ``load_lora`` added (its copy is deleted); adapters
        that were trained, uploaded or ship with mmdemo are refused, never deleted here."""
        local_only(self.settings, "unloading adapters at runtime")
        name = (lora_name or "").strip()
        if not name:
            raise BadInputError("'lora_name' must be provided.")
        found = {a.name: a for a in self.store.list()}
        if name not in found:
            raise AdapterNotFoundError(f"The lora adapter '{name}' cannot be found.")
        info = found[name]
        if info.loaded_by != LOADED_BY:
            kind = "ships with mmdemo" if info.builtin else "was trained or uploaded here"
            raise AdapterError(
                f"the lora adapter '{name}' {kind}, not loaded with /v1/load_lora_adapter; "
                "unloading it would delete it",
                fix="delete it in the chat tab's adapter panel or with /adapter_delete",
            )
        self.chat.delete_adapter(name)

    def allowed_folder(self, lora_path: str) -> Path:
        """The store folder ``lora_path`` names: an adapter's name, or the absolute path of
        an adapter folder directly inside the store or the built-in adapters (links
        resolved, so none leads out). Anything else is refused, never opened."""
        refusal = BadInputError(
            f"lora_path {lora_path[:100]!r} is not an adapter folder this server serves from",
            fix="pass an adapter's name, the absolute path of a folder in the adapter store "
            f"({self.store.root}), or a Hub id ({HUB_ID_FIX})",
        )
        if NAME_RE.match(lora_path):
            try:
                return self.store.get(lora_path).path
            except AdapterError:
                raise refusal from None
        given = Path(lora_path)
        if "\x00" in lora_path or not given.is_absolute():
            raise refusal
        written, real = Path(os.path.normpath(given)), Path(os.path.realpath(given))
        for root in (self.store.root, self.store.builtin_dir):
            if root is None:
                continue
            root_real = Path(os.path.realpath(root))
            inside = written.parent in (Path(os.path.abspath(root)), root_real)
            if inside and real.parent == root_real and real.is_dir() and not given.is_symlink():
                if real.name.startswith("."):  # staging and trash folders
                    raise refusal
                return real
        raise refusal

    # merge -------------------------------------------------------------------------------
    def merge(
        self,
        parents: Sequence[str],
        weights: Sequence[float],
        combination_type: str = "linear",
        density: float = 0.5,
        name: str = "",
    ) -> AdapterInfo:
        """A new adapter ``name`` made from ``parents`` with PEFT's ``add_weighted_adapter``,
        saved in the store like any adapter (so the arena can put it beside its parents)."""
        require_shared_additions(self.settings, "adding a merged adapter")
        spec = MergeSpec(combination_type, tuple(float(w) for w in weights), float(density))
        names = [p.strip() for p in parents if p and p.strip()]
        if BASE_NAME in names:
            raise BadInputError("base is not an adapter", fix="merge adapters only")
        infos = [self.store.get(p) for p in names]
        check_parents(infos, spec)
        name = check_name(name or f"merge-{'-'.join(names)}"[:64])
        if name in self.store.names():
            raise AdapterError(
                f"an adapter called {name!r} already exists", fix="choose another name"
            )
        bundle = self.chat.manager.get("vlm")
        weights_text = ", ".join(f"{n} {w:g}" for n, w in zip(names, spec.weights, strict=True))
        meta = {
            "source": f"merge:{spec.combination_type}({', '.join(names)})",
            "method": f"merge ({spec.combination_type})",
            "base_model": infos[0].base_model,
            "base_model_type": infos[0].base_model_type or bundle.family,
            "dataset": " + ".join(i.dataset for i in infos if i.dataset),
            "description": f"{spec.combination_type} merge of {weights_text}"
            + ("" if spec.combination_type == "linear" else f", density {spec.density:g}"),
            "parents": names,
            "weights": list(spec.weights),
            "combination_type": spec.combination_type,
            "density": spec.density,
        }
        self.store.root.mkdir(parents=True, exist_ok=True)
        work = staging_dir(self.store.root, f"merge-{name}")
        try:
            folder = bundle.adapters.merge(infos, spec, work)
            return self.chat.install_adapter(folder, name, meta)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # export ------------------------------------------------------------------------------
    def export_merged(self, adapter: str, out_dir: Path) -> ExportResult:
        """Base + ``adapter`` as one transformers folder (weights merged with PEFT's
        ``merge_and_unload``, processor and tokenizer beside them), zipped into ``out_dir``.

        The merge runs on a fresh copy of the base loaded on the CPU in the served dtype, so
        the served model is never changed. Local mode only (it holds a second copy of the
        model for a while)."""
        from transformers import AutoProcessor

        from mmdemo.models.backends.vlm import load_parts
        from mmdemo.models.hub import resolve_model_dir
        from mmdemo.models.lora import adapter_weights, check_compatible

        local_only(self.settings, "exporting a merged model")
        started = time.perf_counter()
        info = self.chat.adapter_info(adapter)
        if info is None:
            raise BadInputError("base has no adapter to merge", fix="pick an adapter")
        if info.peft_type == bottleneck.PEFT_TYPE:
            raise AdapterError(
                f"{info.name!r} is a bottleneck adapter, which PEFT cannot merge into the base",
                fix="export a LoRA, DoRA or IA3 adapter",
            )
        bundle = self.chat.manager.get("vlm")
        check_compatible(info, bundle.model, bundle.family)
        model_id = self.chat.manager.model_id("vlm")
        base, _, _, _ = load_parts(model_id, self.settings, "cpu", bundle.dtype)
        processor = AutoProcessor.from_pretrained(
            resolve_model_dir(model_id, "vlm", self.settings),
            trust_remote_code=self.settings.trust_remote_code,
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        label = info.name.replace("@r=", "-r")
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
            with adapter_weights(info) as source:
                merged = merge_into_base(base, source)
            folder = save_model(
                merged,
                processor,
                Path(tmp) / f"{label}-merged",
                {
                    "base_model": model_id,
                    "adapter": info.name,
                    "adapter_source": info.source,
                    "dtype": bundle.dtype,
                    "made_by": "mmdemo adapters_export_merged (PEFT merge_and_unload)",
                },
            )
            del merged, base
            gc.collect()
            archive = zip_folder(folder, out_dir / f"{label}-merged.zip")
        return ExportResult(
            info.name,
            model_id,
            archive,
            archive.stat().st_size,
            time.perf_counter() - started,
        )
