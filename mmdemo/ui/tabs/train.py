"""Train tab: pick a method, data and a few knobs; watch the loss, tokens/s, memory and ETA;
stop; chat with the adapter a moment later. A bake-off trains several methods on the same data
and step budget. The work is done by ``TrainService`` (mmdemo.flows.train)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import gradio as gr

from mmdemo.errors import BadInputError
from mmdemo.finetune.config import TrainConfig
from mmdemo.finetune.methods import METHODS
from mmdemo.flows.train import TERMINAL, TrainService
from mmdemo.models.archive import safe_extract
from mmdemo.ui import train_view as view
from mmdemo.ui.common import guarded
from mmdemo.ui.context import AppContext

BUILTIN, UPLOAD, FOLDER = "Built-in shapes (synthetic)", "Upload", "Folder on this server"
BAKEOFF_DEFAULT = ["lora", "dora", "ia3", "lora-fa", "dylora", "bottleneck", "lomo", "mezo"]
DATA_SUFFIXES = (".jsonl", ".json", ".zip", ".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


class TrainSession:
    """Per-browser state: the run on screen and the bake-off's runs."""

    def __init__(self) -> None:
        self.run_id = ""
        self.bakeoff: list[str] = []


def train_service(ctx: AppContext) -> TrainService:
    return ctx.services.setdefault("train", TrainService(ctx.settings))


def stage_dataset(files: list[str], root: Path, max_bytes: int) -> Path:
    """Put an uploaded dataset (a zip, or a JSONL with its images) into its own folder."""
    if not files:
        raise BadInputError("no dataset files uploaded", fix="upload a zip or a JSONL + images")
    folder = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9}"
    folder.mkdir(parents=True)
    paths = [Path(f) for f in files]
    for path in paths:
        if path.suffix.lower() not in DATA_SUFFIXES:
            raise BadInputError(
                f"{path.name} is not a dataset file",
                fix="upload a .zip, or a .jsonl with its images (.png, .jpg, ...)",
            )
    if len(paths) == 1 and paths[0].suffix.lower() == ".zip":
        safe_extract(paths[0], folder, max_bytes=max_bytes, max_files=50_000)
    else:
        for path in paths:
            shutil.copy2(path, folder / path.name)
    return folder


def base_choices(ctx: AppContext) -> list[str]:
    """The app's VLM first, then the offline tiny builds of both families."""
    current = ctx.manager.model_id("vlm")
    return list(dict.fromkeys([current, "tiny:smolvlm", "tiny:qwen2vl"]))


def build(ctx: AppContext) -> dict[str, Any]:
    service = train_service(ctx)
    allowed = ctx.settings.allow_training
    gr.Markdown(
        "Adapt the VLM to your data: pick a method, the data and a few knobs, press **Train**. "
        "Runs queue and train one at a time in a separate process, so chat keeps answering. "
        "The finished adapter is in the chat and arena menus at once."
        if allowed
        else "Training is turned off on this server (`MMDEMO_ALLOW_TRAINING=false`)."
    )
    state = gr.State(TrainSession)
    with gr.Row(visible=allowed):
        with gr.Column(scale=2, min_width=320):
            base_model = gr.Dropdown(
                base_choices(ctx),
                value=ctx.manager.model_id("vlm"),
                label="Base model",
                info="Adapters serve on this VLM; another one is loaded in the System tab",
                allow_custom_value=True,
                elem_id="train-base",
            )
            method = gr.Dropdown(
                [(f"{name} — {info.summary}", name) for name, info in METHODS.items()],
                value="lora",
                label="Method",
                elem_id="train-method",
            )
            source = gr.Radio([BUILTIN, UPLOAD, FOLDER], value=BUILTIN, label="Data")
            upload = gr.File(
                label="A zip, or a JSONL file with its images",
                file_count="multiple",
                file_types=list(DATA_SUFFIXES),
                visible=False,
                elem_id="train-upload",
            )
            folder = gr.Textbox(
                label="Dataset folder or JSONL (our JSONL, a VQA-RAD or a SLAKE copy)",
                visible=False,
                elem_id="train-folder",
            )
            stages = gr.Radio(
                [
                    ("VQA", "vqa"),
                    ("Captioning", "caption"),
                    ("Two-stage: caption, then VQA", "two-stage"),
                ],
                value="vqa",
                label="Stages",
            )
            attach = gr.Radio(
                [
                    ("Language model", "language"),
                    ("+ projector", "language+projector"),
                    ("+ vision tower", "all"),
                ],
                value="language",
                label="Attach to",
            )
            with gr.Accordion("Knobs", open=False):
                steps = gr.Slider(1, 5000, value=200, step=1, label="Steps", elem_id="train-steps")
                batch = gr.Slider(1, 64, value=8, step=1, label="Batch size")
                lr = gr.Number(0.0, label="Learning rate (0: the method's default)")
                rank = gr.Slider(1, 128, value=8, step=1, label="Rank (bottleneck: width)")
                seed = gr.Number(0, precision=0, label="Seed")
                scale = gr.Slider(
                    0.05,
                    1.0,
                    value=1.0,
                    step=0.05,
                    label="Share of the built-in set",
                    elem_id="train-scale",
                )
                placement = gr.Radio(
                    ["parallel", "series"], value="parallel", label="Bottleneck placement"
                )
            name = gr.Textbox(label="Adapter name (optional)", elem_id="train-name")
            with gr.Row():
                start_btn = gr.Button("Train", variant="primary", elem_id="train-start")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="train-stop")
        with gr.Column(scale=3):
            status = gr.Markdown(view.status_md(None), elem_id="train-status")
            loss = gr.LinePlot(
                view.loss_rows(None),
                x="step",
                y="loss",
                title="Training loss",
                height=260,
                elem_id="train-loss",
            )
            result = gr.Markdown(elem_id="train-result")
            pictures = gr.Gallery(
                label="Report pictures", columns=3, height=220, elem_id="train-pictures"
            )
            with gr.Accordion("Report", open=False):
                report = gr.Markdown(elem_id="train-report")
    with gr.Accordion(
        "Bake-off: several methods, same data and step budget", open=False, visible=allowed
    ):
        with gr.Row():
            bake_methods = gr.CheckboxGroup(list(METHODS), value=BAKEOFF_DEFAULT, label="Methods")
            bake_btn = gr.Button("Run bake-off", elem_id="train-bakeoff")
        bake_table = gr.Dataframe(
            headers=view.BAKEOFF_HEADERS, interactive=False, elem_id="train-bakeoff-table"
        )
        with gr.Row():
            bake_plot = gr.BarPlot(
                view.bakeoff_scores([]), x="method", y="overall", title="Overall score", height=240
            )
            bake_memory = gr.BarPlot(
                view.bakeoff_memory([]),
                x="method",
                y="MB",
                color="kind",
                title="Peak memory: training vs. one inference forward",
                height=240,
            )
    with gr.Accordion("Evaluate an adapter", open=False, visible=allowed):
        with gr.Row():
            eval_adapter = gr.Textbox("base", label="Adapter (or base)")
            eval_data = gr.Textbox("builtin", label="Dataset (builtin, or a path)")
            eval_btn = gr.Button("Evaluate")
        eval_out = gr.JSON(label="Metrics")
    timer = gr.Timer(1.0, active=False)
    outputs = [status, loss, result, report, pictures]

    def show(st: TrainSession) -> tuple[Any, ...]:
        s = service.status(st.run_id) if st.run_id else None
        return (
            view.status_md(s),
            view.loss_rows(s),
            view.result_md(s),
            view.report_text(s),
            view.report_images(s),
        )

    def config_of(
        model, m, src, files, path, stg, att, n_steps, n_batch, rate, r, sd, share, place, nm
    ) -> TrainConfig:
        if src == UPLOAD:
            max_bytes = ctx.settings.max_upload_mb * 2**20
            dataset = str(stage_dataset(files or [], ctx.settings.runs_dir / "uploads", max_bytes))
        elif src == FOLDER:
            if not (path or "").strip():
                raise BadInputError(
                    "no dataset folder given", fix="type the path of a folder or JSONL"
                )
            dataset = path.strip()
        else:
            dataset = "builtin"
        return TrainConfig(
            model="" if model == ctx.manager.model_id("vlm") else (model or "").strip(),
            method=m,
            dataset=dataset,
            stages=stg,
            attach=att,
            steps=int(n_steps),
            batch_size=int(n_batch),
            lr=float(rate or 0),
            rank=int(r),
            seed=int(sd or 0),
            scale=float(share),
            placement=place,
            name=(nm or "").strip(),
        )

    @guarded
    def start(st: TrainSession, *values: Any):
        st.run_id = service.submit(config_of(*values))
        return (st, *show(st), gr.Timer(active=True))

    def poll(st: TrainSession):
        shown = show(st)
        running = st.run_id and service.status(st.run_id)["state"] not in TERMINAL
        bake = [service.status(i) for i in st.bakeoff]
        bake_running = any(s["state"] not in TERMINAL for s in bake)
        return (
            *shown,
            view.bakeoff_rows(bake),
            view.bakeoff_scores(bake),
            view.bakeoff_memory(bake),
            gr.Timer(active=bool(running or bake_running)),
        )

    @guarded
    def stop(st: TrainSession):
        if not st.run_id:
            raise gr.Error("No run to stop.")
        service.stop(st.run_id)
        return show(st)

    @guarded
    def bakeoff(st: TrainSession, methods: list[str], model: str, *values: Any):
        if not methods:
            raise gr.Error("Tick at least one method.")
        base = config_of(model, "lora", *values)
        st.bakeoff = [
            service.submit(TrainConfig.from_dict({**base.to_dict(), "method": m, "name": ""}))
            for m in methods
        ]
        return st, view.bakeoff_rows([service.status(i) for i in st.bakeoff]), gr.Timer(active=True)

    @guarded
    def evaluate_ui(adapter: str, dataset: str) -> dict:
        return service.evaluate(adapter.strip() or "base", dataset.strip() or "builtin")

    def toggle(src: str):
        return gr.update(visible=src == UPLOAD), gr.update(visible=src == FOLDER)

    knobs = [
        source,
        upload,
        folder,
        stages,
        attach,
        steps,
        batch,
        lr,
        rank,
        seed,
        scale,
        placement,
        name,
    ]
    source.change(toggle, source, [upload, folder], queue=False, api_visibility="private")
    start_btn.click(
        start,
        [state, base_model, method, *knobs],
        [state, *outputs, timer],
        api_visibility="private",
    )
    stop_btn.click(stop, state, outputs, api_visibility="private")
    timer.tick(
        poll,
        state,
        [*outputs, bake_table, bake_plot, bake_memory, timer],
        api_visibility="private",
        queue=False,
    )
    bake_btn.click(
        bakeoff,
        [state, bake_methods, base_model, *knobs],
        [state, bake_table, timer],
        api_visibility="private",
    )
    eval_btn.click(evaluate_ui, [eval_adapter, eval_data], eval_out, api_visibility="private")
    register_api(ctx, service)
    return {"method": method, "start": start_btn, "status": status, "state": state, "timer": timer}


def register_api(ctx: AppContext, service: TrainService) -> None:
    """Named endpoints with plain values in and data out."""
    allowed = ctx.settings.allow_training

    def check() -> None:
        if not allowed:
            raise BadInputError("training is turned off on this server", fix="ask its operator")

    @guarded
    def train(
        method: str = "lora",
        dataset: str = "builtin",
        stages: str = "vqa",
        steps: int = 200,
        batch_size: int = 8,
        learning_rate: float = 0.0,
        rank: int = 8,
        attach: str = "language",
        adapter_name: str = "",
        seed: int = 0,
    ) -> dict:
        """Queue a training run; returns {"id", "state", "position"}."""
        check()
        cfg = TrainConfig(
            method=method,
            dataset=dataset,
            stages=stages,
            steps=int(steps),
            batch_size=int(batch_size),
            lr=float(learning_rate),
            rank=int(rank),
            attach=attach,
            name=adapter_name,
            seed=int(seed),
        )
        status = service.status(service.submit(cfg))
        return {"id": status["id"], "state": status["state"], "position": status["position"]}

    @guarded
    def train_status(run_id: str) -> dict:
        """Step, loss history, memory, state, and the adapter's name once done."""
        return service.status(run_id)

    @guarded
    def train_stop(run_id: str) -> dict:
        """Stop a queued or running run (nothing is written to the adapter store)."""
        return service.stop(run_id)

    @guarded
    def evaluate(adapter: str, dataset: str = "builtin") -> dict:
        """Metrics of an adapter (or "base") on a dataset's test split."""
        check()
        return service.evaluate(adapter, dataset)

    def train_methods() -> list:
        """The training methods: name, family (peft | own | full), summary."""
        return [{"name": n, "family": i.family, "summary": i.summary} for n, i in METHODS.items()]

    gr.api(train, api_name="train", concurrency_limit=None)
    gr.api(train_status, api_name="train_status", concurrency_limit=None, queue=False)
    gr.api(train_stop, api_name="train_stop", concurrency_limit=None, queue=False)
    gr.api(evaluate, api_name="evaluate", concurrency_limit=None)
    gr.api(train_methods, api_name="train_methods", queue=False)
