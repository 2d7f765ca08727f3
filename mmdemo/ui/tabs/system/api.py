"""The System tab's named endpoints; each returns the report as a dict (``report_json``):
``/system_status()``, ``/load_model(backend)``, ``/unload_model(backend)`` (with
"was_loaded"), ``/set_model(backend, model_id)``."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import gradio as gr

from mmdemo.flows.system import SystemReport
from mmdemo.ui.common import guarded
from mmdemo.ui.context import AppContext


def report_json(report: SystemReport) -> dict[str, Any]:
    """The report as plain data: profile, device, memory, every model's state, versions."""

    def model(s: Any) -> dict[str, Any]:  # not asdict: ``details`` is a read-only mapping
        return {f.name: getattr(s, f.name) for f in fields(s)} | {"details": dict(s.details)}

    return {
        "profile": report.profile,
        "device": report.device,
        "rss_bytes": report.rss_bytes,
        "accelerator_bytes": report.accelerator_bytes,
        "models": [model(s) for s in report.models],
        "versions": dict(report.versions),
        "families": [f.to_json() for f in report.families],
    }


def register(ctx: AppContext) -> None:
    """Publish the endpoints; loading, unloading and swapping models are heavy."""
    system = ctx.services.system

    def system_status() -> dict:
        """Profile, device, process memory, every backend's model and state, versions."""
        return report_json(system.report())

    def load_model(backend: str) -> dict:
        """Load a backend's model now (it loads on first use otherwise); the new status."""
        system.load(backend)
        return system_status()

    def unload_model(backend: str) -> dict:
        """Free a backend's model; "was_loaded" says whether it was."""
        return {"was_loaded": system.unload(backend), **system_status()}

    def set_model(backend: str, model_id: str) -> dict:
        """Use another model id for a backend (loaded on next use); the new status."""
        system.set_model(backend, model_id)
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
