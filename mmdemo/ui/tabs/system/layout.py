"""System tab: profile, device, every model's state and memory, versions; load and unload.
Layout and wiring only: the handlers are in ``actions.py``, the named endpoints (the same
report as data) in ``api.py``, the work in ``SystemService`` (mmdemo.flows.system)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from mmdemo.ui.context import AppContext
from mmdemo.ui.tabs.system import api
from mmdemo.ui.tabs.system.actions import SystemActions
from mmdemo.ui.tabs.system.view import FAMILY_HEADERS, HEADERS


def build(ctx: AppContext) -> dict[str, Any]:
    act = SystemActions(ctx.services.system)
    names = list(ctx.services.system.backends)
    hosted = ctx.settings.hosted  # models load on use only; no loading, unloading, other ids
    api.register(ctx)  # first: the named endpoints keep their names

    gr.Markdown(
        "Models load on first use and stay loaded"
        + (" (this hosted server manages them)." if hosted else " until you unload them here.")
    )
    summary = gr.Markdown(elem_id="system-summary")
    table = gr.Dataframe(
        headers=HEADERS, label="Models", interactive=False, elem_id="system-models", wrap=True
    )
    with gr.Row():
        backend = gr.Dropdown(
            names,
            value=names[0],
            label="Backend",
            scale=1,
            elem_id="system-backend",
            visible=not hosted,
        )
        load_btn = gr.Button(
            "Load", variant="primary", scale=0, elem_id="system-load", visible=not hosted
        )
        unload_btn = gr.Button("Unload", scale=0, elem_id="system-unload", visible=not hosted)
        refresh_btn = gr.Button("Refresh", scale=0, elem_id="system-refresh")
    with (
        gr.Accordion("Use another model for this backend", open=False, visible=not hosted),
        gr.Row(),
    ):
        model_id = gr.Textbox(
            label="Model id",
            scale=3,
            elem_id="system-model-id",
            visible=not hosted,
            placeholder="e.g. tiny:qwen25vl, tiny:llava, HuggingFaceTB/SmolVLM-500M-Instruct",
        )
        set_btn = gr.Button("Use", scale=0, elem_id="system-set-model", visible=not hosted)
    families = gr.Dataframe(
        headers=FAMILY_HEADERS,
        label="VLM families (MMDEMO_VLM_FAMILY picks one; * the configured VLM's)",
        interactive=False,
        elem_id="system-families",
        wrap=True,
    )
    versions = gr.Markdown(elem_id="system-versions")
    outputs = [summary, table, versions, families]

    load_btn.click(
        ctx.heavy(act.load),
        backend,
        outputs,
        api_visibility="private",
        concurrency_id="model-load",
        concurrency_limit=1,
    )
    unload_btn.click(ctx.heavy(act.unload), backend, outputs, api_visibility="private")
    set_btn.click(ctx.heavy(act.set_model), [backend, model_id], outputs, api_visibility="private")
    refresh_btn.click(
        ctx.light(act.refresh, "reads the manager's status and the process memory"),
        None,
        outputs,
        api_visibility="private",
    )
    # polls only while the System tab is shown: app.create_ui starts it on the tab's select
    # and stops it when another tab is picked
    timer = gr.Timer(3.0, active=False)
    timer.tick(
        act.refresh, None, outputs, api_visibility="private", show_progress="hidden", queue=False
    )
    return {
        "on_load": (act.refresh, outputs),
        "summary": summary,
        "table": table,
        "backend": backend,
        "load": load_btn,
        "unload": unload_btn,
        "versions": versions,
        "families": families,
        "poll": timer,
        "refresh": refresh_btn,
    }
