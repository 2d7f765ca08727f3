"""What a fine-tuning method touches: the studio's own method code (mmdemo.finetune.methods)
prepares a parameter-free copy of the VLM's architecture, and the trainable parameters it
leaves are read back: which modules, in which part, how many weights, what share.

The copy is built from the loaded model's config on PyTorch's ``meta`` device (shapes, no
memory, no weights), so planning never touches the served model, costs no memory even for a
2B model, and every count is exactly what training would see.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mmdemo.errors import BadInputError
from mmdemo.finetune.config import ATTACH, TrainConfig
from mmdemo.finetune.methods import METHODS, get_method
from mmdemo.finetune.targets import find_targets
from mmdemo.flows.how import plain
from mmdemo.flows.how.anatomy import PART_TITLES, part_of, part_prefixes
from mmdemo.models.bottleneck import CHILD

# name segments that start an adapter's own weights inside a module (the module is the host)
ADAPTER_STARTS = ("lora_", "ia3_", "modules_to_save", CHILD, "base_layer")
SHOWN_MODULES = 60  # the touched modules listed by name (all are counted)
NOTES = {
    "qlora": "QLoRA trains the same LoRA weights as LoRA; only the frozen base is stored in "
    "4-bit NF4 (bitsandbytes), so the plan is LoRA's on an unquantised copy.",
    "lora-fa": "LoRA-FA freezes every A matrix at its random start: only B is trainable.",
    "dylora": "DyLoRA trains one LoRA of the largest rank; every lower rank is a truncation.",
    "bottleneck": "Bottleneck adapters are the studio's own modules (PEFT has none) beside "
    "each MLP block of the language model.",
}


@dataclass(frozen=True)
class MethodPlan:
    method: str
    summary: str
    family: str  # peft | own | full
    attach: str
    rank: int
    trainable: int
    total: int  # every parameter of the prepared model, adapters included (as PEFT counts)
    share: float
    trainable_bytes_fp32: int  # the trainable weights in float32 (gradients double it)
    by_part: dict[str, int]  # part title -> trainable parameters
    by_kind: dict[str, int]  # module leaf name (q_proj, fc2, connector...) -> modules touched
    modules: int  # modules touched
    shown: tuple[str, ...]  # the first SHOWN_MODULES of them, by name
    note: str

    def to_json(self) -> dict[str, Any]:
        return plain(asdict(self))


def host_module(param: str) -> str:
    """The module a trainable parameter belongs to: for an adapter's weight, the module it
    adapts (``...q_proj.lora_A.default.weight`` -> ``...q_proj``); PEFT's wrapper prefix off."""
    parts = param.split(".")
    for i, seg in enumerate(parts):
        if i and seg.startswith(ADAPTER_STARTS):
            parts = parts[:i]
            break
    else:
        parts = parts[:-1]
    name = ".".join(parts)
    return name.removeprefix("base_model.model.")


def meta_model(config: Any) -> Any:
    """A VLM of ``config``'s architecture with no weights (PyTorch's meta device)."""
    import torch
    from transformers import AutoModelForImageTextToText

    with torch.device("meta"):
        return AutoModelForImageTextToText.from_config(config)


def prepare_on_meta(config: Any, method: str, attach: str = "language", rank: int = 8) -> Any:
    """The model as ``method`` prepares it for training (meta device); (model, plan)."""
    import torch

    if method not in METHODS:
        raise BadInputError(f"unknown method {method!r}", fix=f"use one of {', '.join(METHODS)}")
    if attach not in ATTACH:
        raise BadInputError(f"attach={attach!r} is not one of {', '.join(ATTACH)}")
    cfg = TrainConfig(method=method, attach=attach, rank=int(rank))
    chosen = get_method(method)
    info = METHODS[method]
    with torch.device("meta"):
        model = meta_model(config)
        targets = find_targets(model, attach)
        if info.family == "full":
            # the method's own choice of weights (its prepare also writes them to disk: skipped)
            from mmdemo.finetune.methods.full import trainable_weights

            for p in model.parameters():
                p.requires_grad_(False)
            for w in trainable_weights(model, targets).values():
                w.requires_grad_(True)
        else:
            # see NOTES: QLoRA trains LoRA's weights (without the 4-bit base here); DPO trains
            # a LoRA too, which its trainer attaches when training starts
            if method in ("qlora", "dpo"):
                from mmdemo.finetune.methods.lora import LoRA

                chosen = LoRA()
            with tempfile.TemporaryDirectory(prefix="mmdemo-how-") as work:
                model = chosen.prepare(model, cfg, targets, Path(work)).model
    return model, _plan(model, method, attach, int(rank))


def _plan(model: Any, method: str, attach: str, rank: int) -> MethodPlan:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    prefixes = part_prefixes(base)
    hosts: dict[str, int] = {}
    trainable = total = 0
    for name, p in model.named_parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
            host = host_module(name)
            hosts[host] = hosts.get(host, 0) + p.numel()
    by_part: Counter[str] = Counter()
    for host, n in hosts.items():
        by_part[PART_TITLES[part_of(host, prefixes)]] += n
    kinds = Counter(_kind(h) for h in hosts)
    info = METHODS[method]
    return MethodPlan(
        method=method,
        summary=info.summary,
        family=info.family,
        attach=attach,
        rank=rank,
        trainable=trainable,
        total=total,
        share=trainable / total if total else 0.0,
        trainable_bytes_fp32=4 * trainable,
        by_part=dict(by_part),
        by_kind=dict(kinds.most_common()),
        modules=len(hosts),
        shown=tuple(sorted(hosts)[:SHOWN_MODULES]),
        note=NOTES.get(method, ""),
    )


def _kind(module: str) -> str:
    """A module's kind by its name: its leaf (q_proj), or the last two parts for a numbered
    entry of a sequence (mlp.0)."""
    parts = module.split(".")
    return ".".join(parts[-2:]) if parts[-1].isdigit() and len(parts) > 1 else parts[-1]
