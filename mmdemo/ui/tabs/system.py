"""System tab: profile, device, every model's state and memory, versions; load and unload.

Named endpoints return data: ``/system_status()``, ``/load_model(backend)``,
``/unload_model(backend)``, ``/set_model(backend, model_id)`` each give the report as a dict
(``report_json``); the tab's buttons show the same report as a table."""

from __future__ import annotations

from typing import Any

import gradio as gr

from mmdemo.flows.limits import require_local
from mmdemo.flows.system import SystemReport, human_bytes, human_count, system_report
from mmdemo.ui.common import guarded
from mmdemo.ui.context import AppContext

HEADERS = [
    "backend",
    "model",
    "state",
    "device",
    "dtype (why)",
    "params",
    "memory",
    "load s",
    "details",
]


def model_rows(report: SystemReport) -> list[list[Any]]:
    rows = []
    for s in report.models:
        details = ", ".join(f"{k}: {v}" for k, v in s.details.items()) or s.error[:160]
        rows.append(
            [
                s.backend,
                s.model_id,
                s.state,
                s.device,
                f"{s.dtype} ({s.dtype_reason})" if s.dtype_reason else s.dtype,
                human_count(s.params) if s.params else "",
                human_bytes(s.nbytes) if s.nbytes else "",
                f"{s.load_seconds:.2f}" if s.state == "loaded" else "",
                details,
            ]
        )
    return rows


def summary_md(report: SystemReport) -> str:
    loaded = sum(1 for s in report.models if s.state == "loaded")
    accel = (
        f" · accelerator {human_bytes(report.accelerator_bytes)}"
        if report.accelerator_bytes
        else ""
    )
    return (
        f"**Profile** `{report.profile}` · **device** `{report.device}` · "
        f"**models loaded** {loaded}/{len(report.models)} · "
        f"**process memory** {human_bytes(report.rss_bytes)}{accel}"
    )


def versions_md(report: SystemReport) -> str:
    return " · ".join(f"{name} `{version}`" for name, version in report.versions)


def report_json(report: SystemReport) -> dict[str, Any]:
    """The report as plain data: profile, device, memory, every model's state, versions."""
    from dataclasses import fields

    def model(s: Any) -> dict[str, Any]:  # not asdict: ``details`` is a read-only mapping
        return {f.name: getattr(s, f.name) for f in fields(s)} | {"details": dict(s.details)}

    return {
        "profile": report.profile,
        "device": report.device,
        "rss_bytes": report.rss_bytes,
        "accelerator_bytes": report.accelerator_bytes,
        "models": [model(s) for s in report.models],
        "versions": dict(report.versions),
    }


def register_api(ctx: AppContext) -> None:
    """Publish the endpoints; loading, unloading and swapping models are heavy."""
    manager, settings = ctx.manager, ctx.settings

    def system_status() -> dict:
        """Profile, device, process memory, every backend's model and state, versions."""
        return report_json(system_report(manager))

    def load_model(backend: str) -> dict:
        """Load a backend's model now (it loads on first use otherwise); the new status."""
        require_local(settings, "loading models by hand")
        manager.get(backend)
        return system_status()

    def unload_model(backend: str) -> dict:
        """Free a backend's model; "was_loaded" says whether it was."""
        require_local(settings, "unloading models")
        return {"was_loaded": manager.unload(backend), **system_status()}

    def set_model(backend: str, model_id: str) -> dict:
        """Use another model id for a backend (loaded on next use); the new status."""
        require_local(settings, "loading another model id")
        manager.set_model(backend, model_id)
        return system_status()

    gr.api(guarded(system_status), api_name="system_status", queue=False)
    gr.api(
        ctx.heavy(guarded(load_model)),
        api_name="load_model",
        concurrency_id="model-load",
        concurrency_limit=1,
    )
    gr.api(ctx.heavy(guarded(unload_model)), api_name="unload_model")
    gr.api(ctx.heavy(guarded(set_model)), api_name="set_model")


def build(ctx: AppContext) -> dict[str, Any]:
    manager = ctx.manager
    names = list(manager.backends)
    hosted = ctx.settings.hosted  # models load on use only; no loading, unloading, other ids
    register_api(ctx)  # first: the named endpoints keep their names

    def refresh() -> tuple[str, list[list[Any]], str]:
        report = system_report(manager)
        return summary_md(report), model_rows(report), versions_md(report)

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
            placeholder="e.g. tiny:qwen2vl, HuggingFaceTB/SmolVLM-500M-Instruct",
        )
        set_btn = gr.Button("Use", scale=0, elem_id="system-set-model", visible=not hosted)
    versions = gr.Markdown(elem_id="system-versions")
    outputs = [summary, table, versions]

    @guarded
    def load(name: str) -> tuple[str, list[list[Any]], str]:
        require_local(ctx.settings, "loading models by hand")
        manager.get(name)
        gr.Info(f"{name} loaded")
        return refresh()

    @guarded
    def unload(name: str) -> tuple[str, list[list[Any]], str]:
        require_local(ctx.settings, "unloading models")
        if not manager.unload(name):
            gr.Info(f"{name} was not loaded")
        return refresh()

    @guarded
    def set_model(name: str, new_id: str) -> tuple[str, list[list[Any]], str]:
        require_local(ctx.settings, "loading another model id")
        manager.set_model(name, new_id)
        gr.Info(f"{name} will load {new_id.strip()} on next use")
        return refresh()

    load_btn.click(
        ctx.heavy(load),
        backend,
        outputs,
        api_visibility="private",
        concurrency_id="model-load",
        concurrency_limit=1,
    )
    unload_btn.click(ctx.heavy(unload), backend, outputs, api_visibility="private")
    set_btn.click(ctx.heavy(set_model), [backend, model_id], outputs, api_visibility="private")
    refresh_btn.click(
        ctx.light(refresh, "reads the manager's status and the process memory"),
        None,
        outputs,
        api_visibility="private",
    )
    # polls only while the System tab is shown: app.create_ui starts it on the tab's select
    # and stops it when another tab is picked
    timer = gr.Timer(3.0, active=False)
    timer.tick(
        refresh, None, outputs, api_visibility="private", show_progress="hidden", queue=False
    )
    return {
        "on_load": (refresh, outputs),
        "summary": summary,
        "table": table,
        "backend": backend,
        "load": load_btn,
        "unload": unload_btn,
        "versions": versions,
        "poll": timer,
        "refresh": refresh_btn,
    }
