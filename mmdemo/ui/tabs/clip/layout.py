"""CLIP search tab: build and grow named image indexes, search by text and/or image, explain a
match, classify zero-shot. Layout and wiring only: the handlers are in ``actions.py``, the
named endpoints in ``api.py``, the work in ``ClipSearch`` (mmdemo.flows.clip)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from mmdemo.images import IMAGE_EXTENSIONS
from mmdemo.ui.context import AppContext
from mmdemo.ui.tabs.clip import api
from mmdemo.ui.tabs.clip.actions import ClipActions, ClipSession
from mmdemo.ui.tabs.clip.view import SKIPPED_HEADERS

IMAGE_TYPES = list(IMAGE_EXTENSIONS)


def build(ctx: AppContext) -> dict[str, Any]:
    hosted = ctx.settings.hosted  # visitors share the indexes: no removing or deleting
    act = ClipActions(ctx.services.clip)
    heavy = dict(concurrency_id="clip-embed", concurrency_limit=1)
    query = dict(concurrency_id="clip-query", concurrency_limit=ctx.settings.concurrency)
    private = dict(api_visibility="private")

    gr.Markdown(
        "Index a folder or uploaded images, then find them by words or by example; or label an "
        "image zero-shot. Indexes persist under `MMDEMO_HOME/indexes/` and grow: adding images "
        "embeds only the new ones."
    )
    state = gr.State(ClipSession)
    with gr.Row():
        index = gr.Dropdown(
            label="Index (pick one, or type a new name)",
            allow_custom_value=True,
            scale=3,
            elem_id="clip-index",
        )
        refresh_btn = gr.Button("Refresh", scale=0, elem_id="clip-refresh")
    info = gr.Markdown(elem_id="clip-index-info")

    with gr.Accordion("Add images", open=True):
        with gr.Row():
            folder = gr.Textbox(
                label="Folder on the server (scanned recursively)",
                placeholder="/path/to/photos",
                scale=3,
                elem_id="clip-folder",
                visible=not ctx.settings.hosted,  # hosted: uploads and the samples only
            )
            samples_btn = gr.Button("Use the sample photos", scale=0, elem_id="clip-samples")
        upload = gr.File(
            label="…or upload images", file_count="multiple", type="filepath", elem_id="clip-upload"
        )
        with gr.Row():
            add_btn = gr.Button("Add to index", variant="primary", elem_id="clip-add")
            missing_btn = gr.Button(
                "Remove entries whose files are gone", elem_id="clip-prune", visible=not hosted
            )
            confirm = gr.Checkbox(
                label="I want to delete this index",
                elem_id="clip-delete-confirm",
                visible=not hosted,
            )
            delete_btn = gr.Button(
                "Delete index", variant="stop", elem_id="clip-delete", visible=not hosted
            )
        add_report = gr.Markdown(elem_id="clip-add-report")
        skipped = gr.Dataframe(
            headers=SKIPPED_HEADERS,
            visible=False,
            interactive=False,
            wrap=True,
            label="Skipped files",
            elem_id="clip-skipped",
        )

    gr.Markdown("### Search")
    with gr.Row():
        with gr.Column(scale=2):
            text = gr.Textbox(label="Text", placeholder="a cat on a sofa", elem_id="clip-query")
            weight = gr.Slider(
                0,
                1,
                value=0.5,
                step=0.05,
                elem_id="clip-weight",
                label="Text weight (with both text and image)",
            )
            top_k = gr.Slider(1, 50, value=12, step=1, label="Results", elem_id="clip-k")
            search_btn = gr.Button("Search", variant="primary", elem_id="clip-search")
        with gr.Column(scale=1):
            # a file, not gr.Image: our decoder checks the upload and says what is wrong
            image = gr.File(
                label="Image", type="filepath", file_types=IMAGE_TYPES, elem_id="clip-query-image"
            )
            image_view = gr.Image(
                label="Searching with",
                interactive=False,
                height=180,
                elem_id="clip-query-preview",
            )
    status = gr.Markdown(elem_id="clip-search-info")
    gallery = gr.Gallery(
        label="Results",
        columns=6,
        height=430,
        object_fit="cover",
        allow_preview=False,
        elem_id="clip-results",
    )
    with gr.Row():
        pick = gr.Dropdown(label="Result", choices=[], scale=2, elem_id="clip-pick")
        explain_btn = gr.Button("Explain the match with the text", elem_id="clip-explain-btn")
        remove_btn = gr.Button("Remove from index", elem_id="clip-remove", visible=not hosted)
    with gr.Row():
        heat = gr.Image(
            label="Where the text matches (occlusion map)",
            type="filepath",
            interactive=False,
            height=320,
            elem_id="clip-explain",
        )
        heat_info = gr.Markdown(elem_id="clip-explain-info")

    gr.Markdown("### Zero-shot classification")
    with gr.Row():
        with gr.Column():
            zs_image = gr.File(
                label="Image", type="filepath", file_types=IMAGE_TYPES, elem_id="clip-zs-image"
            )
            zs_view = gr.Image(interactive=False, height=200, show_label=False)
        with gr.Column():
            labels = gr.Textbox(
                label="Labels (comma-separated)",
                value="cat, dog, astronaut, rocket, coffee",
                elem_id="clip-labels",
            )
            templates = gr.Textbox(
                label="Prompt templates (one per line, {} is the label)",
                value="\n".join(ctx.services.clip.default_templates),
                lines=4,
                elem_id="clip-templates",
            )
            classify_btn = gr.Button("Classify", variant="primary", elem_id="clip-classify")
    zs_top = gr.Markdown(elem_id="clip-zs-top")
    zs_plot = gr.BarPlot(
        x="label",
        y="probability",
        y_lim=[0, 1],
        sort="-y",
        label="Probabilities",
        elem_id="clip-zs-plot",
    )

    # -- wiring: the UI's events are private; the API is api.register's named endpoints -----
    refresh_btn.click(act.refresh, index, [index, info], queue=False, **private)
    index.change(act.refresh, index, [index, info], queue=False, **private)
    samples_btn.click(act.samples_folder, None, folder, queue=False, **private)
    add_btn.click(
        ctx.heavy(act.add),
        [index, folder, upload],
        [index, info, add_report, skipped, upload],
        **heavy,
        **private,
    )
    missing_btn.click(ctx.heavy(act.prune), index, info, **heavy, **private)
    delete_btn.click(
        ctx.heavy(act.delete), [index, confirm], [index, info, confirm], **heavy, **private
    )

    searched = [gallery, status, pick, state]
    for trigger in (search_btn.click, text.submit):
        trigger(
            ctx.heavy(act.search),
            [state, index, text, image, weight, top_k],
            searched,
            **query,
            **private,
        )
    image.upload(act.preview, image, image_view, queue=False, **private)
    image.clear(act.preview, None, image_view, queue=False, **private)
    gallery.select(
        ctx.heavy(act.search_like),
        [state, index, top_k],
        [*searched, text, image, image_view],
        **query,
        **private,
    )
    explain_btn.click(
        ctx.heavy(act.explain), [state, pick, text], [heat, heat_info], **query, **private
    )
    remove_btn.click(
        ctx.heavy(act.remove), [state, pick], [gallery, pick, state, info], **heavy, **private
    )
    zs_image.upload(act.preview, zs_image, zs_view, queue=False, **private)
    zs_image.clear(act.preview, None, zs_view, queue=False, **private)
    classify_btn.click(
        ctx.heavy(act.classify),
        [zs_image, labels, templates],
        [zs_plot, zs_top],
        **query,
        **private,
    )
    api.register(ctx, heavy, query)
    return {
        "on_load": (act.on_load, [index, info]),
        "index": index,
        "folder": folder,
        "upload": upload,
        "add": add_btn,
        "query": text,
        "query_image": image,
        "search": search_btn,
        "gallery": gallery,
        "classify": classify_btn,
        "plot": zs_plot,
    }
