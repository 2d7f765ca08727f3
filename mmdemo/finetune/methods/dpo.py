"""DPO (Rafailov et al., 2023) with a LoRA adapter: learn from pairs of a preferred and a
rejected answer (the arena's blind votes, or the built-in "name the colour" pairs).

A thin wrapper over TRL's ``DPOTrainer``: it gets the base model and a PEFT ``LoraConfig``,
so TRL wraps the model itself and its reference policy is the same model with the adapter
disabled (no second copy in memory). The text LLM trains on tokenized conversations; the VLM
on the pictures through its processor (TRL's vision collator). Progress and Stop go through
the run's step events like every Trainer method; the adapter saves like LoRA's, so the chat
serves it at once.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from mmdemo.errors import BadInputError, MethodUnavailableError, TrainingStopped
from mmdemo.finetune.config import TrainConfig
from mmdemo.finetune.methods import Plan, count_parameters
from mmdemo.finetune.methods.lora import LoRA
from mmdemo.finetune.stage import Stage, StageEnv
from mmdemo.finetune.targets import Targets

BETA = 0.1  # DPO's strength of the pull back to the reference (TRL's default)


class DPO(LoRA):
    def check(self, device: str) -> None:
        if importlib.util.find_spec("trl") is None:
            raise MethodUnavailableError(
                "DPO trains with the trl package, which is not installed",
                fix="pip install 'trl==1.16.*' (it is in requirements.txt)",
            )

    def prepare(self, model: Any, cfg: TrainConfig, targets: Targets, work: Path) -> Plan:
        """The base model stays unwrapped until the trainer wraps it (its reference is the
        model with the adapter off); the counts are LoRA's on the same layers."""
        config = self.peft_config(cfg, targets)
        added = lora_parameters(model, targets, cfg.rank)
        _, total = count_parameters(model)
        # the wrapped model: the base and the adapter (a projector copy is new weight too)
        return Plan(model, trainable=added, total=total + added, extra=config)

    def run_stage(self, plan: Plan, stage: Stage, env: StageEnv) -> None:
        plan.model = dpo_stage(plan, stage, env)

    def extra_metrics(
        self, plan: Plan, cfg: TrainConfig, collator: Any, test: list[Any], device: str
    ) -> dict[str, float]:
        """Held-out pairs: how often (and by how much) the adapter prefers the chosen answer,
        against the base model (the same model with the adapter off)."""
        from mmdemo.finetune.pairs import pair_margins, preference_scores

        pairs = [ex for ex in test if ex.rejected]
        if not pairs:
            return {}
        tuned = pair_margins(plan.model, collator, pairs, device)
        with plan.model.disable_adapter():
            base = pair_margins(plan.model, collator, pairs, device)
        return preference_scores(base, tuned, beta_of(cfg))


def beta_of(cfg: TrainConfig) -> float:
    return float(cfg.extra.get("beta", BETA))


def lora_parameters(model: Any, targets: Targets, rank: int) -> int:
    """What LoRA adds on ``targets``: r * (in + out) per linear layer, and a trained copy of
    each projector module (PEFT's ``modules_to_save``)."""
    modules = dict(model.named_modules())
    added = sum(rank * (modules[n].in_features + modules[n].out_features) for n in targets.linears)
    for name in targets.projector:
        added += sum(p.numel() for p in modules[name].parameters())
    return added


def dpo_stage(plan: Plan, stage: Stage, env: StageEnv) -> Any:
    """Train ``stage``'s pairs with TRL's DPOTrainer; the trained PEFT model."""
    import datasets
    from trl import DPOConfig, DPOTrainer

    from mmdemo.finetune.loop import SCHEDULERS, printer, progress_callback

    cfg, collator = env.cfg, env.collator
    datasets.disable_progress_bars()  # the run reports through its events
    args = DPOConfig(
        output_dir=str(env.work / "trainer"),
        max_steps=stage.steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=stage.lr,
        lr_scheduler_type=SCHEDULERS[cfg.schedule],
        warmup_steps=min(cfg.warmup, stage.steps // 2),
        weight_decay=0.0,
        max_grad_norm=plan.max_grad_norm,
        beta=beta_of(cfg),
        max_length=cfg.max_length,
        **no_checkpointing(DPOConfig),
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        seed=cfg.seed,
        data_seed=cfg.seed,
        use_cpu=env.device == "cpu",
        bf16=env.bf16,
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
    )
    progress = progress_callback(env.meter, stage.name, env.stop)
    trainer = DPOTrainer(
        model=plan.model,
        args=args,
        train_dataset=pair_dataset(stage.examples, collator),
        processing_class=collator.processor,
        callbacks=[progress, *plan.callbacks],
        peft_config=plan.extra,
    )
    trainer.remove_callback(printer())
    trainer.train()
    if progress.stopped:
        raise TrainingStopped("the run was stopped before it finished")
    return trainer.model


def no_checkpointing(config_class: Any) -> dict[str, bool]:
    """Activation checkpointing off (TRL turns it on; tiny and small models do not need it):
    transformers 5.25 renamed the argument (the old name warns)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(config_class)}
    key = (
        "activation_checkpointing"
        if "activation_checkpointing" in names
        else "gradient_checkpointing"
    )
    return {key: False}


def pair_dataset(examples: Any, collator: Any) -> Any:
    """The pairs as TRL's conversational preference rows (with the picture for the VLM)."""
    from datasets import Dataset

    rows = []
    for ex in examples:
        if not ex.rejected:
            raise BadInputError(
                f"DPO needs preference pairs; example {ex.qid or ex.prompt[:40]!r} has one answer",
                fix="train dpo on a preference file (the arena's vote export) or the built-in pairs",
            )
        row = {
            "prompt": [{"role": "user", "content": ex.prompt}],
            "chosen": [{"role": "assistant", "content": ex.answer}],
            "rejected": [{"role": "assistant", "content": ex.rejected}],
        }
        if collator.with_images:
            row["images"] = [collator.image_of(ex)]
        rows.append(row)
    return Dataset.from_list(rows)
