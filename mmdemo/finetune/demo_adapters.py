"""The demo adapters shipped in assets/adapters, rebuilt by
``python -m mmdemo adapters build-demo`` (trained on synthetic shapes, a minute on a CPU)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mmdemo.finetune.data import shapes_dataset
from mmdemo.finetune.sft import SFTConfig, train_lora


@dataclass(frozen=True)
class DemoAdapter:
    name: str
    description: str
    dataset: str
    answer: Callable[[str, str], str]


DEMOS = (
    DemoAdapter(
        "color-namer",
        "names the colour of the shape in the picture",
        "synthetic-shapes (colour questions)",
        lambda color, shape: f"The shape is {color}.",
    ),
    DemoAdapter(
        "pirate",
        "describes the picture like a pirate",
        "synthetic-shapes (pirate captions)",
        lambda color, shape: f"Arr matey, I spy a {color} {shape}!",
    ),
)


def build_demo_adapters(
    out_root: Path,
    base_model_id: str = "tiny:smolvlm",
    steps: int = 300,
    eval_size: int = 48,
    log=print,
) -> dict[str, dict[str, float]]:
    """Train every demo adapter on the tiny VLM and write it to ``out_root/<name>``."""
    from mmdemo.config import Settings
    from mmdemo.models.manager import ModelManager

    settings = Settings.load(profile="tiny", vlm=base_model_id, device="cpu")
    bundle = ModelManager(settings).get("vlm")
    results = {}
    for i, demo in enumerate(DEMOS):
        train = shapes_dataset(512, demo.answer, seed=10 + i)
        evalset = shapes_dataset(eval_size, demo.answer, seed=1000 + i)
        target = Path(out_root) / demo.name
        tmp = target.with_name(f".{demo.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        cfg = SFTConfig(steps=steps)
        meta = {
            "base_model": base_model_id,
            "base_model_type": bundle.family,
            "method": "lora",
            "dataset": demo.dataset,
            "description": demo.description,
        }
        metrics = train_lora(
            bundle.model,
            bundle.processor,
            train,
            evalset,
            cfg,
            tmp,
            meta,
            progress=lambda s, loss, n=demo.name: (
                log(f"{n}: step {s} loss {loss:.3f}") if s % 50 == 0 else None
            ),
        )
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        results[demo.name] = metrics
        log(f"{demo.name}: {metrics}")
    return results
