"""MeZO (Malladi et al., 2023): full-parameter training with forward passes only, so memory
stays at inference level. It trains the same weights as the other full-parameter methods and
is served the same way (the weight change exported as a LoRA, ``full.py``); it trains with its
own loop instead of the Trainer. Written here: no maintained package implements it."""

from __future__ import annotations

import itertools
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mmdemo.errors import TrainingStopped
from mmdemo.finetune.collate import Collator
from mmdemo.finetune.config import TrainConfig
from mmdemo.finetune.methods import Plan
from mmdemo.finetune.methods.full import FullParameter
from mmdemo.finetune.progress import StepMeter, StopSwitch
from mmdemo.finetune.stage import ExampleList, Stage, StageEnv, schedule_lr
from mmdemo.finetune.targets import Targets


class MeZO(FullParameter):
    def prepare(self, model: Any, cfg: TrainConfig, targets: Targets, work: Path) -> Plan:
        plan = super().prepare(model, cfg, targets, work)
        for w in plan.extra.values():
            w.requires_grad_(False)  # no backward pass at all: memory stays at inference level
        plan.own_loop = True
        plan.mezo_eps = self.defaults(plan.total).mezo_eps
        plan.trainable = sum(w.numel() for w in plan.extra.values())
        return plan

    def run_stage(self, plan: Plan, stage: Stage, env: StageEnv) -> None:
        mezo_stage(plan, env.collator, stage, env.cfg, env.device, env.bf16, env.meter, env.stop)


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
    by the projected gradient (restore and step in one pass). z is regenerated from its seed, never stored, so memory stays at
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

    groups = _noise_groups(weights)
    pool = ThreadPoolExecutor(min(len(groups), max(1, torch.get_num_threads())))

    def nudge(seed: int, scale: float) -> None:
        list(pool.map(lambda group: group.nudge(seed, scale), groups))

    try:
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
            grad = (plus - minus) / (2 * eps)
            lr = schedule_lr(step, stage.steps, warmup, stage.lr, cfg.schedule)
            nudge(seed, eps - lr * grad)  # restore and step along z in one pass over the weights
            tokens = int(batch["attention_mask"].sum()) if "attention_mask" in batch else 0
            meter.step(stage.name, (plus + minus) / 2, tokens, lr)
    finally:
        pool.shutdown()


NOISE_GROUPS = 4  # fixed, so a seed gives the same noise on any number of cores


class _NoiseGroup:
    """Some of the weights with their own generator and one reusable noise buffer. torch
    fills a tensor from a seeded CPU generator on one core, and drawing z three times a step
    over every weight was most of a MeZO step: groups are filled side by side (torch releases
    the GIL), each from ``seed`` and its index, so the noise is still replayed exactly."""

    def __init__(self, index: int, weights: list[Any]) -> None:
        import torch

        self.index, self.weights = index, weights
        self.buffers = {}
        for w in weights:
            key = (w.device, w.dtype)
            size = max(w.numel(), self.buffers[key].numel() if key in self.buffers else 0)
            self.buffers[key] = torch.empty(size, device=w.device, dtype=w.dtype)

    def nudge(self, seed: int, scale: float) -> None:
        import torch

        gen = torch.Generator(device=self.weights[0].device)
        gen.manual_seed(seed * NOISE_GROUPS + self.index)
        with torch.no_grad():
            for w in self.weights:
                z = self.buffers[(w.device, w.dtype)][: w.numel()].view(w.shape)
                z.normal_(generator=gen)
                w.add_(z, alpha=scale)


def _noise_groups(weights: list[Any]) -> list[_NoiseGroup]:
    """The weights in NOISE_GROUPS groups of about equal size (largest first, each to the
    lightest group), kept in model order inside a group."""
    loads = [0] * NOISE_GROUPS
    members: list[list[int]] = [[] for _ in range(NOISE_GROUPS)]
    for i in sorted(range(len(weights)), key=lambda i: -weights[i].numel()):
        g = loads.index(min(loads))
        loads[g] += weights[i].numel()
        members[g].append(i)
    return [_NoiseGroup(g, [weights[i] for i in sorted(m)]) for g, m in enumerate(members) if m]
