"""Audio LLM backend: Qwen2-Audio (transformers-native ``Qwen2AudioForConditionalGeneration``)
hears a recorded question and answers in text, with no speech recogniser in between.

Real weights come from the Hub (``Qwen/Qwen2-Audio-7B-Instruct``); ``tiny:qwen2audio`` is the
same architecture with random weights, built offline and loaded through this same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmdemo.models.device import module_footprint, torch_dtype
from mmdemo.models.hub import resolve_model_dir
from mmdemo.models.manager import LoadContext, LoadedModel

# The audio encoder reads 30 s windows of 16 kHz audio (Whisper's features, padded to 3000
# frames); longer audio is cut by the feature extractor.
MAX_AUDIO_S = 30.0


@dataclass
class AudioLLMBundle:
    """What the flow uses: the model, its processor (feature extractor + tokenizer + chat
    template) and where it runs."""

    model: Any
    processor: Any
    model_id: str
    device: str
    dtype: str

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    @property
    def sample_rate(self) -> int:
        return int(self.processor.feature_extractor.sampling_rate)

    def inputs(self, messages: list[dict[str, Any]], audio: Any) -> Any:
        """Model inputs for chat ``messages`` whose one audio part is ``audio`` (float32
        mono at ``sample_rate``): token ids with the audio placeholders expanded, and the mel
        features with their attention mask."""
        prompt = self.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        batch = self.processor(
            text=prompt, audio=[audio], sampling_rate=self.sample_rate, return_tensors="pt"
        )
        batch = batch.to(self.device)
        batch["input_features"] = batch["input_features"].to(self.model.dtype)
        return batch


def load(ctx: LoadContext) -> LoadedModel:
    from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration

    path = resolve_model_dir(ctx.model_id, ctx.backend, ctx.settings)
    trust = ctx.settings.trust_remote_code
    processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust)
    model = Qwen2AudioForConditionalGeneration.from_pretrained(
        path, dtype=torch_dtype(ctx.dtype), use_safetensors=True
    )
    model = model.to(ctx.device).eval()
    params, nbytes = module_footprint(model)
    bundle = AudioLLMBundle(model, processor, ctx.model_id, ctx.device, ctx.dtype)
    return LoadedModel(
        handle=bundle,
        device=ctx.device,
        dtype=ctx.dtype,
        params=params,
        nbytes=nbytes,
        describe=lambda: {"engine": "transformers Qwen2-Audio", "max_audio_s": MAX_AUDIO_S},
    )
