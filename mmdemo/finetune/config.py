"""TrainConfig: everything one training run is configured with, checked before weights load.

A run is plain data (it travels as JSON to the worker process and into the adapter's
metadata), so the same config trains from the Train tab, the CLI and the API.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from mmdemo.errors import BadInputError
from mmdemo.finetune.registry import METHODS, learns_from_pairs

ATTACH = ("language", "language+projector", "all")
STAGES = ("vqa", "caption", "two-stage", "grounding")
TASKS = ("vqa", "caption", "grounding")  # what an evaluation scores
BASES = ("vlm", "llm")
SCHEDULES = ("cosine", "linear", "constant")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class TrainConfig:
    """One run: base model, method, data, knobs. Env-free; the worker gets it as JSON."""

    method: str = "lora"  # a name in mmdemo.finetune.registry.METHODS
    # "builtin" (the synthetic shapes set), a JSONL file, or a folder (our JSONL, VQA-RAD, SLAKE)
    dataset: str = "builtin"
    # vqa: question answering only; caption: captioning only; two-stage: caption, then VQA
    # starting from stage 1's weights (the medical VQA recipe); grounding: boxes for "where
    # is the red circle?" (the built-in set; scored by IoU@0.5)
    stages: str = "vqa"
    name: str = ""  # adapter name in the store; empty: method-dataset-time
    base: str = "vlm"  # vlm (image + text) or llm (the text model, no images)
    model: str = ""  # base model id (a hub id, local folder or tiny:...); empty: the app's own
    # where adapters attach: the language model only, also the projector (trained in full, as
    # the published Med-VQA model does), or also the vision tower
    attach: str = "language"
    steps: int = 200  # optimizer steps in all (two-stage: split between the stages)
    caption_share: float = 0.5  # two-stage: share of the steps spent on captioning
    batch_size: int = 8
    lr: float = 0.0  # peak learning rate; 0: the method's default
    warmup: int = 0  # linear warm-up steps (small adapters learn the image sooner without)
    schedule: str = "cosine"  # learning rate after warm-up: cosine or linear decay, or constant
    rank: int = 8  # LoRA-family rank (DyLoRA: the largest rank); bottleneck: its width
    alpha: float = 16.0  # LoRA scaling numerator
    dropout: float = 0.0
    placement: str = "parallel"  # bottleneck adapters: series or parallel (LLM-Adapters)
    seed: int = 0
    scale: float = 1.0  # built-in set: fraction of its scenes (quick runs)
    max_length: int = 1024  # longest example in tokens (prompt + image tokens + answer)
    eval_limit: int = 0  # evaluate on at most this many test questions (0: all)
    # False: no test score (choosing a recipe must look at the validation split only)
    score_test: bool = True
    export_rank: int = 64  # full-parameter methods: rank of the LoRA the weight change becomes
    bf16: str = "auto"  # auto: bf16 autocast where the device has native bf16; on; off
    mezo_eps: float = 0.0  # MeZO perturbation size (0: the method's default)
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # method-specific knobs

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise BadInputError(
                f"unknown method {self.method!r}", fix=f"use one of {', '.join(METHODS)}"
            )
        for name, allowed in (
            ("stages", STAGES),
            ("attach", ATTACH),
            ("base", BASES),
            ("placement", ("series", "parallel")),
            ("bf16", ("auto", "on", "off")),
            ("schedule", SCHEDULES),
        ):
            if getattr(self, name) not in allowed:
                raise BadInputError(
                    f"{name}={getattr(self, name)!r} is not one of {', '.join(allowed)}"
                )
        for name, low, high in (
            ("steps", 1, 1_000_000),
            ("batch_size", 1, 4096),
            ("rank", 1, 1024),
            ("warmup", 0, 1_000_000),
            ("max_length", 16, 1_000_000),
            ("export_rank", 1, 4096),
            ("eval_limit", 0, 10_000_000),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or not low <= value <= high:
                raise BadInputError(f"{name}={value!r} is outside {low}..{high}")
        if not 0 <= self.lr < 1:
            raise BadInputError(f"learning rate {self.lr} is outside [0, 1)")
        if not 0 < self.scale <= 10:
            raise BadInputError(f"scale {self.scale} is outside (0, 10]")
        if not 0 < self.caption_share < 1:
            raise BadInputError(f"caption_share {self.caption_share} is outside (0, 1)")
        if not 0 <= self.dropout < 1:
            raise BadInputError(f"dropout {self.dropout} is outside [0, 1)")
        if self.model != self.model.strip():
            raise BadInputError(f"model id {self.model!r} has surrounding spaces")
        if self.name and not NAME_RE.match(self.name):
            raise BadInputError(
                f"adapter name {self.name!r} is not allowed",
                fix="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            )
        if self.base == "llm" and self.attach != "language":
            raise BadInputError(
                "a text-only base has no projector or vision tower", fix="use attach=language"
            )
        if self.base == "llm" and self.stages != "vqa":
            raise BadInputError(
                "captioning needs images; the text-only base trains on question/answer pairs",
                fix="use stages=vqa with base=llm",
            )
        if self.stages == "grounding" and self.dataset != "builtin":
            raise BadInputError(
                "grounding trains on the built-in set (its boxes are known exactly)",
                fix="use dataset=builtin with stages=grounding",
            )
        if self.stages == "two-stage" and self.steps < 2:
            raise BadInputError("two stages need at least 2 steps")
        if learns_from_pairs(self.method) and self.stages != "vqa":
            raise BadInputError(
                f"{self.method} trains on preference pairs in one stage; stages={self.stages!r} "
                "is for question/answer and caption data",
                fix="leave stages at vqa (the default)",
            )
        if not isinstance(self.extra, dict):
            raise BadInputError(f"extra={self.extra!r} is not a mapping of method knobs")
        beta = self.extra.get("beta", 0.1)
        if not isinstance(beta, (int, float)) or not 0 < beta <= 100:
            raise BadInputError(f"beta={beta!r} is outside (0, 100]", fix="DPO's usual beta is 0.1")

    def stage_steps(self) -> list[tuple[str, int]]:
        """(task, steps) per stage: two-stage splits the budget, captioning first; a method
        that learns from preference pairs trains one "preference" stage."""
        if learns_from_pairs(self.method):
            return [("preference", self.steps)]
        if self.stages != "two-stage":
            return [(self.stages, self.steps)]
        first = max(1, min(self.steps - 1, round(self.steps * self.caption_share)))
        return [("caption", first), ("vqa", self.steps - first)]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from JSON-like data; unknown keys are an error that names them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BadInputError(
                f"unknown training setting(s): {', '.join(unknown)}",
                fix=f"valid keys: {', '.join(sorted(known))}",
            )
        return cls(**data)
