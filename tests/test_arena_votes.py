"""Blind arena votes and the leaderboard: names hidden until the vote, votes on disk that a
restart reads back, forged and repeated votes refused, and Bradley–Terry ratings whose
intervals separate a clearly better adapter from a worse one."""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmdemo.errors import BadInputError
from mmdemo.flows.arena import ArenaColumn, ArenaResult, ArenaService
from mmdemo.flows.arena_blind import BlindArena
from mmdemo.flows.chat import ChatService
from mmdemo.flows.generation import GenerationSettings
from mmdemo.flows.leaderboard import fit, leaderboards, outcomes
from mmdemo.flows.votes import Contender, Draft, VoteBook
from mmdemo.models.adapters import AdapterStore

REPO = Path(__file__).resolve().parents[1]
RED = REPO / "assets" / "images" / "red-circle.png"
ADAPTERS = REPO / "assets" / "adapters"
GEN = GenerationSettings(max_new_tokens=12, greedy=True)
BOARD = "tiny:smolvlm"
COLOUR, PIRATE = "The shape is red.", "Arr matey"  # what the demo adapters answer


def draft(names: list[str], board: str = BOARD) -> Draft:
    """A finished comparison of ``names`` at positions A, B, ... (no model needed)."""
    return Draft(
        board,
        "What color is the shape?",
        "",
        tuple(
            Contender("ABCD"[i], n, board, {"created": "2026-01-01"}, f"answer of {n}")
            for i, n in enumerate(names)
        ),
    )


def vote_record(columns: dict[str, str], winner: str, board: str = BOARD) -> dict[str, Any]:
    """A vote as the log holds it: {position: adapter}, the winner (position, tie or bad)."""
    return {
        "format": "mmdemo-vote",
        "board": board,
        "winner": winner,
        "columns": [{"position": p, "adapter": a} for p, a in columns.items()],
    }


# the leaderboard's arithmetic ---------------------------------------------------------------
def test_bradley_terry_matches_a_hand_computed_case() -> None:
    # A-B 2:1, B-C 2:1, A-C 4:1 is exactly P(i beats j) = p_i / (p_i + p_j) with p = 4, 2, 1,
    # so the maximum-likelihood strengths are 4:2:1: 400·log10(2) = 120.41 points apart
    wins = np.array([[0, 2, 4], [1, 0, 2], [1, 1, 0]])
    ratings = fit(wins, wins + wins.T, prior=0)
    assert ratings == pytest.approx([1120.41, 1000.0, 879.59], abs=0.01)
    # a tie counts half: A 2 wins, B 1 win, 1 tie -> 2.5 : 1.5, 200·log10(5/3) = 44.37 each way
    ratings = fit(np.array([[0, 2.5], [1.5, 0]]), np.array([[0, 4], [4, 0]]), prior=0)
    assert ratings == pytest.approx([1044.37, 955.63], abs=0.01)
    # the default prior (one virtual tie per contender) barely moves ten times that record
    assert fit(wins * 10, (wins + wins.T) * 10) == pytest.approx([1120.41, 1000, 879.59], abs=2)


def test_a_vote_becomes_pairwise_outcomes_with_ties_as_halves() -> None:
    three = {"A": "base", "B": "pirate", "C": "color-namer"}
    assert sorted(outcomes(vote_record(three, "B"))) == [
        ("pirate", "base", 1.0),
        ("pirate", "color-namer", 1.0),
    ]
    for winner in ("tie", "bad"):
        assert sorted(outcomes(vote_record(three, winner))) == [
            ("base", "color-namer", 0.5),
            ("base", "pirate", 0.5),
            ("pirate", "color-namer", 0.5),
        ]
    # three ties and one win each: level, and the ties are counted in the table
    votes = [vote_record({"A": "x", "B": "y"}, w) for w in ("A", "B", "tie", "bad")]
    (board,) = leaderboards(votes, rounds=50)["boards"]
    x, y = sorted(board["rows"], key=lambda r: r["adapter"])
    assert x["rating"] == pytest.approx(1000) and y["rating"] == pytest.approx(1000)
    assert (x["wins"], x["ties"], x["losses"], x["all_bad"]) == (1, 2, 1, 1)
    assert x["rank"] is None and x["provisional"]  # four games are too few to rank
    # forty: still level, so both share the first rank
    (board,) = leaderboards(votes * 10, rounds=50)["boards"]
    assert [(r["rank"], r["provisional"]) for r in board["rows"]] == [(1, False), (1, False)]


def test_200_votes_at_70_percent_rank_a_first_with_separate_intervals(tmp_path: Path) -> None:
    book = VoteBook(tmp_path / "votes")
    rng = np.random.default_rng(7)
    a_won = 0
    for i in range(200):
        names = ["adapter-a", "adapter-b"] if i % 2 else ["adapter-b", "adapter-a"]
        comparison = book.open(draft(names))
        a_wins = rng.random() < 0.7
        a_won += a_wins
        winner = "AB"[names.index("adapter-a" if a_wins else "adapter-b")]
        book.vote(comparison.id, winner, session="voter")
    (board,) = book.leaderboard()["boards"]
    first, second = board["rows"]
    assert board["base_model"] == BOARD and board["votes"] == 200
    assert (first["adapter"], first["rank"], second["adapter"], second["rank"]) == (
        "adapter-a",
        1,
        "adapter-b",
        2,
    )
    assert first["low"] > second["high"], (first, second)  # the intervals exclude each other
    assert first["wins"] == a_won and 120 < a_won < 160
    # the gap is the observed preference on the Elo-like scale (the prior shifts it < 1 point)
    gap = 400 * math.log10(a_won / (200 - a_won))
    assert first["rating"] - second["rating"] == pytest.approx(gap, abs=1.5)
    assert first["low"] < first["rating"] < first["high"]


def test_bootstrap_intervals_are_seeded() -> None:
    rng = np.random.default_rng(0)
    votes = [
        vote_record({"A": "x", "B": "y"}, "A" if rng.random() < 0.6 else "B") for _ in range(60)
    ]
    assert leaderboards(votes, seed=3) == leaderboards(votes, seed=3)
    assert leaderboards(votes, seed=3) != leaderboards(votes, seed=4)


# votes on disk --------------------------------------------------------------------------------
def test_votes_survive_a_restart_and_a_torn_line(tmp_path: Path) -> None:
    folder = tmp_path / "votes"
    book = VoteBook(folder)
    first = book.open(draft(["base", "pirate"]))
    book.vote(first.id, "B", session="s")
    pending = book.open(draft(["base", "pirate"]))
    # a crash in the middle of an append leaves half a line behind
    with open(folder / "votes.jsonl", "ab") as handle:
        handle.write(b'{"format": "mmdemo-vote", "board": "tiny')
    again = VoteBook(folder)  # the server restarted
    assert [v["winner_adapter"] for v in again.votes()] == ["pirate"]
    with pytest.raises(BadInputError, match=r"no open comparison.*forgotten on restart"):
        again.vote(pending.id, "A", session="s")
    second = again.open(draft(["pirate", "color-namer"]))
    again.vote(second.id, "tie", session="s")
    lines = (folder / "votes.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and json.loads(lines[-1])["winner"] == "tie"  # not glued on
    reread = VoteBook(folder)
    assert [v["winner"] for v in reread.votes()] == ["B", "tie"]
    board = reread.leaderboard()
    assert board["skipped_lines"] == 1
    assert {r["adapter"] for r in board["boards"][0]["rows"]} == {"base", "pirate", "color-namer"}


def test_a_forged_comparison_id_or_winner_is_refused_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    book = VoteBook(tmp_path / "votes")
    real = book.open(draft(["base", "pirate"]))
    for forged in (secrets.token_hex(16), "../../etc/passwd", "", None, real.id + "0"):
        with pytest.raises(BadInputError, match="no open comparison") as caught:
            book.vote(forged, "A", session="s")
        assert "/arena_blind" in str(caught.value)  # the fix names what to do
    for winner in ("C", "both", "", None):
        with pytest.raises(BadInputError, match="is not one of A, B, tie or bad"):
            book.vote(real.id, winner, session="s")
    assert book.votes() == [] and not (tmp_path / "votes" / "votes.jsonl").exists()
    assert book.vote(real.id, "a", session="s")["winner_adapter"] == "base"


def test_hosted_one_vote_per_session_and_only_the_opening_session(tmp_path: Path) -> None:
    book = VoteBook(tmp_path / "votes", hosted=True)
    comparison = book.open(draft(["base", "pirate"]), owner="alice")
    with pytest.raises(BadInputError, match="no open comparison"):
        book.vote(comparison.id, "A", session="mallory")  # someone else's comparison
    book.vote(comparison.id, "B", session="alice")
    with pytest.raises(BadInputError, match="already voted"):
        book.vote(comparison.id, "A", session="alice")
    assert [v["winner"] for v in book.votes()] == ["B"]
    # locally any session may vote on it, once each
    local = VoteBook(tmp_path / "local")
    shared = local.open(draft(["base", "pirate"]), owner="alice")
    local.vote(shared.id, "A", session="bob")
    local.vote(shared.id, "B", session="alice")
    with pytest.raises(BadInputError, match="already voted"):
        local.vote(shared.id, "B", session="bob")


def test_comparisons_expire(tmp_path: Path) -> None:
    now = [0.0]
    book = VoteBook(tmp_path / "votes", keep_open_s=60, clock=lambda: now[0])
    comparison = book.open(draft(["base", "pirate"]))
    now[0] = 61.0
    with pytest.raises(BadInputError, match="expired"):
        book.vote(comparison.id, "A", session="s")


# blind comparisons with the tiny VLM and the demo adapters ----------------------------------
@pytest.fixture
def blind(isolated_settings: Any, shared_manager: Any) -> BlindArena:
    chat = ChatService(shared_manager, AdapterStore(isolated_settings))
    return BlindArena(ArenaService(chat), VoteBook(isolated_settings.votes_dir))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_blind_vote_is_stored_with_prompt_image_answers_and_versions(
    blind: BlindArena,
) -> None:
    *_, last = blind.stream(str(RED), "What color is the shape?", ["color-namer", "pirate"], GEN)
    assert last.done and len(last.answers) == 2
    by_answer = {
        "color-namer": next(i for i, a in enumerate(last.answers) if COLOUR in a),
        "pirate": next(i for i, a in enumerate(last.answers) if PIRATE in a),
    }
    comparison = blind.open(last.draft, owner="s")
    position = "AB"[by_answer["color-namer"]]
    record = blind.book.vote(comparison.id, position, session="s")
    assert record["winner_adapter"] == "color-namer"
    (stored,) = [json.loads(line) for line in blind.book.log.path.read_text().splitlines()]
    assert stored["prompt"] == "What color is the shape?" and stored["board"] == BOARD
    assert stored["image_sha256"] == sha256(RED)
    assert stored["time"].endswith("Z") and stored["winner"] == position
    for column in stored["columns"]:
        name = column["adapter"]
        assert column["answer"] == last.answers[by_answer[name]]  # the answer it was shown
        meta = json.loads((ADAPTERS / name / "mmdemo.json").read_text())
        assert column["version"] == {
            "created": meta["created"],
            "weights_sha256": sha256(ADAPTERS / name / "adapter_model.safetensors"),
        }


def test_blind_comparisons_refuse_one_model_or_a_remote_one(blind: BlindArena) -> None:
    with pytest.raises(BadInputError, match="2 to 4 different models"):
        list(blind.stream(str(RED), "Hi", ["pirate", "pirate"], GEN))
    blind.arena.remotes["GPT-4o"] = object()
    with pytest.raises(BadInputError, match="GPT-4o is a remote model"):
        list(blind.stream(str(RED), "Hi", ["pirate", "GPT-4o"], GEN))


def test_positions_are_shuffled(isolated_settings: Any) -> None:
    """Which model sits at A changes from comparison to comparison (a stand-in arena)."""

    def stream(image: Any, prompt: str, names: list[str], *_: Any) -> Iterator[ArenaResult]:
        columns = tuple(ArenaColumn(n, "", f"answer of {n}", 1, 1.0) for n in names)
        yield ArenaResult(columns, "stand-in", 0.0, 0.0, 0.0, 0, True)

    chat = types.SimpleNamespace(
        adapter_info=lambda name: None,
        manager=types.SimpleNamespace(model_id=lambda backend: BOARD),
    )
    arena = types.SimpleNamespace(remotes={}, chat=chat, stream=stream)
    blind = BlindArena(arena, VoteBook(isolated_settings.votes_dir))  # type: ignore[arg-type]
    seen = set()
    for _ in range(40):  # both orders fail to appear with probability 2 * 2**-40
        (update,) = blind.stream(None, "Hi", ["x", "y"])
        seen.add(update.draft.contenders[0].adapter)
        for k, c in enumerate(update.draft.contenders):
            assert update.answers[k] == c.answer == f"answer of {c.adapter}"
    assert seen == {"x", "y"}


# through the app: the tab's handlers and the named endpoints ---------------------------------
def test_the_tab_hides_names_until_the_vote(app: Any) -> None:
    from mmdemo.ui.tabs.arena.actions import BlindActions

    act = BlindActions(app.services.blind, app.services.votes)
    request = types.SimpleNamespace(session_hash="tab-session")
    st: dict = {}
    updates = list(
        act.run_blind(str(RED), "What color is the shape?", ["pirate", "base"], 8, st, request)
    )
    shown = [text for update in updates for text in update[1:5] if isinstance(text, str)]
    assert shown and not any("pirate" in t or "base" in t for t in shown)
    buttons = updates[-1][8:14]  # A, B, C, D, tie, bad
    assert [b["visible"] for b in buttons] == [True, True, False, False, True, True]
    summary, *rest = act.voter("tie")(st, request)
    columns, rows = rest[:4], rest[10]
    assert "a tie" in summary and "blind" not in st
    assert "pirate" in "".join(columns) and "base" in "".join(columns)
    assert {r[1] for r in rows} >= {"pirate", "base"}


def test_blind_endpoints_vote_and_leaderboard(app: Any) -> None:
    from gradio_client import Client, handle_file

    client = Client(app.demo.local_url, verbose=False)
    blind = client.predict(
        handle_file(str(RED)),
        "What color is the shape?",
        ["color-namer", "pirate"],
        api_name="/arena_blind",
    )
    assert blind["positions"] == ["A", "B"] and "pirate" not in json.dumps(blind)
    colour = next(a["position"] for a in blind["answers"] if COLOUR in a["text"])
    vote = client.predict(blind["comparison_id"], colour, api_name="/arena_vote")
    assert vote["winner_adapter"] == "color-namer" and vote["base_model"] == BOARD
    with pytest.raises(Exception, match="already voted"):
        client.predict(blind["comparison_id"], colour, api_name="/arena_vote")
    with pytest.raises(Exception, match="no open comparison"):
        client.predict(secrets.token_hex(16), "A", api_name="/arena_vote")
    board = client.predict(BOARD, False, api_name="/leaderboard")
    (rows,) = [b["rows"] for b in board["boards"]]
    colour_row = next(r for r in rows if r["adapter"] == "color-namer")
    assert colour_row["wins"] >= 1 and colour_row["low"] <= colour_row["rating"]
    assert {"high", "rank", "provisional", "games", "ties", "losses"} <= set(colour_row)
    assert "Bradley–Terry" in board["method"]


def test_votes_from_many_threads_each_land_on_a_line_of_their_own(tmp_path: Path) -> None:
    import threading

    book = VoteBook(tmp_path / "votes")
    comparisons = [book.open(draft(["base", "pirate"])) for _ in range(40)]
    barrier = threading.Barrier(4)

    def voter(k: int) -> None:
        barrier.wait()
        for comparison in comparisons[k::4]:
            book.vote(comparison.id, "AB"[k % 2], session=f"s{k}")

    threads = [threading.Thread(target=voter, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    again = VoteBook(tmp_path / "votes")
    assert sorted(v["comparison"] for v in again.votes()) == sorted(c.id for c in comparisons)
    assert again.leaderboard()["skipped_lines"] == 0


@pytest.mark.browser
def test_browser_votes_blind_and_sees_the_leaderboard_change(
    page: Any, app: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    from tests.conftest import screenshot_dir

    votes = app.services.votes
    before = len(votes.votes())
    page.get_by_role("tab", name="Arena").click()
    page.locator("#arena-image input[type=file]").set_input_files(str(RED))
    page.locator("#arena-blind-run").click()
    expect(page.locator("#arena-vote-a")).to_be_visible(timeout=60_000)
    expect(page.locator("#arena-summary")).to_contain_text("names hidden")
    shown = " ".join(page.locator(f"#arena-col-{i}").inner_text() for i in range(4))
    assert "#### A" not in shown and "pirate" not in shown and "color-namer" not in shown
    page.locator("#arena-vote-a").click()
    expect(page.locator("#arena-summary")).to_contain_text("Vote recorded", timeout=30_000)
    expect(page.locator("#arena-vote-a")).to_be_hidden()
    expect(page.locator("#arena-col-0")).to_contain_text("your pick")
    assert len(votes.votes()) == before + 1
    winner = votes.votes()[-1]["winner_adapter"]
    expect(page.locator("#arena-col-0")).to_contain_text(winner)
    expect(page.locator("#arena-leaderboard")).to_contain_text(winner)
    page.screenshot(path=str(screenshot_dir(tmp_path) / "arena-blind.png"), full_page=True)
