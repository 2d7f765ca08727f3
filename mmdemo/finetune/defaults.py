"""Every fine-tuning method's default hyperparameters, in one table.

``PRETRAINED`` applies to models with real weights (at or above ``SMALL_MODEL`` parameters);
``FROM_SCRATCH`` to the tiny random-weight builds, which have to learn everything. The block
between the ``finetune-sweep`` markers is written by ``python -m mmdemo bench finetune-sweep
--write``: per method it trains with each value it tries on the embedded SmolLM2-135M (text
task, a short budget, seed 0), scores the validation split (never the test split) and keeps the
value with the lowest validation loss; docs/benchmarks.md lists every value tried and its loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

SMALL_MODEL = 50_000_000  # parameters; below this the FROM_SCRATCH row applies


@dataclass(frozen=True)
class Defaults:
    lr: float  # peak learning rate
    mezo_eps: float = 0.0  # MeZO's perturbation size (MeZO only)
    lomo_clip: float = 0.0  # LOMO's gradient-norm clip inside its fused update (0: none)
    source: str = ""  # where the values come from


# bench:finetune-sweep
PRETRAINED = MappingProxyType(
    {
        "lora": Defaults(lr=0.003, source="sweep 2026-12-06"),
        "dora": Defaults(lr=0.003, source="sweep 2026-12-06"),
        "qlora": Defaults(lr=0.003, source="sweep 2026-12-06"),
        "ia3": Defaults(lr=0.01, source="sweep 2026-12-06"),
        "lora-fa": Defaults(lr=0.003, source="sweep 2026-12-06"),
        "dylora": Defaults(lr=0.003, source="sweep 2026-12-06"),
        "bottleneck": Defaults(lr=0.01, source="sweep 2026-12-06"),
        "lomo": Defaults(lr=0.01, lomo_clip=0, source="sweep 2026-12-06"),
        "adalomo": Defaults(lr=5e-4, source="by hand"),
        "mezo": Defaults(lr=1e-05, mezo_eps=0.001, source="sweep 2026-12-06"),
        "full": Defaults(lr=0.0001, source="sweep 2026-12-06"),
        "dpo": Defaults(lr=0.0005, source="by hand"),
    }
)
# /bench:finetune-sweep

# The tiny VLM learns to see from random weights: higher rates, chosen by hand on the tiny
# bake-off's validation loss (LoRA's is the headline recipe of docs/benchmarks.md).
FROM_SCRATCH = MappingProxyType(
    {
        "lora": Defaults(lr=3e-3, source="by hand"),
        "dora": Defaults(lr=3e-3, source="by hand"),
        "qlora": Defaults(lr=3e-3, source="by hand"),
        "ia3": Defaults(lr=1e-2, source="by hand"),
        "lora-fa": Defaults(lr=3e-3, source="by hand"),
        "dylora": Defaults(lr=3e-3, source="by hand"),
        "bottleneck": Defaults(lr=3e-3, source="by hand"),
        "lomo": Defaults(lr=1e-2, source="by hand"),
        "adalomo": Defaults(lr=1e-3, source="by hand"),
        "mezo": Defaults(lr=1e-4, mezo_eps=1e-3, source="by hand"),
        "full": Defaults(lr=1e-3, source="by hand"),
        "dpo": Defaults(lr=3e-3, source="by hand"),
    }
)


def defaults_for(method: str, params: int) -> Defaults:
    """The defaults of ``method`` for a model of ``params`` parameters."""
    table = FROM_SCRATCH if params < SMALL_MODEL else PRETRAINED
    return table[method]
