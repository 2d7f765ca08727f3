"""Randomly initialised adapters: for benchmarks and tests that need adapters which change the
output without training one."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

TEXT_ATTENTION = r".*(text_model|language_model).*\.(q_proj|k_proj|v_proj|o_proj)"


def random_adapter(
    model: Any,
    out: Path,
    seed: int,
    kind: str = "lora",
    target: str = TEXT_ATTENTION,
    rank: int = 4,
    alpha: float | None = None,
    use_rslora: bool = False,
    lora_bias: bool = False,
) -> Path:
    """Save a random LoRA (or IA3) adapter for ``model`` (left untouched) into ``out``
    (LoRA: ``alpha`` defaults to 2 * rank; ``lora_bias`` gives B a random bias)."""
    import torch
    from peft import IA3Config, LoraConfig, get_peft_model

    torch.manual_seed(seed)
    if kind == "lora":
        config = LoraConfig(
            r=rank,
            lora_alpha=alpha if alpha is not None else 2 * rank,
            use_rslora=use_rslora,
            lora_bias=lora_bias,
            target_modules=target,
            init_lora_weights=False,
            task_type="CAUSAL_LM",
        )
    else:
        config = IA3Config(target_modules=target, feedforward_modules=[], task_type="CAUSAL_LM")
    peft_model = get_peft_model(copy.deepcopy(model), config)
    if lora_bias:  # PEFT starts the bias at zero; make it count
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "lora_B" in name and name.endswith("bias"):
                    p.copy_(torch.randn_like(p) * 0.05)
    if kind != "lora":  # IA3 starts as the identity; make it change the output
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "ia3_l" in name:
                    p.mul_(torch.rand_like(p) + 0.5)
    peft_model.save_pretrained(out, safe_serialization=True)
    return Path(out)
