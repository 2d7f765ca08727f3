"""One training stage and what every stage of a run shares: the pieces the Trainer's stage
(``loop.py``) and the methods' own loops (MeZO) are built from."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmdemo.finetune.data import Example

if TYPE_CHECKING:
    from mmdemo.finetune.collate import Collator
    from mmdemo.finetune.config import TrainConfig
    from mmdemo.finetune.progress import StepMeter, StopSwitch


@dataclass
class Stage:
    """One stage of a run: which examples, how many steps, at which peak learning rate."""

    name: str  # vqa | caption
    examples: Sequence[Example]
    steps: int
    lr: float


@dataclass
class StageEnv:
    """What every stage of one run shares (a method's ``run_stage`` gets it)."""

    collator: Collator
    cfg: TrainConfig
    device: str
    bf16: bool  # under bf16 autocast
    meter: StepMeter  # turns each step into a step event
    stop: StopSwitch
    work: Path  # the run's scratch folder


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
