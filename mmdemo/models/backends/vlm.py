"""VLM backend: the families of ``mmdemo.models.families`` (SmolVLM / Idefics3, Qwen2-VL,
Qwen2.5-VL, LLaVA-1.5, InternVL, GLM-4.1V) and other ``AutoModelForImageTextToText`` models."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from mmdemo.models.device import module_footprint, torch_dtype
from mmdemo.models.families import (
    CPU_MAX_PIXELS,
    FAMILIES,
    by_model_id,
    by_model_type,
    check_allowed,
)
from mmdemo.models.hub import resolve_model_dir
from mmdemo.models.lora import AdapterRuntime
from mmdemo.models.manager import LoadContext, LoadedModel

# model_type values whose image processor tiles big images (one extra 'image' per tile).
SPLITTING_FAMILIES = tuple(
    t for f in FAMILIES.values() if f.images == "tiles" for t in f.model_types
)
# model_type values with a pixel budget per image instead of tiling (Qwen2-VL style).
PIXEL_BUDGET_FAMILIES = tuple(
    t for f in FAMILIES.values() if f.images == "pixels" for t in f.model_types
)


@dataclass
class VLMBundle:
    """The loaded VLM: model, processor and what flows need to know about them."""

    model: Any
    processor: Any
    family: str
    model_id: str
    device: str
    dtype: str
    adapters: AdapterRuntime = field(init=False)
    max_adapters: int = 4
    decoder: Any = None  # models.ov_rows.RowDecoders when the decode route is OpenVINO

    def __post_init__(self) -> None:
        self.adapters = AdapterRuntime(self.model, self.family, self.max_adapters)

    def generate_kwargs(self, pinned: Any) -> dict[str, Any]:
        """What a pinned request's or batch's ``generate`` adds: the decode route's loop (none:
        eager, also for adapters the OpenVINO step cannot carry)."""
        hooked = self.adapters.hooked.configs  # adapters beside PEFT's layers: eager
        if self.decoder is None or any(name in hooked for name in pinned.adapters):
            return {}
        return self.decoder.generate_kwargs(self.adapters.peft, pinned.adapters)

    @property
    def decode_route(self) -> str:
        return f"openvino ({self.decoder.precision})" if self.decoder is not None else "eager"

    @property
    def tokenizer(self) -> Any:
        # remote-code families without a processor (CogVLM2): AutoProcessor gives the tokenizer
        return getattr(self.processor, "tokenizer", self.processor)


def configure_images(processor: Any, family: str, splitting: bool) -> None:
    """Bound the work per image: tiling on/off (Idefics3, InternVL), a pixel budget (Qwen2-VL,
    Qwen2.5-VL, GLM-4.1V); fixed-size families (LLaVA-1.5) need nothing. Padding follows the
    tokenizer's ``padding_side`` (the training collator pads right, generation left)."""
    _honour_padding_side(processor)
    image_processor = getattr(processor, "image_processor", None)
    if image_processor is None:
        return
    if family in SPLITTING_FAMILIES:
        if hasattr(image_processor, "crop_to_patches"):  # InternVL (GotOcr2 processor)
            image_processor.crop_to_patches = splitting
            # the processor passes its own default on every call: this instance's wins
            defaults = dict(getattr(processor, "images_kwargs", None) or {})
            processor.images_kwargs = {**defaults, "crop_to_patches": splitting}
        else:
            image_processor.do_image_splitting = splitting
    elif family in PIXEL_BUDGET_FAMILIES and not splitting:
        size = image_processor.size

        def edge(key: str) -> int | None:
            return size.get(key) if isinstance(size, dict) else getattr(size, key, None)

        longest = min(edge("longest_edge") or CPU_MAX_PIXELS, CPU_MAX_PIXELS)
        shortest = min(edge("shortest_edge") or 56 * 56, longest)
        image_processor.size = {"shortest_edge": shortest, "longest_edge": longest}


def _honour_padding_side(processor: Any) -> None:
    """InternVL's processor pads left whatever its tokenizer says (a class-level default it
    passes on every call); drop that default on this instance so the tokenizer decides."""
    text = getattr(processor, "text_kwargs", None)
    if isinstance(text, dict) and "padding_side" in text:
        processor.text_kwargs = {k: v for k, v in text.items() if k != "padding_side"}


def load_parts(
    model_id: str, settings: Any, device: str, dtype: str, **model_kwargs: Any
) -> tuple[Any, Any, str, bool]:
    """(model, processor, family, image splitting) through the one loading path the app,
    training and benchmarks share. ``model_kwargs`` go to ``from_pretrained`` (4-bit for
    QLoRA); with a ``device_map`` the model is not moved afterwards."""
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForImageTextToText,
        AutoProcessor,
    )

    known = by_model_id(model_id)
    check_allowed(known, model_id, settings)  # before any file is read or downloaded
    path = resolve_model_dir(model_id, "vlm", settings)
    trust = settings.trust_remote_code
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust)
    family = config.model_type
    known = by_model_type(family) or known
    check_allowed(known, model_id, settings)
    # remote-code families (CogVLM2) register a causal LM class, not an image-text-to-text one
    auto = AutoModelForCausalLM if known is not None and known.remote_code else None
    processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust)
    splitting = {"on": True, "off": False}.get(
        settings.image_splitting, not device.startswith("cpu")
    )
    configure_images(processor, family, splitting)
    model = (auto or AutoModelForImageTextToText).from_pretrained(
        path,
        dtype=torch_dtype(dtype),
        trust_remote_code=trust,
        use_safetensors=True,
        **model_kwargs,
    )
    if "device_map" not in model_kwargs:
        model = model.to(device)
    return model.eval(), processor, family, splitting


def decoders(model: Any, family: str, ctx: LoadContext) -> Any:
    """The OpenVINO decode steps for this VLM when the decode route asks for them (auto: on a
    CPU, for the families checked in models/ov_rows.py, not the tiny test builds; openvino:
    or a clear error saying why not)."""
    from pathlib import Path

    from mmdemo.models.ov_decode import DecodeUnavailableError, takes_route
    from mmdemo.models.ov_rows import FAMILIES, RowDecoders

    route = ctx.settings.decode
    if route == "auto" and ctx.settings.resolved_profile == "tiny":
        route = "eager"  # the random test builds: nothing to gain, an export per test home
    if route == "openvino" and family not in FAMILIES:
        raise DecodeUnavailableError(
            f"the OpenVINO decode route serves {', '.join(FAMILIES)} VLMs, not {family}",
            fix="set MMDEMO_DECODE=auto (or eager)",
        )
    if family not in FAMILIES or not takes_route(model, route):
        return None
    source = Path(model.name_or_path) if Path(model.name_or_path).is_dir() else None
    known = by_model_type(family)
    try:
        return RowDecoders(
            model,
            ctx.settings.models_dir / "openvino-steps",
            source,
            known.lora_targets if known is not None else (),
            ctx.settings.trust_remote_code,
        )
    except DecodeUnavailableError:
        if route == "openvino":
            raise
        logging.getLogger("mmdemo.models").warning("VLM decodes eagerly", exc_info=True)
        return None  # auto: a step that could not be traced leaves the VLM eager


def load(ctx: LoadContext) -> LoadedModel:
    model, processor, family, splitting = load_parts(
        ctx.model_id, ctx.settings, ctx.device, ctx.dtype
    )
    known = by_model_type(family)
    params, nbytes = module_footprint(model)
    bundle = VLMBundle(
        model,
        processor,
        family,
        ctx.model_id,
        ctx.device,
        ctx.dtype,
        max_adapters=ctx.settings.max_adapters,
        decoder=decoders(model, family, ctx),
    )
    return LoadedModel(
        handle=bundle,
        device=ctx.device,
        dtype=ctx.dtype,
        params=params,
        nbytes=nbytes,
        describe=lambda: {
            "family": family,
            "family_title": known.title if known else "",
            "image_splitting": splitting,
            "adapters": ", ".join(bundle.adapters.resident_names()) or "none",
            "decode": bundle.decode_route,
        },
    )
