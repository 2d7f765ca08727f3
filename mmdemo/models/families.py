"""The VLM model families mmdemo knows: for each, its transformers class, its tiny build, how
its processor bounds an image on a CPU, where LoRA attaches, its three parts (vision encoder,
projector, language model) and whether concurrent requests may share one padded batch.

The model ids per profile live in ``mmdemo.profiles.VLM_FAMILIES``; the loader
(``backends/vlm.py``) recognises a family by the loaded config's ``model_type`` and, before
anything is read or downloaded, by the model id (so a refused family costs nothing).
Pure data: importing this module imports no heavy library.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from mmdemo.errors import ModelUnavailableError
from mmdemo.profiles import VLM_FAMILIES

CPU_MAX_PIXELS = 512 * 512  # pixel-budget families on a CPU: at most this many pixels an image
LLAMA_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Why a family stays on the serial path (one answer at a time) for concurrent chat requests.
MROPE_PADDING = (
    "3-D rope positions come from each row's image grid; left-padded batches changed some "
    "Qwen2-VL rows' greedy answers with real weights, so the 3-D rope families stay serial "
    "until a real-weights run shows rows equal to their solo answers"
)


@dataclass(frozen=True)
class Family:
    """What mmdemo knows about one VLM family, checked by tests/test_families.py."""

    key: str  # the name settings and the CLI use (a key of profiles.VLM_FAMILIES)
    title: str
    model_types: tuple[str, ...]  # config.model_type values that mean this family
    architecture: str  # the transformers class (remote-code families: the repo's class)
    tiny: str  # tiny build name (tiny:NAME), "" for none
    id_pattern: str  # recognises the family's model ids (case-insensitive search)
    # how its processor bounds an image: tiles (split into tiles, one on a CPU), pixels (a
    # pixel budget, CPU_MAX_PIXELS on a CPU) or fixed (every image resized to one size)
    images: str
    lora_targets: tuple[str, ...]  # leaf names of the language model's layers LoRA adapts
    parts: tuple[str, str, str]  # module names of its vision encoder, projector, language model
    # "" when concurrent requests with different adapters share one padded batch; else why not
    serial_reason: str = ""
    remote_code: bool = False  # its modelling code lives in its repo (trust_remote_code)
    gpu_only: bool = False  # refused unless the profile is gpu
    # "module:function" building generate's inputs from chat messages and images, for a
    # family whose model builds them itself; "" = its processor's chat template
    inputs: str = ""

    @property
    def mixed_batch(self) -> bool:
        return not self.serial_reason

    @property
    def tiny_id(self) -> str:
        return f"tiny:{self.tiny}" if self.tiny else ""

    def input_builder(self) -> Callable[..., dict[str, Any]] | None:
        """The family's own input builder (imported now), None for the processor's way."""
        if not self.inputs:
            return None
        module, _, func = self.inputs.partition(":")
        return getattr(importlib.import_module(module), func)

    def model_ids(self) -> Mapping[str, str]:
        """profile -> model id ("" where the family has none for that profile)."""
        return VLM_FAMILIES[self.key]

    def cpu_image_budget(self) -> str:
        """What one image may cost on a CPU, in words (the System tab, the CLI)."""
        if self.images == "tiles":
            return "one tile (image splitting off)"
        if self.images == "pixels":
            return f"at most {CPU_MAX_PIXELS:,} pixels ({CPU_MAX_PIXELS // 28**2} merged tokens)"
        return "one fixed-size image (the vision tower's input size)"


FAMILIES: Mapping[str, Family] = MappingProxyType(
    {
        f.key: f
        for f in (
            Family(
                "smolvlm",
                "SmolVLM / Idefics3",
                ("idefics3", "smolvlm"),
                "Idefics3ForConditionalGeneration",
                "smolvlm",
                r"smolvlm|idefics3",
                "tiles",
                LLAMA_LINEARS,
                ("vision_model", "connector", "text_model"),
            ),
            Family(
                "qwen2-vl",
                "Qwen2-VL",
                ("qwen2_vl",),
                "Qwen2VLForConditionalGeneration",
                "qwen2vl",
                r"qwen2-vl",
                "pixels",
                LLAMA_LINEARS,
                ("visual", "merger", "language_model"),
                serial_reason=MROPE_PADDING,
            ),
            Family(
                "qwen2.5-vl",
                "Qwen2.5-VL",
                ("qwen2_5_vl",),
                "Qwen2_5_VLForConditionalGeneration",
                "qwen25vl",
                r"qwen2\.5-vl",
                "pixels",
                LLAMA_LINEARS,
                ("visual", "merger", "language_model"),
                serial_reason=MROPE_PADDING,
            ),
            Family(
                "llava-1.5",
                "LLaVA-1.5",
                ("llava",),
                "LlavaForConditionalGeneration",
                "llava",
                r"llava-1\.5|llava-v1\.5",
                "fixed",
                LLAMA_LINEARS,
                ("vision_tower", "multi_modal_projector", "language_model"),
            ),
            Family(
                "internvl",
                "InternVL",
                ("internvl",),
                "InternVLForConditionalGeneration",
                "internvl",
                r"internvl",
                "tiles",
                LLAMA_LINEARS,
                ("vision_tower", "multi_modal_projector", "language_model"),
            ),
            Family(
                "glm-4.1v",
                "GLM-4.1V",
                ("glm4v",),
                "Glm4vForConditionalGeneration",
                "glm4v",
                r"glm-4\.1v",
                "pixels",
                ("q_proj", "k_proj", "v_proj", "o_proj", "gate_up_proj", "down_proj"),
                ("visual", "merger", "language_model"),
                serial_reason=MROPE_PADDING,
            ),
            Family(
                "cogvlm2",
                "CogVLM2",
                ("cogvlm2",),
                "CogVLMForCausalLM (remote code)",
                "",
                r"cogvlm2",
                "fixed",
                ("language_expert_query_key_value", "language_expert_dense"),
                ("vision", "vision.linear_proj", "model"),
                serial_reason="its remote code builds each row's inputs; batching them is not wired",
                remote_code=True,
                gpu_only=True,
                inputs="mmdemo.models.cogvlm2:inputs",
            ),
        )
    }
)


def by_model_type(model_type: str) -> Family | None:
    """The family a loaded config's ``model_type`` belongs to (None: not one mmdemo knows)."""
    return next((f for f in FAMILIES.values() if model_type in f.model_types), None)


def by_model_id(model_id: str) -> Family | None:
    """The family a model id names, without reading any file: a tiny build, a family's
    configured model, or a repo or folder name that names the family."""
    if model_id.startswith("tiny:"):
        return next((f for f in FAMILIES.values() if f.tiny_id == model_id), None)
    for family in FAMILIES.values():
        if model_id in family.model_ids().values():
            return family
    name = model_id.rstrip("/").rsplit("/", 1)[-1] if "/" in model_id else model_id
    return next((f for f in FAMILIES.values() if re.search(f.id_pattern, name, re.I)), None)


def family_of(model: Any) -> Family | None:
    """The family of a loaded model (PEFT wrappers included)."""
    config = getattr(model, "config", None)
    return by_model_type(getattr(config, "model_type", "") or "")


def check_allowed(family: Family | None, model_id: str, settings: Any) -> None:
    """Refuse a family this run may not load, before anything is read: gpu-only families
    outside the gpu profile, remote-code families without ``trust_remote_code``."""
    if family is None:
        return
    profile = settings.resolved_profile
    if family.gpu_only and profile != "gpu":
        raise ModelUnavailableError(
            f"{family.title} ('{model_id}') loads only with the gpu profile; this run uses the "
            f"'{profile}' profile",
            backend="vlm",
            model_id=model_id,
            fix="on a CUDA machine set MMDEMO_PROFILE=gpu (and MMDEMO_TRUST_REMOTE_CODE=1), "
            "or pick another family with MMDEMO_VLM_FAMILY",
        )
    if family.remote_code and not settings.trust_remote_code:
        raise ModelUnavailableError(
            f"{family.title} ('{model_id}') runs modelling code from its repository, and "
            "trust_remote_code is off",
            backend="vlm",
            model_id=model_id,
            fix="read that code, then set MMDEMO_TRUST_REMOTE_CODE=1 to allow it",
        )
