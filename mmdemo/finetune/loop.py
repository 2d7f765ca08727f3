"""One training stage: the transformers Trainer (with accelerate underneath, so the same run
scales with ``accelerate launch``) for every method that has a backward pass, and MeZO's own
loop for the one that has none."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.errors import TrainingStopped
from mmdemo.finetune.collate import Collator
from mmdemo.finetune.config import TrainConfig
from mmdemo.finetune.data import Example
from mmdemo.finetune.methods import Plan
from mmdemo.finetune.progress import StepMeter, StopSwitch

# TrainConfig.schedule -> TrainingArguments.lr_scheduler_type (all with linear warm-up)
SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


@dataclass
class Stage:
    """One stage of a run: which examples, how many steps, at which peak learning rate."""

    name: str  # vqa | caption
    examples: Sequence[Example]
    steps: int
    lr: float


class ExampleList:
    """A map-style dataset over examples (the Trainer's sampler shuffles indices)."""

    def __init__(self, examples: Sequence[Example]):
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]


def schedule_lr(step: int, total: int, warmup: int, peak: float, kind: str = "cosine") -> float:
    """Linear warm-up, then cosine or linear decay to 0, or constant (as the Trainer's)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if kind == "constant":
        return peak
    if kind == "linear":
        return peak * (1 - progress)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def trainer_stage(
    plan: Plan,
    collator: Collator,
    stage: Stage,
    cfg: TrainConfig,
    device: str,
    bf16: bool,
    meter: StepMeter,
    stop: StopSwitch,
    work: Path,
) -> None:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    class Progress(TrainerCallback):
        stopped = False
        seen = 0

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if stop.is_set():
                self.stopped = True
                control.should_training_stop = True

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                tokens = state.num_input_tokens_seen - self.seen
                self.seen = state.num_input_tokens_seen
                meter.step(stage.name, float(logs["loss"]), int(tokens), logs.get("learning_rate"))

    lomo = plan.optim in ("lomo", "adalomo")
    args = TrainingArguments(
        output_dir=str(work / "trainer"),
        max_steps=stage.steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=stage.lr,
        lr_scheduler_type=SCHEDULERS[cfg.schedule],
        warmup_steps=min(cfg.warmup, stage.steps // 2),
        weight_decay=0.0,
        max_grad_norm=0.0 if lomo else 1.0,  # LOMO clips inside its fused update, if at all
        optim=plan.optim,
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        seed=cfg.seed,
        data_seed=cfg.seed,
        use_cpu=device == "cpu",
        bf16=bf16,
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
    )
    progress = Progress()
    trainer = Trainer(
        model=plan.model,
        args=args,
        train_dataset=ExampleList(stage.examples),
        data_collator=collator,
        callbacks=[progress, *plan.callbacks],
        optimizers=(plan.optimizer, None),
    )
    trainer.remove_callback(_printer())
    trainer.train()
    plan.optimizer = None  # a later stage builds its own (LoRA-FA's is remade by the method)
    if progress.stopped:
        raise TrainingStopped("the run was stopped before it finished")


def _printer() -> Any:
    from transformers.trainer_callback import PrinterCallback

    return PrinterCallback


def mezo_stage(
    plan: Plan,
    collator: Collator,
    stage: Stage,
    cfg: TrainConfig,
    device: str,
    bf16: bool,
    meter: StepMeter,
    stop: StopSwitch,
) -> None:
    """MeZO (Malladi et al., 2023): SPSA with seed-replayed noise. Per step: perturb every
    weight by +eps*z, measure the loss, by -eps*z, measure again, restore, then step along z
    by the projected gradient. z is regenerated from its seed, never stored, so memory stays at
    inference level. Written here: no maintained package implements it."""
    import torch

    weights = list(plan.extra.values())
    model = plan.model
    model.eval()
    rng = random.Random(cfg.seed)
    order = torch.Generator().manual_seed(cfg.seed)
    loader = torch.utils.data.DataLoader(
        ExampleList(stage.examples),
        batch_size=cfg.batch_size,
        shuffle=True,
        generator=order,
        collate_fn=collator,
    )
    batches = itertools.chain.from_iterable(itertools.repeat(loader))
    warmup = min(cfg.warmup, stage.steps // 2)

    def loss_of(batch: dict[str, Any]) -> float:
        with torch.no_grad(), torch.autocast(device.split(":")[0], torch.bfloat16, enabled=bf16):
            return float(model(**batch).loss)

    def nudge(seed: int, scale: float) -> None:
        gen = torch.Generator(device=weights[0].device).manual_seed(seed)
        with torch.no_grad():
            for w in weights:
                z = torch.randn(w.shape, generator=gen, device=w.device, dtype=w.dtype)
                w.add_(z, alpha=scale)

    for step in range(stage.steps):
        if stop.is_set():
            raise TrainingStopped("the run was stopped before it finished")
        batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in next(batches).items()}
        seed = rng.randrange(2**31)
        eps = cfg.mezo_eps or plan.mezo_eps
        nudge(seed, eps)
        plus = loss_of(batch)
        nudge(seed, -2 * eps)
        minus = loss_of(batch)
        nudge(seed, eps)
        grad = (plus - minus) / (2 * eps)
        lr = schedule_lr(step, stage.steps, warmup, stage.lr, cfg.schedule)
        nudge(seed, -lr * grad)
        tokens = int(batch["attention_mask"].sum()) if "attention_mask" in batch else 0
        meter.step(stage.name, (plus + minus) / 2, tokens, lr)


def validation_loss(
    model: Any,
    collator: Collator,
    examples: Sequence[Example],
    device: str,
    limit: int = 64,
    bf16: bool = False,
) -> float | None:
    """Mean loss on (up to ``limit``) held-out examples (``bf16``: under bf16 autocast, as
    the run trained and as the app serves on hardware with native bf16)."""
    import torch

    chosen = list(examples)[:limit]
    if not chosen:
        return None
    model.eval()
    total = 0.0
    batches = [chosen[i : i + 8] for i in range(0, len(chosen), 8)]
    autocast = torch.autocast(device.split(":")[0], torch.bfloat16, enabled=bf16)
    with torch.no_grad(), autocast:
        for part in batches:
            batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in collator(part).items()}
            total += float(model(**batch).loss) * len(part)
    return total / len(chosen)
