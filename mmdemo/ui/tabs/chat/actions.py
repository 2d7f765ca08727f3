"""The Visual chat tab's handlers, one named method each: answer, regenerate, stop, clear,
show an adapter, the adapter manager's add, delete and refresh (``AdapterOpsActions``:
fetch from the Hub, merge, export merged), and "Find it" (grounding). Each reads widget values,
calls the chat service and formats what the widgets show (see ``view.py``). GPU work
(``zerogpu.gpu``) and request budgets are attached where the handlers are wired."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from mmdemo.errors import BadInputError, MMDemoError
from mmdemo.flows.adapter_ops import AdapterOps
from mmdemo.flows.chat import BASE_NAME, ChatService, ChatSession
from mmdemo.flows.generation import GenerationSettings
from mmdemo.flows.grounding import GroundingService
from mmdemo.flows.ranks import rank_options, served_name
from mmdemo.flows.similar import SimilarRequest
from mmdemo.ui.common import guarded, guarded_stream
from mmdemo.ui.sessions import SessionFolders
from mmdemo.ui.tabs.chat.api import install_upload
from mmdemo.ui.tabs.chat.view import (
    OFF,
    adapter_md,
    adapter_rows,
    box_rows,
    grounding_md,
    index_choices,
    metrics_md,
    to_messages,
)
from mmdemo.units import human_bytes


@dataclass
class ChatState:
    """Per-browser-session state: the conversation and the running answer's stop switch."""

    session: ChatSession = field(default_factory=ChatSession)
    stop: threading.Event = field(default_factory=threading.Event)

    def new_answer(self) -> threading.Event:
        self.stop = threading.Event()
        return self.stop


def settings_of(max_new_tokens: Any, temp: Any, p: Any, is_greedy: Any) -> GenerationSettings:
    """Generation settings from the sliders' values."""
    return GenerationSettings(int(max_new_tokens), float(temp), float(p), bool(is_greedy))


class ChatActions:
    """Handlers over the app's chat service (``folders``: where uploads are staged)."""

    def __init__(self, chat: ChatService, folders: SessionFolders) -> None:
        self.chat = chat
        self.folders = folders

    # -- conversation ----------------------------------------------------------------------

    @guarded_stream
    def submit(
        self,
        message: dict,
        st: ChatState,
        name: str,
        picked_rank: int | None,
        max_new_tokens: float,
        temp: float,
        p: float,
        is_greedy: bool,
        index: str,
        k: float,
    ) -> Iterator[tuple[Any, ...]]:
        chat = self.chat
        text, files = (message or {}).get("text", ""), (message or {}).get("files", [])
        name = served_name(chat, name, picked_rank)
        gen = settings_of(max_new_tokens, temp, p, is_greedy)
        similar = SimilarRequest(index, int(k)) if index and index != OFF else None
        stop = st.new_answer()
        paths = [f if isinstance(f, str) else f.get("path", "") for f in files]
        yield (
            to_messages(st.session, (text, paths, "…")),
            "",
            gr.update(value=None),
            st,
            gr.update(),
        )
        for update in chat.stream(st.session, text, paths, name, gen, stop, similar):
            pending = None if update.metrics else (text, paths, update.text or "…")
            cases = gr.update()
            if update.metrics:
                # the decoded pictures, not their paths: an index's files live under
                # MMDEMO_HOME (or a server folder), which Gradio does not serve from
                cases = [
                    (c.image, f"{c.name} · {c.score:.2f}") for c in st.session.turns[-1].similar
                ]
            yield (
                to_messages(st.session, pending),
                metrics_md(update.metrics),
                gr.update(),
                st,
                cases,
            )

    @guarded_stream
    def regenerate(
        self,
        st: ChatState,
        name: str,
        picked_rank: int | None,
        max_new_tokens: float,
        temp: float,
        p: float,
        is_greedy: bool,
    ) -> Iterator[tuple[Any, ...]]:
        gen = settings_of(max_new_tokens, temp, p, is_greedy)
        name = served_name(self.chat, name, picked_rank)
        last = st.session.turns[-1] if st.session.turns else None
        stop = st.new_answer()
        for update in self.chat.regenerate(st.session, adapter=name, gen=gen, stop=stop):
            pending = (
                None
                if update.metrics or last is None
                else (last.user, last.image_paths, update.text or "…")
            )
            yield to_messages(st.session, pending), metrics_md(update.metrics), st

    def stop(self, st: ChatState) -> None:
        st.stop.set()

    def clear(self, st: ChatState) -> tuple[list, str, ChatState]:
        st.stop.set()
        st.session.clear()
        return [], "", st

    # -- the adapter menu ------------------------------------------------------------------

    def rank_menu(self, name: str) -> Any:
        """The rank menu: shown, from the adapter's own rank down, for a DyLoRA adapter."""
        try:
            options = rank_options(self.chat, name)
        except MMDemoError:  # a deleted adapter: show_adapter says so
            options = []
        first = options[0][1] if options else None
        return gr.update(choices=options, value=first, visible=bool(options))

    @guarded
    def show_adapter(self, name: str, picked_rank: int | None = None) -> str:
        """The adapter's card; showing it warms it (loads it onto the shared VLM)."""
        chat = self.chat
        name = served_name(chat, name, picked_rank)
        info = chat.engine.adapter(name)
        if info is None:  # the base model, or a model of a remote server
            return f"**{name}**, answered by {chat.engine.where}"
        return adapter_md(info, chat.warm_adapter(info))

    def adapter_menu(self) -> Any:
        """Adapters trained or uploaded since the page opened, when the menu is opened."""
        return gr.update(choices=self.chat.adapter_choices())

    def on_load(self) -> tuple[Any, ...]:
        """A page opens: the adapters table and menu, and the indexes for similar cases."""
        return (
            adapter_rows(self.chat),
            gr.update(choices=self.chat.adapter_choices()),
            gr.update(choices=index_choices(self.chat)),
        )

    # -- the adapter manager ---------------------------------------------------------------

    def choices(self, value: str = BASE_NAME) -> Any:
        names = self.chat.adapter_choices()
        return gr.update(choices=names, value=value if value in names else BASE_NAME)

    @guarded
    def add(self, files: list[str] | None, wanted: str, request: gr.Request) -> tuple[Any, ...]:
        if not files:
            raise gr.Error("Choose an adapter zip or its files first.")
        info = install_upload(self.chat, files, wanted, self.folders.folder(request.session_hash))
        gr.Info(f"Adapter {info['name']} added and loaded")
        return adapter_rows(self.chat), self.choices(info["name"]), None, ""

    @guarded
    def delete(self, current: str) -> tuple[Any, ...]:
        if not current or current == BASE_NAME:
            raise gr.Error("Select an adapter in the Adapter menu first (not base).")
        self.chat.delete_adapter(current)
        gr.Info(f"Adapter {current} deleted")
        return adapter_rows(self.chat), self.choices(BASE_NAME)

    def refresh(self, current: str) -> tuple[Any, ...]:
        return adapter_rows(self.chat), self.choices(current)


def parse_weights(text: str) -> list[float]:
    """``"0.7, 0.3"`` (commas or spaces) as numbers; refused with the way to write them."""
    parts = [p for p in (text or "").replace(",", " ").split() if p]
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise BadInputError(
            f"the weights {text[:60]!r} are not numbers", fix="write one per adapter: 0.5, 0.5"
        ) from None


class AdapterOpsActions:
    """The adapter panel's Hub download, merge and export, over the app's AdapterOps."""

    def __init__(self, chat: ChatService, ops: AdapterOps, folders: SessionFolders) -> None:
        self.chat, self.ops, self.folders = chat, ops, folders

    def parents_menu(self) -> Any:
        """The adapters a merge can take (every adapter but base), when the menu is opened."""
        return gr.update(choices=[n for n in self.chat.adapter_choices() if n != BASE_NAME])

    def _added(self, name: str, what: str) -> tuple[Any, ...]:
        gr.Info(f"Adapter {name} {what} and loaded")
        names = self.chat.adapter_choices()
        return adapter_rows(self.chat), gr.update(choices=names, value=name)

    @guarded
    def from_hub(self, hub_id: str, wanted: str) -> tuple[Any, ...]:
        if not (hub_id or "").strip():
            raise gr.Error("Write the adapter's Hub id first: org/repo@revision.")
        info = self.ops.from_hub(hub_id.strip(), (wanted or "").strip())
        return (*self._added(info.name, f"fetched from {info.source}"), "")

    @guarded
    def merge(
        self, parents: list[str], weights: str, kind: str, density: float, wanted: str
    ) -> tuple[Any, ...]:
        parents = list(parents or [])
        numbers = parse_weights(weights) or [1.0] * len(parents)
        info = self.ops.merge(parents, numbers, kind, float(density), (wanted or "").strip())
        return (*self._added(info.name, "merged"), "")

    @guarded
    def export(self, current: str, request: gr.Request) -> str:
        if not current or current == BASE_NAME:
            raise gr.Error("Select an adapter in the Adapter menu first (not base).")
        result = self.ops.export_merged(current, self.folders.folder(request.session_hash))
        gr.Info(f"Base + {result.adapter} exported ({human_bytes(result.nbytes)})")
        return str(result.archive)


class GroundingActions:
    """ "Find it": boxes for a question about one image, with the chat tab's adapter."""

    def __init__(self, grounding: GroundingService) -> None:
        self.grounding = grounding

    @guarded
    def find(
        self, image: str | None, prompt: str, name: str, picked_rank: int | None
    ) -> tuple[Any, ...]:
        if not image:
            raise gr.Error("Upload an image to look in first.")
        if not (prompt or "").strip():
            raise gr.Error("Say what to find, e.g. 'Where is the red circle?'")
        adapter = served_name(self.grounding.chat, name, picked_rank)
        result = self.grounding.ground(image, prompt, adapter)
        return result.annotated, box_rows(result), grounding_md(result)
