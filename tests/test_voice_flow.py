"""The voice pipeline on tiny models: streamed stages, per-user memory, interruption, and bad
input that leaves the conversation as it was."""

from __future__ import annotations

import copy
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmdemo.errors import BadInputError
from mmdemo.flows.assistant import Conversation, VoiceAssistant, VoiceOptions
from mmdemo.flows.audio import Clip, prepare, read_audio
from mmdemo.flows.chat import ChatService
from mmdemo.flows.responders import GenerationConfig, Responders, TextLLMResponder, Turn
from tests.voice_helpers import ANSWER, ScriptedResponder


@pytest.fixture(scope="module")
def question(librivox: list[tuple[Path, str]]) -> Clip:
    return read_audio(librivox[1][0])


def assistant_with(manager: Any, responder: ScriptedResponder, **kwargs: Any) -> VoiceAssistant:
    return VoiceAssistant(manager, Responders(responder, responder), **kwargs)


def test_a_turn_speaks_its_first_sentence_before_the_answer_is_finished(
    shared_manager: Any, question: Clip
) -> None:
    responder = ScriptedResponder(delay=0.04)
    assistant = assistant_with(shared_manager, responder)
    conv = Conversation()
    updates = [(time.perf_counter(), u) for u in assistant.turn(conv, question)]
    first = updates[0][1]
    assert first.transcript and not first.answer and first.audio is None
    audio_times = [t for t, u in updates if u.audio is not None]
    assert len(audio_times) >= 3  # a chunk per sentence (the first clause is its own)
    assert audio_times[0] < responder.finished_at, "speech must start while text is generated"
    done = updates[-1][1]
    assert done.done and not done.interrupted
    assert done.answer == ANSWER.format(n=0)
    m = done.metrics
    assert 0 < m.transcript_s <= m.first_token_s <= m.first_audio_s <= m.total_s
    assert m.responder == "scripted" and m.asr_rtf > 0 and m.answer_audio_s > 0
    assert conv.turns == [Turn(first.transcript, ANSWER.format(n=0))]


def test_each_user_has_their_own_memory(shared_manager: Any, question: Clip) -> None:
    responder = ScriptedResponder()
    assistant = assistant_with(shared_manager, responder)
    alice, bob = Conversation(), Conversation()
    for conv in (alice, alice, bob):
        list(assistant.turn(conv, question))
    assert [c[0] for c in responder.calls] == [0, 1, 0]
    assert "asked 1 questions" in alice.turns[-1].assistant
    assert len(alice.turns) == 2 and len(bob.turns) == 1
    copied = copy.deepcopy(alice)  # what Gradio does to a State for a new session
    copied.turns.clear()
    assert len(alice.turns) == 2 and copied.lock is not alice.lock


def test_stop_cuts_the_answer_keeps_what_was_said_and_listens_again(
    shared_manager: Any, question: Clip
) -> None:
    responder = ScriptedResponder(delay=0.05)
    assistant = assistant_with(shared_manager, responder)
    conv = Conversation()
    updates = []
    for update in assistant.turn(conv, question):
        updates.append(update)
        if update.audio is not None and len(updates) > 1:
            assert conv.interrupt()
    done = updates[-1]
    total_words = len(ANSWER.format(n=0).split())
    assert done.interrupted and responder.words_sent < total_words
    assert conv.turns[-1].interrupted and conv.turns[-1].assistant == done.answer
    assert any("interrupted" in n for n in done.notes)
    *_, again = assistant.turn(conv, question)
    assert not again.interrupted and responder.calls[-1][0] == 1


def test_a_new_question_interrupts_the_answer_in_progress(
    shared_manager: Any, question: Clip
) -> None:
    responder = ScriptedResponder(delay=0.1)
    assistant = assistant_with(shared_manager, responder)
    conv = Conversation()
    first: list[Any] = []
    worker = threading.Thread(target=lambda: first.extend(assistant.turn(conv, question)))
    worker.start()
    assert responder.started.wait(60)
    *_, second = assistant.turn(conv, question)
    worker.join(60)
    assert first[-1].interrupted and not second.interrupted
    assert "the previous answer was interrupted" in second.notes
    assert [t.interrupted for t in conv.turns] == [True, False]


def noise_clip() -> Clip:
    rng = np.random.default_rng(3)
    return prepare((rng.standard_normal(3 * 16000) * 0.05).astype(np.float32), 16000)


@pytest.mark.parametrize(
    ("name", "options", "clip", "message"),
    [
        ("noise only", VoiceOptions(), noise_clip, "no speech was heard"),
        ("unknown language", VoiceOptions(language="xx"), None, "does not know the language"),
        ("unknown voice", VoiceOptions(voice="nobody"), None, "voice 'nobody' is not available"),
    ],
)
def test_bad_input_leaves_the_conversation_intact(
    shared_manager: Any, question: Clip, name: str, options: Any, clip: Any, message: str
) -> None:
    assistant = assistant_with(shared_manager, ScriptedResponder())
    conv = Conversation([Turn("earlier question", "earlier answer")])
    with pytest.raises(BadInputError, match=message):
        list(assistant.turn(conv, clip() if clip else question, options=options))
    assert conv.turns == [Turn("earlier question", "earlier answer")], name
    assert not conv.lock.locked()
    *_, done = assistant.turn(conv, question)  # and the next turn works
    assert done.done and len(conv.turns) == 2


def test_a_bad_speed_is_refused() -> None:
    with pytest.raises(BadInputError, match="speed"):
        VoiceOptions(speed=5)


def test_ten_minutes_of_speech_are_bounded_and_chunked(
    shared_manager: Any, librivox: list[tuple[Path, str]], tmp_path: Path
) -> None:
    import soundfile as sf

    speech, rate = sf.read(str(librivox[0][0]), dtype="float32")
    gap = np.zeros(rate // 2, np.float32)
    long = np.tile(np.concatenate([speech, gap]), int(600 / (len(speech) / rate + 0.5)) + 1)
    sf.write(str(tmp_path / "ten-minutes.wav"), long[: 600 * rate], rate)
    assistant = assistant_with(shared_manager, ScriptedResponder(), max_input_s=45)
    clip = read_audio(tmp_path / "ten-minutes.wav", max_seconds=assistant.max_input_s)
    *_, done = assistant.turn(Conversation(), clip)
    assert done.done and done.transcript
    assert any("600 s long" in n and "first 45 s" in n for n in done.notes)
    assert 30 < done.metrics.speech_s <= 45


class ForwardCounter:
    """Counts decoding steps; sets ``stop`` (if given) after ``stop_after`` of them."""

    def __init__(self, model: Any) -> None:
        self.calls, self.stop, self.stop_after = 0, None, 0
        self.handle = model.register_forward_hook(self.hook)

    def hook(self, *args: Any) -> None:
        self.calls += 1
        if self.stop is not None and self.calls >= self.stop_after:
            self.stop.set()


@pytest.mark.parametrize("kind", ["llm", "vlm"])
def test_stop_really_stops_the_models_compute(shared_manager: Any, kind: str) -> None:
    from PIL import Image

    image = Image.open(Path(__file__).parents[1] / "assets" / "images" / "cat.jpg")
    responder = (
        TextLLMResponder(shared_manager)
        if kind == "llm"
        else Responders.default(
            shared_manager, ChatService.standalone(shared_manager)
        ).vision  # the VLM through the chat service
    )
    bundle = shared_manager.get(kind)
    counter = ForwardCounter(bundle.model)
    try:
        full = list(responder.respond([], "Say something long.", image, threading.Event()))
        full_calls, counter.calls = counter.calls, 0
        counter.stop, counter.stop_after = threading.Event(), 3  # Stop pressed mid-answer
        list(responder.respond([Turn("hi", "hello")], "Say something long.", image, counter.stop))
        stopped_calls = counter.calls
    finally:
        counter.handle.remove()
    assert full and full_calls >= 20, "without Stop the tiny model runs to max_new_tokens"
    assert stopped_calls <= 5, f"Stop let the model run {stopped_calls} steps"
    assert not [t for t in threading.enumerate() if t.name == "mmdemo-generate"]


def test_vision_answers_go_through_the_chat_service_with_the_chosen_adapter(
    shared_manager: Any,
) -> None:
    from PIL import Image

    red = Image.open(Path(__file__).parents[1] / "assets" / "images" / "red-circle.png")
    # the tiny demo adapters were trained without a system prompt: ask them that way
    vision = Responders.default(
        shared_manager, ChatService.standalone(shared_manager), GenerationConfig(system_prompt="")
    ).vision
    said = {
        adapter: "".join(
            vision.respond([], "What color is the shape?", red, threading.Event(), adapter=adapter)
        ).strip()
        for adapter in ("color-namer", "pirate", None)
    }
    assert said["color-namer"] == "The shape is red."
    assert said["pirate"].startswith("Arr matey")
    assert said[None] not in (said["color-namer"], said["pirate"])
    responders = Responders.default(shared_manager, ChatService.standalone(shared_manager))
    assert responders.pick(False, "pirate") is responders.vision
    assert responders.pick(False, None) is responders.text


# transformers 5 renamed generate's and forward's past_key_values to cache (6 removes it)
@pytest.mark.filterwarnings("error:.*past_key_values.* is deprecated:FutureWarning")
def test_the_system_prompt_is_prefilled_once_and_answers_stay_the_same(tiny_settings) -> None:
    from mmdemo.models.manager import ModelManager

    manager = ModelManager(tiny_settings.replace(dtype="float32"))  # bit-exact in fp32
    try:
        responder = TextLLMResponder(manager)
        ask = lambda q: "".join(responder.respond((), q, None, threading.Event()))  # noqa: E731
        cached = [ask(q) for q in ("hello there", "what is this?", "hello there")]
        assert responder.prompt_cache.hits == 2, "turns 2 and 3 reuse turn 1's system prompt"
        responder.config.reuse_system_cache = False
        assert [ask(q) for q in ("hello there", "what is this?", "hello there")] == cached
    finally:
        manager.unload_all()
