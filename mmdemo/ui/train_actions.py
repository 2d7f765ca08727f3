"""The Fine-tune tab's event handlers: named methods that read widget values, call the
training service and return what the widgets show (the layout lives in ``tabs/train.py``)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import gradio as gr

from mmdemo.errors import BadInputError
from mmdemo.finetune.config import TrainConfig
from mmdemo.flows.train import TERMINAL, TrainService
from mmdemo.models.archive import safe_extract
from mmdemo.ui import train_view as view
from mmdemo.ui.common import guarded
from mmdemo.ui.context import AppContext

BUILTIN, UPLOAD, FOLDER = "Built-in shapes (synthetic)", "Upload", "Folder on this server"
DATA_SUFFIXES = (".jsonl", ".json", ".zip", ".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


class TrainSession:
    """Per-browser state: the run on screen and the bake-off's runs."""

    def __init__(self) -> None:
        self.run_id = ""
        self.bakeoff: list[str] = []


def stage_dataset(files: list[str], root: Path, max_bytes: int) -> Path:
    """Put an uploaded dataset (a zip, or a JSONL with its images) into its own folder."""
    if not files:
        raise BadInputError("no dataset files uploaded", fix="upload a zip or a JSONL + images")
    paths = [Path(f) for f in files]
    for path in paths:
        if path.suffix.lower() not in DATA_SUFFIXES:
            raise BadInputError(
                f"{path.name} is not a dataset file",
                fix="upload a .zip, or a .jsonl with its images (.png, .jpg, ...)",
            )
        if path.stat().st_size == 0:
            raise BadInputError(f"{path.name} is empty (0 bytes)", fix="upload it again")
    if not any(p.suffix.lower() in (".zip", ".jsonl", ".json") for p in paths):
        raise BadInputError(
            "no dataset file among the uploads (only images)",
            fix="add the .jsonl that lists image, question and answer, or upload a .zip",
        )
    folder = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9}"
    folder.mkdir(parents=True)
    try:
        if len(paths) == 1 and paths[0].suffix.lower() == ".zip":
            safe_extract(paths[0], folder, max_bytes=max_bytes, max_files=50_000)
        else:
            for path in paths:
                shutil.copy2(path, folder / path.name)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # a refused upload leaves nothing behind
        raise
    return folder


def checked_upload(files: list[str], root: Path, max_upload_mb: int, task: str) -> dict:
    """Stage an uploaded dataset and read it once (malformed or non-UTF-8 lines, missing
    images ... are refused or listed now, not when the run starts); the staged folder is
    removed again when the data cannot be used."""
    from mmdemo.finetune.formats import load_dataset

    folder = stage_dataset(files, root, max_upload_mb * 2**20)
    try:
        data = load_dataset(str(folder), task)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return {
        "dataset": str(folder),
        "layout": data.report.layout,
        "examples": dict(data.report.counts),
        "skipped": list(data.report.problems),
    }


class TrainActions:
    """Handlers for one app: the service, the settings, and the app's current VLM."""

    def __init__(self, ctx: AppContext, service: TrainService):
        self.ctx = ctx
        self.service = service

    def show(self, st: TrainSession) -> tuple[Any, ...]:
        """Status line, loss curve, result, report and its pictures of the run on screen."""
        s = self.service.status(st.run_id) if st.run_id else None
        return (
            view.status_md(s),
            view.loss_rows(s),
            view.result_md(s),
            view.report_text(s),
            view.report_images(s),
        )

    def config_of(
        self,
        model: str,
        method: str,
        source: str,
        files: list[str] | None,
        folder: str,
        stages: str,
        attach: str,
        steps: float,
        batch: float,
        lr: float | None,
        rank: float,
        seed: float | None,
        scale: float,
        placement: str,
        name: str,
    ) -> TrainConfig:
        """A checked TrainConfig from the widgets' values (uploads staged first)."""
        settings = self.ctx.settings
        if source == UPLOAD:
            max_bytes = settings.max_upload_mb * 2**20
            dataset = str(stage_dataset(files or [], settings.runs_dir / "uploads", max_bytes))
        elif source == FOLDER:
            if not (folder or "").strip():
                raise BadInputError(
                    "no dataset folder given", fix="type the path of a folder or JSONL"
                )
            dataset = folder.strip()
        else:
            dataset = "builtin"
        current = self.ctx.manager.model_id("vlm")
        return TrainConfig(
            model="" if model == current else (model or "").strip(),
            method=method,
            dataset=dataset,
            stages=stages,
            attach=attach,
            steps=int(steps),
            batch_size=int(batch),
            lr=float(lr or 0),
            rank=int(rank),
            seed=int(seed or 0),
            scale=float(scale),
            placement=placement,
            name=(name or "").strip(),
        )

    @guarded
    def start(self, st: TrainSession, *values: Any) -> tuple[Any, ...]:
        st.run_id = self.service.submit(self.config_of(*values))
        return (st, *self.show(st), gr.Timer(active=True))

    def poll(self, st: TrainSession) -> tuple[Any, ...]:
        """What the timer refreshes; the timer stops once nothing of this user's is running."""
        shown = self.show(st)
        running = st.run_id and self.service.status(st.run_id)["state"] not in TERMINAL
        bake = [self.service.status(i) for i in st.bakeoff]
        bake_running = any(s["state"] not in TERMINAL for s in bake)
        return (
            *shown,
            view.bakeoff_rows(bake),
            view.bakeoff_scores(bake),
            view.bakeoff_memory(bake),
            gr.Timer(active=bool(running or bake_running)),
        )

    @guarded
    def stop(self, st: TrainSession) -> tuple[Any, ...]:
        if not st.run_id:
            raise gr.Error("No run to stop.")
        self.service.stop(st.run_id)
        return self.show(st)

    @guarded
    def bakeoff(self, st: TrainSession, methods: list[str], *values: Any) -> tuple[Any, ...]:
        """Queue one run per ticked method with the same data, steps and knobs."""
        if not methods:
            raise gr.Error("Tick at least one method.")
        model, *knobs = values
        base = self.config_of(model, "lora", *knobs).to_dict()
        st.bakeoff = [
            self.service.submit(TrainConfig.from_dict({**base, "method": m, "name": ""}))
            for m in methods
        ]
        rows = view.bakeoff_rows([self.service.status(i) for i in st.bakeoff])
        return st, rows, gr.Timer(active=True)

    @guarded
    def evaluate(self, adapter: str, dataset: str) -> dict:
        return self.service.evaluate(adapter.strip() or "base", dataset.strip() or "builtin")

    @staticmethod
    def toggle_source(source: str) -> tuple[Any, Any]:
        return gr.update(visible=source == UPLOAD), gr.update(visible=source == FOLDER)
