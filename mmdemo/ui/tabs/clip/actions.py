"""The CLIP tab's event handlers, one named method per action. Each calls ``ClipSearch``
(mmdemo.flows.clip: plain values in, data out) and turns the data into widget updates."""

from __future__ import annotations

from typing import Any

import gradio as gr

from mmdemo.errors import BadInputError
from mmdemo.flows.clip import ClipSearch
from mmdemo.images import ImageProblem, thumbnail
from mmdemo.ui.common import guarded
from mmdemo.ui.tabs.clip import view

DEFAULT_INDEX = "photos"


class ClipSession:
    """Per-user state: the index searched and the hits on screen (a click maps to an item)."""

    def __init__(self) -> None:
        self.index = ""
        self.hits: list[dict[str, Any]] = []


class ClipActions:
    def __init__(self, api: ClipSearch) -> None:
        self.api = api

    # -- indexes ---------------------------------------------------------------------------

    def choices(self, current: str | None) -> tuple[Any, str]:
        """The index menu (keeping ``current``, else the first index) and a line about it."""
        entries = {e["name"]: e for e in self.api.indexes()}
        names = list(entries)
        value = current if current else (names[0] if names else DEFAULT_INDEX)
        return gr.update(choices=names, value=value), view.index_md(entries.get(value), value)

    @guarded
    def refresh(self, current: str | None) -> tuple[Any, str]:
        return self.choices(current)

    def on_load(self) -> tuple[Any, str]:
        return self.choices(None)

    def samples_folder(self) -> str:
        return str(self.api.samples)

    @guarded
    def add(
        self,
        name: str,
        folder: str,
        files: list[str] | None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> tuple[Any, ...]:
        def tick(p: Any) -> None:
            progress((p.done, p.total), desc=p.describe(), unit="images")

        report = self.api.add(name, folder, files, progress=tick)
        rows = view.skipped_rows(report)
        if rows:
            gr.Warning(f"{len(rows)} file(s) could not be indexed; see the list below.")
        dropdown, text = self.choices(report["index"])
        return dropdown, text, view.add_md(report), gr.update(value=rows, visible=bool(rows)), None

    @guarded
    def prune(self, name: str) -> str:
        report = self.api.prune(name)
        gr.Info(f"Removed {report['removed']} entries whose files are gone.")
        return self.choices(name)[1]

    @guarded
    def delete(self, name: str, confirm: bool) -> tuple[Any, str, bool]:
        if not confirm:
            raise gr.Error("Tick 'I want to delete this index' first.", title="Not deleted")
        self.api.delete(name, confirm=True)
        gr.Info(f"Deleted index {name}.")
        dropdown, text = self.choices(None)
        return dropdown, text, False

    # -- search ----------------------------------------------------------------------------

    @guarded
    def preview(self, path: str | None = None) -> Any:
        """The uploaded picture as the model will see it, or a warning saying why it cannot."""
        if not path:
            return None
        try:
            return thumbnail(path, 384)
        except ImageProblem as exc:
            gr.Warning(str(exc))
            return None

    def _show(self, session: ClipSession, result: dict[str, Any]) -> tuple[Any, ...]:
        session.index, session.hits = result["index"], list(result["hits"])
        items = [(self.api.thumbnail(h["file"]), view.hit_caption(h)) for h in result["hits"]]
        picks = view.pick_choices(result["hits"])
        pick = gr.update(choices=picks, value=picks[0][1] if picks else None)
        return items, view.result_md(result), pick, session

    @guarded
    def search(
        self,
        session: ClipSession,
        name: str,
        text: str,
        image: str | None,
        text_weight: float,
        top_k: float,
    ) -> tuple[Any, ...]:
        result = self.api.search(name, text, image, int(top_k), float(text_weight))
        return self._show(session, result)

    @guarded
    def search_like(
        self, session: ClipSession, name: str, top_k: float, evt: gr.SelectData
    ) -> tuple[Any, ...]:
        """A click on a result: search for images like it (its stored vector is the query)."""
        if evt.index is None or not 0 <= int(evt.index) < len(session.hits):
            raise gr.Error("That result is gone; search again.")
        hit = session.hits[int(evt.index)]
        result = self.api.search(
            session.index or name, top_k=int(top_k), like_item_id=hit["item_id"]
        )
        shown = self._show(session, result)
        return (*shown, "", None, self.api.thumbnail(hit["file"], 384))

    def _picked(self, session: ClipSession, item_id: Any) -> dict[str, Any]:
        for hit in session.hits:
            if item_id is not None and hit["item_id"] == int(item_id):
                return hit
        raise BadInputError("no result picked", fix="search first, then pick a result")

    @guarded
    def explain(self, session: ClipSession, item_id: Any, text: str) -> tuple[str, str]:
        hit = self._picked(session, item_id)
        data = self.api.explain(session.index, hit["item_id"], text)
        return data["overlay"], view.explain_md(data)

    @guarded
    def remove(self, session: ClipSession, item_id: Any) -> tuple[Any, ...]:
        hit = self._picked(session, item_id)
        report = self.api.remove(session.index, [hit["item_id"]])
        gr.Info(f"Removed {hit['name']} from {report['index']} ({report['total']} images left).")
        session.hits = [h for h in session.hits if h["item_id"] != hit["item_id"]]
        items = [(self.api.thumbnail(h["file"]), view.hit_caption(h)) for h in session.hits]
        picks = view.pick_choices(session.hits)
        pick = gr.update(choices=picks, value=picks[0][1] if picks else None)
        return items, pick, session, self.choices(session.index)[1]

    # -- zero-shot -------------------------------------------------------------------------

    @guarded
    def classify(self, image: str | None, labels: str, templates: str) -> tuple[Any, str]:
        data = self.api.classify(image, labels, templates)
        return view.classify_frame(data), view.classify_md(data)
