"""The Arena tab's handlers: run a comparison (streamed column by column), stop it, and
refresh the list of what can be compared."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import gradio as gr

from mmdemo.flows.arena import MAX_COLUMNS, ArenaResult, ArenaService
from mmdemo.flows.arena_remote import MAX_REMOTE
from mmdemo.flows.chat import BASE_NAME
from mmdemo.flows.generation import GenerationSettings
from mmdemo.ui.common import guarded_stream
from mmdemo.ui.tabs.arena.view import column_md, summary_md


def remote_updates(result: ArenaResult) -> list[Any]:
    """The remote columns: shown only when picked."""
    return [
        gr.update(value=column_md(result, i, remote=True), visible=bool(md))
        for i, md in enumerate(column_md(result, i, remote=True) for i in range(MAX_REMOTE))
    ]


class ArenaActions:
    """Handlers over the app's arena (per-session state: ``{"stop": Event}``)."""

    def __init__(self, arena: ArenaService) -> None:
        self.arena = arena

    @guarded_stream
    def run(
        self, path: str | None, text: str, names: list[str], max_new_tokens: float, st: dict
    ) -> Iterator[tuple[Any, ...]]:
        if path is None:
            raise gr.Error("Add an image first (or pick an example).")
        stop = st["stop"] = threading.Event()
        gen = GenerationSettings(max_new_tokens=int(max_new_tokens), greedy=True)
        for result in self.arena.stream(path, text, names or [BASE_NAME], gen, stop):
            yield (
                summary_md(result),
                *[column_md(result, i) for i in range(MAX_COLUMNS)],
                *remote_updates(result),
                st,
            )

    def stop(self, st: dict) -> None:
        if "stop" in st:
            st["stop"].set()

    def choices(self) -> Any:
        """The adapters and remote models to compare (new ones appear when opened)."""
        return gr.update(choices=self.arena.choices())
