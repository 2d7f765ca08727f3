"""Adapter upload and delete as named endpoints: ``/adapter_upload(files, adapter_name)``
and ``/adapter_delete(adapter_name)`` (``/adapters`` lists them).

Uploads are staged in the caller's session folder and checked by the adapter store:
safetensors only (a pickle is refused with the reason), a PEFT config, and weights that fit
the loaded VLM, so a wrong file gets its cause and a fix.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from mmdemo.errors import BadInputError
from mmdemo.flows.chat import ChatService
from mmdemo.flows.limits import require_shared_additions
from mmdemo.ui.common import guarded, upload_path
from mmdemo.ui.context import AppContext

ADAPTER_SUFFIXES = (".zip", ".json", ".safetensors")


def stage_upload(files: list[str], folder: Path) -> Path:
    """One path to install from: the zip itself, or a new folder (inside ``folder``, the
    session's scratch folder) holding the loose adapter files."""
    paths = [Path(f) for f in files]
    if len(paths) == 1 and paths[0].suffix.lower() == ".zip":
        return paths[0]
    staged = folder / f"adapter-{uuid.uuid4().hex[:12]}"
    staged.mkdir(parents=True)
    for p in paths:
        shutil.copy2(p, staged / p.name)
    return staged


def install_upload(
    chat: ChatService, files: list[str], adapter_name: str, folder: Path
) -> dict[str, Any]:
    """Install uploaded adapter files (a zip, or adapter_config.json + safetensors).
    Hosted: refused unless training is allowed, before anything is copied."""
    require_shared_additions(chat.settings, "adding an adapter")
    if not files:
        raise BadInputError(
            "no adapter files uploaded",
            fix="upload a zip of the PEFT adapter folder, or adapter_config.json + "
            "adapter_model.safetensors",
        )
    for f in map(Path, files):
        if f.suffix.lower() not in ADAPTER_SUFFIXES:
            raise BadInputError(
                f"{f.name} is not part of a PEFT adapter",
                fix="upload a .zip of the adapter folder, or adapter_config.json + "
                "adapter_model.safetensors (safetensors only: no .bin or .pt pickles)",
            )
        if f.stat().st_size == 0:
            raise BadInputError(f"{f.name} is empty (0 bytes)", fix="upload it again")
    source = stage_upload(files, folder)
    default = Path(files[0]).stem if source.suffix == ".zip" else None
    try:
        info = chat.install_adapter(source, (adapter_name or "").strip() or default)
    finally:
        if source.is_dir():
            shutil.rmtree(source, ignore_errors=True)
    return next(a for a in chat.adapters_summary() if a["name"] == info.name)


def register_api(ctx: AppContext) -> None:
    chat, folders = ctx.services.chat, ctx.session_folders()

    def adapter_upload(
        files: list[FileData],
        adapter_name: str = "",
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> dict:
        """Add a PEFT adapter (a .zip, or adapter_config.json + adapter_model.safetensors):
        checked, loaded, and listed by /adapters; returns its entry."""
        paths = [upload_path(f, "each adapter file") for f in files or []]
        folder = folders.folder(request.session_hash if request else None)
        return install_upload(chat, [p for p in paths if p], adapter_name, folder)

    def adapter_delete(adapter_name: str) -> dict:
        """Delete an uploaded or trained adapter; returns the adapters left."""
        chat.delete_adapter(adapter_name)
        return {"deleted": adapter_name, "adapters": chat.adapter_choices()}

    for fn in (adapter_upload, adapter_delete):
        gr.api(ctx.heavy(guarded(fn)), api_name=fn.__name__, concurrency_id="vlm")
