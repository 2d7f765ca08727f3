"""Named API endpoints for clients (gradio_client): ``chat`` and ``arena``.

They sit on hidden components so uploaded files go through Gradio's normal file handling.
"""

from __future__ import annotations

import threading
from typing import Any

import gradio as gr

from mmdemo.flows.arena import ArenaService
from mmdemo.flows.chat import BASE_NAME, ChatService, ChatSession
from mmdemo.flows.generation import GenerationSettings
from mmdemo.ui.common import guarded_stream
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


def build(chat: ChatService, arena: ArenaService, concurrency: int) -> None:
    with gr.Column(visible=False):
        message = gr.Textbox(label="message")
        images = gr.File(file_count="multiple", type="filepath", label="images")
        adapter = gr.Textbox(BASE_NAME, label="adapter")
        max_new = gr.Number(128, precision=0, label="max_new_tokens")
        greedy = gr.Checkbox(True, label="greedy")
        answer = gr.Textbox(label="answer")
        image = gr.Image(type="filepath", label="image")
        prompt = gr.Textbox(label="prompt")
        adapters = gr.Dropdown([], multiselect=True, allow_custom_value=True, label="adapters")
        result = gr.JSON(label="result")
        chat_btn = gr.Button("chat")
        arena_btn = gr.Button("arena")

    @gpu("chat")
    @guarded_stream
    def chat_api(
        text: str, files: list[str] | None, name: str, max_new_tokens: float, is_greedy: bool
    ):
        """One question (with optional images) to the VLM with an adapter; streams the answer."""
        gen = GenerationSettings(max_new_tokens=int(max_new_tokens or 128), greedy=bool(is_greedy))
        for update in chat.stream(
            ChatSession(), text, files or [], name or BASE_NAME, gen, threading.Event()
        ):
            yield update.text

    @gpu("arena")
    @guarded_stream
    def arena_api(path: str | None, text: str, names: list[str] | None):
        """The same image and prompt answered by base and up to 3 adapters."""
        for res in arena.stream(
            path, text, names or [BASE_NAME], GenerationSettings(), threading.Event()
        ):
            if res.done:
                yield arena_json(res)

    chat_btn.click(
        chat_api,
        [message, images, adapter, max_new, greedy],
        answer,
        api_name="chat",
        concurrency_id="vlm",
        concurrency_limit=concurrency,
    )
    arena_btn.click(
        arena_api, [image, prompt, adapters], result, api_name="arena", concurrency_id="vlm"
    )
