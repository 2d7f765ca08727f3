"""Where adapters attach: the language model's linear layers (for a known family, the ones its
entry in ``mmdemo.models.families`` names), the projector between vision and language
(trained in full), and the vision tower's linear layers, found by module names that the
supported families use (Idefics3/SmolVLM, Qwen2-VL, Qwen2.5-VL, LLaVA, InternVL, GLM-4.1V;
plain causal LMs)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mmdemo.errors import BadInputError
from mmdemo.models.families import family_of

LANGUAGE_PARTS = ("text_model", "language_model")
VISION_PARTS = ("vision_model", "visual", "vision_tower")
PROJECTOR_PARTS = ("connector", "merger", "multi_modal_projector")
OUTPUT_HEADS = ("lm_head",)


@dataclass(frozen=True)
class Targets:
    """What a method trains, as module names of the model it is given."""

    lora: str  # regex (re.fullmatch) over module names: linear layers that get adapters
    linears: tuple[str, ...]  # the same layers as a list (full-parameter methods, checks)
    projector: tuple[str, ...]  # modules trained in full beside the adapters (PEFT modules_to_save)
    language: str  # module name prefix of the language model ("" = the whole model)
    mlp_blocks: tuple[str, ...]  # the language model's MLP blocks (bottleneck adapters)


def _first_part(names: list[str], parts: tuple[str, ...]) -> str | None:
    for name in names:
        leaf = name.rsplit(".", 1)[-1]
        if leaf in parts:
            return name
    return None


def find_targets(model: Any, attach: str = "language") -> Targets:
    """The modules to train for ``attach`` (language | language+projector | all)."""
    import torch

    modules = dict(model.named_modules())
    names = list(modules)
    language = _first_part(names, LANGUAGE_PARTS)
    vision = _first_part(names, VISION_PARTS)
    projector = _first_part(names, PROJECTOR_PARTS)
    if language is None:
        if vision is not None:
            raise BadInputError(
                f"cannot find the language model inside {type(model).__name__}",
                fix="this model family is not supported for training yet",
            )
        language = ""  # a plain causal LM: the whole model is the language model
    if attach != "language" and projector is None:
        raise BadInputError(
            f"{type(model).__name__} has no projector module mmdemo knows "
            f"({', '.join(PROJECTOR_PARTS)})",
            fix="train with attach=language",
        )

    def linears_under(prefix: str) -> list[str]:
        return [
            n
            for n, m in modules.items()
            if isinstance(m, torch.nn.Linear)
            and (not prefix or n.startswith(prefix + "."))
            and n.rsplit(".", 1)[-1] not in OUTPUT_HEADS
            and not (projector and n.startswith(projector + "."))
            and not (vision and prefix != vision and n.startswith(vision + "."))
        ]

    chosen = linears_under(language)
    family = family_of(model) if vision is not None else None
    if family is not None:  # the family's LoRA targets (all its language linears so far)
        chosen = [n for n in chosen if n.rsplit(".", 1)[-1] in family.lora_targets]
    if attach == "all" and vision is not None:
        chosen += linears_under(vision)
    if not chosen:
        raise BadInputError(f"no linear layers to adapt in {type(model).__name__}")
    mlp_blocks = tuple(
        n
        for n in names
        if n.rsplit(".", 1)[-1] == "mlp" and (not language or n.startswith(language + "."))
    )
    return Targets(
        lora=_regex(chosen, names),
        linears=tuple(chosen),
        projector=(projector,) if attach != "language" and projector else (),
        language=language,
        mlp_blocks=mlp_blocks,
    )


def _regex(names: list[str], every: list[str]) -> str:
    """A compact regex matching exactly these names: per parent prefix (layer numbers
    generalised), the leaf names seen there."""
    groups: dict[str, set[str]] = {}
    for name in names:
        parent, _, leaf = name.rpartition(".")
        prefix = r"\.".join(r"\d+" if p.isdigit() else re.escape(p) for p in parent.split("."))
        groups.setdefault(prefix + r"\.", set()).add(leaf)
    parts = [f"{prefix}({'|'.join(sorted(leaves))})" for prefix, leaves in sorted(groups.items())]
    pattern = "|".join(parts)
    regex = re.compile(pattern)
    chosen = set(names)
    # the generalisation must not pick up other modules; if it would, list every name
    if any(regex.fullmatch(n) for n in every if n not in chosen):
        return "|".join(re.escape(n) for n in names)
    return pattern
