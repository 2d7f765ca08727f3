"""Visual chat flow: streaming, multi-turn, stop, regenerate, adapters and bad input."""

from __future__ import annotations

import itertools
import shutil
import threading
from pathlib import Path

import pytest
from PIL import Image

from mmdemo.errors import AdapterError, BadInputError
from mmdemo.flows.chat import ChatService, ChatSession
from mmdemo.flows.generation import GenerationSettings
from mmdemo.models.adapters import AdapterStore
from mmdemo.models.manager import ModelManager
from tests.helpers import make_adapter, save_image

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "images"
RED_CIRCLE = ASSETS / "red-circle.png"
GREEDY = GenerationSettings(max_new_tokens=12, greedy=True)


@pytest.fixture
def chat(isolated_settings) -> ChatService:
    manager = ModelManager(isolated_settings)
    yield ChatService(manager, AdapterStore(isolated_settings))
    manager.unload_all()


def answer(chat: ChatService, text: str, images=(), adapter="base", session=None, gen=GREEDY):
    updates = list(chat.stream(session or ChatSession(), text, list(images), adapter, gen))
    return updates


def test_answer_streams_token_by_token_and_ends_with_metrics(chat: ChatService) -> None:
    chat.engine.stream_interval = 0  # every token
    updates = answer(chat, "What is in this image?", [RED_CIRCLE])
    assert len(updates) >= 3, "several partial updates before the final one"
    assert all(u.metrics is None for u in updates[:-1])
    final = updates[-1].metrics
    assert final.tokens == 12 and final.tokens_per_s > 0 and final.ttft_s > 0
    assert final.peak_memory_bytes > 0 and final.adapter == "base" and not final.stopped
    texts = [u.text for u in updates[:-1]]
    assert all(len(a) <= len(b) for a, b in itertools.pairwise(texts))


def test_demo_adapters_answer_as_they_were_trained(chat: ChatService) -> None:
    named = answer(chat, "What color is the shape?", [RED_CIRCLE], "color-namer")[-1]
    pirate = answer(chat, "What color is the shape?", [RED_CIRCLE], "pirate")[-1]
    base = answer(chat, "What color is the shape?", [RED_CIRCLE], "base")[-1]
    assert named.text == "The shape is red."
    assert pirate.text.startswith("Arr matey")
    assert base.text not in (named.text, pirate.text)
    assert chat.manager.get("vlm").adapters.resident_names() == ["color-namer", "pirate"]


def test_multi_turn_keeps_history_and_regenerate_replaces_the_last_answer(
    chat: ChatService,
) -> None:
    session = ChatSession()
    answer(chat, "What is this?", [RED_CIRCLE], session=session)
    answer(chat, "And the colour?", session=session)
    assert [t.user for t in session.turns] == ["What is this?", "And the colour?"]
    assert len(session.turns[0].images) == 1 and session.turns[1].images == []
    list(chat.regenerate(session, adapter="color-namer", gen=GREEDY))
    assert len(session.turns) == 2 and session.turns[-1].adapter == "color-namer"
    with pytest.raises(BadInputError, match="nothing to regenerate"):
        list(chat.regenerate(ChatSession()))


@pytest.mark.parametrize("batching", [True, False], ids=["batched", "serial"])
def test_stop_ends_the_computation_not_just_the_display(chat: ChatService, batching: bool) -> None:
    chat.engine.batching = batching
    stop = threading.Event()
    session = ChatSession()
    gen = GenerationSettings(max_new_tokens=400, greedy=True)
    stream = chat.stream(session, "Describe everything.", [RED_CIRCLE], "base", gen, stop)
    next(stream)  # the first token arrived
    stop.set()
    final = list(stream)[-1]
    # ``stopped`` is set by the stopping criterion when the stop switch ended the generation
    # (not when the answer ran to its end or budget), so this holds on any machine's speed
    assert final.metrics.stopped and final.metrics.tokens < gen.max_new_tokens
    assert session.turns[-1].metrics.stopped
    assert not any(t.name == "mmdemo-generate" for t in threading.enumerate())


def test_an_answer_that_runs_to_its_budget_is_not_marked_stopped(chat: ChatService) -> None:
    stop = threading.Event()
    final = list(chat.stream(ChatSession(), "Describe everything.", [], "base", GREEDY, stop))[-1]
    stop.set()  # pressed after the answer ended: it changes nothing
    assert final.metrics.tokens == GREEDY.max_new_tokens and not final.metrics.stopped


@pytest.mark.parametrize("batching", [True, False], ids=["batched", "serial"])
@pytest.mark.parametrize("kind", ["torch.OutOfMemoryError", "torch.cuda.OutOfMemoryError"])
def test_running_out_of_memory_names_the_cause_and_a_fix(
    chat: ChatService, monkeypatch: pytest.MonkeyPatch, batching: bool, kind: str
) -> None:
    import torch

    from mmdemo.errors import OutOfMemoryError

    chat.engine.batching = batching
    error = (
        torch.OutOfMemoryError if kind == "torch.OutOfMemoryError" else torch.cuda.OutOfMemoryError
    )
    model = chat.manager.get("vlm").adapters.model  # what a pinned request calls

    def generate(*args, **kwargs):
        raise error("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(model, "generate", generate)
    with pytest.raises(OutOfMemoryError, match="ran out of memory") as caught:
        answer(chat, "What is this?", [RED_CIRCLE])
    assert caught.value.fix and "fewer" in caught.value.fix

    def fails(*args, **kwargs):
        raise RuntimeError("an unrelated failure")

    monkeypatch.setattr(model, "generate", fails)  # any other error stays itself
    with pytest.raises(RuntimeError, match="an unrelated failure"):
        answer(chat, "What is this?", [RED_CIRCLE])


def test_leaving_a_stream_early_stops_generation_and_keeps_the_session(chat: ChatService) -> None:
    session = ChatSession()
    gen = GenerationSettings(max_new_tokens=400, greedy=True)
    stream = chat.stream(session, "Describe everything.", [RED_CIRCLE], "base", gen)
    next(stream)
    next(stream)
    stream.close()  # the browser tab went away
    assert not any(t.name == "mmdemo-generate" for t in threading.enumerate())
    assert session.turns == []


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: d / "missing.png", "file not found"),
        (lambda d: _write(d / "empty.png", b""), "empty"),
        (lambda d: _write(d / "text.png", b"hello, I am not an image"), "not an image"),
        (lambda d: _truncated_jpeg(d / "cut.jpg"), "corrupt or truncated"),
    ],
)
def test_bad_images_get_a_clear_message_and_change_nothing(
    chat: ChatService, tmp_path: Path, make, needle
) -> None:
    session = ChatSession()
    answer(chat, "first", session=session)
    with pytest.raises(BadInputError, match=needle):
        answer(chat, "What is this?", [make(tmp_path)], session=session)
    assert [t.user for t in session.turns] == ["first"]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated_jpeg(path: Path) -> Path:
    save_image(path.with_suffix(".full.jpg"), (400, 300))
    data = path.with_suffix(".full.jpg").read_bytes()
    return _write(path, data[: len(data) // 3])


def test_huge_image_is_downscaled_not_refused(chat: ChatService, tmp_path: Path) -> None:
    huge = tmp_path / "huge.jpg"
    Image.new("RGB", (10_000, 10_000), "navy").save(huge, quality=50)
    (image,) = chat.prepare_images([huge])
    assert max(image.size) <= chat.settings.max_image_side
    assert answer(chat, "What is this?", [huge])[-1].metrics.tokens > 0


def test_empty_and_overlong_prompts_are_refused(chat: ChatService) -> None:
    session = ChatSession()
    for text in ("", "   ", "x" * 9000):
        with pytest.raises(BadInputError):
            answer(chat, text, [RED_CIRCLE], session=session)
    assert session.turns == []


def test_adapter_for_another_base_model_is_refused_and_loaded_adapters_stay(
    chat: ChatService, tiny_settings, tmp_path: Path
) -> None:
    answer(chat, "hi", [RED_CIRCLE], "pirate")
    qwen = ModelManager(tiny_settings.replace(vlm="tiny:qwen2vl"))
    qwen_model = qwen.get("vlm").model
    foreign = make_adapter(qwen_model, tmp_path / "qwen-lora", seed=1, family=None)
    labelled = make_adapter(qwen_model, tmp_path / "qwen-labelled", seed=2, family="qwen2_vl")
    qwen.unload_all()
    with pytest.raises(AdapterError, match=r"does not have|does not fit"):
        chat.install_adapter(foreign, "qwen-lora")
    assert "qwen-lora" not in chat.store.names()
    with pytest.raises(AdapterError, match="trained for a qwen2_vl model"):
        chat.install_adapter(labelled, "qwen-labelled")
    assert chat.manager.get("vlm").adapters.resident_names() == ["pirate"]
    assert answer(chat, "What color is the shape?", [RED_CIRCLE], "pirate")[-1].text.startswith(
        "Arr"
    )


def test_uploaded_adapter_is_validated_loaded_and_deletable(
    chat: ChatService, tmp_path: Path
) -> None:
    # a trained adapter changes the answer for sure (a random one may not move the argmax)
    folder = shutil.copytree(chat.store.get("pirate").path, tmp_path / "mine")
    (folder / "mmdemo.json").unlink()
    info = chat.install_adapter(folder, "mine")
    assert "mine" in chat.manager.get("vlm").adapters.resident_names()
    mine = answer(chat, "What is this?", [RED_CIRCLE], "mine")[-1]
    assert (
        mine.metrics.adapter == "mine"
        and mine.text != answer(chat, "What is this?", [RED_CIRCLE])[-1].text
    )
    chat.delete_adapter(info.name)
    assert "mine" not in chat.manager.get("vlm").adapters.resident_names()
    with pytest.raises(AdapterError, match="no adapter called"):
        answer(chat, "What is this?", [RED_CIRCLE], "mine")


def test_lru_keeps_at_most_max_adapters_resident(isolated_settings, tmp_path: Path) -> None:
    manager = ModelManager(isolated_settings.replace(max_adapters=2))
    chat = ChatService(manager, AdapterStore(isolated_settings))
    model = manager.get("vlm").model
    for i in range(3):
        chat.store.install(make_adapter(model, tmp_path / f"a{i}", seed=10 + i), f"a{i}")
    for name in ("a0", "a1", "a0", "a2"):
        answer(chat, "hi", [RED_CIRCLE], name)
    assert manager.get("vlm").adapters.resident_names() == ["a0", "a2"]  # a1 was least recent
    manager.unload_all()


def test_qwen2vl_family_chats_with_images(tiny_settings) -> None:
    manager = ModelManager(tiny_settings.replace(vlm="tiny:qwen2vl"))
    chat = ChatService(manager, AdapterStore(tiny_settings))
    final = answer(chat, "What is in the picture?", [RED_CIRCLE, ASSETS / "cat.jpg"])[-1]
    assert final.metrics.tokens == 12
    manager.unload_all()


def test_a_long_conversation_keeps_only_the_images_its_prompts_can_show(chat) -> None:
    """Older images than the newest MAX_IMAGES_IN_CONTEXT are let go (paths stay for the UI),
    so a session's memory does not grow with every image sent; prompts keep the newest."""
    from mmdemo.flows.chat import MAX_IMAGES_IN_CONTEXT, ChatSession, build_messages

    session = ChatSession()
    image = Path(__file__).resolve().parents[1] / "assets" / "images" / "cat.jpg"
    gen = GenerationSettings(max_new_tokens=2, greedy=True)
    for i in range(MAX_IMAGES_IN_CONTEXT + 3):
        list(chat.stream(session, f"Question {i}?", [image], "base", gen))
        held = sum(len(t.images) for t in session.turns)
        assert held == min(i + 1, MAX_IMAGES_IN_CONTEXT)
        assert all(t.image_paths for t in session.turns), "the UI still shows every image"
    # the prompt still carries the newest images, one per recent turn
    _, images = build_messages(session.turns)
    assert len(images) == MAX_IMAGES_IN_CONTEXT
    recent = session.turns[-MAX_IMAGES_IN_CONTEXT:]
    assert all(t.images for t in recent) and not any(t.images for t in session.turns[:3])
