"""Bottleneck adapters (LLM-Adapters: Hu et al., 2023) on every MLP block of the language
model, series or parallel. The modules and their on-disk format live in
``mmdemo.models.bottleneck`` (the serving side loads them too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdemo.errors import BadInputError
from mmdemo.finetune.config import TrainConfig
from mmdemo.finetune.methods import Method, Plan, count_parameters
from mmdemo.finetune.targets import Targets
from mmdemo.models.bottleneck import BottleneckConfig, BottleneckSet, hidden_size_of

TRAINING_NAME = "training"


class Bottleneck(Method):
    def prepare(self, model: Any, cfg: TrainConfig, targets: Targets, work: Path) -> Plan:
        if not targets.mlp_blocks:
            raise BadInputError("no MLP blocks found in the language model for bottleneck adapters")
        if targets.projector:
            raise BadInputError(
                "bottleneck adapters attach to the language model only",
                fix="use attach=language, or LoRA to train the projector too",
            )
        for p in model.parameters():
            p.requires_grad_(False)
        config = BottleneckConfig(
            hosts=targets.mlp_blocks,
            hidden_size=hidden_size_of(model),
            size=cfg.rank,
            placement=cfg.placement,
        )
        adapters = BottleneckSet(model)
        for p in adapters.add(TRAINING_NAME, config):
            p.requires_grad_(True)
        adapters.activate(TRAINING_NAME)
        trainable, total = count_parameters(model)
        return Plan(model, trainable=trainable, total=total, extra=adapters)

    def save(self, plan: Plan, cfg: TrainConfig, out: Path, work: Path) -> dict[str, Any]:
        plan.extra.save(TRAINING_NAME, Path(out))
        return {"bottleneck_size": cfg.rank, "placement": cfg.placement}
