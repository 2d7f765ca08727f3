"""The Visual chat tab's named endpoints: ``/chat(message, images, adapter, max_new_tokens,
greedy)`` streams the answer text; ``/ground(image, prompt, adapter, max_new_tokens)`` finds
boxes ("where is the red circle?") and returns them with the image they are drawn on;
``/adapter_upload(files, adapter_name)`` and ``/adapter_delete(adapter_name)`` add and
remove adapters (``/adapters`` lists them); ``/adapter_from_hub(hub_id, adapter_name)``,
``/adapters_merge(adapters, weights, combination_type, density, adapter_name)`` and
``/adapters_export_merged(adapter)`` fetch, merge and export them.

Images arrive as uploads (``handle_file``) and are decoded by the house decoder, so a wrong
file is refused with its cause and a fix, not a framework error. Adapter uploads are staged
in the caller's session folder and checked by the adapter store: safetensors only (a pickle
is refused with the reason), a PEFT config, and weights that fit the loaded VLM.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from mmdemo.errors import BadInputError
from mmdemo.flows.chat import BASE_NAME, ChatService, ChatSession
from mmdemo.flows.generation import GenerationSettings
from mmdemo.flows.limits import require_shared_additions
from mmdemo.ui.common import guarded, guarded_stream
from mmdemo.ui.context import AppContext
from mmdemo.ui.uploads import upload_path
from mmdemo.zerogpu import gpu

ADAPTER_SUFFIXES = (".zip", ".json", ".safetensors")


def stage_upload(files: list[str], folder: Path) -> Path:
    """A new folder inside ``folder`` (the session's scratch folder) holding copies of the
    uploaded files; the caller removes it when done. Only this folder is ever deleted: the
    uploads themselves are never touched."""
    staged = folder / f"adapter-{uuid.uuid4().hex[:12]}"
    staged.mkdir(parents=True)
    for p in map(Path, files):
        if not p.is_file():
            shutil.rmtree(staged, ignore_errors=True)
            raise BadInputError(f"{p.name} is not a file", fix="upload the adapter's files")
        shutil.copyfile(p, staged / p.name)
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
        if not f.is_file():
            raise BadInputError(f"{f.name} is not a file", fix="upload the adapter's files")
        if f.stat().st_size == 0:
            raise BadInputError(f"{f.name} is empty (0 bytes)", fix="upload it again")
    staged = stage_upload(files, folder)
    single_zip = len(files) == 1 and Path(files[0]).suffix.lower() == ".zip"
    source = staged / Path(files[0]).name if single_zip else staged
    default = Path(files[0]).stem if single_zip else None
    try:
        info = chat.install_adapter(source, (adapter_name or "").strip() or default)
    finally:
        shutil.rmtree(staged, ignore_errors=True)  # the staging folder made above, nothing else
    return next(a for a in chat.adapters_summary() if a["name"] == info.name)


def register(ctx: AppContext, concurrency: int) -> None:
    """Publish ``/adapter_upload``, ``/adapter_delete`` and ``/chat`` (all model work: heavy;
    ``concurrency``: how many answers ``/chat`` runs at once)."""
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
    register_ops(ctx)

    @gpu("chat")
    def chat_endpoint(
        message: str,
        images: list[FileData] | None = None,
        adapter: str = BASE_NAME,
        max_new_tokens: int = 128,
        greedy: bool = True,
    ) -> Iterator[str]:
        """One question (with optional images) to the VLM with an adapter ("base": none);
        streams the answer text."""
        paths = [upload_path(f, "each image") for f in images or []]
        gen = GenerationSettings(max_new_tokens=int(max_new_tokens or 128), greedy=bool(greedy))
        for update in chat.stream(
            ChatSession(),
            message,
            [p for p in paths if p],
            adapter or BASE_NAME,
            gen,
            threading.Event(),
        ):
            yield update.text

    gr.api(
        ctx.heavy(guarded_stream(chat_endpoint)),
        api_name="chat",
        concurrency_id="vlm",
        concurrency_limit=concurrency,
    )

    grounding = ctx.services.grounding

    @gpu("chat")
    def ground(
        image: FileData,
        prompt: str,
        adapter: str = BASE_NAME,
        max_new_tokens: int = 256,
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> dict:
        """Boxes for ``prompt`` ("Where is the red circle?") in ``image``, answered by the VLM
        with ``adapter``: {"boxes": [{x1, y1, x2, y2 (pixels of the image), label, span,
        coords}], "image": the image with the boxes drawn (PNG), "raw": the answer, "family",
        "format", "assumption", "reason" (why there are none), ...}."""
        path = upload_path(image, "image")
        if not path:
            raise BadInputError("there is no image", fix="send an image file")
        result = grounding.ground(path, prompt, adapter or BASE_NAME, int(max_new_tokens or 256))
        folder = folders.folder(request.session_hash if request else None)
        out = folder / f"boxes-{uuid.uuid4().hex[:12]}.png"
        result.annotated.save(out)
        return {**result.to_json(), "image": FileData(path=str(out)).model_dump()}

    gr.api(ctx.heavy(guarded(ground)), api_name="ground", concurrency_id="vlm")


def register_ops(ctx: AppContext) -> None:
    """Publish ``/adapter_from_hub``, ``/adapters_merge`` and ``/adapters_export_merged``
    (model work on the shared VLM: heavy, in its queue)."""
    chat, ops, folders = ctx.services.chat, ctx.services.adapter_ops, ctx.session_folders()

    def entry(name: str) -> dict:
        return next(a for a in chat.adapters_summary() if a["name"] == name)

    def adapter_from_hub(hub_id: str, adapter_name: str = "") -> dict:
        """Download a PEFT adapter from the Hugging Face Hub (``org/repo@revision``: its
        adapter_config.json and safetensors weights only), check it like an upload and add
        it; returns its entry (``source``: ``hub:org/repo@commit``). Local mode only."""
        return entry(ops.from_hub(hub_id, (adapter_name or "").strip()).name)

    def adapters_merge(
        adapters: list[str],
        weights: list[float],
        combination_type: str = "linear",
        density: float = 0.5,
        adapter_name: str = "",
    ) -> dict:
        """Merge LoRA adapters into a new one with PEFT's add_weighted_adapter
        (combination_type linear, ties or dare_ties; one weight per adapter; density: the
        share TIES / DARE keep); returns the new adapter's entry."""
        info = ops.merge(adapters or [], weights or [], combination_type, density, adapter_name)
        return entry(info.name)

    def adapters_export_merged(
        adapter: str,
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> dict:
        """Base + ``adapter`` as one transformers model folder (PEFT merge_and_unload, with
        the processor and tokenizer), zipped: {"file", "adapter", "base_model", "bytes",
        "seconds"}. Local mode only."""
        folder = folders.folder(request.session_hash if request else None)
        result = ops.export_merged(adapter, folder)
        return {
            "file": FileData(path=str(result.archive)).model_dump(),
            "adapter": result.adapter,
            "base_model": result.base_model,
            "bytes": result.nbytes,
            "seconds": round(result.seconds, 2),
        }

    for fn in (adapter_from_hub, adapters_merge, adapters_export_merged):
        gr.api(ctx.heavy(guarded(fn)), api_name=fn.__name__, concurrency_id="vlm")
