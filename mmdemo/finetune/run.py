"""A whole training run: data, base model, method, stages, evaluation, adapter, report.

``train_adapter`` is what the Train tab's worker process, ``python -m mmdemo train`` and the
benchmark all call; it reads as its steps, one small function each, and reports through typed
events (``events.py``). What differs between methods is behind the method's hooks
(``prepare``, ``run_stage``, ``save``...): the run never asks which method it has. The adapter is written to a hidden staging folder and renamed into the
store only when complete, so a crash or a stop never leaves half an adapter behind. A run
never replaces an adapter: when its name was taken while it trained (an upload, another
run), it is stored as ``name-2`` (``-3``...) and its result says so.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmdemo.config import Settings
from mmdemo.errors import BadInputError
from mmdemo.finetune import inputs
from mmdemo.finetune.collate import Collator
from mmdemo.finetune.config import TrainConfig
from mmdemo.finetune.data import Example
from mmdemo.finetune.events import Done, EvalProgress, Event, Phase, Start
from mmdemo.finetune.processes import is_main_process, process_count, process_device
from mmdemo.finetune.progress import Emit, MemorySampler, StepMeter, StopSwitch
from mmdemo.finetune.save import store_adapter, write_predictions
from mmdemo.finetune.stage import Stage, StageEnv
from mmdemo.models.adapters import BUILTIN_DIR, name_taken

if TYPE_CHECKING:
    from mmdemo.finetune.methods import Method, Plan


@dataclass
class RunEnv:
    """Where a run writes and how it reports."""

    settings: Settings
    run_dir: Path
    emit: Emit
    stop: StopSwitch = field(default_factory=StopSwitch)
    adapters_dir: Path | None = None  # default: the store (settings.adapters_dir)


@dataclass
class RunResult:
    adapter: str
    path: Path
    metrics: dict[str, float]
    val_loss: float | None
    loss_history: list[tuple[int, float]]
    rank_scores: dict[int, dict[str, float]]
    trainable: int
    total: int
    peak_memory_bytes: int
    inference_memory_bytes: int
    train_seconds: float
    report: Path | None = None
    data: str = ""
    notes: list[str] = field(default_factory=list)


def default_name(cfg: TrainConfig) -> str:
    data = "builtin" if cfg.dataset == "builtin" else Path(cfg.dataset).stem[:20] or "data"
    stamp = time.strftime("%m%d-%H%M%S")
    return f"{cfg.method}-{data}-{stamp}".replace(" ", "-")


def train_adapter(
    cfg: TrainConfig, env: RunEnv, data: dict[str, tuple[inputs.Splits, str]] | None = None
) -> RunResult:
    """Train, evaluate and store one adapter; emits Phase, Start, Step, EvalProgress and Done.

    ``data`` (task -> (splits, description)) replaces reading ``cfg.dataset`` (callers with
    examples in memory, such as the demo adapters).

    Under ``accelerate launch`` (or ``torchrun``) every process runs this: each trains on its
    share of every batch (``batch_size`` per process), and only the main one emits events,
    evaluates and writes the adapter; the others return after training."""
    from transformers import set_seed

    from mmdemo.finetune.methods import get_method
    from mmdemo.finetune.precision import use_bf16
    from mmdemo.finetune.targets import find_targets
    from mmdemo.models.device import pick_device

    started = time.perf_counter()
    main, processes = is_main_process(), process_count()
    if not main:  # one process reports (and saves)
        env = dataclasses.replace(env, emit=_silent)
    settings = env.settings.replace(**{cfg.base: cfg.model}) if cfg.model else env.settings
    method = get_method(cfg.method)
    device = process_device(pick_device(settings.device))
    method.check(device)
    dest = _destination(cfg, env, settings)
    work = env.run_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    env.emit(Phase("data", "reading the data"))
    stage_data, described = inputs.read_data(cfg, settings, data)
    env.stop.check()
    env.emit(Phase("load", "loading the base model"))
    set_seed(cfg.seed)
    base = inputs.load_for_training(cfg, settings, device, method)
    stages, notes = inputs.build_stages(cfg, method, base, stage_data)
    final = stage_data[stages[-1].name]
    test = inputs.held_out_examples(cfg, final, notes)
    inference_memory = inputs.inference_memory(
        base.model, base.collator, stages[0].examples, cfg, device
    )
    env.stop.check()
    plan = method.prepare(base.model, cfg, find_targets(base.model, cfg.attach), work)
    if processes > 1 and plan.own_loop:
        raise BadInputError(
            f"{cfg.method} trains in one process: it has no gradients to share between "
            f"the {processes} processes launched",
            fix="run it with python -m mmdemo train, without accelerate launch",
        )
    bf16 = use_bf16(cfg.bf16, device, plan.total)
    ready = Prepared(cfg, method, plan, base.collator, device, bf16, work)
    env.emit(
        Start(
            adapter=dest.name,
            method=cfg.method,
            total_steps=sum(s.steps for s in stages),
            trainable=plan.trainable,
            total=plan.total,
            bf16=bf16,
            device=device,
            processes=processes,
            data=described,
            inference_memory_bytes=inference_memory,
            model_memory_bytes=base.memory_bytes,
        )
    )
    trained = _train(ready, stages, env)
    train_seconds = time.perf_counter() - started
    env.stop.check()
    if not main:  # the main process evaluates and writes the one adapter
        shutil.rmtree(work, ignore_errors=True)
        return RunResult(
            adapter=dest.name,
            path=dest.store_dir / dest.name,
            metrics={},
            val_loss=None,
            loss_history=trained.history,
            rank_scores={},
            trainable=plan.trainable,
            total=plan.total,
            peak_memory_bytes=trained.peak_memory_bytes,
            inference_memory_bytes=inference_memory,
            train_seconds=train_seconds,
            data=described,
            notes=["trained as a helper process; the main process evaluated and saved"],
        )
    scores = _score(ready, final["validation"], test, env)
    result = RunResult(
        adapter=dest.name,
        path=dest.store_dir / dest.name,
        metrics=scores.metrics,
        val_loss=scores.val_loss,
        loss_history=trained.history,
        rank_scores=scores.rank_scores,
        trainable=plan.trainable,
        total=plan.total,
        peak_memory_bytes=trained.peak_memory_bytes,
        inference_memory_bytes=inference_memory,
        train_seconds=train_seconds,
        data=described,
        notes=notes,
    )
    write_predictions(env.run_dir, scores.rows)
    env.stop.check()
    store_adapter(
        ready, result, scores.rows, env.run_dir, (base.model_id, base.family), dest.builtin
    )
    shutil.rmtree(work, ignore_errors=True)
    env.emit(
        Done(
            adapter=result.adapter,
            requested_name=dest.name,
            notes=result.notes,
            metrics=scores.metrics,
            path=str(result.path),
            val_loss=scores.val_loss,
            rank_scores={str(k): v for k, v in scores.rank_scores.items()},
            train_seconds=round(trained.seconds, 2),
            peak_memory_bytes=trained.peak_memory_bytes,
        )
    )
    return result


# -- the steps of a run, in order (those that read its inputs: inputs.py) -----------------


@dataclass(frozen=True)
class Destination:
    """Where the adapter goes: its name, the store, and the built-in folder whose names it
    keeps clear of (None when it goes elsewhere)."""

    name: str
    store_dir: Path
    builtin: Path | None


def _destination(cfg: TrainConfig, env: RunEnv, settings: Settings) -> Destination:
    """The adapter's name and store, refused before any work when the name is taken."""
    name = cfg.name or default_name(cfg)
    # text-only adapters stay with their run: the store serves the VLM
    default_store = env.run_dir / "adapters" if cfg.base == "llm" else settings.adapters_dir
    store_dir = env.adapters_dir or default_store
    builtin = BUILTIN_DIR if store_dir == settings.adapters_dir else None
    if name_taken(store_dir, name, builtin):
        raise BadInputError(
            f"an adapter called {name!r} already exists", fix="choose another name or delete it"
        )
    return Destination(name, store_dir, builtin)


def _silent(event: Event) -> None:
    """Where a helper process's events go (the main process reports the run)."""


@dataclass(frozen=True)
class Prepared:
    """A run past ``Method.prepare``: what its training, scoring and saving steps share."""

    cfg: TrainConfig
    method: Method
    plan: Plan
    collator: Collator
    device: str
    bf16: bool  # under bf16 autocast
    work: Path  # the run's scratch folder


@dataclass(frozen=True)
class Trained:
    history: list[tuple[int, float]]  # (step, loss)
    peak_memory_bytes: int
    seconds: float  # the training steps alone


def _train(ready: Prepared, stages: list[Stage], env: RunEnv) -> Trained:
    """Every stage in turn, each trained by the method (the Trainer, or its own loop)."""
    started = time.perf_counter()
    with MemorySampler(ready.device) as memory:
        meter = StepMeter(env.emit, sum(s.steps for s in stages), memory)
        shared = StageEnv(
            ready.collator, ready.cfg, ready.device, ready.bf16, meter, env.stop, ready.work
        )
        for stage in stages:
            env.emit(Phase(stage.name, f"training: {stage.name}"))
            ready.method.run_stage(ready.plan, stage, shared)
    return Trained(meter.history, memory.peak, time.perf_counter() - started)


@dataclass(frozen=True)
class Scores:
    val_loss: float | None
    metrics: dict[str, float]
    rows: list[Any]  # per-question results
    rank_scores: dict[int, dict[str, float]]  # DyLoRA: metrics at each other rank


def _score(ready: Prepared, validation: list[Example], test: list[Example], env: RunEnv) -> Scores:
    """Validation loss, held-out scores, and the scores at each other rank the method serves."""
    from mmdemo.finetune.evaluate import evaluate
    from mmdemo.finetune.loop import validation_loss

    model, collator, device, bf16 = ready.plan.model, ready.collator, ready.device, ready.bf16
    env.emit(Phase("eval", f"evaluating on {len(test)} questions"))
    val_loss = validation_loss(model, collator, validation, device, bf16=bf16)

    def eval_progress(done: int, of: int) -> None:
        env.emit(EvalProgress(done, of))

    metrics, rows = (
        evaluate(model, collator, test, device, eval_progress, bf16) if test else ({}, [])
    )
    if test:  # what the method measures beside the answers (DPO: its preference margins)
        metrics.update(ready.method.extra_metrics(ready.plan, ready.cfg, collator, test, device))
    rank_scores = {}
    for rank in ready.method.rank_variants(ready.plan, ready.cfg):
        env.stop.check()
        ready.method.set_rank(ready.plan, rank)
        rank_scores[rank], _ = evaluate(ready.plan.model, collator, test, device, bf16=bf16)
    ready.method.set_rank(ready.plan, ready.cfg.rank)
    return Scores(val_loss, metrics, rows, rank_scores)
