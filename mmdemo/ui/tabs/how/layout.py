"""How it works tab: the loaded VLM's anatomy (parts, image tokens, what a fine-tuning method
trains), CLIP's contrastive loss, few-shot on frozen CLIP embeddings, audio units. Layout and
wiring only: the handlers are in ``actions.py``, the named endpoints in ``api.py``, the work in
``HowItWorks`` (mmdemo.flows.how.service)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from mmdemo.images import IMAGE_EXTENSIONS
from mmdemo.ui.context import AppContext
from mmdemo.ui.tabs.how import api
from mmdemo.ui.tabs.how.actions import HowActions
from mmdemo.ui.tabs.how.view import PART_HEADERS, PLAN_HEADERS, SHOT_HEADERS

IMAGE_TYPES = list(IMAGE_EXTENSIONS)


def build(ctx: AppContext) -> dict[str, Any]:
    how = ctx.services.how
    act = HowActions(how)
    query = dict(concurrency_id="how", concurrency_limit=ctx.settings.concurrency)
    audio = dict(concurrency_id="how-audio", concurrency_limit=1)
    private = dict(api_visibility="private")
    methods = [(f"{m['name']} · {m['summary']}", m["name"]) for m in how.methods()]

    gr.Markdown(
        "What happens inside: the parts of the VLM that answers in the chat tab, how an image "
        "becomes tokens, what each fine-tuning method trains, how CLIP learns from pairs, "
        "and what frozen embeddings can do with a few examples. Every view is also an API "
        "endpoint that returns the numbers."
    )
    with gr.Tabs():
        with gr.Tab("Anatomy", id="how-anatomy"):
            parts_btn = gr.Button("Show the VLM's parts", variant="primary", elem_id="how-parts")
            parts_md = gr.Markdown(elem_id="how-parts-info")
            parts = gr.Dataframe(
                headers=PART_HEADERS, interactive=False, label="Parts", elem_id="how-parts-table"
            )
            gr.Markdown("#### An image on its way in")
            with gr.Row():
                with gr.Column(scale=1):
                    image = gr.File(
                        label="Image", type="filepath", file_types=IMAGE_TYPES, elem_id="how-image"
                    )
                    tokens_btn = gr.Button("Cut it into tokens", elem_id="how-tokens")
                grid = gr.Image(
                    label="As the processor resizes it: tiles, patches, tokens",
                    type="filepath",
                    interactive=False,
                    height=360,
                    elem_id="how-grid",
                    scale=2,
                )
            tokens_md = gr.Markdown(elem_id="how-tokens-info")
            gr.Markdown("#### What a fine-tuning method trains")
            with gr.Row():
                method = gr.Dropdown(
                    methods, value="lora", label="Method", scale=3, elem_id="how-method"
                )
                attach = gr.Dropdown(
                    list(how.attach_choices),
                    value="language",
                    label="Attach to",
                    scale=2,
                    elem_id="how-attach",
                )
                rank = gr.Slider(1, 64, value=8, step=1, label="Rank / width", elem_id="how-rank")
            plan_btn = gr.Button("Show the trainable share", elem_id="how-plan")
            plan_md = gr.Markdown(elem_id="how-plan-info")
            plan = gr.Dataframe(
                headers=PLAN_HEADERS, interactive=False, label="Modules", elem_id="how-plan-table"
            )

        with gr.Tab("Contrastive learning", id="how-contrastive"):
            gr.Markdown(
                "N images and their N captions: CLIP's cosine similarities times its learned "
                "temperature give an N x N matrix; the softmax of each row should pick the "
                "image's own caption (the diagonal), each column the caption's own image. The "
                "loss CLIP trains on is the mean of both cross-entropies."
            )
            shuffles = gr.State(0)
            with gr.Row():
                pairs = gr.File(
                    label="Images",
                    file_count="multiple",
                    type="filepath",
                    file_types=IMAGE_TYPES,
                    elem_id="how-pairs",
                )
                captions = gr.Textbox(
                    label="Captions, one per line, in the images' order",
                    lines=6,
                    elem_id="how-captions",
                )
            with gr.Row():
                pair_samples = gr.Checkbox(
                    label="Use the sample photos and their captions", elem_id="how-pair-samples"
                )
                contrast_btn = gr.Button("Compute", variant="primary", elem_id="how-contrast")
                shuffle_btn = gr.Button("Shuffle the captions", elem_id="how-shuffle")
            with gr.Row():
                heat = gr.Image(
                    label="P(caption | image)",
                    type="filepath",
                    interactive=False,
                    height=420,
                    elem_id="how-heatmap",
                )
                contrast_md = gr.Markdown(elem_id="how-contrast-info")
            logits = gr.Dataframe(
                interactive=False, label="Scaled similarities (logits)", elem_id="how-logits"
            )

        with gr.Tab("Few-shot", id="how-fewshot"):
            gr.Markdown(
                "A frozen CLIP image encoder and a few labelled examples per class: each class "
                "gets the mean of its examples' embeddings, and an image goes to the nearest "
                'mean. No training. Beside it: CLIP zero-shot with "a photo of a {label}".'
            )
            with gr.Row():
                shots_files = gr.File(
                    label="Labelled images",
                    file_count="multiple",
                    type="filepath",
                    file_types=IMAGE_TYPES,
                    elem_id="how-shots-files",
                )
                with gr.Column():
                    labels = gr.Textbox(
                        label="Labels, one per image in upload order (empty: from the file "
                        "names, e.g. cat-1.jpg)",
                        elem_id="how-labels",
                    )
                    folder = gr.Textbox(
                        label="…or a folder on the server, one subfolder per class",
                        placeholder="/path/to/classes",
                        elem_id="how-folder",
                        visible=not ctx.settings.hosted,  # hosted: uploads and samples only
                    )
                    shape_samples = gr.Checkbox(
                        label="Use the built-in shapes (circles, squares, triangles)",
                        elem_id="how-shape-samples",
                    )
            with gr.Row():
                shots = gr.Textbox(value="1, 2, 5", label="Shots per class", elem_id="how-shots")
                episodes = gr.Slider(1, 20, value=5, step=1, label="Episodes (random picks)")
                fewshot_btn = gr.Button("Classify", variant="primary", elem_id="how-fewshot-run")
            fewshot_md = gr.Markdown(elem_id="how-fewshot-info")
            fewshot = gr.Dataframe(
                headers=SHOT_HEADERS, interactive=False, label="Accuracy", elem_id="how-fewshot"
            )

        with gr.Tab("Audio tokens", id="how-audio"):
            gr.Markdown(
                "Speech as tokens: a self-supervised encoder (HuBERT's architecture) makes one "
                "vector per 20 ms; k-means maps each to one of K units; repeats are merged. "
                "The k-means codebook is fitted once, on LibriVox speech, and shared by every "
                "clip, so a unit id names the same sound in any clip: give a second clip to see "
                "how far apart the two unit sequences are. Unless HuBERT-Base's trained weights "
                "are in torch hub's cache, **the encoder's weights are random** (no download "
                "possible), so the units show the mechanics and the rates, not meaning."
            )
            with gr.Row():
                speech = gr.Audio(
                    sources=["upload", "microphone"],
                    type="filepath",
                    label="Speech (up to 20 s)",
                    elem_id="how-speech",
                )
                compare = gr.Audio(
                    sources=["upload", "microphone"],
                    type="filepath",
                    label="Compare with (optional)",
                    elem_id="how-speech-2",
                )
                with gr.Column():
                    k = gr.Slider(2, 200, value=50, step=1, label="K (units)", elem_id="how-k")
                    seed = gr.Number(value=0, precision=0, label="Seed", elem_id="how-seed")
                    units_btn = gr.Button("Make units", variant="primary", elem_id="how-units")
            units_md = gr.Markdown(elem_id="how-units-info")
            with gr.Row():
                units = gr.Textbox(
                    label="Units", lines=4, interactive=False, elem_id="how-units-out"
                )
                units_2 = gr.Textbox(
                    label="Units of the second clip",
                    lines=4,
                    interactive=False,
                    elem_id="how-units-out-2",
                )

    # -- wiring: the UI's events are private; the API is api.register's named endpoints -----
    parts_btn.click(ctx.heavy(act.parts), None, [parts, parts_md], **query, **private)
    tokens_btn.click(ctx.heavy(act.tokens), image, [grid, tokens_md], **query, **private)
    plan_btn.click(ctx.heavy(act.plan), [method, attach, rank], [plan_md, plan], **query, **private)
    contrast_btn.click(
        ctx.heavy(act.contrast),
        [pairs, captions, pair_samples],
        [heat, contrast_md, logits],
        **query,
        **private,
    )
    shuffle_btn.click(
        ctx.heavy(act.shuffle),
        [shuffles, pairs, captions, pair_samples],
        [heat, contrast_md, logits, shuffles],
        **query,
        **private,
    )
    fewshot_btn.click(
        ctx.heavy(act.few_shot),
        [shots_files, labels, folder, shots, episodes, shape_samples],
        [fewshot, fewshot_md],
        **query,
        **private,
    )
    units_btn.click(
        ctx.heavy(act.units),
        [speech, k, seed, compare],
        [units_md, units, units_2],
        **audio,
        **private,
    )
    api.register(ctx, query, audio)
    return {
        "parts": parts_btn,
        "parts_table": parts,
        "image": image,
        "tokens": tokens_btn,
        "method": method,
        "plan": plan_btn,
        "pairs": pairs,
        "captions": captions,
        "contrast": contrast_btn,
        "shuffle": shuffle_btn,
        "heatmap": heat,
        "fewshot": fewshot_btn,
        "speech": speech,
        "compare": compare,
        "units": units_btn,
    }
