"""The demo adapters shipped in assets/adapters, rebuilt by
``python -m mmdemo adapters build-demo`` (LoRA on synthetic shapes, a minute on a CPU), through
the same training code as the Fine-tune tab."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mmdemo.finetune.data import shapes_dataset


@dataclass(frozen=True)
class DemoAdapter:
    name: str
    description: str
    dataset: str
    answer: Callable[[str, str], str]
    kind: str  # how answers are scored: closed (exact) or open (token recall)


DEMOS = (
    DemoAdapter(
        "color-namer",
        "names the colour of the shape in the picture",
        "synthetic-shapes (colour questions)",
        lambda color, shape: f"The shape is {color}.",
        "closed",
    ),
    DemoAdapter(
        "pirate",
        "describes the picture like a pirate",
        "synthetic-shapes (pirate captions)",
        lambda color, shape: f"Arr matey, I spy a {color} {shape}!",
        "open",
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
    import dataclasses
    import shutil

    from mmdemo.config import Settings
    from mmdemo.finetune.config import TrainConfig
    from mmdemo.finetune.events import Event, Step
    from mmdemo.finetune.progress import EventLog
    from mmdemo.finetune.run import RunEnv, train_adapter

    settings = Settings.load(profile="tiny", vlm=base_model_id, device="cpu")
    results = {}
    for i, demo in enumerate(DEMOS):

        def tagged(n: int, seed: int, kind: str = demo.kind, answer=demo.answer) -> list:
            return [
                dataclasses.replace(ex, kind=kind) for ex in shapes_dataset(n, answer, seed=seed)
            ]

        splits = {
            "train": tagged(512, 10 + i),
            "validation": [],
            "test": tagged(eval_size, 1000 + i),
        }
        cfg = TrainConfig(
            method="lora",
            steps=steps,
            lr=3e-3,
            warmup=0,
            rank=8,
            alpha=16,
            batch_size=8,
            name=demo.name,
            description=demo.description,
        )
        with tempfile.TemporaryDirectory() as tmp:
            staging = Path(tmp) / "store"

            def every_50(event: Event, name: str = demo.name) -> None:
                if isinstance(event, Step) and event.step % 50 == 0:
                    log(f"{name}: step {event.step} loss {event.loss:.3f}")

            env = RunEnv(settings, Path(tmp), EventLog(on_event=every_50), adapters_dir=staging)
            result = train_adapter(cfg, env, {"vqa": (splits, demo.dataset)})
            target = Path(out_root) / demo.name
            shutil.rmtree(target, ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(result.path), target)
        results[demo.name] = result.metrics
        log(f"{demo.name}: {result.metrics}")
    return results
