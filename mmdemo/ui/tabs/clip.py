"""CLIP search tab: build and grow named image indexes, search by text and/or image, explain a
match, classify zero-shot. The work is done by ``IndexService`` (mmdemo.retrieval)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from mmdemo.errors import MMDemoError
from mmdemo.retrieval.service import IndexService, Query
from mmdemo.retrieval.types import AddReport, SearchResult
from mmdemo.retrieval.zeroshot import DEFAULT_TEMPLATES
from mmdemo.ui.common import guarded
from mmdemo.ui.context import AppContext

SAMPLES = Path(__file__).resolve().parents[3] / "assets" / "images"
DEFAULT_INDEX = "photos"
SKIPPED_HEADERS = ["file", "why it was skipped"]


class ClipSession:
    """Per-user state: the results on screen (so a click maps to an indexed image)."""

    def __init__(self) -> None:
        self.index = ""
        self.hits: list[Any] = []


def gallery_items(service: IndexService, result: SearchResult) -> list[tuple[Any, str]]:
    return [
        (service.thumbnail(h.item), f"{h.rank}. {h.item.name} · {h.score:.3f}") for h in result.hits
    ]


def result_md(result: SearchResult) -> str:
    if not result.hits:
        return f"No results for {result.query}."
    return (
        f"{len(result.hits)} results for {result.query} among {result.searched} images "
        f"({result.method}, {result.seconds * 1000:.1f} ms). Click a result to search by it."
    )


def report_md(reports: list[AddReport]) -> str:
    return "\n\n".join(r.describe() for r in reports)


def skipped_rows(reports: list[tuple[AddReport, bool]]) -> list[list[str]]:
    """Skipped files; uploads by file name (their server path is a temporary folder)."""
    return [
        [Path(s.path).name if uploaded else s.path, s.reason]
        for report, uploaded in reports
        for s in report.skipped
    ]


def build(ctx: AppContext) -> dict[str, Any]:
    service: IndexService = ctx.services.setdefault(
        "clip_index", IndexService(ctx.settings, ctx.manager)
    )
    limit = ctx.settings.concurrency

    gr.Markdown(
        "Index a folder or uploaded images, then find them by words or by example; or label an "
        "image zero-shot. Indexes persist under `MMDEMO_HOME/indexes/` and grow: adding images "
        "embeds only the new ones."
    )
    state = gr.State(ClipSession())
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
            )
            samples_btn = gr.Button("Use the sample photos", scale=0, elem_id="clip-samples")
        upload = gr.File(
            label="…or upload images", file_count="multiple", type="filepath", elem_id="clip-upload"
        )
        with gr.Row():
            add_btn = gr.Button("Add to index", variant="primary", elem_id="clip-add")
            missing_btn = gr.Button("Remove entries whose files are gone", elem_id="clip-prune")
            confirm = gr.Checkbox(
                label="I want to delete this index", elem_id="clip-delete-confirm"
            )
            delete_btn = gr.Button("Delete index", variant="stop", elem_id="clip-delete")
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
            query = gr.Textbox(label="Text", placeholder="a cat on a sofa", elem_id="clip-query")
            weight = gr.Slider(
                0,
                1,
                value=0.5,
                step=0.05,
                elem_id="clip-weight",
                label="Text weight (with both text and image)",
            )
            k = gr.Slider(1, 50, value=12, step=1, label="Results", elem_id="clip-k")
            search_btn = gr.Button("Search", variant="primary", elem_id="clip-search")
        query_image = gr.Image(label="Image", type="pil", height=220, elem_id="clip-query-image")
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
        remove_btn = gr.Button("Remove from index", elem_id="clip-remove")
    with gr.Row():
        heat = gr.Image(
            label="Where the text matches (occlusion map)",
            type="numpy",
            interactive=False,
            height=320,
            elem_id="clip-explain",
        )
        heat_info = gr.Markdown(elem_id="clip-explain-info")

    gr.Markdown("### Zero-shot classification")
    with gr.Row():
        zs_image = gr.Image(label="Image", type="pil", height=260, elem_id="clip-zs-image")
        with gr.Column():
            labels = gr.Textbox(
                label="Labels (comma-separated)",
                value="cat, dog, astronaut, rocket, coffee",
                elem_id="clip-labels",
            )
            templates = gr.Textbox(
                label="Prompt templates (one per line, {} is the label)",
                value="\n".join(DEFAULT_TEMPLATES),
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

    def choices(current: str | None) -> tuple[Any, str]:
        names = service.names()
        value = current if current else (names[0] if names else DEFAULT_INDEX)
        if value not in names:
            return gr.update(choices=names, value=value), (
                f"Index **{value}** does not exist yet: add images to create it."
            )
        try:
            text = service.info(value).describe()
        except MMDemoError as exc:  # a damaged index must not break the page
            text = f"Index **{value}** cannot be read: {exc}"
        return gr.update(choices=names, value=value), text

    @guarded
    def refresh(current: str | None) -> tuple[Any, str]:
        return choices(current)

    @guarded
    def add(
        name: str,
        folder_path: str,
        files: list[str] | None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> tuple[Any, ...]:
        name = (name or "").strip()
        if not (folder_path or "").strip() and not files:
            raise gr.Error("Give a folder path or upload images first.", title="Nothing to add")

        def tick(p: Any) -> None:
            progress((p.done, p.total), desc=p.describe(), unit="images")

        reports = []
        if (folder_path or "").strip():
            report = service.add(name, [folder_path.strip()], create=True, progress=tick)
            reports.append((report, False))
        if files:
            report = service.add(name, files, copy=True, create=True, progress=tick)
            reports.append((report, True))
        rows = skipped_rows(reports)
        if rows:
            gr.Warning(f"{len(rows)} file(s) could not be indexed; see the list below.")
        dropdown, text = choices(name)
        summary = report_md([r for r, _ in reports])
        return dropdown, text, summary, gr.update(value=rows, visible=bool(rows)), None

    def show(session: ClipSession, name: str, result: SearchResult) -> tuple[Any, ...]:
        session.index, session.hits = name, list(result.hits)
        picks = [(f"{h.rank}. {h.item.name}", h.rank - 1) for h in result.hits]
        pick_update = gr.update(choices=picks, value=0 if picks else None)
        return gallery_items(service, result), result_md(result), pick_update, session

    @guarded
    def search(
        session: ClipSession, name: str, text: str, image: Any, w: float, n: float
    ) -> tuple[Any, ...]:
        result = service.search(name, Query(text=text, image=image, text_weight=w), int(n))
        return show(session, name, result)

    @guarded
    def search_by_result(
        session: ClipSession, name: str, n: float, evt: gr.SelectData
    ) -> tuple[Any, ...]:
        if evt.index is None or not 0 <= int(evt.index) < len(session.hits):
            raise gr.Error("That result is gone; search again.")
        hit = session.hits[int(evt.index)]
        result = service.search(session.index or name, Query(item_id=hit.item.id), int(n))
        return (*show(session, session.index or name, result), "", service.thumbnail(hit.item, 384))

    def picked(session: ClipSession, choice: Any) -> Any:
        if choice is None or not session.hits or not 0 <= int(choice) < len(session.hits):
            raise gr.Error("Search first, then pick a result.", title="No result picked")
        return session.hits[int(choice)]

    @guarded
    def explain(session: ClipSession, choice: Any, text: str) -> tuple[Any, str]:
        hit = picked(session, choice)
        ex = service.explain(session.index, hit.item.id, text)
        notes = "\n".join(f"- {n}" for n in ex.notes)
        return ex.overlay, (
            f"**{hit.item.name}** vs {ex.text!r}: cosine {ex.score:.3f}; largest drop "
            f"{float(ex.drops.max()):.4f} on a {ex.grid}x{ex.grid} grid ({ex.seconds:.1f} s).\n\n{notes}"
        )

    @guarded
    def remove(session: ClipSession, choice: Any) -> tuple[Any, ...]:
        hit = picked(session, choice)
        report = service.remove(session.index, ids=[hit.item.id])
        gr.Info(f"Removed {hit.item.name} from {report.index} ({report.total} images left).")
        session.hits = [h for h in session.hits if h.item.id != hit.item.id]
        picks = [(f"{h.rank}. {h.item.name}", i) for i, h in enumerate(session.hits)]
        items = [
            (service.thumbnail(h.item), f"{h.rank}. {h.item.name} · {h.score:.3f}")
            for h in session.hits
        ]
        return (
            items,
            gr.update(choices=picks, value=0 if picks else None),
            session,
            choices(session.index)[1],
        )

    @guarded
    def prune(name: str) -> str:
        report = service.remove(name, missing=True)
        gr.Info(f"Removed {report.removed} entries whose files are gone.")
        return choices(name)[1]

    @guarded
    def delete(name: str, sure: bool) -> tuple[Any, str, bool]:
        if not sure:
            raise gr.Error("Tick 'I want to delete this index' first.", title="Not deleted")
        service.delete(name)
        gr.Info(f"Deleted index {name}.")
        dropdown, text = choices(None)
        return dropdown, text, False

    @guarded
    def classify(image: Any, label_text: str, template_text: str) -> tuple[Any, str]:
        import pandas as pd

        result = service.classify(image, label_text, template_text)
        frame = pd.DataFrame(
            {"label": list(result.labels), "probability": list(result.probabilities)}
        )
        return frame, (
            f"**{result.top}** ({result.probabilities[0]:.1%}), {len(result.templates)} prompt "
            f"templates ensembled."
        )

    refresh_btn.click(refresh, index, [index, info], api_name="clip_indexes")
    index.change(refresh, index, [index, info], api_visibility="private", queue=False)
    samples_btn.click(lambda: str(SAMPLES), None, folder, api_visibility="private", queue=False)
    add_btn.click(
        add,
        [index, folder, upload],
        [index, info, add_report, skipped, upload],
        api_name="clip_add",
        concurrency_id="clip-embed",
        concurrency_limit=1,
    )
    missing_btn.click(
        prune, index, info, api_name="clip_prune", concurrency_id="clip-embed", concurrency_limit=1
    )
    delete_btn.click(
        delete,
        [index, confirm],
        [index, info, confirm],
        api_name="clip_delete",
        concurrency_id="clip-embed",
        concurrency_limit=1,
    )
    search_outputs = [gallery, status, pick, state]
    search_args = dict(concurrency_id="clip-query", concurrency_limit=limit)
    search_btn.click(
        search,
        [state, index, query, query_image, weight, k],
        search_outputs,
        api_name="clip_search",
        **search_args,
    )
    query.submit(
        search,
        [state, index, query, query_image, weight, k],
        search_outputs,
        api_visibility="private",
        **search_args,
    )
    gallery.select(
        search_by_result,
        [state, index, k],
        [*search_outputs, query, query_image],
        api_visibility="private",
        **search_args,
    )
    explain_btn.click(
        explain, [state, pick, query], [heat, heat_info], api_name="clip_explain", **search_args
    )
    remove_btn.click(
        remove,
        [state, pick],
        [gallery, pick, state, info],
        api_name="clip_remove",
        concurrency_id="clip-embed",
        concurrency_limit=1,
    )
    classify_btn.click(
        classify,
        [zs_image, labels, templates],
        [zs_plot, zs_top],
        api_name="clip_classify",
        **search_args,
    )
    return {
        "on_load": (lambda: choices(None), [index, info]),
        "index": index,
        "folder": folder,
        "upload": upload,
        "add": add_btn,
        "query": query,
        "query_image": query_image,
        "search": search_btn,
        "gallery": gallery,
        "classify": classify_btn,
        "plot": zs_plot,
    }
