"""Voice assistant: speech in, speech out, optionally looking at an image.

Stages, each a generator so the first sentence is spoken while the rest is still generating:
VAD (find the speech) -> ASR (transcript) -> Responder (LLM or VLM text deltas) ->
sentence splitter -> TTS (one audio chunk per sentence). With ``mode=AUDIO_LLM`` an audio LLM
hears the recording itself instead (no VAD, no ASR; see ``flows.audio_llm``). ``VoiceAssistant.turn`` runs them
for one user's ``Conversation`` and yields ``TurnUpdate`` snapshots with per-stage latency.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from mmdemo.errors import BadInputError, MMDemoError
from mmdemo.flows.audio import SAMPLE_RATE, Clip
from mmdemo.flows.responders import Responders, Turn
from mmdemo.flows.sentences import SentenceSplitter, speakable
from mmdemo.flows.vad import SileroVad, VadConfig, speech_chunks, speech_spans

SPEEDS = (0.5, 2.0)
# how a turn is answered: the ASR -> LLM -> TTS pipeline, or an audio LLM that hears the audio
PIPELINE, AUDIO_LLM = "pipeline", "audio-llm"
MODES = (PIPELINE, AUDIO_LLM)


@dataclass(frozen=True)
class VoiceOptions:
    """What the user picked for this turn."""

    voice: str | None = None  # a TTS voice; None: the backend's default
    language: str | None = None  # spoken language; None: the ASR's default (or detection)
    speed: float = 1.0  # speaking rate of the answer
    adapter: str | None = None  # a VLM adapter (the VLM then answers even without an image)
    mode: str = PIPELINE  # PIPELINE or AUDIO_LLM

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise BadInputError(
                f"unknown answer mode {self.mode!r}", fix=f"use one of {', '.join(MODES)}"
            )
        if not SPEEDS[0] <= self.speed <= SPEEDS[1]:
            raise BadInputError(
                f"speaking speed {self.speed} is outside {SPEEDS[0]}..{SPEEDS[1]}",
                fix="pick a speed between 0.5 (slow) and 2.0 (fast)",
            )


@dataclass
class TurnMetrics:
    """Latency of one turn; times are seconds after the end of speech was known."""

    audio_s: float = 0.0  # length of the input
    speech_s: float = 0.0  # speech found in it by the VAD
    endpoint_s: float = 0.0  # live mic: silence waited for before speech end was declared
    vad_s: float | None = None
    transcript_s: float | None = None
    asr_compute_s: float = 0.0
    first_token_s: float | None = None
    first_audio_s: float | None = None
    total_s: float | None = None
    model_s: float | None = None  # audio LLM: speech end -> whole answer text
    tts_s: float = 0.0  # compute seconds of the TTS, all sentences together
    answer_audio_s: float = 0.0
    sentences: int = 0
    responder: str = ""

    @property
    def asr_rtf(self) -> float | None:
        """ASR compute over speech duration (below 1 is faster than real time)."""
        return self.asr_compute_s / self.speech_s if self.speech_s else None

    def rows(self) -> list[tuple[str, float | None]]:
        """(stage, seconds) in pipeline order, for a table or a bar chart."""
        if self.model_s is not None:  # the audio LLM heard the question itself
            return [
                ("speech end -> audio LLM first token", self.first_token_s),
                ("audio LLM (speech end -> whole answer)", self.model_s),
                ("TTS compute", self.tts_s),
                ("speech end -> last audio (total)", self.total_s),
            ]
        return [
            ("speech end -> transcript", self.transcript_s),
            ("speech end -> LLM first token", self.first_token_s),
            ("speech end -> first audio", self.first_audio_s),
            ("speech end -> last audio (total)", self.total_s),
        ]


@dataclass(frozen=True)
class TurnUpdate:
    """A snapshot of a running turn; the last one has ``done=True``."""

    transcript: str
    answer: str
    metrics: TurnMetrics
    audio: Any = None  # newest answer chunk: float32 mono numpy at ``sample_rate``
    sample_rate: int = 0
    done: bool = False
    interrupted: bool = False
    notes: tuple[str, ...] = ()


class Conversation:
    """One user's conversation: finished turns, a stop flag, one turn at a time.

    Lives in that user's UI state; never shared between users. ``deepcopy`` (what Gradio
    does to a State's initial value for each new session) gives a fresh lock and flag.
    """

    def __init__(self, turns: list[Turn] | None = None) -> None:
        self.turns: list[Turn] = list(turns or [])
        self.metrics: list[TurnMetrics] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def __deepcopy__(self, memo: dict) -> Conversation:
        new = Conversation(list(self.turns))
        new.metrics = copy.deepcopy(self.metrics, memo)
        return new

    def interrupt(self) -> bool:
        """Ask the running turn (if any) to stop; True if one was running."""
        running = self.lock.locked()
        if running:
            self.stop.set()
        return running

    def clear(self) -> None:
        self.interrupt()
        with self.lock:
            self.turns.clear()
            self.metrics.clear()


@dataclass
class VoiceAssistant:
    """The pipeline, shared by all users (heavy models come from the manager)."""

    manager: Any
    responders: Responders | None = None
    vad: VadConfig = field(default_factory=VadConfig)
    # input beyond this is not listened to (memory and compute stay bounded)
    max_input_s: float = 120.0
    # the first words are spoken once there are this many, punctuation or not (0: wait for
    # the first clause or sentence end)
    first_chunk_words: int = 4

    def __post_init__(self) -> None:
        if self.responders is None:  # scripts and benchmarks; the app passes its own
            from mmdemo.flows.chat import ChatService

            chat = ChatService.standalone(self.manager)
            self.responders = Responders.default(self.manager, chat)
        from mmdemo.flows.audio_llm import AudioLLMResponder

        self.audio_llm = AudioLLMResponder(self.manager)
        self.silero = SileroVad()  # finds the speech in uploaded clips (loads on first use)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.manager.get("asr").languages)

    @property
    def voices(self) -> tuple[str, ...]:
        return tuple(self.manager.get("tts").voices)

    def loaded_choices(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(voices, languages) of the speech backends already loaded; loads nothing."""
        voices = self.voices if self.manager.is_loaded("tts") else ()
        languages = self.languages if self.manager.is_loaded("asr") else ()
        return voices, languages

    @property
    def max_audio_s(self) -> float:
        """The longest question audio read (MMDEMO_MAX_AUDIO_MINUTES)."""
        return self.manager.settings.max_audio_minutes * 60.0

    def prepare(
        self,
        options: VoiceOptions,
        has_image: bool,
        progress: Callable[[float, str], None] | None = None,
    ) -> None:
        """First use: load the models a turn needs, ``progress(share, why)`` saying why the
        first answer is slow."""
        uses_vlm = has_image or options.adapter is not None
        needed = ("asr", "tts", "vlm" if uses_vlm else "llm")
        if options.mode == AUDIO_LLM:
            needed = ("alm", "tts")
        missing = [name for name in needed if not self.manager.is_loaded(name)]
        for i, name in enumerate(missing):
            if progress is not None:
                progress(i / len(missing), f"loading the {name} model (first use)")
            self.manager.get(name)

    def check(self, options: VoiceOptions) -> None:
        """Refuse a language or voice the loaded backends do not offer."""
        if options.language:
            languages = self.languages
            if options.language not in languages:
                shown = ", ".join(languages[:12]) + (" …" if len(languages) > 12 else "")
                raise BadInputError(
                    f"the speech recogniser ({self.manager.model_id('asr')}) does not know "
                    f"the language {options.language!r}; it understands: {shown}",
                    fix="pick one of those languages, or a multilingual ASR model "
                    "(e.g. MMDEMO_ASR=faster-whisper:small)",
                )
        if options.voice and options.voice not in self.voices:
            raise BadInputError(
                f"the voice {options.voice!r} is not available (have: {', '.join(self.voices)})",
                fix="pick a voice from the list",
            )

    def transcribe(self, clip: Clip, language: str | None = None) -> tuple[str, float, float]:
        """Speech stage: VAD, then ASR over the speech in 30 s pieces.

        Returns (text, seconds of speech, ASR compute seconds).
        """
        spans = speech_spans(clip.samples, self.vad, vad=self.silero)
        if not spans:
            raise BadInputError(
                "no speech was heard: the recording holds only silence or noise",
                fix="speak closer to the microphone, or upload a recording with speech",
            )
        asr = self.manager.get("asr")
        speech = sum(end - start for start, end in spans) / SAMPLE_RATE
        texts, compute = [], 0.0
        for piece in speech_chunks(clip.samples, spans):
            result = asr.transcribe(piece, language=language)
            texts.append(result.text.strip())
            compute += result.seconds
        text = " ".join(t for t in texts if t).strip()
        if not text:
            raise BadInputError(
                "the speech recogniser heard no words in the recording",
                fix="speak clearly, or check the language setting",
            )
        return text, speech, compute

    def turn(
        self,
        conversation: Conversation,
        clip: Clip,
        image: Any = None,
        options: VoiceOptions | None = None,
        speech_end: float | None = None,
        endpoint_s: float = 0.0,
    ) -> Iterator[TurnUpdate]:
        """Answer one utterance. Nothing is added to the conversation unless the turn ends
        (finished or interrupted); a failure leaves it exactly as it was."""
        options = options or VoiceOptions()
        t0 = speech_end if speech_end is not None else time.perf_counter()
        self.check(options)
        notes: list[str] = []
        if clip.truncated:
            notes.append(
                f"the recording is {clip.source_seconds:.0f} s long; "
                f"only the first {clip.seconds:.0f} s were listened to"
            )
        if conversation.interrupt():  # a new question cuts the answer still being spoken
            notes.append("the previous answer was interrupted")
        if not conversation.lock.acquire(timeout=60):
            raise MMDemoError("the previous answer did not stop within 60 s; try again")
        try:
            conversation.stop.clear()
            if options.mode == AUDIO_LLM:
                from mmdemo.flows.audio_llm import audio_llm_turn

                yield from audio_llm_turn(
                    self, conversation, clip, image, options, t0, endpoint_s, notes
                )
                return
            yield from self._run(conversation, clip, image, options, t0, endpoint_s, notes)
        finally:
            conversation.lock.release()

    def _run(
        self,
        conv: Conversation,
        clip: Clip,
        image: Any,
        options: VoiceOptions,
        t0: float,
        endpoint_s: float,
        notes: list[str],
    ) -> Iterator[TurnUpdate]:
        metrics = TurnMetrics(audio_s=clip.seconds, endpoint_s=endpoint_s)
        since = lambda: time.perf_counter() - t0  # noqa: E731
        text, metrics.speech_s, metrics.asr_compute_s = self.transcribe(clip, options.language)
        metrics.transcript_s = since()
        responder = self.responders.pick(image is not None, options.adapter)
        metrics.responder = responder.name
        update = TurnUpdate(text, "", metrics, notes=tuple(notes))
        yield update
        tts = self.manager.get("tts")
        answer = ""
        splitter = SentenceSplitter(first_chunk_words=self.first_chunk_words)
        deltas = responder.respond(
            tuple(conv.turns),
            self._question(text, options),
            image,
            conv.stop,
            adapter=options.adapter,
        )
        try:
            for delta in deltas:
                if metrics.first_token_s is None:
                    metrics.first_token_s = since()
                answer += delta
                sentences = splitter.feed(delta)
                yield replace(update, answer=answer)
                for sentence in sentences:
                    yield from self.speak(tts, sentence, options, metrics, update, answer, since)
                if conv.stop.is_set():
                    break
            if not conv.stop.is_set():
                for sentence in splitter.flush():
                    yield from self.speak(tts, sentence, options, metrics, update, answer, since)
        finally:
            deltas.close()  # ends the generate thread if we left early
        interrupted = conv.stop.is_set()
        metrics.total_s = since()
        spoken = metrics.sentences
        if not answer.strip() and not interrupted:
            notes.append("the model gave an empty answer")
        if answer.strip():
            conv.turns.append(Turn(text, answer.strip(), image is not None, interrupted))
        conv.metrics.append(metrics)
        if interrupted:
            notes.append(f"interrupted after {spoken} spoken sentence(s)")
        yield TurnUpdate(
            text, answer.strip(), metrics, done=True, interrupted=interrupted, notes=tuple(notes)
        )

    @staticmethod
    def _question(text: str, options: VoiceOptions) -> str:
        if options.language and options.language != "en":
            return f"{text}\n(Answer in the language with code '{options.language}'.)"
        return text

    def speak(
        self,
        tts: Any,
        sentence: str,
        options: VoiceOptions,
        metrics: TurnMetrics,
        update: TurnUpdate,
        answer: str,
        since: Any,
    ) -> Iterator[TurnUpdate]:
        """TTS stage for one sentence (a sentence the voice cannot read is skipped)."""
        words = speakable(sentence)
        if not words:
            return
        voice = options.voice
        if voice is None and options.language and hasattr(tts, "voice_for"):
            voice = tts.voice_for(options.language)  # a voice of the spoken language
        start = time.perf_counter()
        try:
            speech = tts.synthesize(words, voice=voice, speed=options.speed)
        except ValueError:  # e.g. only characters this voice has no sound for
            return
        finally:
            metrics.tts_s += time.perf_counter() - start
        if len(speech.audio) == 0:
            return
        if metrics.first_audio_s is None:
            metrics.first_audio_s = since()
        metrics.sentences += 1
        metrics.answer_audio_s += len(speech.audio) / speech.sample_rate
        yield replace(update, answer=answer, audio=speech.audio, sample_rate=speech.sample_rate)
