"""DyLoRA (Valipour et al., 2023): at every step a rank b in 1..r is sampled and the LoRA
matrices are truncated to their first b rows/columns (scaling alpha/b), so one trained adapter
serves every rank up to r. Written here: PEFT has no DyLoRA. The adapter is an ordinary PEFT
LoRA of rank r; truncating it to rank k gives the rank-k adapter."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from mmdemo.finetune.config import TrainConfig
from mmdemo.finetune.methods import Plan
from mmdemo.finetune.methods.lora import LoRA
from mmdemo.finetune.targets import Targets


class RankMask:
    """Forward hooks that zero every LoRA rank above ``rank`` and set scaling to alpha/rank."""

    def __init__(self, model: Any, rank: int, alpha: float):
        from peft.tuners.lora import LoraLayer

        self.max_rank, self.alpha, self.rank = rank, alpha, rank
        self.layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
        self.hooks = [
            a.register_forward_hook(self._mask)
            for layer in self.layers
            for a in layer.lora_A.values()
        ]

    def _mask(self, module: Any, inputs: Any, output: Any) -> Any:
        if self.rank >= self.max_rank:
            return None
        mask = output.new_zeros(output.shape[-1])
        mask[: self.rank] = 1
        return output * mask

    def set(self, rank: int) -> None:
        self.rank = max(1, min(rank, self.max_rank))
        for layer in self.layers:
            for name in layer.scaling:
                layer.scaling[name] = self.alpha / self.rank


def _callback(mask: RankMask, seed: int) -> Any:
    from transformers import TrainerCallback

    rng = random.Random(seed)

    class SampleRank(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            mask.set(rng.randint(1, mask.max_rank))

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            mask.set(mask.max_rank)

    return SampleRank()


class DyLoRA(LoRA):
    def prepare(self, model: Any, cfg: TrainConfig, targets: Targets, work: Path) -> Plan:
        plan = super().prepare(model, cfg, targets, work)
        mask = RankMask(plan.model, cfg.rank, cfg.alpha)
        plan.callbacks.append(_callback(mask, cfg.seed))
        plan.extra = mask
        return plan

    def rank_variants(self, plan: Plan, cfg: TrainConfig) -> list[int]:
        r = cfg.rank
        if r <= 8:
            return list(range(1, r + 1))
        return sorted({2**i for i in range(r.bit_length()) if 2**i <= r} | {r})

    def set_rank(self, plan: Plan, rank: int) -> None:
        plan.extra.set(rank)

    def save(self, plan: Plan, cfg: TrainConfig, out: Path, work: Path) -> dict[str, Any]:
        plan.extra.set(cfg.rank)
        facts = super().save(plan, cfg, out, work)
        return {**facts, "dylora_max_rank": cfg.rank}
