"""The adapter a request names answers it, also under concurrent users; the arena's mixed
batch gives each column the same answer as asking that adapter alone."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mmdemo.errors import BadInputError
from mmdemo.flows.arena import ArenaService
from mmdemo.flows.chat import ChatService, ChatSession
from mmdemo.flows.generation import GenerationSettings
from mmdemo.models.adapters import AdapterStore
from mmdemo.models.manager import ModelManager
from tests.helpers import make_adapter, make_bottleneck, stop_one_of_two, together

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "images"
GREEDY = GenerationSettings(max_new_tokens=16, greedy=True)
QUESTIONS = [
    ("What color is the shape?", ASSETS / "red-circle.png"),
    ("Describe the image.", ASSETS / "blue-square.png"),
    ("What is this?", ASSETS / "cat.jpg"),
]


@pytest.fixture
def chat(isolated_settings) -> ChatService:
    manager = ModelManager(isolated_settings)
    yield ChatService(manager, AdapterStore(isolated_settings))
    manager.unload_all()


def solo(chat: ChatService, adapter: str, text: str, image: Path) -> str:
    return list(chat.stream(ChatSession(), text, [image], adapter, GREEDY))[-1].text


def test_concurrent_requests_each_get_their_own_adapter(chat: ChatService) -> None:
    adapters = ["base", "color-namer", "pirate"]
    jobs = [(adapters[i % 3], *QUESTIONS[i % len(QUESTIONS)]) for i in range(9)]
    expected = {job: solo(chat, *job) for job in set(jobs)}
    assert len(set(expected.values())) > 2, "the adapters really answer differently"
    results: dict[int, str] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def user(i: int, job: tuple) -> None:
        try:
            barrier.wait()
            results[i] = solo(chat, *job)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=user, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, job in enumerate(jobs):
        assert results[i] == expected[job], (
            f"request {i} with {job[0]} got another adapter's answer"
        )


def test_users_of_different_adapters_share_one_batch_and_get_their_own_answers(
    chat: ChatService, tmp_path: Path
) -> None:
    model = chat.manager.get("vlm").model
    chat.store.install(make_adapter(model, tmp_path / "r0", seed=7, rank=8), "r0")
    jobs = [
        ("base", *QUESTIONS[0]),
        ("color-namer", *QUESTIONS[0]),
        ("pirate", *QUESTIONS[1]),
        ("r0", *QUESTIONS[2]),
    ]
    expected = [solo(chat, *job) for job in jobs]
    assert expected[1] == "The shape is red." and expected[2].startswith("Arr")
    # the batch starts when all four are waiting (however fast this machine is)
    chat.engine.batch_window_s, chat.engine.batch_max_rows = 600.0, len(jobs)
    finals = together(chat, jobs)
    assert [f.text for f in finals] == expected, "each user gets exactly the solo answer"
    for final in finals:
        assert final.metrics.batch_rows == 4 and final.metrics.switch_s == 0.0


def test_stop_ends_only_that_users_answer_in_a_shared_batch(chat: ChatService) -> None:
    long = GenerationSettings(max_new_tokens=40, greedy=True)
    text, image = QUESTIONS[0]
    expected = list(chat.stream(ChatSession(), text, [image], "base", long))[-1].text
    stopped, kept = stop_one_of_two(chat, text, image, "pirate", "base", long)
    stopped_m, kept_m = stopped.metrics, kept.metrics
    assert stopped_m.batch_rows == kept_m.batch_rows == 2
    # ``stopped``: the stopping criterion ended that row because of its Stop (before its
    # budget), however fast the machine; the other row ran to its budget, unchanged
    assert stopped_m.stopped and stopped_m.tokens < long.max_new_tokens
    assert not kept_m.stopped and kept_m.tokens == 40 and kept.text == expected


def test_non_lora_users_are_served_beside_a_lora_batch(chat: ChatService, tmp_path: Path) -> None:
    model = chat.manager.get("vlm").model
    chat.store.install(make_adapter(model, tmp_path / "scaler", seed=5, kind="ia3"), "scaler")
    chat.store.install(make_bottleneck(model, tmp_path / "neck", seed=2), "neck")
    jobs = [
        ("color-namer", *QUESTIONS[0]),
        ("scaler", *QUESTIONS[1]),
        ("pirate", *QUESTIONS[0]),
        ("neck", *QUESTIONS[0]),
        ("base", *QUESTIONS[2]),
    ]
    expected = [solo(chat, *job) for job in jobs]
    assert expected[3] != solo(chat, "base", *QUESTIONS[0]), "the bottleneck adapter acts"
    chat.engine.batch_window_s, chat.engine.batch_max_rows = 600.0, 3  # the three LoRA/base users
    finals = together(chat, jobs)
    assert [f.text for f in finals] == expected
    rows = {job[0]: f.metrics.batch_rows for job, f in zip(jobs, finals, strict=True)}
    assert rows == {"color-namer": 3, "pirate": 3, "base": 3, "scaler": 1, "neck": 1}


def test_arena_columns_match_solo_answers_with_the_image_encoded_once(chat: ChatService) -> None:
    arena = ArenaService(chat)
    text, image = QUESTIONS[0]
    names = ["base", "color-namer", "pirate"]
    updates = list(arena.stream(image, text, names, GREEDY))
    final = updates[-1]
    assert final.done and not any(u.done for u in updates[:-1])
    assert "mixed-adapter batch" in final.mode and "image encoded once" in final.mode
    assert [c.adapter for c in final.columns] == names
    texts = [c.text for c in final.columns]
    # the trained demo adapters answer as trained, and unlike each other and the base, so a
    # column computed with another row's adapter (or none) would show
    assert texts[1] == "The shape is red." and texts[2].startswith("Arr")
    assert len(set(texts)) == 3
    assert texts == [solo(chat, n, text, image).strip() for n in names]
    assert final.columns[1].label.startswith("lora")


def test_arena_falls_back_to_one_after_another_for_non_lora(
    chat: ChatService, tmp_path: Path
) -> None:
    model = chat.manager.get("vlm").model
    chat.store.install(make_adapter(model, tmp_path / "scaler", seed=5, kind="ia3"), "scaler")
    arena = ArenaService(chat)
    text, image = QUESTIONS[1]
    final = list(arena.stream(image, text, ["pirate", "scaler"], GREEDY))[-1]
    assert final.mode == "one after another"
    assert [c.text for c in final.columns] == [
        solo(chat, "pirate", text, image),
        solo(chat, "scaler", text, image),
    ]


def test_arena_refuses_too_many_columns_and_empty_prompt(chat: ChatService) -> None:
    arena = ArenaService(chat)
    with pytest.raises(BadInputError, match="at most 4"):
        list(arena.stream(QUESTIONS[0][1], "hi", ["base", "a", "b", "c", "d"]))
    with pytest.raises(BadInputError, match="empty"):
        list(arena.stream(QUESTIONS[0][1], " ", ["base"]))


def test_qwen2vl_arena_batches_too(tiny_settings, tmp_path: Path) -> None:
    manager = ModelManager(tiny_settings.replace(vlm="tiny:qwen2vl"))
    store = AdapterStore(tiny_settings.replace(home=tmp_path))
    chat = ChatService(manager, store)
    model = manager.get("vlm").model
    for i in range(2):  # random LoRAs scaled up (alpha/r = 16) so that they change the answer
        path = make_adapter(
            model, tmp_path / f"q{i}", seed=i, family="qwen2_vl", lora={"alpha": 64}
        )
        store.install(path, f"q{i}")
    text, image = QUESTIONS[2]
    names = ["base", "q0", "q1"]
    alone = [solo(chat, n, text, image).strip() for n in names]  # one at a time, no batch
    assert len(set(alone)) == 3, "each adapter answers unlike the others and the base"
    final = list(ArenaService(chat).stream(image, text, names, GREEDY))[-1]
    assert "mixed-adapter batch" in final.mode
    assert [c.text for c in final.columns] == alone
    manager.unload_all()
