"""LoRA and the variants PEFT ships: DoRA (``use_dora``), QLoRA (a 4-bit base through
bitsandbytes, then ``prepare_model_for_kbit_training``) and LoRA-FA (PEFT's optimizer that
freezes A)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from mmdemo.errors import MethodUnavailableError
from mmdemo.finetune.config import TrainConfig
from mmdemo.finetune.methods import Method, Plan, count_parameters
from mmdemo.finetune.stage import Stage, StageEnv
from mmdemo.finetune.targets import PROJECTOR_PARTS, VISION_PARTS, Targets

KEEP_PRECISE = VISION_PARTS + PROJECTOR_PARTS


class LoRA(Method):
    use_dora = False

    def peft_config(self, cfg: TrainConfig, targets: Targets) -> Any:
        from peft import LoraConfig

        return LoraConfig(
            r=cfg.rank,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.dropout,
            target_modules=targets.lora,
            modules_to_save=list(targets.projector) or None,
            use_dora=self.use_dora,
            task_type="CAUSAL_LM",
        )

    def wrap(self, model: Any, cfg: TrainConfig, targets: Targets) -> Any:
        from peft import get_peft_model

        return get_peft_model(model, self.peft_config(cfg, targets))

    def prepare(self, model: Any, cfg: TrainConfig, targets: Targets, work: Path) -> Plan:
        peft_model = self.wrap(model, cfg, targets)
        trainable, total = count_parameters(peft_model)
        return Plan(peft_model, trainable=trainable, total=total)

    def save(self, plan: Plan, cfg: TrainConfig, out: Path, work: Path) -> dict[str, Any]:
        plan.model.save_pretrained(str(out), safe_serialization=True)
        (Path(out) / "README.md").unlink(missing_ok=True)
        return {"rank": cfg.rank, "alpha": cfg.alpha}


class DoRA(LoRA):
    use_dora = True


class QLoRA(LoRA):
    """The base's linear layers are stored in 4-bit NF4; LoRA trains in bf16/fp32 on top. The
    adapter is saved like any LoRA and served on the full-precision base."""

    def check(self, device: str) -> None:
        if importlib.util.find_spec("bitsandbytes") is None:
            raise MethodUnavailableError(
                "QLoRA needs the bitsandbytes package for its 4-bit base model",
                fix="pip install bitsandbytes, or train with LoRA",
            )
        if device == "mps" or device.startswith("xpu"):
            raise MethodUnavailableError(
                f"bitsandbytes has no 4-bit kernels for the {device} device",
                fix="train with LoRA (or DoRA) instead",
            )

    def load_kwargs(self, device: str) -> dict[str, Any]:
        import torch
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if _has_bf16(device) else torch.float32
        return {
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=compute,
                bnb_4bit_use_double_quant=True,
                # the vision tower and projector stay in full precision (as QLoRA VLM recipes do);
                # transformers matches these from the start of a module's name, as regexes
                llm_int8_skip_modules=[f".*{part}" for part in KEEP_PRECISE] + ["lm_head"],
            ),
            "device_map": {"": device if device != "cuda" else 0},
        }

    def wrap(self, model: Any, cfg: TrainConfig, targets: Targets) -> Any:
        from peft import get_peft_model, prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
        return get_peft_model(model, self.peft_config(cfg, targets))


class LoRAFA(LoRA):
    """LoRA-FA: A stays at its random start, only B learns, with the gradient projection of
    PEFT's ``create_lorafa_optimizer``; less activation memory than LoRA (x is not kept for A)."""

    def prepare(self, model: Any, cfg: TrainConfig, targets: Targets, work: Path) -> Plan:
        plan = super().prepare(model, cfg, targets, work)
        plan.optimizer = _lorafa_optimizer(plan.model, cfg, cfg.lr or self.lr_for(plan.total))
        plan.trainable, plan.total = count_parameters(plan.model)  # A is frozen now
        return plan

    def run_stage(self, plan: Plan, stage: Stage, env: StageEnv) -> None:
        """The first stage trains with the optimizer ``prepare`` made; each later one gets its
        own at its stage's learning rate (the Trainer must not build a plain AdamW for it)."""
        if plan.optimizer is None:
            plan.optimizer = _lorafa_optimizer(plan.model, env.cfg, stage.lr)
        super().run_stage(plan, stage, env)


def _lorafa_optimizer(model: Any, cfg: TrainConfig, lr: float) -> Any:
    from peft.optimizers import create_lorafa_optimizer

    return create_lorafa_optimizer(model, r=cfg.rank, lora_alpha=cfg.alpha, lr=lr)


def _has_bf16(device: str) -> bool:
    import torch

    if device.startswith("cuda"):
        return bool(torch.cuda.is_bf16_supported())
    from mmdemo.finetune.precision import cpu_has_native_bf16

    return device == "cpu" and cpu_has_native_bf16()
