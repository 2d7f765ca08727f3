"""The training API: named endpoints with plain values in and data out (``/train``,
``/train_status``, ``/train_stop``, ``/evaluate``, ``/train_methods``, ``/train_dataset``).

``/train_dataset(files)`` takes an uploaded dataset (a zip, or a JSONL with its images),
checks it and returns its ``dataset`` handle for ``/train``; a bad file is refused with its
cause and a fix."""

from __future__ import annotations

import gradio as gr
from gradio.data_classes import FileData

from mmdemo.errors import BadInputError
from mmdemo.finetune.config import TrainConfig
from mmdemo.finetune.methods import METHODS
from mmdemo.flows.train import TrainService
from mmdemo.ui.common import guarded
from mmdemo.ui.context import AppContext
from mmdemo.ui.uploads import upload_path


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

    @guarded
    def train_dataset(files: list[FileData], task: str = "vqa") -> dict:
        """Check and keep an uploaded dataset (a .zip, or a .jsonl with its images): its
        "dataset" handle (pass it to /train), examples per split and the lines skipped."""
        check()
        from mmdemo.flows.train_data import checked_upload

        paths = [upload_path(f, "each dataset file") for f in files or []]
        settings = ctx.settings
        return checked_upload(
            [p for p in paths if p],
            settings.runs_dir / "uploads",
            settings.max_upload_mb,
            task,
            settings.max_dataset_mb,
        )

    def train_methods() -> list:
        """The training methods: name, family (peft | own | full), summary."""
        return [{"name": n, "family": i.family, "summary": i.summary} for n, i in METHODS.items()]

    gr.api(train, api_name="train", concurrency_limit=None)
    gr.api(train_status, api_name="train_status", concurrency_limit=None, queue=False)
    gr.api(train_stop, api_name="train_stop", concurrency_limit=None, queue=False)
    gr.api(evaluate, api_name="evaluate", concurrency_limit=None)
    gr.api(train_methods, api_name="train_methods", queue=False)
    gr.api(train_dataset, api_name="train_dataset", concurrency_limit=None)
