"""The System tab's handlers: refresh the report, load, unload or swap a backend's model.
Each calls ``SystemService`` (mmdemo.flows.system) and returns the summary line, the models
table and the versions line."""

from __future__ import annotations

from typing import Any

import gradio as gr

from mmdemo.flows.system import SystemService
from mmdemo.ui.common import guarded
from mmdemo.ui.tabs.system.view import family_rows, model_rows, summary_md, versions_md

Shown = tuple[str, list[list[Any]], str, list[list[Any]]]  # summary, models, versions, families


class SystemActions:
    def __init__(self, system: SystemService) -> None:
        self.system = system

    def refresh(self) -> Shown:
        report = self.system.report()
        return summary_md(report), model_rows(report), versions_md(report), family_rows(report)

    @guarded
    def load(self, name: str) -> Shown:
        self.system.load(name)
        gr.Info(f"{name} loaded")
        return self.refresh()

    @guarded
    def unload(self, name: str) -> Shown:
        if not self.system.unload(name):
            gr.Info(f"{name} was not loaded")
        return self.refresh()

    @guarded
    def set_model(self, name: str, new_id: str) -> Shown:
        self.system.set_model(name, new_id)
        gr.Info(f"{name} will load {new_id.strip()} on next use")
        return self.refresh()
