"""One training stage with the transformers Trainer (with accelerate underneath, so the same
run scales with ``accelerate launch``): what every method with a backward pass trains with
(``Method.run_stage``); and the validation loss. MeZO, which has no backward pass, has its
own loop in ``methods/mezo.py``; callers that drive the stages themselves (the sweep) call
the method's ``run_stage`` as the run does."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmdemo.errors import TrainingStopped
from mmdemo.finetune.collate import Collator
from mmdemo.finetune.config import TrainConfig
from mmdemo.finetune.data import Example
from mmdemo.finetune.methods import Plan
from mmdemo.finetune.progress import StepMeter, StopSwitch
from mmdemo.finetune.stage import ExampleList, Stage

__all__ = ["SCHEDULERS", "printer", "progress_callback", "trainer_stage", "validation_loss"]

# TrainConfig.schedule -> TrainingArguments.lr_scheduler_type (all with linear warm-up)
SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


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
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(work / "trainer"),
        max_steps=stage.steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=stage.lr,
        lr_scheduler_type=SCHEDULERS[cfg.schedule],
        warmup_steps=min(cfg.warmup, stage.steps // 2),
        weight_decay=0.0,
        max_grad_norm=plan.max_grad_norm,
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
    progress = progress_callback(meter, stage.name, stop)
    trainer = Trainer(
        model=plan.model,
        args=args,
        train_dataset=ExampleList(stage.examples),
        data_collator=collator,
        callbacks=[progress, *plan.callbacks],
        optimizers=(plan.optimizer, None),
    )
    trainer.remove_callback(printer())
    trainer.train()
    plan.optimizer = None  # a later stage builds its own (LoRA-FA's run_stage remakes its)
    if progress.stopped:
        raise TrainingStopped("the run was stopped before it finished")


def progress_callback(meter: StepMeter, stage: str, stop: StopSwitch) -> Any:
    """A TrainerCallback that turns the Trainer's logs into step events (``logging_steps=1``)
    and ends training at the next step once ``stop`` is set (its ``stopped`` then says so)."""
    from transformers import TrainerCallback

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
                meter.step(stage, float(logs["loss"]), int(tokens), logs.get("learning_rate"))

    return Progress()


def printer() -> Any:
    """The Trainer's callback that prints every log line (removed: the events report)."""
    from transformers.trainer_callback import PrinterCallback

    return PrinterCallback


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
