"""Small builders shared by tests: random LoRA adapters, images on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmdemo.finetune.random_adapter import TEXT_ATTENTION, random_adapter


def make_adapter(
    model: Any,
    out: Path,
    seed: int,
    family: str | None = "idefics3",
    kind: str = "lora",
    target: str = TEXT_ATTENTION,
    rank: int = 4,
    method: str | None = None,
    lora: dict[str, Any] | None = None,
    **meta: Any,
) -> Path:
    """Save a randomly initialised adapter for ``model`` (left untouched) into ``out``;
    ``lora`` passes alpha / use_rslora / lora_bias on; ``method`` (default: ``kind``) and
    ``meta`` go into its ``mmdemo.json``."""
    random_adapter(model, out, seed, kind, target, rank, **(lora or {}))
    if family:
        (Path(out) / "mmdemo.json").write_text(
            json.dumps(
                {
                    "base_model": f"test-{family}",
                    "base_model_type": family,
                    "method": method or kind,
                    "dataset": "random",
                    "metrics": {"accuracy": 0.5},
                    **meta,
                }
            )
        )
    return Path(out)


def save_image(path: Path, size: tuple[int, int] = (120, 90), color: str = "red") -> Path:
    from PIL import Image

    Image.new("RGB", size, color).save(path)
    return path


def make_bottleneck(model: Any, out: Path, seed: int, family: str = "idefics3") -> Path:
    """Save a random bottleneck adapter (the ``hooked`` kind PEFT cannot hold), in float32."""
    import copy

    import torch

    from mmdemo.finetune.targets import find_targets
    from mmdemo.models.adapters import write_metadata
    from mmdemo.models.bottleneck import BottleneckConfig, BottleneckSet, hidden_size_of

    host = copy.deepcopy(model).float()
    config = BottleneckConfig(find_targets(host, "language").mlp_blocks, hidden_size_of(host), 16)
    adapters = BottleneckSet(host)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in adapters.add("b", config):
            p.add_(torch.randn_like(p) * 0.5)
    adapters.save("b", Path(out))
    write_metadata(Path(out), {"base_model_type": family, "method": "bottleneck"})
    return Path(out)
