"""Arena tab: one image and prompt, answered side by side by base and up to 3 adapters, or
by up to 3 different base models ("Compare base models"), and remote models, openly or blind
(names hidden until the vote), and the leaderboard of the blind votes, which export as
training data for the Fine-tune tab. Layout and wiring only: the handlers are in
``actions.py``, ``/arena``, ``/arena_models``, ``/arena_blind``, ``/arena_vote``,
``/leaderboard`` and ``/votes_export`` in ``api.py``."""

from __future__ import annotations

from typing import Any

import gradio as gr

from mmdemo.flows.arena import MAX_COLUMNS
from mmdemo.flows.arena_models import MAX_BASES
from mmdemo.flows.arena_remote import MAX_REMOTE
from mmdemo.ui.context import AppContext
from mmdemo.ui.tabs.arena import api
from mmdemo.ui.tabs.arena.actions import VOTES, ArenaActions, BlindActions
from mmdemo.ui.tabs.arena.view import LEADERBOARD_HEADERS, vote_label
from mmdemo.ui.tabs.chat.view import ASSET_IMAGES
from mmdemo.zerogpu import gpu


def build(ctx: AppContext) -> dict[str, Any]:
    arena = ctx.services.arena
    act = ArenaActions(arena)
    blind = BlindActions(ctx.services.blind, ctx.services.votes)
    state = gr.State(dict)  # per session: {"stop": Event, "blind": the comparison to vote on}
    with gr.Row():
        with gr.Column(scale=1):
            image = gr.Image(type="filepath", label="Image", elem_id="arena-image", height=260)
            prompt = gr.Textbox(
                label="Prompt", value="What color is the shape?", elem_id="arena-prompt"
            )
            local = ctx.services.chat.adapter_choices()
            picks = gr.Dropdown(
                arena.choices(),
                value=local[:MAX_COLUMNS],
                multiselect=True,
                max_choices=MAX_COLUMNS + MAX_REMOTE,
                label=f"Compare (base and up to {MAX_COLUMNS - 1} adapters; "
                f"up to {MAX_REMOTE} remote models: {', '.join(arena.remotes) or 'none'})",
                elem_id="arena-picks",
            )
            with gr.Accordion("Compare base models", open=False):
                base_picks = gr.Dropdown(
                    arena.models.choices(),
                    value=arena.models.default_picks(),
                    multiselect=True,
                    max_choices=MAX_BASES + MAX_REMOTE,
                    label=f"Base models (up to {MAX_BASES}, the chat's first; extra ones "
                    f"load within the memory budget) and up to {MAX_REMOTE} remote models",
                    elem_id="arena-base-picks",
                )
                models_btn = gr.Button("Compare base models", elem_id="arena-models-run")
            max_new = gr.Slider(1, 512, value=64, step=1, label="Max new tokens")
            with gr.Row():
                run_btn = gr.Button("Compare", variant="primary", elem_id="arena-run")
                blind_btn = gr.Button("Compare blind", elem_id="arena-blind-run")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="arena-stop")
            example = ASSET_IMAGES / "red-circle.png"
            if example.is_file():
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
            with gr.Row():
                votes = [
                    gr.Button(vote_label(v), visible=False, elem_id=f"arena-vote-{v.lower()}")
                    for v in VOTES
                ]
            with gr.Accordion("Leaderboard (blind votes)", open=True):
                board_md = gr.Markdown(elem_id="arena-leaderboard-info")
                board = gr.Dataframe(
                    headers=LEADERBOARD_HEADERS,
                    interactive=False,
                    elem_id="arena-leaderboard",
                )
            with gr.Accordion(
                "Votes as training data", open=False, visible=not ctx.settings.hosted
            ):
                export_btn = gr.Button("Export votes", elem_id="arena-export")
                export_md = gr.Markdown(elem_id="arena-export-info")
                export_file = gr.File(
                    label="Exported votes (zip)", interactive=False, elem_id="arena-export-file"
                )

    run_btn.click(
        ctx.heavy(gpu("arena")(act.run)),
        [image, prompt, picks, max_new, state],
        [summary, *cols, *remote_cols, *votes, state],
        concurrency_id="vlm",
        api_visibility="private",
    )
    models_btn.click(
        ctx.heavy(gpu("arena")(act.run_models)),
        [image, prompt, base_picks, max_new, state],
        [summary, *cols, *remote_cols, *votes, state],
        concurrency_id="vlm",
        api_visibility="private",
    )
    blind_btn.click(
        ctx.heavy(blind.run_blind),
        [image, prompt, picks, max_new, state],
        [summary, *cols, *remote_cols, *votes, state],
        concurrency_id="vlm",
        api_visibility="private",
    )
    for value, button in zip(VOTES, votes, strict=True):
        button.click(
            ctx.heavy(blind.voter(value)),  # heavy: each vote spends from the request budget
            state,
            [summary, *cols, *votes, board, board_md, state],
            api_visibility="private",
        )
    export_btn.click(
        ctx.light(blind.exporter(ctx), "reads the vote file and copies the voted images"),
        None,
        [export_md, export_file],
        api_visibility="private",
    )
    stop_btn.click(act.stop, state, None, queue=False, api_visibility="private")
    picks.focus(act.choices, None, picks, queue=False, api_visibility="private")
    base_picks.focus(act.model_choices, None, base_picks, queue=False, api_visibility="private")
    api.register(ctx)
    return {
        "image": image,
        "prompt": prompt,
        "picks": picks,
        "run": run_btn,
        "summary": summary,
        "columns": cols,
        "remote_columns": remote_cols,
        "base_picks": base_picks,
        "models_run": models_btn,
        "blind": blind_btn,
        "votes": votes,
        "leaderboard": board,
        "export": export_btn,
        "on_load": (blind.on_load, [picks, board, board_md]),
    }
