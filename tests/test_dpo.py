"""Votes become training data: the blind votes export as preference pairs (ties and all-bad
votes skipped) and as the chosen answers; the studio reads both; DPO on the tiny text model
makes it prefer the chosen answers; a DPO adapter of the tiny VLM is in the chat at once;
Stop works; bad input is refused with the fix."""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any

import pytest

from mmdemo.errors import BadInputError, TrainingStopped
from mmdemo.finetune.config import TrainConfig
from mmdemo.finetune.events import Done, Event, Start, Step
from mmdemo.finetune.formats import load_dataset
from mmdemo.finetune.preferences import preference_data
from mmdemo.finetune.progress import EventLog, StopSwitch
from mmdemo.finetune.run import RunEnv, train_adapter
from mmdemo.flows.votes import Contender, Draft, VoteBook
from mmdemo.flows.votes_export import export_votes

REPO = Path(__file__).resolve().parents[1]
RED = REPO / "assets" / "images" / "red-circle.png"
CAT = REPO / "assets" / "images" / "cat.jpg"
BOARD = "tiny:smolvlm"
COLOUR = "The shape is red."


# tiny models train fastest on one thread (the fixture is in conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


def vote(book: VoteBook, answers: list[str], winner: str, image: Path | None = RED) -> None:
    """Open a comparison of ``answers`` (adapters a0, a1, ... at A, B, ...) and vote."""
    from mmdemo.flows.arena_blind import image_sha256

    contenders = tuple(
        Contender("ABCD"[i], f"a{i}", BOARD, {}, text) for i, text in enumerate(answers)
    )
    draft = Draft(
        BOARD, "What color is the shape?", image_sha256(image), contenders, str(image or "")
    )
    book.vote(book.open(draft, "s").id, winner, "s")


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# the export ----------------------------------------------------------------------------------
def test_votes_export_as_pairs_and_chosen_answers_with_ties_and_all_bad_skipped(
    tmp_path: Path,
) -> None:
    book = VoteBook(tmp_path / "votes")
    vote(book, [COLOUR, "Arr matey"], "A")
    vote(book, ["A circle.", COLOUR, COLOUR], "B", CAT)  # C says what B says: no pair
    vote(book, [COLOUR, "Arr matey"], "tie")
    vote(book, [COLOUR, "Arr matey"], "bad")
    vote(book, ["Arr matey", COLOUR], "B", None)  # an answer about no image
    export = export_votes(tmp_path / "votes", tmp_path / "exports")
    assert export.counts == {
        "votes": 5,
        "pairs": 3,
        "sft_rows": 2,
        "ties": 1,
        "both_bad": 1,
        "same_answer": 1,
        "without_image": 1,
        "skipped_lines": 0,
    }
    pairs = lines(export.preferences)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [
        (COLOUR, "Arr matey"),
        (COLOUR, "A circle."),
        (COLOUR, "Arr matey"),
    ]
    assert [p["rejected_adapter"] for p in pairs] == ["a1", "a0", "a0"]
    assert (export.folder / pairs[0]["image"]).read_bytes() == RED.read_bytes()
    assert (export.folder / pairs[1]["image"]).read_bytes() == CAT.read_bytes()
    assert pairs[2]["image"] == ""
    assert [(r["question"], r["answer"]) for r in lines(export.sft)] == [
        ("What color is the shape?", COLOUR)
    ] * 2
    # the studio reads both as they are: question answering on the chosen answers, DPO on the
    # pairs (the VLM needs the picture; the text model reads the prompts alone)
    sft = load_dataset(str(export.folder), "vqa")
    assert [ex.answer for ex in sft.splits["train"]] == [COLOUR, COLOUR]
    vlm_pairs, described = preference_data(str(export.folder), "vlm")
    assert len(vlm_pairs["train"]) == 2 and "Skipped 1" in described and "no 'image'" in described
    text_pairs, _ = preference_data(str(export.preferences), "llm")
    assert [(ex.answer, ex.rejected) for ex in text_pairs["train"]] == [
        (COLOUR, "Arr matey"),
        (COLOUR, "A circle."),
        (COLOUR, "Arr matey"),
    ]


def test_a_hosted_server_keeps_no_pictures(tmp_path: Path) -> None:
    book = VoteBook(tmp_path / "votes", hosted=True)
    vote(book, [COLOUR, "Arr matey"], "A")
    assert not (tmp_path / "votes" / "images").exists()
    export = export_votes(tmp_path / "votes", tmp_path / "exports")
    assert export.counts["pairs"] == 1 and export.counts["sft_rows"] == 0


def test_an_empty_vote_file_or_only_ties_are_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no arena votes") as empty:
        export_votes(tmp_path / "votes", tmp_path / "exports")
    assert "Compare blind" in (empty.value.fix or "")
    (tmp_path / "votes").mkdir()
    (tmp_path / "votes" / "votes.jsonl").write_text("")
    with pytest.raises(BadInputError, match="no arena votes"):
        export_votes(tmp_path / "votes", tmp_path / "exports")
    book = VoteBook(tmp_path / "votes")
    vote(book, [COLOUR, "Arr matey"], "tie")
    vote(book, [COLOUR, "Arr matey"], "bad")
    with pytest.raises(BadInputError, match="1 ties, 1 all bad") as ties:
        export_votes(tmp_path / "votes", tmp_path / "exports")
    assert "vote for the better answer" in (ties.value.fix or "")
    with pytest.raises(BadInputError, match="votes are on tiny:smolvlm"):
        export_votes(tmp_path / "votes", tmp_path / "exports", base_model="other")
    assert not (tmp_path / "exports").exists() or not any((tmp_path / "exports").iterdir())


def test_a_hosted_server_refuses_the_export(tmp_path: Path, tiny_settings) -> None:
    """The votes hold every visitor's prompts: only a local server exports them."""
    from mmdemo.errors import NotAllowedError
    from mmdemo.ui.tabs.arena.api import export_json

    settings = tiny_settings.replace(home=tmp_path, hosted=True)
    ctx = types.SimpleNamespace(settings=settings, sessions=None)
    with pytest.raises(NotAllowedError, match="exporting the arena votes") as refused:
        export_json(ctx, "", None)  # type: ignore[arg-type]
    assert "local mode" in (refused.value.fix or "")


def test_dpo_refuses_data_without_pairs_naming_the_export(tmp_path: Path, tiny_settings) -> None:
    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"image": "x.png", "question": "Q?", "answer": "A"}) + "\n")
    cfg = TrainConfig(method="dpo", base="llm", dataset=str(data), steps=2)
    env = RunEnv(tiny_settings, tmp_path / "run", EventLog(), adapters_dir=tmp_path / "store")
    with pytest.raises(BadInputError, match="no preference pairs") as refused:
        train_adapter(cfg, env)
    assert "Export votes" in (refused.value.fix or "")
    with pytest.raises(BadInputError, match="one stage"):
        TrainConfig(method="dpo", stages="two-stage")


# training ------------------------------------------------------------------------------------
def margins(model: Any, tokenizer: Any, pairs: list[Any]) -> list[float]:
    """log p(chosen) - log p(rejected) after each pair's prompt, in the chat template."""
    import torch

    out = []
    for ex in pairs:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": ex.prompt}], add_generation_prompt=True, tokenize=False
        )
        scores = []
        for answer in (ex.answer, ex.rejected):
            start = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
            ids = tokenizer(prompt + answer, add_special_tokens=False, return_tensors="pt")
            with torch.no_grad():
                logps = torch.log_softmax(model(**ids).logits[0, :-1].float(), -1)
            target = ids["input_ids"][0, 1:]
            picked = logps.gather(-1, target.unsqueeze(-1)).squeeze(-1)
            scores.append(float(picked[start - 1 :].sum()))
        out.append(scores[0] - scores[1])
    return out


def test_dpo_makes_the_tiny_text_model_prefer_the_chosen_answers(
    tiny_settings, tmp_path: Path
) -> None:
    from peft import PeftModel

    from mmdemo.finetune.colour_pairs import colour_split
    from mmdemo.models.backends.llm import load_parts

    cfg = TrainConfig(
        method="dpo", base="llm", steps=24, batch_size=8, scale=0.02, lr=0.01, rank=16, alpha=32
    )
    log = EventLog()
    env = RunEnv(tiny_settings, tmp_path, log, StopSwitch(), adapters_dir=tmp_path / "store")
    result = train_adapter(cfg, env)
    start = next(e for e in log.events if isinstance(e, Start))
    assert start.method == "dpo" and 0 < start.trainable < start.total
    assert sum(isinstance(e, Step) for e in log.events) == 24 and isinstance(log.events[-1], Done)
    assert {"preference_accuracy", "reward_margin"} <= set(result.metrics)
    # on a fresh copy of the base with the saved adapter, the pairs it trained on (the scale's
    # 8 scenes): the chosen answer gained on the rejected one on every pair, and by a factor
    # a user sees (e^1.5 = 4.5 times likelier relative to the rejected one, on average)
    pairs = colour_split("train", with_images=False, scenes=8)
    model, tokenizer = load_parts("tiny:llm", tiny_settings, "cpu", "float32")
    before = margins(model, tokenizer, pairs)
    tuned = PeftModel.from_pretrained(model, str(result.path))
    after = margins(tuned, tokenizer, pairs)
    rose = [a - b for a, b in zip(after, before, strict=True)]
    assert all(r > 0 for r in rose), f"the margin fell on some pairs: {rose}"
    assert sum(rose) / len(rose) > 1.5, rose


def test_stop_ends_a_dpo_run_and_stores_nothing(tiny_settings, tmp_path: Path) -> None:
    stop = StopSwitch()

    class StopAfterTwo(EventLog):
        def __call__(self, event: Event) -> None:
            super().__call__(event)
            if isinstance(event, Step) and event.step == 2:
                stop.event.set()

    log = StopAfterTwo()
    cfg = TrainConfig(method="dpo", base="llm", steps=50, batch_size=2, scale=0.02)
    env = RunEnv(tiny_settings, tmp_path, log, stop, adapters_dir=tmp_path / "store")
    with pytest.raises(TrainingStopped):
        train_adapter(cfg, env)
    assert max(e.step for e in log.events if isinstance(e, Step)) <= 3
    store = tmp_path / "store"
    assert not store.exists() or not any(store.iterdir())


def test_a_dpo_adapter_of_the_vlm_is_in_the_chat_at_once(isolated_settings) -> None:
    from mmdemo.flows.chat import ChatService, ChatSession
    from mmdemo.flows.generation import GenerationSettings
    from mmdemo.models.adapters import AdapterStore
    from mmdemo.models.manager import ModelManager

    manager = ModelManager(isolated_settings)
    chat = ChatService(manager, AdapterStore(isolated_settings))
    try:
        assert "prefers-colour" not in chat.adapter_choices()
        cfg = TrainConfig(method="dpo", name="prefers-colour", steps=2, batch_size=2, scale=0.02)
        run_dir = isolated_settings.runs_dir / "dpo"
        run_dir.mkdir(parents=True)
        result = train_adapter(cfg, RunEnv(isolated_settings, run_dir, EventLog()))
        assert result.path.parent == isolated_settings.adapters_dir
        assert "prefers-colour" in chat.adapter_choices()
        info = chat.adapter_info("prefers-colour")
        assert info.method == "dpo" and info.base_model_type == "idefics3"
        gen = GenerationSettings(max_new_tokens=6, greedy=True)
        final = list(
            chat.stream(ChatSession(), "What shape is on the left?", [RED], "prefers-colour", gen)
        )[-1]
        assert final.metrics.adapter == "prefers-colour" and final.metrics.tokens > 0
    finally:
        manager.unload_all()


# the endpoint --------------------------------------------------------------------------------
def test_votes_export_endpoint_returns_files_and_counts(app: Any) -> None:
    from gradio_client import Client, handle_file

    client = Client(app.demo.local_url, verbose=False)
    blind = client.predict(
        handle_file(str(RED)),
        "What color is the shape?",
        ["color-namer", "pirate"],
        api_name="/arena_blind",
    )
    colour = next(a["position"] for a in blind["answers"] if COLOUR in a["text"])
    client.predict(blind["comparison_id"], colour, api_name="/arena_vote")
    out = client.predict(BOARD, api_name="/votes_export")
    assert out["counts"]["pairs"] >= 1 and out["counts"]["sft_rows"] >= 1
    pairs = lines(Path(out["preferences"]))
    assert any(p["chosen_adapter"] == "color-namer" and p["chosen"] == COLOUR for p in pairs)
    assert Path(out["download"]).suffix == ".zip"
    # the tab's button shows the same, with the zip to download
    from mmdemo.ui.tabs.arena.actions import BlindActions

    shown, zipped = BlindActions.exporter(app.context)(types.SimpleNamespace(session_hash="s"))
    assert "preference pairs" in shown and "dpo" in shown and zipped.endswith(".zip")


@pytest.mark.browser
def test_browser_exports_the_votes_from_the_arena_tab(page: Any, app: Any) -> None:
    from playwright.sync_api import expect

    book = app.services.votes
    vote(book, [COLOUR, "Arr matey"], "A")  # at least one vote with a winner
    page.get_by_role("tab", name="Arena").click()
    page.get_by_text("Votes as training data").click()
    page.locator("#arena-export").click()
    info = page.locator("#arena-export-info")
    expect(info).to_contain_text("preference pairs", timeout=30_000)
    expect(info).to_contain_text("dpo")
    expect(page.get_by_text(".zip").first).to_be_visible()


def test_the_dpo_bench_scores_the_base_row_on_the_model_it_trained(
    tiny_settings, monkeypatch
) -> None:
    """The table's 'base' row must be the untrained model the adapters were trained on (it
    once scored the profile's own text model instead)."""
    import mmdemo.finetune.evaluate as evaluate
    import mmdemo.finetune.inputs as inputs
    from mmdemo.bench.dpo import QUICK, base_style_share

    loaded: list[str] = []
    real_load = inputs.load_base

    def spy(cfg, settings, device, extra):
        loaded.append(settings.model_id("llm"))
        return real_load(cfg, settings.replace(llm="tiny:llm"), device, extra)

    monkeypatch.setattr(inputs, "load_base", spy)
    monkeypatch.setattr(evaluate, "generate_answers", lambda model, c, test, d: [""] * len(test))
    share = base_style_share(tiny_settings, "embedded:smollm2-135m-instruct", QUICK)
    assert loaded == ["embedded:smollm2-135m-instruct"] and share == 0.0
