"""Quality with the REAL embedded cpu-profile backends (offline): faster-whisper tiny.en on
recorded LibriVox speech, hibari TTS fed back to the ASR, and one real spoken answer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mmdemo.config import Settings
from mmdemo.flows.assistant import Conversation, VoiceAssistant
from mmdemo.flows.audio import prepare, read_audio
from mmdemo.flows.wer import word_errors
from mmdemo.models.manager import ModelManager

SENTENCES = (
    "The weather today is sunny with a light breeze from the west.",
    "Please remind me to call my sister at seven tonight.",
    "How many minutes does it take to boil an egg?",
    "Turn off the lights in the kitchen and lock the front door.",
)


@pytest.fixture(scope="module")
def real(test_home: Path) -> Iterator[ModelManager]:
    manager = ModelManager(Settings(profile="cpu", home=test_home, device="cpu"))
    yield manager
    manager.unload_all()


def test_librivox_speech_is_transcribed_nearly_word_perfect(
    real: ModelManager, librivox: list[tuple[Path, str]]
) -> None:
    asr = real.get("asr")
    edits = words = 0
    for path, reference in librivox:
        result = asr.transcribe(read_audio(path).samples)
        errors = word_errors(reference, result.text)
        edits, words = edits + errors.edits, words + errors.words
    # tiny.en hears "ill-disposed" as "old-sposed" in two clips: ~10% today
    assert edits / words <= 0.15, f"corpus WER {edits / words:.1%} over {words} words"


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def test_a_short_window_hears_the_same_words_as_whispers_30_s_window(
    real: ModelManager, librivox: list[tuple[Path, str]]
) -> None:
    from mmdemo.models.backends.asr import window_seconds

    asr = real.get("asr")
    for path, _ in librivox:
        samples = read_audio(path).samples
        window = window_seconds(len(samples) / 16000)
        assert window < 30
        short = asr.transcribe_window(samples, "en", window).text
        full = asr.transcribe_window(samples, "en", 30.0).text
        # the same words; punctuation may differ (CTranslate2 4.8 puts a comma one window
        # leaves out)
        assert words_of(short) == words_of(full), (path.name, short, full)


def test_spoken_answers_are_short_and_never_repeat_a_sentence(real: ModelManager) -> None:
    import threading

    from mmdemo.flows.responders import TextLLMResponder
    from mmdemo.flows.sentences import SentenceSplitter, repeated_sentence, split_stream

    responder = TextLLMResponder(real)
    for reuse in (True, False):  # with and without the system prompt's cached KV
        responder.config.reuse_system_cache = reuse
        for question in ("Who is the queen?", "What is the capital of France?"):
            answer = "".join(responder.respond((), question, None, threading.Event()))
            sentences = list(split_stream([answer], SentenceSplitter(first_clause_words=0)))
            assert 1 <= len(sentences) <= 2 and not repeated_sentence(answer), answer


def test_speech_from_the_tts_comes_back_from_the_asr(real: ModelManager) -> None:
    tts, asr = real.get("tts"), real.get("asr")
    edits = words = 0
    for sentence in SENTENCES:
        speech = tts.synthesize(sentence)
        heard = asr.transcribe(prepare(speech.audio, speech.sample_rate).samples).text
        errors = word_errors(sentence, heard)
        edits, words = edits + errors.edits, words + errors.words
    assert edits / words <= 0.10, f"round-trip WER {edits / words:.1%}"


def test_a_real_spoken_question_gets_a_spoken_answer(
    real: ModelManager, librivox: list[tuple[Path, str]]
) -> None:
    assistant = VoiceAssistant(real)
    assistant.responders.text.config.max_new_tokens = 40  # keep the test short
    conv = Conversation()
    updates: list[Any] = list(assistant.turn(conv, read_audio(librivox[1][0])))
    done = updates[-1]
    assert word_errors(librivox[1][1], done.transcript).rate <= 0.25
    assert len(done.answer.split()) >= 3 and conv.turns[0].assistant == done.answer
    assert sum(u.audio is not None for u in updates) >= 1 and done.metrics.first_audio_s
    assert done.metrics.responder == "llm"
