"""Text-to-speech backend: hibari (Kokoro-distilled ONNX, shipped in its package), a
transformers VITS model (MMS-TTS on the Hub, ``tiny:vits`` offline), or the espeak-ng
formant synthesizer (``espeak-ng`` / ``espeak-ng:VOICE``: robotic, but ~100 languages).

All sit behind ``synthesize(text, voice, speed) -> (float32 mono audio, sample rate)``,
with ``voices`` and ``languages``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
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
    languages = ("en",)

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
    languages = ()  # one language per MMS-TTS model, not recorded in its config

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


class EspeakTTS:
    """espeak-ng through its command line (Debian package ``espeak-ng``)."""

    engine = "espeak-ng"
    words_per_minute = 175  # espeak-ng's own default rate = speed 1.0

    def __init__(self, default_voice: str = "en-us") -> None:
        self.binary = shutil.which("espeak-ng")
        if self.binary is None:
            from mmdemo.errors import MissingDependencyError

            raise MissingDependencyError(
                "the espeak-ng TTS needs the espeak-ng program", fix="apt-get install espeak-ng"
            )
        listing = subprocess.run(
            [self.binary, "--voices"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.splitlines()[1:]
        self.voices = tuple(dict.fromkeys(line.split()[1] for line in listing if line.split()))
        self.languages = tuple(dict.fromkeys(v.split("-")[0] for v in self.voices))
        if default_voice not in self.voices:
            raise ValueError(f"espeak-ng has no voice {default_voice!r}")
        self.default_voice = default_voice
        self.sample_rate = 22050

    def voice_for(self, language: str) -> str | None:
        """A voice that speaks ``language`` (e.g. "fr" -> "fr-fr"), if there is one."""
        preferred = {"en": "en-us"}.get(language, f"{language}-{language}")
        for voice in (preferred, language):
            if voice in self.voices:
                return voice
        return next((v for v in self.voices if v.split("-")[0] == language), None)

    def synthesize(self, text: str, voice: str | None = None, speed: float = 1.0) -> Speech:
        import io

        import soundfile as sf

        voice = voice or self.default_voice
        if voice not in self.voices:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        wav = subprocess.run(
            [self.binary, "-v", voice, "-s", str(round(self.words_per_minute * speed)), "--stdout"],
            input=text.encode("utf-8"),  # on stdin: text never becomes command-line options
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
        self.sample_rate = rate
        return Speech(audio, rate)


def load(ctx: LoadContext) -> LoadedModel:
    mid = ctx.model_id
    if mid == "espeak-ng" or mid.startswith("espeak-ng:"):
        handle = EspeakTTS(mid.partition(":")[2] or "en-us")
        return LoadedModel(
            handle=handle,
            device="cpu",
            dtype="n/a",
            describe=lambda: {"engine": handle.engine, "voices": len(handle.voices)},
        )
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
