"""The fine-tuning methods by name: where each one's code lives, its family and a summary.

Plain data, no torch and no method code, so that ``TrainConfig`` can check a method name
without importing the methods package (which imports the config: one way only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class MethodInfo:
    loader: str  # "module:Class"
    family: str  # peft | own | full
    summary: str
    # what it learns from: "sft" (question/answer examples) or "preference" (pairs of a
    # preferred and a rejected answer); the bake-offs compare the "sft" methods
    objective: str = "sft"


METHODS: Mapping[str, MethodInfo] = MappingProxyType(
    {
        "lora": MethodInfo("mmdemo.finetune.methods.lora:LoRA", "peft", "LoRA (PEFT)"),
        "dora": MethodInfo("mmdemo.finetune.methods.lora:DoRA", "peft", "DoRA (PEFT)"),
        "qlora": MethodInfo(
            "mmdemo.finetune.methods.lora:QLoRA", "peft", "LoRA on a 4-bit base (bitsandbytes)"
        ),
        "ia3": MethodInfo("mmdemo.finetune.methods.ia3:IA3", "peft", "(IA)³ (PEFT)"),
        "lora-fa": MethodInfo(
            "mmdemo.finetune.methods.lora:LoRAFA", "peft", "LoRA-FA: frozen A (PEFT optimizer)"
        ),
        "dylora": MethodInfo(
            "mmdemo.finetune.methods.dylora:DyLoRA", "own", "DyLoRA: one adapter, every rank"
        ),
        "bottleneck": MethodInfo(
            "mmdemo.finetune.methods.bottleneck:Bottleneck",
            "own",
            "bottleneck adapters (LLM-Adapters, series or parallel)",
        ),
        "lomo": MethodInfo(
            "mmdemo.finetune.methods.full:LOMO", "full", "LOMO: full parameters, fused update"
        ),
        "adalomo": MethodInfo(
            "mmdemo.finetune.methods.full:AdaLomo", "full", "AdaLomo: LOMO with adaptive rates"
        ),
        "mezo": MethodInfo(
            "mmdemo.finetune.methods.mezo:MeZO", "full", "MeZO: zeroth-order, forward passes only"
        ),
        "full": MethodInfo(
            "mmdemo.finetune.methods.full:FullAdamW",
            "full",
            "full fine-tuning with AdamW (the memory baseline for LOMO and MeZO)",
        ),
        "dpo": MethodInfo(
            "mmdemo.finetune.methods.dpo:DPO",
            "peft",
            "DPO (TRL) with LoRA: learns from preferred vs rejected answers (arena votes)",
            objective="preference",
        ),
    }
)


def sft_methods() -> list[str]:
    """The methods that learn from question/answer examples (what the bake-offs compare)."""
    return [name for name, info in METHODS.items() if info.objective == "sft"]


def learns_from_pairs(method: str) -> bool:
    """Whether ``method`` trains on preference pairs (prompt, chosen, rejected)."""
    info = METHODS.get(method)
    return info is not None and info.objective == "preference"
