"""Visual chat tab: streamed multi-turn answers about images, with a LoRA adapter picker,
"Find it" (boxes for "where is ...?") and the adapter manager (list, upload, delete). Layout and wiring only: the handlers are in
``actions.py``, the named endpoints in ``api.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from mmdemo.flows.adapter_ops import COMBINATIONS
from mmdemo.flows.chat import BASE_NAME
from mmdemo.ui.context import AppContext
from mmdemo.ui.tabs.chat import api
from mmdemo.ui.tabs.chat.actions import AdapterOpsActions, ChatActions, ChatState, GroundingActions
from mmdemo.ui.tabs.chat.view import (
    ADAPTER_HEADERS,
    ASSET_IMAGES,
    BOX_HEADERS,
    OFF,
    adapter_rows,
    index_choices,
)
from mmdemo.zerogpu import gpu

EXAMPLES = [
    {"text": "What is in this image?", "files": [str(ASSET_IMAGES / "cat.jpg")]},
    {"text": "Describe the picture in detail.", "files": [str(ASSET_IMAGES / "astronaut.jpg")]},
    {"text": "What color is the shape?", "files": [str(ASSET_IMAGES / "red-circle.png")]},
]


def build(ctx: AppContext) -> dict[str, Any]:
    chat = ctx.services.chat
    act = ChatActions(chat, ctx.session_folders())
    # answers that run together share one batch, so the VLM takes more requests at once
    # than other heavy events (non-LoRA adapters still wait for the model, one at a time)
    vlm_limit = max(ctx.settings.concurrency, chat.engine.concurrent_answers)
    state = gr.State(lambda: ChatState())
    with gr.Row():
        with gr.Column(scale=3):
            bot = gr.Chatbot(label="Conversation", height=460, elem_id="chat-bot", buttons=["copy"])
            box = gr.MultimodalTextbox(
                placeholder="Ask about one or more images…",
                file_types=["image"],
                file_count="multiple",
                sources=["upload"],
                elem_id="chat-input",
                show_label=False,
            )
            with gr.Row():
                stop_btn = gr.Button("Stop", variant="stop", elem_id="chat-stop", size="sm")
                regen_btn = gr.Button("Regenerate", elem_id="chat-regenerate", size="sm")
                clear_btn = gr.Button("Clear", elem_id="chat-clear", size="sm")
            metrics = gr.Markdown(elem_id="chat-metrics", elem_classes=["metrics-line"])
            gr.Examples(
                [[e] for e in EXAMPLES if all(Path(f).is_file() for f in e["files"])],
                inputs=[box],
                label="Examples",
            )
        with gr.Column(scale=1, min_width=280):
            adapter = gr.Dropdown(
                chat.adapter_choices(),
                value=BASE_NAME,
                label="Adapter",
                elem_id="chat-adapter",
                interactive=True,
            )
            rank = gr.Dropdown(
                [],
                value=None,
                label="DyLoRA rank",
                info="One adapter, every rank up to its own: try a lower one",
                visible=False,
                elem_id="chat-rank",
            )
            adapter_info = gr.Markdown(elem_id="chat-adapter-info")
            with gr.Accordion("Generation", open=False):
                max_new = gr.Slider(
                    1, 1024, value=128, step=1, label="Max new tokens", elem_id="chat-max-new"
                )
                greedy = gr.Checkbox(True, label="Greedy (deterministic)", elem_id="chat-greedy")
                temperature = gr.Slider(0.05, 2.0, value=0.7, step=0.05, label="Temperature")
                top_p = gr.Slider(0.05, 1.0, value=0.9, step=0.05, label="Top-p")
            with gr.Accordion("Similar cases (CLIP index)", open=False):
                similar_index = gr.Dropdown(
                    index_choices(chat),
                    value=OFF,
                    label="Index",
                    elem_id="chat-similar-index",
                    info="Add indexed images like yours to the context",
                )
                similar_k = gr.Slider(1, 4, value=2, step=1, label="How many")
                similar_gallery = gr.Gallery(
                    label="Used for the last answer",
                    columns=4,
                    height=140,
                    elem_id="chat-similar-gallery",
                )
            panel = adapters_panel(ctx, act, adapter)
            api.register(ctx, vlm_limit)
    found = grounding_panel(ctx, adapter, rank)  # below the chat, with its adapter

    gen_inputs = [adapter, rank, max_new, temperature, top_p, greedy]
    sub = box.submit(
        ctx.heavy(gpu("chat")(act.submit)),
        [box, state, *gen_inputs, similar_index, similar_k],
        [bot, metrics, box, state, similar_gallery],
        concurrency_id="vlm",
        concurrency_limit=vlm_limit,
        api_visibility="private",
    )
    regen_btn.click(
        ctx.heavy(gpu("chat")(act.regenerate)),
        [state, *gen_inputs],
        [bot, metrics, state],
        concurrency_id="vlm",
        api_visibility="private",
    )
    stop_btn.click(act.stop, state, None, queue=False, api_visibility="private")
    clear_btn.click(act.clear, state, [bot, metrics, state], queue=False, api_visibility="private")
    # showing an adapter warms it (loads its weights onto the shared VLM, and the VLM itself
    # on first use): model work, so it queues with the other VLM events and is heavy
    adapter.change(
        ctx.heavy(act.show_adapter),
        adapter,
        adapter_info,
        api_visibility="private",
        concurrency_id="vlm",
    )
    # a DyLoRA adapter brings its rank menu (a reading of its metadata: no model work)
    adapter.change(act.rank_menu, adapter, rank, queue=False, api_visibility="private")
    rank.input(
        ctx.heavy(act.show_adapter),
        [adapter, rank],
        adapter_info,
        api_visibility="private",
        concurrency_id="vlm",
    )
    # adapters trained or uploaded since the page opened appear when the menu is opened
    adapter.focus(act.adapter_menu, None, adapter, queue=False, api_visibility="private")
    return {
        "bot": bot,
        "box": box,
        "adapter": adapter,
        "rank": rank,
        "metrics": metrics,
        "state": state,
        "submit_event": sub,
        "similar_index": similar_index,
        **panel,
        **found,
        # filled when a page opens: adapters added since (uploads, training) show up
        "on_load": (act.on_load, [panel["adapters_table"], adapter, similar_index]),
    }


def grounding_panel(ctx: AppContext, adapter: gr.Dropdown, rank: gr.Dropdown) -> dict[str, Any]:
    """ "Find it": one image and a question, answered with boxes drawn on the image (the
    adapter picked for the chat answers)."""
    act = GroundingActions(ctx.services.grounding)
    with gr.Accordion("Find it: boxes for 'where is ...?'", open=False, elem_id="ground-panel"):
        with gr.Row():
            image = gr.Image(type="filepath", label="Image", elem_id="ground-image", height=260)
            drawn = gr.Image(label="Found", interactive=False, elem_id="ground-drawn", height=260)
        with gr.Row():
            prompt = gr.Textbox(
                value="Where is the red circle?",
                label="What to find",
                elem_id="ground-prompt",
                scale=4,
            )
            find_btn = gr.Button("Find it", variant="primary", elem_id="ground-btn", scale=1)
        table = gr.Dataframe(
            headers=BOX_HEADERS, interactive=False, elem_id="ground-boxes", label="Boxes (pixels)"
        )
        how = gr.Markdown(elem_id="ground-how")
    find_btn.click(
        ctx.heavy(gpu("chat")(act.find)),
        [image, prompt, adapter, rank],
        [drawn, table, how],
        concurrency_id="vlm",
        api_visibility="private",
    )
    return {
        "ground_image": image,
        "ground_prompt": prompt,
        "ground_btn": find_btn,
        "ground_drawn": drawn,
        "ground_boxes": table,
    }


def adapters_panel(ctx: AppContext, act: ChatActions, adapter: gr.Dropdown) -> dict[str, Any]:
    """The adapter manager inside the chat tab: list, upload (validated), delete."""
    chat = ctx.services.chat
    with gr.Accordion("Manage adapters", open=False, elem_id="chat-adapters-panel"):
        table = gr.Dataframe(
            adapter_rows(chat),
            headers=ADAPTER_HEADERS,
            interactive=False,
            elem_id="chat-adapters",
            wrap=True,
        )
        upload = gr.File(
            label="Upload a PEFT adapter (.zip, or adapter_config.json + "
            "adapter_model.safetensors)",
            file_count="multiple",
            file_types=[".zip", ".json", ".safetensors"],
            elem_id="chat-upload",
        )
        name = gr.Textbox(
            label="Name (optional)",
            elem_id="chat-upload-name",
            placeholder="defaults to the zip's name",
        )
        with gr.Row():
            upload_btn = gr.Button("Add adapter", variant="primary", elem_id="chat-upload-btn")
            delete_btn = gr.Button(
                "Delete selected adapter",
                variant="stop",
                elem_id="chat-delete-btn",
                visible=not chat.settings.hosted,  # visitors share the adapters
            )
        refresh_btn = gr.Button("Refresh list", size="sm", elem_id="chat-adapters-refresh")
        listing = gr.JSON(visible=False)
        ops = adapter_ops_panel(ctx, adapter, table, name)

    upload_btn.click(
        ctx.heavy(act.add),
        [upload, name],
        [table, adapter, upload, name],
        concurrency_id="vlm",
        api_visibility="private",
    )
    delete_btn.click(
        ctx.heavy(act.delete),
        adapter,
        [table, adapter],
        concurrency_id="vlm",
        api_visibility="private",
    )
    refresh_btn.click(
        ctx.light(act.refresh, "lists the adapter folder"),
        adapter,
        [table, adapter],
        api_visibility="private",
    )
    refresh_btn.click(
        ctx.light(chat.adapters_summary, "reads the adapters' metadata files"),
        None,
        listing,
        api_name="adapters",
    )
    return {
        "adapters_table": table,
        "upload": upload,
        "upload_name": name,
        "upload_btn": upload_btn,
        "delete_btn": delete_btn,
        **ops,
    }


def adapter_ops_panel(
    ctx: AppContext, adapter: gr.Dropdown, table: gr.Dataframe, name: gr.Textbox
) -> dict[str, Any]:
    """Inside the adapter manager: fetch an adapter from the Hub, merge adapters into a new
    one, export base + the selected adapter as one model. Hosted mode hides what it refuses."""
    chat, settings = ctx.services.chat, ctx.settings
    act = AdapterOpsActions(chat, ctx.services.adapter_ops, ctx.session_folders())
    with gr.Row(visible=not settings.hosted):  # no Hub downloads on a hosted server
        hub_id = gr.Textbox(
            label="Or from the Hugging Face Hub",
            placeholder="org/repo@revision (adapter_config.json + safetensors only)",
            elem_id="chat-hub-id",
            scale=3,
        )
        hub_btn = gr.Button("Fetch", elem_id="chat-hub-btn", scale=1)
    # a merge adds a shared adapter: hosted servers allow it only where training is allowed
    with gr.Accordion(
        "Merge adapters (PEFT add_weighted_adapter)",
        open=False,
        visible=not settings.hosted or settings.allow_training,
        elem_id="chat-merge-panel",
    ):
        parents = gr.Dropdown(
            [n for n in chat.adapter_choices() if n != BASE_NAME],
            multiselect=True,
            label="Adapters (LoRA, one rank)",
            elem_id="chat-merge-parents",
        )
        weights = gr.Textbox(
            label="Weights, one per adapter", placeholder="1, 1", elem_id="chat-merge-weights"
        )
        with gr.Row():
            kind = gr.Dropdown(
                list(COMBINATIONS), value="linear", label="Combination", elem_id="chat-merge-type"
            )
            density = gr.Slider(0.05, 1.0, value=0.5, step=0.05, label="Density (ties, dare_ties)")
        merged_name = gr.Textbox(label="New adapter's name", elem_id="chat-merge-name")
        merge_btn = gr.Button("Merge", variant="primary", elem_id="chat-merge-btn")
    with gr.Accordion(
        "Export base + selected adapter as one model",
        open=False,
        visible=not settings.hosted,
        elem_id="chat-export-panel",
    ):
        export_btn = gr.Button("Export merged model (.zip)", elem_id="chat-export-btn")
        export_file = gr.File(label="Merged transformers folder", elem_id="chat-export-file")

    hub_btn.click(
        ctx.heavy(act.from_hub),
        [hub_id, name],
        [table, adapter, hub_id],
        concurrency_id="vlm",
        api_visibility="private",
    )
    parents.focus(act.parents_menu, None, parents, queue=False, api_visibility="private")
    merge_btn.click(
        ctx.heavy(act.merge),
        [parents, weights, kind, density, merged_name],
        [table, adapter, merged_name],
        concurrency_id="vlm",
        api_visibility="private",
    )
    export_btn.click(
        ctx.heavy(act.export),
        adapter,
        export_file,
        concurrency_id="vlm",
        api_visibility="private",
    )
    return {
        "hub_btn": hub_btn,
        "merge_parents": parents,
        "merge_btn": merge_btn,
        "export_btn": export_btn,
    }
