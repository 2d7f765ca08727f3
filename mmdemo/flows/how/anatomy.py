"""A VLM's anatomy: its vision encoder, projector and language model, each with its parameter
count, dtypes and bytes, found by the module names the fine-tuning targets use.

Parameters shared between modules (tied input and output embeddings) are counted once, where
they first appear, as ``model.parameters()`` does. Weights of adapters resident on a served
model (PEFT's ``lora_*``, ``modules_to_save`` copies) are counted apart: they are not the base.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mmdemo.finetune.targets import LANGUAGE_PARTS, PROJECTOR_PARTS, VISION_PARTS
from mmdemo.flows.how import plain
from mmdemo.models.bottleneck import CHILD
from mmdemo.models.families import by_model_type
from mmdemo.models.lora import ADAPTER_PARAM_PREFIXES

# part key -> what a reader calls it
PART_TITLES = {
    "vision": "vision encoder",
    "projector": "projector",
    "language": "language model",
    "other": "other (output head, ...)",
}
ADAPTER_SEGMENTS = ("modules_to_save", CHILD)  # PEFT's trained copies, bottleneck adapters


@dataclass(frozen=True)
class Part:
    key: str  # vision | projector | language | other
    title: str
    module: str  # module path inside the model ("" when the part is spread out or absent)
    params: int
    param_bytes: int
    buffer_bytes: int
    dtypes: tuple[str, ...]
    share: float  # of the model's parameters


@dataclass(frozen=True)
class Anatomy:
    model_class: str
    family: str
    params: int  # every base parameter once
    param_bytes: int
    buffer_bytes: int
    parts: tuple[Part, ...]
    tied_embeddings: bool  # the output head reuses the input embeddings (no extra weights)
    adapter_params: int  # weights of adapters resident on this model, not counted above
    shape: dict[str, Any]  # a few numbers from the config (layers, widths, image size)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["parts"] = [asdict(p) for p in self.parts]
        return plain(out)


def _first(names: list[str], parts: tuple[str, ...]) -> str | None:
    return next((n for n in names if n.rsplit(".", 1)[-1] in parts), None)


def is_adapter_param(name: str) -> bool:
    """A weight an adapter added (LoRA, (IA)³, a trained copy of a module), not the base's."""
    return any(
        seg.startswith(ADAPTER_PARAM_PREFIXES) or seg in ADAPTER_SEGMENTS for seg in name.split(".")
    )


def part_prefixes(model: Any, family: str = "") -> dict[str, str | None]:
    """Module path of each part: by the family's own module names (mmdemo.models.families)
    when the family is known, else by the names the supported families use. The projector
    is looked for first (the Qwen-VL and GLM-4.1V mergers sit inside their vision towers and
    belong to the projector)."""
    names = [n for n, _ in model.named_modules()]
    known = by_model_type(family or getattr(model.config, "model_type", "") or "")
    vision, projector, language = (
        ((p,) for p in known.parts) if known else (VISION_PARTS, PROJECTOR_PARTS, LANGUAGE_PARTS)
    )
    return {
        "projector": _first(names, projector),
        "vision": _first(names, vision),
        "language": _first(names, language),
    }


def part_of(name: str, prefixes: dict[str, str | None]) -> str:
    """The part a parameter or module name belongs to."""
    for key in ("projector", "vision", "language"):
        prefix = prefixes.get(key)
        if prefix and (name == prefix or name.startswith(prefix + ".")):
            return key
    return "other"


def config_shape(config: Any) -> dict[str, Any]:
    """Layers, widths and image numbers a reader compares models by (what the config has)."""
    shape: dict[str, Any] = {}
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for key in ("num_hidden_layers", "hidden_size", "num_attention_heads", "vocab_size"):
        if getattr(text, key, None) is not None:
            shape[f"text_{key}"] = getattr(text, key)
    vision = getattr(config, "vision_config", None)
    for key in (
        "num_hidden_layers",
        "depth",
        "hidden_size",
        "embed_dim",
        "image_size",
        "patch_size",
    ):
        value = getattr(vision, key, None) if vision is not None else None
        if isinstance(value, int | float):
            shape[f"vision_{key}"] = value
    for key in ("scale_factor",):
        if getattr(config, key, None) is not None:
            shape[key] = getattr(config, key)
    merge = getattr(vision, "spatial_merge_size", None) if vision is not None else None
    if merge is not None:
        shape["vision_spatial_merge_size"] = merge
    return shape


def anatomy(model: Any, family: str = "") -> Anatomy:
    """The parts of ``model`` (a loaded VLM, or a meta-device one: only shapes are read)."""
    prefixes = part_prefixes(model, family)
    counts = {key: [0, 0, 0, set()] for key in PART_TITLES}  # params, bytes, buffer bytes, dtypes
    adapter = 0
    for name, p in model.named_parameters():
        if is_adapter_param(name):
            adapter += p.numel()
            continue
        row = counts[part_of(name, prefixes)]
        row[0] += p.numel()
        row[1] += p.numel() * p.element_size()
        row[3].add(str(p.dtype).removeprefix("torch."))
    for name, b in model.named_buffers():
        if not is_adapter_param(name):
            counts[part_of(name, prefixes)][2] += b.numel() * b.element_size()
    total = sum(row[0] for row in counts.values())
    parts = tuple(
        Part(
            key=key,
            title=PART_TITLES[key],
            module=prefixes.get(key) or "",
            params=row[0],
            param_bytes=row[1],
            buffer_bytes=row[2],
            dtypes=tuple(sorted(row[3])),
            share=row[0] / total if total else 0.0,
        )
        for key, row in counts.items()
        if row[0] or row[2] or key != "other"
    )
    head, embed = model.get_output_embeddings(), model.get_input_embeddings()
    tied = head is not None and embed is not None and head.weight is embed.weight
    return Anatomy(
        model_class=type(model).__name__,
        family=family or getattr(model.config, "model_type", ""),
        params=total,
        param_bytes=sum(row[1] for row in counts.values()),
        buffer_bytes=sum(row[2] for row in counts.values()),
        parts=parts,
        tied_embeddings=bool(tied),
        adapter_params=adapter,
        shape=config_shape(model.config),
    )
