"""Named API endpoints for clients (gradio_client): ``chat`` and ``arena``.

``/chat(message, images, adapter, max_new_tokens, greedy)`` streams the answer text;
``/arena(image, prompt, adapters)`` returns every column's answer and speed. Images arrive as
uploads (``handle_file``) and are decoded by the house decoder, so a wrong file is refused
with its cause and a fix, not a framework error.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from mmdemo.flows.chat import BASE_NAME, ChatSession
from mmdemo.flows.generation import GenerationSettings
from mmdemo.ui.common import guarded, guarded_stream
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


def build(ctx: AppContext, concurrency: int) -> None:
    """Publish ``/chat`` and ``/arena`` (model work: heavy)."""
    chat, arena = ctx.services.chat, ctx.services.arena

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

    gr.api(
        ctx.heavy(guarded_stream(chat_endpoint)),
        api_name="chat",
        concurrency_id="vlm",
        concurrency_limit=concurrency,
    )
    gr.api(ctx.heavy(guarded(arena_endpoint)), api_name="arena", concurrency_id="vlm")
