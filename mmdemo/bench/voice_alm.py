"""The voice tab's two ways to answer, on the same recorded questions (the LibriVox clips of
``bench voice``): the pipeline (VAD -> ASR -> LLM -> TTS, the cpu profile's real embedded
models) and the audio LLM (Qwen2-Audio hears the recording itself; its answer text is spoken by
the same TTS), each turn run through ``VoiceAssistant.turn`` as the tab runs it.

The audio LLM here is the tiny random-weight Qwen2-Audio build (``tiny:qwen2audio``): the real
one (7B) cannot be downloaded offline. Its numbers show what the path costs around the model
(feature extraction, the audio encoder at a tiny width, prompt building, streaming, the TTS
stage) and how many audio tokens a second of speech becomes, not a real model's speed.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from mmdemo.bench.report import Table
from mmdemo.bench.voice import librivox_clips, median

ALM = "tiny:qwen2audio"


def _s(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:.2f} s"


def _turn(assistant: Any, clip: Any, mode: str) -> tuple[Any, str]:
    from mmdemo.flows.assistant import Conversation, VoiceOptions

    *_, done = assistant.turn(Conversation(), clip, options=VoiceOptions(mode=mode))
    return done.metrics, done.answer


def _audio_tokens(assistant: Any, clip: Any) -> int:
    """Audio placeholder tokens in the audio LLM's prompt for ``clip`` (what its language
    model reads for the recording)."""
    bundle = assistant.manager.get("alm")
    inputs = assistant.audio_llm.inputs((), clip)
    audio_id = bundle.model.config.audio_token_id
    return int((inputs["input_ids"] == audio_id).sum())


def run(quick: bool = False) -> Table:
    from mmdemo.config import Settings
    from mmdemo.flows.assistant import AUDIO_LLM, PIPELINE, VoiceAssistant
    from mmdemo.flows.audio import read_audio
    from mmdemo.models.manager import ModelManager

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mmdemo-voice-alm-") as tmp:
        settings = Settings.load(profile="cpu", device="cpu", home=Path(tmp), alm=ALM)
        manager = ModelManager(settings)
        assistant = VoiceAssistant(manager)
        clips = [read_audio(path) for path, _ in librivox_clips()[: 2 if quick else None]]
        for mode in (PIPELINE, AUDIO_LLM):  # warm-up: loads every model of both paths
            _turn(assistant, clips[0], mode)
        runs: dict[str, list] = {PIPELINE: [], AUDIO_LLM: []}
        answers: dict[str, list[str]] = {PIPELINE: [], AUDIO_LLM: []}
        for clip in clips:  # interleaved, so load changes hit both paths alike
            for mode in (PIPELINE, AUDIO_LLM):
                metrics, answer = _turn(assistant, clip, mode)
                runs[mode].append(metrics)
                answers[mode].append(answer)
        tokens = [_audio_tokens(assistant, clip) for clip in clips]
        status = {s.backend: s for s in manager.status()}
        table = _table(runs, answers, clips, tokens)
        table.notes += _notes(manager, status, clips, load_before)
        manager.unload_all()
    return table


def _table(runs: dict, answers: dict, clips: list, tokens: list[int]) -> Table:
    from mmdemo.flows.assistant import AUDIO_LLM, PIPELINE

    pipe, alm = runs[PIPELINE], runs[AUDIO_LLM]
    table = Table(
        "voice-alm",
        "Voice tab: pipeline (ASR -> LLM -> TTS) vs. audio LLM (tiny random-weight Qwen2-Audio)",
        ["measure (median over clips)", "pipeline", "audio LLM (tiny, random weights)", "note"],
    )

    def row(name: str, left: Any, right: Any, note: str = "") -> None:
        table.add(name, left, right, note)

    row(
        "speech end -> transcript",
        _s(median(m.transcript_s for m in pipe)),
        "none (no ASR)",
        "the audio LLM hears the recording itself",
    )
    row(
        "speech end -> model's first token",
        _s(median(m.first_token_s for m in pipe)),
        _s(median(m.first_token_s for m in alm)),
        "pipeline: ASR, then the text LLM's prefill; audio LLM: features, audio encoder, prefill",
    )
    row(
        "model time (speech end -> whole answer text)",
        "streamed into the TTS",
        _s(median(m.model_s for m in alm)),
        "the audio LLM's answer is spoken once complete",
    )
    row(
        "TTS compute (all sentences)",
        _s(median(m.tts_s for m in pipe)),
        _s(median(m.tts_s for m in alm)),
        "the same TTS; it depends on the answer's length",
    )
    row(
        "**speech end -> first audio**",
        _s(median(m.first_audio_s for m in pipe)),
        _s(median(m.first_audio_s for m in alm)),
        f"audio LLM answered with audio in {sum(m.first_audio_s is not None for m in alm)} "
        f"of {len(alm)} turns",
    )
    row(
        "speech end -> last audio (total)",
        _s(median(m.total_s for m in pipe)),
        _s(median(m.total_s for m in alm)),
        "",
    )
    row(
        "answer words",
        f"{statistics.median(len(a.split()) for a in answers[PIPELINE]):.0f}",
        f"{statistics.median(len(a.split()) for a in answers[AUDIO_LLM]):.0f}",
        "random weights: the audio LLM's words are noise",
    )
    per_second = [t / c.seconds for t, c in zip(tokens, clips, strict=True)]
    prefill = [t / m.first_token_s for t, m in zip(tokens, alm, strict=True) if m.first_token_s]
    row(
        "audio tokens per second of speech",
        "n/a",
        f"{statistics.median(per_second):.1f} ({min(tokens)}-{max(tokens)} per clip)",
        "what the language model reads for the recording",
    )
    row(
        "audio tokens per second to the first token",
        "n/a",
        f"{statistics.median(prefill):.0f}" if prefill else "n/a",
        "audio tokens / (speech end -> first token): the path's throughput at a tiny width",
    )
    return table


def _notes(manager: Any, status: dict, clips: list, load_before: float) -> list[str]:
    seconds = sum(c.seconds for c in clips)
    return [
        f"Each of the {len(clips)} LibriVox clips ({min(c.seconds for c in clips):.1f}-"
        f"{max(c.seconds for c in clips):.1f} s, {seconds:.1f} s in all) answered once per "
        "path through VoiceAssistant.turn (the tab's turn), paths interleaved, after a "
        "warm-up turn each; times run from the moment the whole recording is available.",
        f"Pipeline: ASR `{manager.model_id('asr')}`, LLM `{manager.model_id('llm')}` "
        f"({status['llm'].dtype}), TTS `{manager.model_id('tts')}`: real weights, first words "
        "spoken while the rest is generated. Audio LLM: "
        f"`{ALM}` ({status['alm'].params / 1e6:.1f} M parameters, {status['alm'].dtype}), the "
        "Qwen2-Audio architecture at a tiny width with random weights, since the real "
        "Qwen2-Audio-7B cannot be downloaded here: its times are the path's overhead around "
        "a model, not a real model's speed, and its answers are noise.",
        "Measured on a 2-core machine shared with other jobs (load average "
        f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end).",
    ]
