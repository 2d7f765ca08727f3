"""Arena tab: one image and prompt, answered side by side by base and up to 3 adapters."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import gradio as gr

from mmdemo.flows.arena import MAX_COLUMNS, ArenaResult
from mmdemo.flows.arena_remote import MAX_REMOTE
from mmdemo.flows.chat import BASE_NAME
from mmdemo.flows.generation import GenerationSettings
from mmdemo.flows.system import human_bytes
from mmdemo.ui.common import guarded_stream, seconds
from mmdemo.ui.context import AppContext
from mmdemo.ui.tabs import chat_api
from mmdemo.ui.tabs.chat import ASSET_IMAGES
from mmdemo.zerogpu import gpu


def column_md(result: ArenaResult, i: int, remote: bool = False) -> str:
    """Column ``i`` of the local (or the remote) columns, as Markdown ("" when unused)."""
    columns = [c for c in result.columns if c.remote == remote]
    if i >= len(columns):
        return ""
    c = columns[i]
    if c.error:
        return f"#### {c.adapter}\n<sub>{c.label}</sub>\n\n**Not answered:** {c.error}"
    speed = f" · {c.tokens} tokens · {c.tokens_per_s:.1f} tok/s" if result.done else ""
    return f"#### {c.adapter}\n<sub>{c.label}{speed}</sub>\n\n{c.text or '…'}"


def remote_updates(result: ArenaResult) -> list[Any]:
    """The remote columns: shown only when picked."""
    return [
        gr.update(value=column_md(result, i, remote=True), visible=bool(md))
        for i, md in enumerate(column_md(result, i, remote=True) for i in range(MAX_REMOTE))
    ]


def summary_md(result: ArenaResult) -> str:
    text = (
        f"{len(result.columns)} answers as {result.mode} · total {seconds(result.total_s)} · "
        f"first token {seconds(result.ttft_s)} · queue {seconds(result.queue_wait_s)}"
    )
    if result.done:
        text += f" · peak memory {human_bytes(result.peak_memory_bytes)}"
    return text


def build(ctx: AppContext) -> dict[str, Any]:
    arena = ctx.services.arena
    chat = ctx.services.chat
    state = gr.State(dict)  # per session: {"stop": Event}
    with gr.Row():
        with gr.Column(scale=1):
            image = gr.Image(type="filepath", label="Image", elem_id="arena-image", height=260)
            prompt = gr.Textbox(
                label="Prompt", value="What color is the shape?", elem_id="arena-prompt"
            )
            local = chat.adapter_choices()
            picks = gr.Dropdown(
                arena.choices(),
                value=local[:MAX_COLUMNS],
                multiselect=True,
                max_choices=MAX_COLUMNS + MAX_REMOTE,
                label=f"Compare (base and up to {MAX_COLUMNS - 1} adapters; "
                f"up to {MAX_REMOTE} remote models: {', '.join(arena.remotes) or 'none'})",
                elem_id="arena-picks",
            )
            max_new = gr.Slider(1, 512, value=64, step=1, label="Max new tokens")
            with gr.Row():
                run_btn = gr.Button("Compare", variant="primary", elem_id="arena-run")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="arena-stop")
            example = ASSET_IMAGES / "red-circle.png"
            if Path(example).is_file():
                gr.Examples(
                    [
                        [str(example), "What color is the shape?"],
                        [str(ASSET_IMAGES / "cat.jpg"), "Describe the image."],
                    ],
                    inputs=[image, prompt],
                )
        with gr.Column(scale=3):
            summary = gr.Markdown(elem_id="arena-summary", elem_classes=["metrics-line"])
            with gr.Row(equal_height=True):
                cols = [
                    gr.Markdown(elem_id=f"arena-col-{i}", container=True, min_height=160)
                    for i in range(MAX_COLUMNS)
                ]
            with gr.Row(equal_height=True):
                remote_cols = [
                    gr.Markdown(
                        elem_id=f"arena-remote-{i}", container=True, min_height=160, visible=False
                    )
                    for i in range(MAX_REMOTE)
                ]

    @gpu("arena")
    @guarded_stream
    def run(path: str | None, text: str, names: list[str], max_new_tokens: float, st: dict):
        if path is None:
            raise gr.Error("Add an image first (or pick an example).")
        stop = st["stop"] = threading.Event()
        gen = GenerationSettings(max_new_tokens=int(max_new_tokens), greedy=True)
        for result in arena.stream(path, text, names or [BASE_NAME], gen, stop):
            yield (
                summary_md(result),
                *[column_md(result, i) for i in range(MAX_COLUMNS)],
                *remote_updates(result),
                st,
            )

    def stop(st: dict) -> None:
        if "stop" in st:
            st["stop"].set()

    run_btn.click(
        ctx.heavy(run),
        [image, prompt, picks, max_new, state],
        [summary, *cols, *remote_cols, state],
        concurrency_id="vlm",
        api_visibility="private",
    )
    stop_btn.click(stop, state, None, queue=False, api_visibility="private")
    picks.focus(
        lambda: gr.update(choices=arena.choices()),
        None,
        picks,
        queue=False,
        api_visibility="private",
    )
    chat_api.build(ctx, max(ctx.settings.concurrency, chat.batch_max_rows))
    return {
        "image": image,
        "prompt": prompt,
        "picks": picks,
        "run": run_btn,
        "summary": summary,
        "columns": cols,
        "remote_columns": remote_cols,
        "on_load": (lambda: gr.update(choices=arena.choices()), [picks]),
    }
