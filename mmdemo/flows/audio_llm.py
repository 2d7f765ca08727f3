"""The voice assistant's second way to answer: an audio LLM (Qwen2-Audio) hears the recorded
question itself, with no speech recogniser, and its text answer is spoken by the usual TTS.

The turn runs in two timed stages, so the latency table can split them: the model (speech
end -> whole answer text) and the TTS (compute seconds of every spoken sentence).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from mmdemo.flows.assistant import Conversation, TurnMetrics, TurnUpdate, VoiceOptions
from mmdemo.flows.audio import SAMPLE_RATE, Clip
from mmdemo.flows.responders import GenerationConfig, Turn, stream_generate
from mmdemo.flows.sentences import SentenceSplitter

# what the conversation shows (and later prompts carry) for a question no ASR wrote down
HEARD = "🎤 (spoken question, heard by the audio LLM)"
# the audio encoder's window (Whisper features, 30 s); the rest of a longer clip is not heard
MAX_AUDIO_S = 30.0


def audio_messages(history: Sequence[Turn], config: GenerationConfig) -> list[dict[str, Any]]:
    """Chat-template messages: the system prompt, the recent turns as text, then the new
    question as one audio part (Qwen2-Audio's voice-chat mode: the audio is the question)."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": config.system_prompt}]
    recent = history[-config.max_history_turns :] if config.max_history_turns else []
    for turn in recent:
        messages.append({"role": "user", "content": turn.user})
        messages.append({"role": "assistant", "content": turn.assistant})
    messages.append({"role": "user", "content": [{"type": "audio"}]})
    return messages


class AudioLLMResponder:
    """Streams the audio LLM's answer (``manager.get("alm")``) to a recorded question."""

    name = "audio-llm"

    def __init__(self, manager: Any, config: GenerationConfig | None = None) -> None:
        self.manager = manager
        self.config = config or GenerationConfig()

    def inputs(self, history: Sequence[Turn], clip: Clip) -> Any:
        """The model's inputs: prompt ids with the audio placeholders, and the clip's mel
        features (at most ``MAX_AUDIO_S`` of it)."""
        bundle = self.manager.get("alm")
        samples = clip.samples[: int(MAX_AUDIO_S * SAMPLE_RATE)]
        return bundle.inputs(audio_messages(history, self.config), samples)

    def respond(self, history: Sequence[Turn], clip: Clip, stop: threading.Event) -> Iterator[str]:
        bundle = self.manager.get("alm")
        inputs = self.inputs(history, clip)
        yield from stream_generate(bundle.model, bundle.tokenizer, inputs, stop, self.config)


def audio_llm_turn(
    assistant: Any,
    conv: Conversation,
    clip: Clip,
    image: Any,
    options: VoiceOptions,
    t0: float,
    endpoint_s: float,
    notes: list[str],
) -> Iterator[TurnUpdate]:
    """One turn answered by the audio LLM, then spoken by ``assistant``'s TTS stage."""
    responder: AudioLLMResponder = assistant.audio_llm
    metrics = TurnMetrics(audio_s=clip.seconds, endpoint_s=endpoint_s)
    metrics.speech_s, metrics.responder = min(clip.seconds, MAX_AUDIO_S), responder.name
    since = lambda: time.perf_counter() - t0  # noqa: E731
    if clip.seconds > MAX_AUDIO_S:
        notes.append(f"the audio LLM hears {MAX_AUDIO_S:.0f} s at most; the rest was not heard")
    if image is not None:
        notes.append("the audio LLM does not see images: the image was not used")
    if options.adapter is not None:
        notes.append("adapters belong to the VLM: the audio LLM answered without it")
    update = TurnUpdate(HEARD, "", metrics, notes=tuple(notes))
    yield update
    answer = ""
    deltas = responder.respond(tuple(conv.turns), clip, conv.stop)
    try:
        for delta in deltas:
            if metrics.first_token_s is None:
                metrics.first_token_s = since()
            answer += delta
            yield replace(update, answer=answer)
            if conv.stop.is_set():
                break
    finally:
        deltas.close()  # ends the generate thread if we left early
    metrics.model_s = since()
    tts = assistant.manager.get("tts")
    splitter = SentenceSplitter(first_chunk_words=0)
    for sentence in [*splitter.feed(answer), *splitter.flush()]:
        if conv.stop.is_set():
            break
        yield from assistant.speak(tts, sentence, options, metrics, update, answer, since)
    interrupted = conv.stop.is_set()
    metrics.total_s = since()
    if not answer.strip() and not interrupted:
        notes.append("the model gave an empty answer")
    if answer.strip():
        conv.turns.append(Turn(HEARD, answer.strip(), False, interrupted))
    conv.metrics.append(metrics)
    if interrupted:
        notes.append(f"interrupted after {metrics.sentences} spoken sentence(s)")
    yield TurnUpdate(
        HEARD, answer.strip(), metrics, done=True, interrupted=interrupted, notes=tuple(notes)
    )
