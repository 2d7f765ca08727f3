"""The Fine-tune tab's event handlers: named methods that read widget values, call the
training service and return what the widgets show (the layout lives in ``layout.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import gradio as gr

from mmdemo.config import Settings
from mmdemo.errors import BadInputError, MMDemoError
from mmdemo.flows.limits import require_training
from mmdemo.flows.train import TrainService
from mmdemo.flows.train_data import stage_dataset
from mmdemo.flows.train_status import TERMINAL
from mmdemo.ui.common import guarded
from mmdemo.ui.tabs.train import view

BUILTIN, UPLOAD, FOLDER = "Built-in shapes (synthetic)", "Upload", "Folder on this server"


class TrainSession:
    """Per-browser state: the run on screen, the bake-off's runs, and who owns them (a hosted
    server shows a run only to the session that started it)."""

    def __init__(self) -> None:
        self.run_id = ""
        self.bakeoff: list[str] = []
        self.owner = f"ui-{uuid.uuid4().hex}"
        # the finished bake-off runs the picture on screen shows (None: draw it afresh)
        self.drawn: tuple[str, ...] | None = None


class TrainActions:
    """Handlers for one app: its settings, the training service, and the model id of the
    app's VLM (``current_model``: asked at each run, the System tab may swap it)."""

    def __init__(
        self, settings: Settings, service: TrainService, current_model: Callable[[], str]
    ) -> None:
        self.settings = settings
        self.service = service
        self.current_model = current_model

    def show(self, st: TrainSession, status: dict[str, Any] | None = None) -> tuple[Any, ...]:
        """Status line, loss curve, result, report and its pictures of the run on screen
        (``status``: a snapshot already read, else it is read now)."""
        s = status or (self.service.status(st.run_id, st.owner) if st.run_id else None)
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
    ) -> dict[str, Any]:
        """A run's settings from the widgets' values, checked (uploads staged first, once the
        training switch has been checked)."""
        settings = self.settings
        require_training(settings)
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
        current = self.current_model()
        run = dict(
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
        return self.service.checked(run)

    @guarded
    def start(self, st: TrainSession, device: str, *values: Any) -> tuple[Any, ...]:
        st.run_id = self.service.submit(self.config_of(*values), st.owner, device)
        return (st, *self.show(st), gr.Timer(active=True))

    def poll(self, st: TrainSession) -> tuple[Any, ...]:
        """What the timer refreshes; the timer stops once nothing of this user's is running.
        One status snapshot both draws the run and decides whether to poll again: read twice,
        a run that finished in between stopped the timer with "running" left on screen."""
        snapshot = self.service.status(st.run_id, st.owner) if st.run_id else None
        shown = self.show(st, snapshot)
        running = snapshot is not None and snapshot["state"] not in TERMINAL
        bake = [self.service.status(i, st.owner) for i in st.bakeoff]
        bake_running = any(s["state"] not in TERMINAL for s in bake)
        # no bake-off of this visitor's: the panel keeps what it shows (the measured one)
        bake_view = self.visitor_view(st, bake) if bake else (gr.update(),) * 3
        return (*shown, *bake_view, gr.Timer(active=bool(running or bake_running)))

    def bakeoff_view(self, st: TrainSession) -> tuple[Any, ...]:
        """The bake-off panel: this visitor's own runs once they started some, else the
        measured real-weights bake-off (a missing or damaged file: one line saying so)."""
        if st.bakeoff:
            st.drawn = None  # the panel was reopened: draw again
            return self.visitor_view(st, [self.service.status(i, st.owner) for i in st.bakeoff])
        try:
            measured = self.service.measured_bakeoff()
        except MMDemoError as exc:
            return f"**No measured bake-off to show:** {exc}", view.empty_table(), None
        return (
            view.measured_caption(measured),
            view.measured_table(measured),
            view.measured_figure(measured),
        )

    def visitor_view(self, st: TrainSession, bake: list[dict[str, Any]]) -> tuple[Any, ...]:
        """Caption, table, picture (redrawn only when another run finished)."""
        done = tuple(s["id"] for s in bake if s["state"] == "done")
        picture: Any = gr.update()
        if done != st.drawn:
            st.drawn = done
            points = view.visitor_points(bake)
            picture = view.figure(points, "training peak memory")
        return (
            view.visitor_caption(bake),
            view.visitor_table(bake),
            picture,
        )

    @guarded
    def stop(self, st: TrainSession) -> tuple[Any, ...]:
        if not st.run_id:
            raise gr.Error("No run to stop.")
        self.service.stop(st.run_id, st.owner)
        return self.show(st)

    @guarded
    def bakeoff(
        self, st: TrainSession, methods: list[str], device: str, *values: Any
    ) -> tuple[Any, ...]:
        """Queue one run per ticked method with the same data, steps and knobs; the panel
        shows these runs from now on."""
        if not methods:
            raise gr.Error("Tick at least one method.")
        model, *knobs = values
        base = self.config_of(model, "lora", *knobs)
        st.bakeoff = [
            self.service.submit({**base, "method": m, "name": ""}, st.owner, device)
            for m in methods
        ]
        st.drawn = None  # the measured picture goes: these runs' (none finished yet) comes
        bake = [self.service.status(i, st.owner) for i in st.bakeoff]
        return st, *self.visitor_view(st, bake), gr.Timer(active=True)

    @guarded
    def evaluate(self, st: TrainSession, adapter: str, dataset: str) -> dict:
        return self.service.evaluate(
            adapter.strip() or "base", dataset.strip() or "builtin", owner=st.owner
        )

    @staticmethod
    def toggle_source(source: str) -> tuple[Any, Any]:
        return gr.update(visible=source == UPLOAD), gr.update(visible=source == FOLDER)
