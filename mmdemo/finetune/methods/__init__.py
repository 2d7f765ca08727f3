"""Fine-tuning methods, registered by name (``mmdemo.finetune.registry``), one small module each.

Thin wrappers where PEFT or transformers already has the method (LoRA, DoRA, QLoRA, (IA)³,
LoRA-FA, LOMO/AdaLomo); our own code where nothing maintained does (DyLoRA, bottleneck
adapters, MeZO). A method prepares the model, trains each stage (the Trainer, unless it
overrides ``run_stage``: its own loop, its own optimizer per stage), and writes an adapter the
chat tab can serve. The run calls these hooks and never asks which method it has.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmdemo.finetune.registry import METHODS, MethodInfo

if TYPE_CHECKING:
    from mmdemo.finetune.config import TrainConfig
    from mmdemo.finetune.defaults import Defaults
    from mmdemo.finetune.stage import Stage, StageEnv
    from mmdemo.finetune.targets import Targets

__all__ = ["METHODS", "Method", "MethodInfo", "Plan", "count_parameters", "get_method"]


@dataclass
class Plan:
    """How to train a prepared model."""

    model: Any  # what the Trainer (or the method's own loop) trains
    optim: str = "adamw_torch"  # TrainingArguments.optim
    optimizer: Any = None  # a ready optimizer (LoRA-FA, LOMO); the Trainer adds the schedule
    max_grad_norm: float = 1.0  # the Trainer's clip (0: none; LOMO clips inside its update)
    callbacks: list[Any] = field(default_factory=list)
    # MeZO: no backward pass, its own loop (``run_stage``); several processes cannot share it
    own_loop: bool = False
    trainable: int = 0
    total: int = 0
    extra: Any = None  # method-specific state (DyLoRA's rank mask, MeZO's parameters)
    mezo_eps: float = 0.0  # MeZO's default perturbation size for this model


class Method:
    """Defaults shared by every method; each module overrides what differs."""

    name = ""

    def defaults(self, params: int) -> Defaults:
        """The method's default hyperparameters for a model of ``params`` parameters (the one
        table in ``mmdemo.finetune.defaults``, written by the sweep)."""
        from mmdemo.finetune.defaults import defaults_for

        return defaults_for(self.name, params)

    def lr_for(self, params: int) -> float:
        """The method's default peak learning rate for a model of ``params`` parameters."""
        return self.defaults(params).lr

    def check(self, device: str) -> None:
        """Raise MethodUnavailableError when this device cannot run the method."""

    def load_kwargs(self, device: str) -> dict[str, Any]:
        """Extra ``from_pretrained`` arguments for the base model (QLoRA: 4-bit)."""
        return {}

    def prepare(self, model: Any, cfg: TrainConfig, targets: Targets, work: Path) -> Plan:
        raise NotImplementedError

    def run_stage(self, plan: Plan, stage: Stage, env: StageEnv) -> None:
        """Train one stage with the transformers Trainer (a method with its own loop or its
        own optimizer per stage overrides this)."""
        from mmdemo.finetune.loop import trainer_stage

        trainer_stage(
            plan, env.collator, stage, env.cfg, env.device, env.bf16, env.meter, env.stop, env.work
        )

    def save(self, plan: Plan, cfg: TrainConfig, out: Path, work: Path) -> dict[str, Any]:
        """Write a servable adapter into ``out``; returns facts for its metadata."""
        raise NotImplementedError

    def extra_metrics(
        self, plan: Plan, cfg: TrainConfig, collator: Any, test: list[Any], device: str
    ) -> dict[str, float]:
        """Held-out measures of the method's own beside the answers' scores (DPO: how much
        more the model prefers the chosen answers than the base model did)."""
        return {}

    def rank_variants(self, plan: Plan, cfg: TrainConfig) -> list[int]:
        """Ranks to evaluate besides the trained one (DyLoRA)."""
        return []

    def set_rank(self, plan: Plan, rank: int) -> None:
        """Serve the adapter truncated to ``rank`` (DyLoRA)."""


def get_method(name: str) -> Method:
    """The method registered under ``name``, imported only now."""
    from mmdemo.errors import BadInputError

    info = METHODS.get(name)
    if info is None:
        raise BadInputError(f"unknown method {name!r}", fix=f"use one of {', '.join(METHODS)}")
    module, _, cls = info.loader.partition(":")
    method = getattr(importlib.import_module(module), cls)()
    method.name = name
    return method


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameters."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
