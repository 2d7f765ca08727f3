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
    }
)
