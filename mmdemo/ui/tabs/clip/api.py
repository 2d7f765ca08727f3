"""The CLIP tab's named endpoints over ``ClipSearch`` (mmdemo.flows.clip): plain values in,
data out (dicts, lists, file paths), for gradio_client:

``/clip_indexes()``, ``/clip_add(index_name, folder, files)``,
``/clip_search(index_name, query_text, query_image, top_k, text_weight, like_item_id)``,
``/clip_explain(index_name, item_id, query_text)``, ``/clip_remove(index_name, item_ids)``,
``/clip_prune(index_name)``, ``/clip_delete(index_name, confirm)``,
``/clip_classify(image, labels, templates)``.

Files arrive as uploads (``handle_file``), checked by ``upload_path``.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from mmdemo.ui.common import guarded
from mmdemo.ui.context import AppContext
from mmdemo.ui.uploads import upload_path


def register(ctx: AppContext, heavy: dict[str, Any], query: dict[str, Any]) -> None:
    """Named endpoints (``heavy``/``query``: concurrency settings for writes and reads; all
    but the listing run CLIP or rewrite an index, so they spend the request budgets)."""
    api = ctx.services.clip

    def clip_indexes() -> list[dict[str, Any]]:
        """Every index: name, images, model_id, embed_dim, search method, disk_bytes."""
        return api.indexes()

    def clip_add(index_name: str, folder: str = "", files: list[FileData] | None = None) -> dict:
        """Add a server folder and/or uploaded images to an index (made if new)."""
        paths = [upload_path(f, "each file") for f in files or []]
        return api.add(index_name, folder, [p for p in paths if p])

    def clip_search(
        index_name: str,
        query_text: str = "",
        query_image: FileData | None = None,
        top_k: int = 12,
        text_weight: float = 0.5,
        like_item_id: int | None = None,
    ) -> dict:
        """Search by text, image, both, or like an indexed image; hits best first."""
        image = upload_path(query_image, "query_image")
        return api.search(index_name, query_text, image, top_k, text_weight, like_item_id)

    def clip_explain(index_name: str, item_id: int, query_text: str) -> dict:
        """Occlusion map of an indexed image for a text; "overlay" is a PNG file."""
        data = api.explain(index_name, item_id, query_text)
        data["overlay"] = FileData(path=data["overlay"]).model_dump()
        return data

    def clip_remove(index_name: str, item_ids: list[int]) -> dict:
        """Remove images by item_id."""
        return api.remove(index_name, item_ids)

    def clip_prune(index_name: str) -> dict:
        """Remove entries whose files are gone."""
        return api.prune(index_name)

    def clip_delete(index_name: str, confirm: bool = False) -> dict:
        """Delete an index (confirm=True)."""
        return api.delete(index_name, confirm)

    def clip_classify(
        image: FileData | None, labels: str | list[str], templates: str | list[str] = ""
    ) -> dict:
        """Zero-shot label probabilities for an uploaded image, highest first."""
        return api.classify(upload_path(image, "image"), labels, templates)

    gr.api(guarded(clip_indexes), api_name="clip_indexes", queue=False)
    for fn, name in (
        (clip_add, "clip_add"),
        (clip_remove, "clip_remove"),
        (clip_prune, "clip_prune"),
        (clip_delete, "clip_delete"),
    ):
        gr.api(ctx.heavy(guarded(fn)), api_name=name, **heavy)
    for fn, name in (
        (clip_search, "clip_search"),
        (clip_explain, "clip_explain"),
        (clip_classify, "clip_classify"),
    ):
        gr.api(ctx.heavy(guarded(fn)), api_name=name, **query)
