"""The arena's "Compare base models": different VLM families answer the same image and prompt
side by side with their numbers; extra base models load under a memory budget (the least
recently used idle one is unloaded first, and the answer says which and why; a model that
cannot fit is refused with cause and fix); the chat's own model keeps answering."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mmdemo.errors import ModelUnavailableError, NotAllowedError
from mmdemo.flows.arena import ArenaService
from mmdemo.flows.arena_models import BaseArenaResult
from mmdemo.flows.chat import ChatService
from mmdemo.flows.generation import GenerationSettings
from mmdemo.models import memory
from mmdemo.models.adapters import AdapterStore
from mmdemo.models.manager import ModelManager

REPO = Path(__file__).resolve().parents[1]
RED = REPO / "assets" / "images" / "red-circle.png"
GEN = GenerationSettings(max_new_tokens=6, greedy=True)
PROMPT = "What color is the shape?"
PLENTY = 1 << 40  # a machine with a terabyte free


@pytest.fixture
def arena(manager: ModelManager, isolated_settings: Any) -> Iterator[ArenaService]:
    yield ArenaService(ChatService(manager, AdapterStore(isolated_settings)))


def final(arena: ArenaService, models: list[str]) -> BaseArenaResult:
    *_, result = arena.models.stream(str(RED), PROMPT, models, GEN)
    assert result.done
    return result


def set_free(monkeypatch: pytest.MonkeyPatch, free: int) -> None:
    """Make the memory probe say ``free`` bytes are available."""
    monkeypatch.setattr(memory, "available_bytes", lambda device: free)


def estimate(manager: ModelManager, model_id: str) -> int:
    """What the manager expects ``model_id`` to take (to set a budget just below it)."""
    return manager.extras.estimate(model_id)


def test_families_answer_side_by_side_with_their_numbers(
    arena: ArenaService, family_builds: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    set_free(monkeypatch, PLENTY)
    picked = [family_builds["smolvlm"], "qwen2.5-vl", family_builds["llava-1.5"]]
    result = final(arena, picked)
    columns = result.columns
    assert [c.model for c in columns] == [
        family_builds["smolvlm"],
        family_builds["qwen2.5-vl"],
        family_builds["llava-1.5"],
    ]
    assert [c.family for c in columns] == ["SmolVLM / Idefics3", "Qwen2.5-VL", "LLaVA-1.5"]
    assert [c.chat_model for c in columns] == [True, False, False]
    for c in columns:
        assert c.status == "done" and not c.error, c
        assert c.tokens > 0 and c.tokens_per_s > 0 and c.ttft_s > 0, c
        assert c.memory_bytes > 0 and c.peak_memory_bytes > 0, c
    assert columns[1].load_s > 0 and columns[2].load_s > 0  # loaded for this comparison
    assert arena.chat.manager.extras.loaded() == [
        family_builds["qwen2.5-vl"],
        family_builds["llava-1.5"],
    ]
    again = final(arena, [family_builds["llava-1.5"]])
    assert again.columns[0].load_s == 0.0 and again.columns[0].status == "done"


def test_estimate_is_close_to_what_loading_takes(
    manager: ModelManager, family_builds: dict[str, str]
) -> None:
    model_id = family_builds["qwen2.5-vl"]
    with manager.extras.lease(model_id) as extra:
        pass
    # estimated before loading, in the dtype it loads in: not less than it took, nor far more
    assert extra.loaded.nbytes <= extra.estimate_bytes <= extra.loaded.nbytes * 1.5


def test_low_budget_unloads_the_least_recently_used_extra_and_says_so(
    arena: ArenaService, family_builds: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    extras = arena.chat.manager.extras
    extras.margin_bytes = 0
    qwen, llava, internvl = (family_builds[k] for k in ("qwen2.5-vl", "llava-1.5", "internvl"))
    set_free(monkeypatch, PLENTY)
    final(arena, [qwen])
    final(arena, [llava])
    assert extras.loaded() == [qwen, llava]  # qwen is the least recently used
    # now the machine has one byte less than internvl needs: one model has to go
    set_free(monkeypatch, estimate(arena.chat.manager, internvl) - 1)
    result = final(arena, [internvl])
    (column,) = result.columns
    assert column.status == "done" and column.tokens > 0
    assert [e.model_id for e in result.evicted] == [qwen]
    reason = result.evicted[0].reason
    assert qwen in reason and internvl in reason and "least recently used" in reason
    assert extras.loaded() == [llava, internvl]


def test_sizes_list_the_loaded_extras_least_recently_used_first(
    manager: ModelManager, family_builds: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    set_free(monkeypatch, PLENTY)
    qwen, llava = family_builds["qwen2.5-vl"], family_builds["llava-1.5"]
    with manager.extras.lease(qwen) as first:
        pass
    with manager.extras.lease(llava) as second:
        pass
    assert manager.extras.sizes() == {qwen: first.loaded.nbytes, llava: second.loaded.nbytes}
    with manager.extras.lease(qwen):  # used again: now the most recent
        pass
    assert list(manager.extras.sizes()) == [llava, qwen]


def test_a_model_that_cannot_fit_is_refused_and_nothing_is_unloaded(
    arena: ArenaService, family_builds: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    chat_model, llava, qwen = (family_builds[k] for k in ("smolvlm", "llava-1.5", "qwen2.5-vl"))
    set_free(monkeypatch, PLENTY)
    final(arena, [chat_model, llava])
    set_free(monkeypatch, 0)  # a full machine: nothing fits, even after unloading llava
    result = final(arena, [chat_model, qwen])
    chat_column, refused = result.columns
    assert refused.status == "failed" and not refused.text
    assert "not enough memory" in refused.error and qwen in refused.error
    assert "Fix:" in refused.error and llava in refused.error  # unloading it would not do
    assert arena.chat.manager.extras.loaded() == [llava]
    assert result.evicted == ()
    # the chat's own model is not budgeted away: it keeps answering
    assert chat_column.status == "done" and chat_column.tokens > 0
    assert arena.chat.manager.is_loaded("vlm")


def test_a_model_in_use_is_not_unloaded_under_its_user(
    manager: ModelManager, family_builds: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manager.extras.margin_bytes = 0
    qwen, llava = family_builds["qwen2.5-vl"], family_builds["llava-1.5"]
    set_free(monkeypatch, PLENTY)
    with manager.extras.lease(qwen) as held:
        set_free(monkeypatch, estimate(manager, llava) - 1)
        with (
            pytest.raises(ModelUnavailableError, match="not enough memory"),
            manager.extras.lease(llava),
        ):
            pass
        assert manager.extras.loaded() == [qwen] and held.handle.model is not None
    # released, it is the one to go
    with manager.extras.lease(llava) as extra:
        assert [e.model_id for e in extra.evicted] == [qwen]


def test_the_chat_keeps_answering_beside_extra_models(
    arena: ArenaService, family_builds: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmdemo.flows.conversation import ChatSession

    set_free(monkeypatch, PLENTY)
    final(arena, [family_builds["qwen2.5-vl"]])
    set_free(monkeypatch, 0)
    *_, update = arena.chat.stream(ChatSession(), PROMPT, [str(RED)], gen=GEN)
    assert update.text.strip() and update.metrics is not None
    assert arena.chat.manager.model_id("vlm") == family_builds["smolvlm"]


def test_hosted_servers_refuse_model_ids_not_offered(isolated_settings: Any) -> None:
    hosted = ModelManager(isolated_settings.replace(hosted=True))
    arena = ArenaService(ChatService(hosted, AdapterStore(isolated_settings)))
    assert arena.models.resolve("llava-1.5") == "tiny:llava"  # a family key: its tiny build
    assert arena.models.default_picks() == ["tiny:smolvlm", "tiny:qwen25vl", "tiny:llava"]
    with pytest.raises(NotAllowedError, match="hosted"):
        arena.models.resolve("/etc")
    with pytest.raises(NotAllowedError):
        next(arena.models.stream(str(RED), PROMPT, ["someone/big-model"], GEN))


def test_endpoint_returns_columns_and_what_was_unloaded(app: Any) -> None:
    from gradio_client import Client, handle_file

    client = Client(app.demo.local_url, verbose=False)
    out = client.predict(
        handle_file(str(RED)), PROMPT, ["smolvlm", "llava-1.5"], api_name="/arena_models"
    )
    assert [c["family"] for c in out["columns"]] == ["SmolVLM / Idefics3", "LLaVA-1.5"]
    for c in out["columns"]:
        assert c["status"] == "done" and c["tokens"] > 0 and c["memory_bytes"] > 0
        assert {"ttft_s", "tokens_per_s", "load_s", "unloaded"} <= set(c)
    assert out["unloaded"] == []


def test_tab_shows_each_base_model_with_its_numbers(app: Any) -> None:
    from mmdemo.ui.tabs.arena.actions import ArenaActions

    *_, last = ArenaActions(app.services.arena).run_models(
        str(RED), PROMPT, ["smolvlm", "llava-1.5"], 6, {}
    )
    summary, first, second, *_ = last
    assert "2 base models" in summary
    assert "tiny:smolvlm (the chat's model)" in first and "SmolVLM" in first
    assert "LLaVA-1.5" in second and "first token" in second and "tok/s" in second
    assert "loaded in" in second or "already loaded" in second
