"""The Arena tab's named endpoint: ``/arena(image, prompt, adapters)`` returns every
column's answer and speed. The image arrives as an upload (``handle_file``) and is decoded by
the house decoder, so a wrong file is refused with its cause and a fix."""

from __future__ import annotations

import threading
from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from mmdemo.flows.chat import BASE_NAME
from mmdemo.flows.generation import GenerationSettings
from mmdemo.ui.common import guarded
from mmdemo.ui.context import AppContext
from mmdemo.ui.uploads import upload_path
from mmdemo.zerogpu import gpu


def arena_json(result: Any) -> dict[str, Any]:
    return {
        "mode": result.mode,
        "total_s": round(result.total_s, 3),
        "ttft_s": round(result.ttft_s, 3),
        "columns": [
            {
                "adapter": c.adapter,
                "label": c.label,
                "text": c.text,
                "tokens": c.tokens,
                "tokens_per_s": round(c.tokens_per_s, 2),
                "remote": c.remote,
                "error": c.error,
            }
            for c in result.columns
        ],
    }


def register(ctx: AppContext) -> None:
    """Publish ``/arena`` (model work: heavy)."""
    arena = ctx.services.arena

    @gpu("arena")
    def arena_endpoint(
        image: FileData | None, prompt: str, adapters: list[str] | None = None
    ) -> dict:
        """The same image and prompt answered by base and up to 3 adapters side by side."""
        path = upload_path(image, "image")
        for res in arena.stream(
            path, prompt, adapters or [BASE_NAME], GenerationSettings(), threading.Event()
        ):
            if res.done:
                return arena_json(res)
        raise RuntimeError("the arena ended without a result")

    gr.api(ctx.heavy(guarded(arena_endpoint)), api_name="arena", concurrency_id="vlm")
