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
from mmdemo.finetune.collate import Collator, drop_too_long
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

Splits = dict[str, list[Example]]  # train / validation / test


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


def load_stage_data(
    cfg: TrainConfig, task: str, max_side: int, max_mb: int = 200
) -> tuple[dict, str]:
    """Splits for one task ("vqa", "caption" or "preference") and a line describing where
    they came from."""
    if task == "preference":
        from mmdemo.finetune.preferences import preference_data

        return preference_data(cfg.dataset, cfg.base, cfg.scale, max_side, max_mb)
    if cfg.dataset == "builtin":
        from mmdemo.finetune.synthetic import synthetic_dataset

        if cfg.base == "llm":
            from mmdemo.finetune.textdata import text_dataset

            return text_dataset(cfg.scale), "built-in text facts"
        return synthetic_dataset(task, cfg.scale), f"built-in synthetic shapes ({task})"
    from mmdemo.finetune.formats import load_dataset

    source = cfg.extra.get("caption_dataset", cfg.dataset) if task == "caption" else cfg.dataset
    data = load_dataset(source, task, max_side, max_mb)
    return data.splits, data.report.describe()


def load_base(cfg: TrainConfig, settings: Settings, device: str, extra: dict[str, Any]):
    """(model, processor or tokenizer, family, model id) loaded like the app loads it."""
    from mmdemo.models.device import pick_dtype

    # CPU training keeps float32 weights (bf16 enters through autocast); a GPU trains on the
    # serving dtype (PEFT keeps the adapter's own weights in float32)
    dtype = (
        "float32"
        if device == "cpu" and settings.dtype == "auto"
        else pick_dtype(device, settings.dtype)
    )
    if cfg.base == "llm":
        from mmdemo.models.backends.llm import load_parts

        model_id = settings.model_id("llm")
        model, tokenizer = load_parts(model_id, settings, device, dtype, **extra)
        return model, tokenizer, model.config.model_type, model_id
    from mmdemo.models.backends.vlm import load_parts as load_vlm

    model_id = settings.model_id("vlm")
    model, processor, family, _ = load_vlm(model_id, settings, device, dtype, **extra)
    return model, processor, family, model_id


def train_adapter(
    cfg: TrainConfig, env: RunEnv, data: dict[str, tuple[Splits, str]] | None = None
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
    stage_data, described = _read_data(cfg, settings, data)
    env.stop.check()
    env.emit(Phase("load", "loading the base model"))
    set_seed(cfg.seed)
    base = _load(cfg, settings, device, method)
    stages, notes = _stages(cfg, method, base, stage_data)
    final = stage_data[stages[-1].name]
    test = _test_examples(cfg, final, notes)
    inference_memory = _inference_memory(base.model, base.collator, stages[0].examples, cfg, device)
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


# -- the steps of a run, in order ----------------------------------------------------------


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


def _read_data(
    cfg: TrainConfig, settings: Settings, data: dict[str, tuple[Splits, str]] | None
) -> tuple[dict[str, Splits], str]:
    """Each stage's splits by task, and one line saying where they all came from."""
    stage_data, descriptions = {}, []
    for task, _ in cfg.stage_steps():
        if data is not None and task in data:
            stage_data[task], described = data[task]
        else:
            stage_data[task], described = load_stage_data(
                cfg, task, settings.max_image_side, settings.max_dataset_mb
            )
        descriptions.append(described)
    return stage_data, "; ".join(descriptions)


@dataclass(frozen=True)
class Base:
    """The base model as loaded for training, and what turns examples into its batches."""

    model: Any
    collator: Collator
    family: str
    model_id: str
    # the process with the base model loaded, before any training state: the bake-off reports
    # each method's peak above this, so the runtime and the model do not hide the differences
    memory_bytes: int


def _load(cfg: TrainConfig, settings: Settings, device: str, method: Method) -> Base:
    model, processor, family, model_id = load_base(
        cfg, settings, device, method.load_kwargs(device)
    )
    memory = MemorySampler(device).current()
    collator = Collator(processor, with_images=cfg.base == "vlm", max_side=settings.max_image_side)
    return Base(model, collator, family, model_id, memory)


def _stages(
    cfg: TrainConfig, method: Method, base: Base, stage_data: dict[str, Splits]
) -> tuple[list[Stage], list[str]]:
    """The stages to train (examples too long left out) and notes saying what was left out."""
    model_params = sum(p.numel() for p in base.model.parameters())
    stages, notes = [], []
    for task, steps in cfg.stage_steps():
        kept, dropped = drop_too_long(base.collator, stage_data[task]["train"], cfg.max_length)
        if dropped:
            notes.append(
                f"{len(dropped)} {task} examples longer than {cfg.max_length} tokens left out"
            )
        if not kept:
            raise BadInputError(
                f"every {task} example is longer than max_length={cfg.max_length} tokens "
                f"(e.g. {dropped[0]})",
                fix="raise max_length or shorten the answers",
            )
        stages.append(Stage(task, kept, steps, cfg.lr or method.lr_for(model_params)))
    return stages, notes


def _test_examples(cfg: TrainConfig, final: Splits, notes: list[str]) -> list[Example]:
    """What the adapter is scored on: the last stage's test split (else its validation split,
    else its training split, with a note); none while a recipe is being chosen."""
    test = final["test"] or final["validation"]
    if not test:
        test = final["train"]
        notes.append("the data has no held-out split: the scores are on training examples")
    if cfg.eval_limit:
        test = test[: cfg.eval_limit]
    if not cfg.score_test:
        test = []  # a recipe being chosen: the validation loss alone decides
    return test


def _silent(event: Event) -> None:
    """Where a helper process's events go (the main process reports the run)."""


def _inference_memory(model: Any, collator: Collator, examples: list[Example], cfg, device) -> int:
    """Peak memory of one no-grad forward on a training-size batch (the inference baseline).

    The model stays in train mode: in eval mode bitsandbytes 0.50 repacks 4-bit weights for
    CPU inference for good, and that layout has no backward pass (QLoRA would then train on
    silently wrong gradients)."""
    import torch

    batch = collator(examples[: cfg.batch_size])
    batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
    model.train()
    with MemorySampler(device) as memory, torch.no_grad():
        model(**batch)
    return memory.peak


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
