"""A whole training run: data, base model, method, stages, evaluation, adapter, report.

``train_adapter`` is what the Train tab's worker process, ``python -m mmdemo train`` and the
benchmark all call. The adapter is written to a hidden staging folder and renamed into the
store only when complete, so a crash or a stop never leaves half an adapter behind. A run
never replaces an adapter: when its name was taken while it trained (an upload, another
run), it is stored as ``name-2`` (``-3``...) and its result says so.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmdemo.config import Settings
from mmdemo.errors import BadInputError, MMDemoError, TrainingStopped, is_out_of_memory
from mmdemo.finetune.collate import Collator, drop_too_long
from mmdemo.finetune.config import TrainConfig
from mmdemo.finetune.data import Example
from mmdemo.finetune.processes import is_main_process, process_count, process_device
from mmdemo.finetune.progress import Emit, MemorySampler, StepMeter, StopSwitch
from mmdemo.models.adapters import BUILTIN_DIR, name_taken


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
    """Splits for one task ("vqa" or "caption") and a line describing where they came from."""
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
    cfg: TrainConfig,
    env: RunEnv,
    data: dict[str, tuple[dict[str, list[Example]], str]] | None = None,
) -> RunResult:
    """Train, evaluate and store one adapter; emits start/stage/step/eval/done events.

    ``data`` (task -> (splits, description)) replaces reading ``cfg.dataset`` (callers with
    examples in memory, such as the demo adapters).

    Under ``accelerate launch`` (or ``torchrun``) every process runs this: each trains on its
    share of every batch (``batch_size`` per process), and only the main one emits events,
    evaluates and writes the adapter; the others return after training."""
    from transformers import set_seed

    from mmdemo.finetune.evaluate import evaluate
    from mmdemo.finetune.loop import Stage, mezo_stage, trainer_stage, validation_loss
    from mmdemo.finetune.methods import get_method
    from mmdemo.finetune.precision import use_bf16
    from mmdemo.finetune.targets import find_targets
    from mmdemo.models.device import pick_device

    started = time.perf_counter()
    main, processes = is_main_process(), process_count()
    settings, stop = env.settings, env.stop
    emit = env.emit if main else _silent  # one process reports (and saves)
    if cfg.model:
        settings = settings.replace(**{cfg.base: cfg.model})
    method = get_method(cfg.method)
    device = process_device(pick_device(settings.device))
    method.check(device)
    name = cfg.name or default_name(cfg)
    # text-only adapters stay with their run: the store serves the VLM
    default_store = env.run_dir / "adapters" if cfg.base == "llm" else settings.adapters_dir
    store_dir = env.adapters_dir or default_store
    builtin = BUILTIN_DIR if store_dir == settings.adapters_dir else None
    if name_taken(store_dir, name, builtin):
        raise BadInputError(
            f"an adapter called {name!r} already exists", fix="choose another name or delete it"
        )
    work = env.run_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    emit({"type": "phase", "phase": "data", "message": "reading the data"})
    stage_data, descriptions = {}, []
    for task, _ in cfg.stage_steps():
        if data is not None and task in data:
            stage_data[task], described = data[task]
        else:
            stage_data[task], described = load_stage_data(
                cfg, task, settings.max_image_side, settings.max_dataset_mb
            )
        descriptions.append(described)
    stop.check()
    emit({"type": "phase", "phase": "load", "message": "loading the base model"})
    set_seed(cfg.seed)
    model, processor, family, model_id = load_base(
        cfg, settings, device, method.load_kwargs(device)
    )
    # the process with the base model loaded, before any training state: the bake-off reports
    # each method's peak above this, so the runtime and the model do not hide the differences
    model_memory = MemorySampler(device).current()
    collator = Collator(processor, with_images=cfg.base == "vlm", max_side=settings.max_image_side)
    model_params = sum(p.numel() for p in model.parameters())
    stages, notes = [], []
    for task, steps in cfg.stage_steps():
        kept, dropped = drop_too_long(collator, stage_data[task]["train"], cfg.max_length)
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
    final = stage_data[stages[-1].name]
    test = final["test"] or final["validation"]
    if not test:
        test = final["train"]
        notes.append("the data has no held-out split: the scores are on training examples")
    if cfg.eval_limit:
        test = test[: cfg.eval_limit]
    if not cfg.score_test:
        test = []  # a recipe being chosen: the validation loss alone decides
    inference_memory = _inference_memory(model, collator, stages[0].examples, cfg, device)
    stop.check()
    targets = find_targets(model, cfg.attach)
    plan = method.prepare(model, cfg, targets, work)
    if processes > 1 and plan.own_loop:
        raise BadInputError(
            f"{cfg.method} trains in one process: it has no gradients to share between "
            f"the {processes} processes launched",
            fix="run it with python -m mmdemo train, without accelerate launch",
        )
    bf16 = use_bf16(cfg.bf16, device, plan.total)
    total_steps = sum(s.steps for s in stages)
    emit(
        {
            "type": "start",
            "adapter": name,
            "method": cfg.method,
            "total_steps": total_steps,
            "trainable": plan.trainable,
            "total": plan.total,
            "bf16": bf16,
            "device": device,
            "processes": processes,
            "data": "; ".join(descriptions),
            "inference_memory_bytes": inference_memory,
            "model_memory_bytes": model_memory,
        }
    )
    loop_started = time.perf_counter()
    with MemorySampler(device) as memory:
        meter = StepMeter(emit, total_steps, memory)
        for stage in stages:
            emit({"type": "phase", "phase": stage.name, "message": f"training: {stage.name}"})
            if plan.own_loop:
                mezo_stage(plan, collator, stage, cfg, device, bf16, meter, stop)
            else:
                if cfg.method == "lora-fa" and stage is not stages[0]:
                    plan.optimizer = _lorafa_optimizer(plan, cfg, stage.lr)
                trainer_stage(plan, collator, stage, cfg, device, bf16, meter, stop, work)
    train_seconds = time.perf_counter() - started
    loop_seconds = time.perf_counter() - loop_started  # the training steps alone
    stop.check()
    if not main:  # the main process evaluates and writes the one adapter
        shutil.rmtree(work, ignore_errors=True)
        return RunResult(
            adapter=name,
            path=store_dir / name,
            metrics={},
            val_loss=None,
            loss_history=meter.history,
            rank_scores={},
            trainable=plan.trainable,
            total=plan.total,
            peak_memory_bytes=memory.peak,
            inference_memory_bytes=inference_memory,
            train_seconds=train_seconds,
            data="; ".join(descriptions),
            notes=["trained as a helper process; the main process evaluated and saved"],
        )
    emit({"type": "phase", "phase": "eval", "message": f"evaluating on {len(test)} questions"})
    val_loss = validation_loss(plan.model, collator, final["validation"], device, bf16=bf16)

    def eval_progress(done: int, of: int) -> None:
        emit({"type": "eval_progress", "done": done, "of": of})

    metrics, rows = (
        evaluate(plan.model, collator, test, device, eval_progress, bf16) if test else ({}, [])
    )
    rank_scores = {}
    for rank in method.rank_variants(plan, cfg):
        stop.check()
        method.set_rank(plan, rank)
        rank_scores[rank], _ = evaluate(plan.model, collator, test, device, bf16=bf16)
    method.set_rank(plan, cfg.rank)
    result = RunResult(
        adapter=name,
        path=store_dir / name,
        metrics=metrics,
        val_loss=val_loss,
        loss_history=meter.history,
        rank_scores=rank_scores,
        trainable=plan.trainable,
        total=plan.total,
        peak_memory_bytes=memory.peak,
        inference_memory_bytes=inference_memory,
        train_seconds=train_seconds,
        data="; ".join(descriptions),
        notes=notes,
    )
    _write_results(env.run_dir, rows)
    stop.check()
    _store(plan, method, cfg, result, rows, env.run_dir, work, (model_id, family), builtin)
    shutil.rmtree(work, ignore_errors=True)
    emit(
        {
            "type": "done",
            "adapter": result.adapter,
            "requested_name": name,
            "notes": result.notes,
            "metrics": metrics,
            "path": str(result.path),
            "val_loss": val_loss,
            "rank_scores": {str(k): v for k, v in rank_scores.items()},
            "train_seconds": round(loop_seconds, 2),
            "peak_memory_bytes": memory.peak,
        }
    )
    return result


def _silent(event: dict[str, Any]) -> None:
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


def _lorafa_optimizer(plan: Any, cfg: TrainConfig, lr: float) -> Any:
    from peft.optimizers import create_lorafa_optimizer

    return create_lorafa_optimizer(plan.model, r=cfg.rank, lora_alpha=cfg.alpha, lr=lr)


def _store(
    plan, method, cfg, result, rows, run_dir: Path, work: Path, base: tuple[str, str], builtin
):
    """Save the adapter and its report into a hidden staging folder, then rename it into the
    store (all or nothing) under its name, or ``name-2``... when that was taken meanwhile."""
    from mmdemo.finetune.report import REPORT_FILES, write_report
    from mmdemo.models.adapters import new_adapter_folder, read_adapter, write_metadata

    store_dir, wanted = result.path.parent, result.adapter
    with new_adapter_folder(store_dir, wanted, builtin) as (final, staging):
        if final != wanted:
            result.adapter, result.path = final, store_dir / final
            result.notes.append(
                f"an adapter called {wanted!r} appeared while this run trained; it was kept "
                f"and this one was saved as {final!r}"
            )
        facts = method.save(plan, cfg, staging, work)
        result.report = write_report(run_dir, cfg, result, rows, facts)
        for name in REPORT_FILES:
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, staging / name)
        write_metadata(
            staging,
            {
                "base_model": base[0],
                "base_model_type": base[1],
                "method": cfg.method,
                "dataset": result.data,
                "description": cfg.description or f"{cfg.method} on {result.data}",
                "metrics": result.metrics,
                "rank": cfg.rank,
                "steps": cfg.steps,
                "stages": cfg.stages,
                "attach": cfg.attach,
                "trainable_parameters": result.trainable,
                "peak_memory_bytes": result.peak_memory_bytes,
                "train_seconds": round(result.train_seconds, 1),
                "val_loss": result.val_loss,
                "rank_scores": {str(k): v for k, v in result.rank_scores.items()},
                "config": cfg.to_dict(),
                **facts,
            },
        )
        read_adapter(staging)  # what the store will read: fail here, not in the chat tab


def _write_results(run_dir: Path, rows: list[Any]) -> None:
    with open(run_dir / "predictions.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row.to_dict()) + "\n")


def failure_event(exc: BaseException) -> dict[str, Any]:
    """The event a failed run ends with: the cause and, where known, the fix."""
    if isinstance(exc, MMDemoError):
        return {
            "type": "stopped" if isinstance(exc, TrainingStopped) else "error",
            "message": exc.message,
            "fix": exc.fix,
        }
    if is_out_of_memory(exc) or isinstance(exc, MemoryError):
        return {
            "type": "error",
            "message": "the device ran out of memory while training",
            "fix": "lower the batch size or rank, use QLoRA or MeZO, or attach to fewer parts",
        }
    return {"type": "error", "message": f"{type(exc).__name__}: {exc}", "fix": None}
