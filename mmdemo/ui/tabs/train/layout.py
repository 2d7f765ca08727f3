"""Train tab: pick a method, data and a few knobs; watch the loss, tokens/s, memory and ETA;
stop; chat with the adapter a moment later. A bake-off trains several methods on the same data
and step budget; its panel shows the measured real-weights bake-off until a visitor runs
their own. Layout and wiring only: the handlers are in ``actions.py``, the named endpoints
in ``api.py``, the work in ``TrainService`` (mmdemo.flows.train)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from mmdemo.flows.families import tiny_vlm_ids
from mmdemo.flows.train_data import DATA_SUFFIXES
from mmdemo.ui.context import AppContext
from mmdemo.ui.tabs.train import api, view
from mmdemo.ui.tabs.train.actions import BUILTIN, FOLDER, UPLOAD, TrainActions, TrainSession
from mmdemo.ui.tabs.train.api import EVALUATE

BAKEOFF_DEFAULT = ["lora", "dora", "ia3", "lora-fa", "dylora", "bottleneck", "lomo", "mezo"]


def base_choices(ctx: AppContext) -> list[str]:
    """The app's VLM first, then the offline tiny build of every VLM family."""
    current = ctx.services.system.model_id("vlm")
    if ctx.settings.hosted:  # the app's VLM only
        return [current]
    return list(dict.fromkeys([current, *tiny_vlm_ids()]))


def build(ctx: AppContext) -> dict[str, Any]:
    service = ctx.services.train
    system = ctx.services.system
    act = TrainActions(ctx.settings, service, lambda: system.model_id("vlm"))
    methods = service.methods()
    allowed = ctx.settings.allow_training
    gr.Markdown(
        "Adapt the VLM to your data: pick a method, the data and a few knobs, press **Train**. "
        "Runs queue and train one at a time in a separate process, so chat keeps answering. "
        "The finished adapter is in the chat and arena menus at once."
        if allowed
        else "Training is turned off on this server (`MMDEMO_ALLOW_TRAINING=false`)."
    )
    state = gr.State(TrainSession)
    with gr.Row(visible=allowed):
        with gr.Column(scale=2, min_width=320):
            base_model = gr.Dropdown(
                base_choices(ctx),
                value=system.model_id("vlm"),
                label="Base model",
                info="Adapters serve on this VLM; another one is loaded in the System tab",
                allow_custom_value=not ctx.settings.hosted,
                elem_id="train-base",
            )
            method = gr.Dropdown(
                [(f"{m['name']} — {m['summary']}", m["name"]) for m in methods],
                value="lora",
                label="Method",
                elem_id="train-method",
            )
            device = gr.Radio(
                service.devices(),
                value="auto",
                label="Device",
                info=f"auto: the app's device setting ({ctx.settings.device}); "
                "only the devices this machine has are offered",
                elem_id="train-device",
            )
            sources = [BUILTIN, UPLOAD] if ctx.settings.hosted else [BUILTIN, UPLOAD, FOLDER]
            source = gr.Radio(sources, value=BUILTIN, label="Data", elem_id="train-source")
            upload = gr.File(
                label="A zip, or a JSONL file with its images",
                file_count="multiple",
                file_types=list(DATA_SUFFIXES),
                visible=False,
                elem_id="train-upload",
            )
            folder = gr.Textbox(
                label="Dataset folder or JSONL (our JSONL, a VQA-RAD or a SLAKE copy)",
                visible=False,
                elem_id="train-folder",
            )
            stages = gr.Radio(
                [
                    ("VQA", "vqa"),
                    ("Captioning", "caption"),
                    ("Two-stage: caption, then VQA", "two-stage"),
                    ("Grounding: boxes (built-in set)", "grounding"),
                ],
                value="vqa",
                label="Stages",
            )
            attach = gr.Radio(
                [
                    ("Language model", "language"),
                    ("+ projector", "language+projector"),
                    ("+ vision tower", "all"),
                ],
                value="language",
                label="Attach to",
            )
            with gr.Accordion("Knobs", open=False):
                steps = gr.Slider(1, 5000, value=200, step=1, label="Steps", elem_id="train-steps")
                batch = gr.Slider(1, 64, value=8, step=1, label="Batch size")
                lr = gr.Number(0.0, label="Learning rate (0: the method's default)")
                rank = gr.Slider(1, 128, value=8, step=1, label="Rank (bottleneck: width)")
                seed = gr.Number(0, precision=0, label="Seed")
                scale = gr.Slider(
                    0.05,
                    1.0,
                    value=1.0,
                    step=0.05,
                    label="Share of the built-in set",
                    elem_id="train-scale",
                )
                placement = gr.Radio(
                    ["parallel", "series"], value="parallel", label="Bottleneck placement"
                )
            name = gr.Textbox(label="Adapter name (optional)", elem_id="train-name")
            with gr.Row():
                start_btn = gr.Button("Train", variant="primary", elem_id="train-start")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="train-stop")
        with gr.Column(scale=3):
            status = gr.Markdown(view.status_md(None), elem_id="train-status")
            loss = gr.LinePlot(
                view.loss_rows(None),
                x="step",
                y="loss",
                title="Training loss",
                height=260,
                elem_id="train-loss",
            )
            result = gr.Markdown(elem_id="train-result")
            pictures = gr.Gallery(
                label="Report pictures", columns=3, height=220, elem_id="train-pictures"
            )
            with gr.Accordion("Report", open=False):
                report = gr.Markdown(elem_id="train-report")
    # the measured bake-off shows on every server (training on or off); a visitor's own
    # bake-off replaces it in this visitor's page
    with gr.Accordion(
        "Bake-off: every method, same data and step budget",
        open=False,
        elem_id="train-bakeoff-panel",
    ) as bake_panel:
        bake_caption = gr.Markdown(elem_id="train-bakeoff-caption")
        bake_table = gr.Dataframe(
            headers=view.MEASURED_HEADERS,
            interactive=False,
            wrap=True,
            column_widths=view.COLUMN_WIDTHS,
            elem_id="train-bakeoff-table",
        )
        bake_plot = gr.Plot(
            label="Score vs. trainable parameters vs. memory",
            format="png",
            elem_id="train-bakeoff-plot",
        )
        with gr.Row(visible=allowed):
            bake_methods = gr.CheckboxGroup(
                [m["name"] for m in methods if m["objective"] == "sft"],
                value=BAKEOFF_DEFAULT,
                label="Methods for your own bake-off",
            )
            bake_btn = gr.Button("Run bake-off", elem_id="train-bakeoff")
    with gr.Accordion("Evaluate an adapter", open=False, visible=allowed):
        with gr.Row():
            eval_adapter = gr.Textbox("base", label="Adapter (or base)")
            eval_data = gr.Textbox("builtin", label="Dataset (builtin, or a path)")
            eval_btn = gr.Button("Evaluate")
        eval_out = gr.JSON(label="Metrics")
    timer = gr.Timer(1.0, active=False)
    outputs = [status, loss, result, report, pictures]
    bake_outputs = [bake_caption, bake_table, bake_plot]

    knobs = [
        source,
        upload,
        folder,
        stages,
        attach,
        steps,
        batch,
        lr,
        rank,
        seed,
        scale,
        placement,
        name,
    ]
    source.change(
        act.toggle_source, source, [upload, folder], queue=False, api_visibility="private"
    )
    start_btn.click(
        ctx.heavy(act.start),
        [state, device, base_model, method, *knobs],
        [state, *outputs, timer],
        api_visibility="private",
    )
    stop_btn.click(
        ctx.light(act.stop, "asks this session's run to stop (a file the job looks for)"),
        state,
        outputs,
        api_visibility="private",
    )
    timer.tick(
        act.poll,
        state,
        [*outputs, *bake_outputs, timer],
        api_visibility="private",
        queue=False,
    )
    bake_btn.click(
        ctx.heavy(act.bakeoff),
        [state, bake_methods, device, base_model, *knobs],
        [state, *bake_outputs, timer],
        api_visibility="private",
    )
    # opening the panel shows the measured bake-off (or this visitor's own, once run)
    bake_panel.expand(
        ctx.light(act.bakeoff_view, "reads the measured bake-off file and draws it"),
        state,
        bake_outputs,
        api_visibility="private",
    )
    api.register(ctx, service)  # first: the named endpoints keep their names (/evaluate ...)
    eval_btn.click(
        ctx.heavy(act.evaluate),
        [state, eval_adapter, eval_data],
        eval_out,
        api_visibility="private",
        **EVALUATE,
    )
    return {"method": method, "start": start_btn, "status": status, "state": state, "timer": timer}
