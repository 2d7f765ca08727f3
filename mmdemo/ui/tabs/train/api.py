"""The training API: named endpoints with plain values in and data out (``/train``,
``/train_status``, ``/train_stop``, ``/evaluate``, ``/train_methods``, ``/train_devices``,
``/train_dataset``, ``/bakeoff_results``).

``/train_dataset(files)`` takes an uploaded dataset (a zip, or a JSONL with its images),
checks it and returns its ``dataset`` handle for ``/train``; a bad file is refused with its
cause and a fix."""

from __future__ import annotations

from types import MappingProxyType

import gradio as gr
from gradio.data_classes import FileData

from mmdemo.flows.limits import require_training
from mmdemo.flows.train import TrainService
from mmdemo.ui.common import guarded
from mmdemo.ui.context import AppContext
from mmdemo.ui.uploads import upload_path

# evaluations (API and tab) wait for their job in the queue, one at a time: a queue worker
# each, never an unbounded number of threads blocked on jobs
EVALUATE = MappingProxyType({"concurrency_id": "evaluate", "concurrency_limit": 1})


def owner_of(request: gr.Request | None) -> str | None:
    """The session a run belongs to (hosted: only it may read or stop the run)."""
    return getattr(request, "session_hash", None) or None


def register(ctx: AppContext, service: TrainService) -> None:
    """Named endpoints with plain values in and data out. Training, evaluating and checking a
    dataset are heavy; evaluation waits for its job in the queue, one at a time."""
    settings = ctx.settings

    def check() -> None:
        require_training(settings)  # before anything else, uploads included

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
        device: str = "auto",
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> dict:
        """Queue a training run on ``device`` (auto: the server's; cpu, cuda, cuda:N, mps
        where present: /train_devices lists them); returns {"id", "state", "position",
        "device"}."""
        check()
        run = dict(
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
        owner = owner_of(request)
        status = service.status(service.submit(run, owner, str(device or "auto")), owner)
        return {
            "id": status["id"],
            "state": status["state"],
            "position": status["position"],
            "device": status["request"]["device"],
        }

    @guarded
    def train_status(run_id: str, request: gr.Request = None) -> dict:  # type: ignore[assignment]
        """Step, loss history, memory, state, and the adapter's name once done (of a run this
        client started)."""
        return service.status(run_id, owner_of(request))

    @guarded
    def train_stop(run_id: str, request: gr.Request = None) -> dict:  # type: ignore[assignment]
        """Stop a queued or running run this client started (nothing is written to the
        adapter store)."""
        return service.stop(run_id, owner_of(request))

    @guarded
    def evaluate(
        adapter: str,
        dataset: str = "builtin",
        task: str = "vqa",
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> dict:
        """Metrics of an adapter (or "base") on a dataset's test split; ``task``: vqa,
        caption or grounding (IoU@0.5 accuracy and mean IoU, on the built-in set)."""
        check()
        return service.evaluate(adapter, dataset, owner=owner_of(request), task=task or "vqa")

    @guarded
    def train_dataset(files: list[FileData], task: str = "vqa") -> dict:
        """Check and keep an uploaded dataset (a .zip, or a .jsonl with its images): its
        "dataset" handle (pass it to /train), examples per split and the lines skipped."""
        check()
        from mmdemo.flows.train_data import checked_upload

        paths = [upload_path(f, "each dataset file") for f in files or []]
        return checked_upload(
            [p for p in paths if p],
            settings.runs_dir / "uploads",
            settings.max_upload_mb,
            task,
            settings.max_dataset_mb,
        )

    def train_methods() -> list:
        """The training methods: name, family (peft | own | full), summary, objective (sft:
        question/answer data; preference: chosen/rejected pairs, e.g. /votes_export's)."""
        return service.methods()

    def train_devices() -> list[str]:
        """The devices /train accepts here: auto, then those this server has."""
        return service.devices()

    def bakeoff_results() -> dict:
        """The measured real-weights bake-off (every method, same budget, median of seeds):
        when and where it was measured, the budget, the base model's scores, and per method
        its scores, gain over base as a share of LoRA's, cost; or the reason there is none."""
        return service.measured_bakeoff().as_dict()

    submit = dict(concurrency_id="train-submit", concurrency_limit=settings.concurrency)
    gr.api(ctx.heavy(train), api_name="train", **submit)
    gr.api(train_status, api_name="train_status", queue=False)
    gr.api(train_stop, api_name="train_stop", queue=False)
    gr.api(ctx.heavy(evaluate), api_name="evaluate", **EVALUATE)
    gr.api(train_methods, api_name="train_methods", queue=False)
    gr.api(train_devices, api_name="train_devices", queue=False)
    gr.api(guarded(bakeoff_results), api_name="bakeoff_results", queue=False)
    gr.api(ctx.heavy(train_dataset), api_name="train_dataset", **submit)
