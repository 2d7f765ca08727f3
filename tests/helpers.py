"""Small builders shared by tests: random LoRA adapters, images on disk."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

TEXT_ATTENTION = r".*(text_model|language_model).*\.(q_proj|k_proj|v_proj|o_proj)"


def make_adapter(
    model: Any,
    out: Path,
    seed: int,
    family: str | None = "idefics3",
    kind: str = "lora",
    target: str = TEXT_ATTENTION,
    rank: int = 4,
) -> Path:
    """Save a randomly initialised adapter for ``model`` (left untouched) into ``out``."""
    import torch
    from peft import IA3Config, LoraConfig, get_peft_model

    torch.manual_seed(seed)
    if kind == "lora":
        config = LoraConfig(
            r=rank,
            lora_alpha=2 * rank,
            target_modules=target,
            init_lora_weights=False,
            task_type="CAUSAL_LM",
        )
    else:
        config = IA3Config(target_modules=target, feedforward_modules=[], task_type="CAUSAL_LM")
    peft_model = get_peft_model(copy.deepcopy(model), config)
    if kind != "lora":  # IA3 starts as identity; make it change the output
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "ia3_l" in name:
                    p.mul_(torch.rand_like(p) + 0.5)
    peft_model.save_pretrained(out, safe_serialization=True)
    if family:
        (Path(out) / "mmdemo.json").write_text(
            json.dumps(
                {
                    "base_model": f"test-{family}",
                    "base_model_type": family,
                    "method": kind,
                    "dataset": "random",
                    "metrics": {"accuracy": 0.5},
                }
            )
        )
    return Path(out)


def save_image(path: Path, size: tuple[int, int] = (120, 90), color: str = "red") -> Path:
    from PIL import Image

    Image.new("RGB", size, color).save(path)
    return path
