"""Full-parameter methods: plain AdamW (the memory baseline), LOMO and AdaLomo (the
``lomo-optim`` package, as the transformers Trainer integrates it: the update is fused into the
backward pass, so no gradients or optimizer states are kept); MeZO (zeroth-order, its own loop)
builds on these in ``mezo.py``.

They train every weight of the chosen linear layers. So that the chat tab can hot-swap the
result like any adapter, the weight change of each layer is written as a LoRA by truncated SVD
(as mergekit's extract-lora and LoRAX do); the relative error of that low-rank copy is stored
in the adapter's metadata (0 where ``export_rank`` covers the layer's full rank).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdemo.errors import MethodUnavailableError
from mmdemo.finetune.config import TrainConfig
from mmdemo.finetune.methods import Method, Plan, count_parameters
from mmdemo.finetune.stage import Stage, StageEnv
from mmdemo.finetune.targets import Targets

INITIAL = "initial_weights.safetensors"


def trainable_weights(model: Any, targets: Targets) -> dict[str, Any]:
    """Module name -> weight of the layers a full-parameter method trains (linear layers, and
    the projector's linear layers when it is attached)."""
    import torch

    modules = dict(model.named_modules())
    names = list(targets.linears)
    for prefix in targets.projector:
        names += [
            n
            for n, m in modules.items()
            if n.startswith(prefix + ".") and isinstance(m, torch.nn.Linear)
        ]
    return {n: modules[n].weight for n in names}


class FullParameter(Method):
    optim = ""

    def prepare(self, model: Any, cfg: TrainConfig, targets: Targets, work: Path) -> Plan:
        from safetensors.torch import save_file

        for p in model.parameters():
            p.requires_grad_(False)
        weights = trainable_weights(model, targets)
        # the starting weights go to disk, not memory: the export diffs against them later
        work.mkdir(parents=True, exist_ok=True)
        save_file(
            {n: w.detach().float().contiguous().cpu() for n, w in weights.items()},
            str(work / INITIAL),
        )
        for w in weights.values():
            w.requires_grad_(True)
        trainable, total = count_parameters(model)
        return Plan(model, optim=self.optim, trainable=trainable, total=total, extra=weights)

    def save(self, plan: Plan, cfg: TrainConfig, out: Path, work: Path) -> dict[str, Any]:
        error = export_lora(plan.extra, work / INITIAL, out, cfg.export_rank)
        return {"export_rank": cfg.export_rank, "export_relative_error": round(error, 4)}


class FullAdamW(FullParameter):
    """Plain full fine-tuning: gradients and two AdamW moments for every trained weight."""

    optim = "adamw_torch"


class LOMO(FullParameter):
    optim = "lomo"

    def prepare(self, model: Any, cfg: TrainConfig, targets: Targets, work: Path) -> Plan:
        plan = super().prepare(model, cfg, targets, work)
        plan.max_grad_norm = 0.0  # LOMO clips inside its fused update, if at all
        if self.optim == "lomo":
            # made here (the Trainer's own LOMO takes no clip): the gradient-norm clip from
            # the defaults table; the Trainer still fuses the update into the backward pass
            plan.optimizer = self._optimizer(model, cfg, cfg.lr, plan.total)
        return plan

    def _optimizer(self, model: Any, cfg: TrainConfig, lr: float, total: int) -> Any:
        chosen = self.defaults(total)
        clip = float(cfg.extra.get("lomo_clip", chosen.lomo_clip))
        return _lomo(model, lr or chosen.lr, clip)

    def run_stage(self, plan: Plan, stage: Stage, env: StageEnv) -> None:
        """Each later stage gets its own LOMO (with the clip) at its stage's learning rate:
        left to itself the Trainer would build its own LOMO, which has no clip."""
        if plan.optimizer is None and self.optim == "lomo":
            plan.optimizer = self._optimizer(plan.model, env.cfg, stage.lr, plan.total)
        super().run_stage(plan, stage, env)

    def check(self, device: str) -> None:
        import importlib.util

        if importlib.util.find_spec("lomo_optim") is None:
            raise MethodUnavailableError(
                f"{self.name} needs the lomo-optim package", fix="pip install lomo-optim"
            )


def _lomo(model: Any, lr: float, clip: float) -> Any:
    """lomo-optim's LOMO; with a clip, each step first measures the gradient norm (a second
    backward pass, as the LOMO paper does): the Trainer calls only ``fused_backward``."""
    from lomo_optim import Lomo

    if not clip:
        return Lomo(model, lr=lr)

    class ClippedLomo(Lomo):
        def fused_backward(self, loss: Any, lr: float) -> None:
            self.grad_norm(loss)
            super().fused_backward(loss, lr)

    return ClippedLomo(model, lr=lr, clip_grad_norm=clip)


class AdaLomo(LOMO):
    optim = "adalomo"

    def check(self, device: str) -> None:
        super().check(device)
        if not device.startswith("cuda"):
            # lomo-optim 0.1.1 allocates AdaLomo's state with .cuda()
            raise MethodUnavailableError(
                "AdaLomo (lomo-optim) keeps its optimizer state on a CUDA GPU and cannot run on "
                f"the {device}",
                fix="use lomo (or mezo) on this machine, or run on an NVIDIA GPU",
            )


def export_lora(weights: dict[str, Any], initial: Path, out: Path, max_rank: int) -> float:
    """Write ``weights - initial`` as a PEFT LoRA adapter in ``out`` (truncated SVD per layer).

    Returns the relative Frobenius error of the low-rank copy over all layers.
    """
    import torch
    from peft import LoraConfig
    from safetensors import safe_open
    from safetensors.torch import save_file

    tensors, ranks = {}, {}
    err2 = total2 = 0.0
    with safe_open(str(initial), framework="pt") as start:
        for name, weight in weights.items():
            delta = weight.detach().float().cpu() - start.get_tensor(name)
            u, s, vh = torch.linalg.svd(delta, full_matrices=False)
            k = max(1, min(max_rank, s.numel()))
            b = (u[:, :k] * s[:k]).contiguous()
            a = vh[:k].contiguous()
            err2 += float(s[k:].square().sum())
            total2 += float(s.square().sum())
            tensors[f"base_model.model.{name}.lora_A.weight"] = a
            tensors[f"base_model.model.{name}.lora_B.weight"] = b
            ranks[name] = k
    rank = max(ranks.values())
    config = LoraConfig(
        r=rank,
        lora_alpha=rank,  # scaling 1: B @ A is the weight change itself
        target_modules=list(weights),
        rank_pattern={n: k for n, k in ranks.items() if k != rank},
        alpha_pattern={n: k for n, k in ranks.items() if k != rank},
        task_type="CAUSAL_LM",
    )
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(out))
    save_file(tensors, str(out / "adapter_model.safetensors"))
    return (err2 / total2) ** 0.5 if total2 > 0 else 0.0
