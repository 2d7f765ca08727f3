"""Text-to-speech backend: hibari (Kokoro-distilled ONNX, shipped in its package) or a
transformers VITS model (MMS-TTS on the Hub, ``tiny:vits`` offline).

Both sit behind ``synthesize(text, voice, speed) -> (float32 mono audio, sample rate)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.models.device import module_footprint, torch_dtype
from mmdemo.models.hub import resolve_model_dir, unavailable
from mmdemo.models.manager import LoadContext, LoadedModel


@dataclass(frozen=True)
class Speech:
    audio: Any  # float32 numpy array, mono, in [-1, 1]
    sample_rate: int


class HibariTTS:
    engine = "hibari"

    def __init__(self) -> None:
        from hibari import SAMPLE_RATE

        self.sample_rate = SAMPLE_RATE
        self._voices: dict[str, Any] = {}
        self.default_voice = "heart"
        self.voice_model(self.default_voice)  # load the packaged voice now

    @property
    def voices(self) -> tuple[str, ...]:
        """Voices usable now: the packaged one plus any already in hibari's cache."""
        from hibari.voices import VOICES, cache_dir

        cached = {
            v
            for v, meta in VOICES.items()
            if os.path.isfile(os.path.join(cache_dir(), meta.get("file", "")))
        }
        return tuple(v for v in VOICES if v == self.default_voice or v in cached)

    def voice_model(self, voice: str) -> Any:
        if voice not in self._voices:
            from hibari import Hibari

            self._voices[voice] = Hibari(voice=voice)
        return self._voices[voice]

    def synthesize(self, text: str, voice: str | None = None, speed: float = 1.0) -> Speech:
        import numpy as np

        voice = voice or self.default_voice
        if voice not in self.voices:
            raise ValueError(
                f"voice {voice!r} is not available offline (have: {', '.join(self.voices)})"
            )
        audio = self.voice_model(voice)(text, speed=speed)
        return Speech(np.asarray(audio, dtype=np.float32), self.sample_rate)


class VitsTTS:
    engine = "transformers-vits"
    voices = ("default",)

    def __init__(self, model: Any, tokenizer: Any, device: str):
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.sample_rate = int(model.config.sampling_rate)

    def synthesize(self, text: str, voice: str | None = None, speed: float = 1.0) -> Speech:
        import torch

        inputs = self.tokenizer(text, return_tensors="pt").to(self.device)
        if inputs["input_ids"].shape[-1] == 0:
            raise ValueError("nothing to say: the text has no characters this voice can read")
        self.model.speaking_rate = speed
        with torch.inference_mode():
            wave = self.model(**inputs).waveform[0]
        return Speech(wave.float().cpu().numpy(), self.sample_rate)


def load(ctx: LoadContext) -> LoadedModel:
    mid = ctx.model_id
    if mid.startswith("embedded:"):
        if mid != "embedded:hibari":
            raise unavailable(
                ctx.backend, mid, ctx.settings, "the only embedded TTS is embedded:hibari"
            )
        handle = HibariTTS()
        import hibari

        onnx = Path(hibari.__file__).parent / "assets" / "hibari.onnx"
        nbytes = onnx.stat().st_size if onnx.is_file() else 0
        return LoadedModel(
            handle=handle,
            device="cpu",
            dtype="int8",
            nbytes=nbytes,
            describe=lambda: {"engine": handle.engine, "voices": list(handle.voices)},
        )

    from transformers import AutoTokenizer, VitsModel

    path = resolve_model_dir(mid, ctx.backend, ctx.settings)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = VitsModel.from_pretrained(path, dtype=torch_dtype(ctx.dtype), use_safetensors=True)
    model = model.to(ctx.device).eval()
    params, nbytes = module_footprint(model)
    handle = VitsTTS(model, tokenizer, ctx.device)
    return LoadedModel(
        handle=handle,
        device=ctx.device,
        dtype=ctx.dtype,
        params=params,
        nbytes=nbytes,
        describe=lambda: {"engine": handle.engine},
    )
