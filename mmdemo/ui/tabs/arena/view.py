"""How the Arena tab shows a comparison: each column's answer and the summary line, a blind
comparison before and after the vote, and the leaderboard. Pure formatting of what the flows
return."""

from __future__ import annotations

from typing import Any

from mmdemo.flows.arena import ArenaResult
from mmdemo.flows.arena_blind import BlindUpdate
from mmdemo.flows.arena_models import BaseArenaResult, BaseColumn
from mmdemo.flows.votes import POSITIONS
from mmdemo.ui.common import seconds
from mmdemo.units import human_bytes


def column_md(result: ArenaResult, i: int, remote: bool = False) -> str:
    """Column ``i`` of the local (or the remote) columns, as Markdown ("" when unused)."""
    columns = [c for c in result.columns if c.remote == remote]
    if i >= len(columns):
        return ""
    c = columns[i]
    if c.error:
        return f"#### {c.adapter}\n<sub>{c.label}</sub>\n\n**Not answered:** {c.error}"
    speed = f" · {c.tokens} tokens · {c.tokens_per_s:.1f} tok/s" if result.done else ""
    return f"#### {c.adapter}\n<sub>{c.label}{speed}</sub>\n\n{c.text or '…'}"


def summary_md(result: ArenaResult) -> str:
    text = (
        f"{len(result.columns)} answers as {result.mode} · total {seconds(result.total_s)} · "
        f"first token {seconds(result.ttft_s)} · queue {seconds(result.queue_wait_s)}"
    )
    if result.done:
        text += f" · peak memory {human_bytes(result.peak_memory_bytes)}"
    return text


# base models side by side ------------------------------------------------------------------
def base_numbers(c: BaseColumn) -> str:
    """A base-model column's numbers: load, first token, speed, memory."""
    parts = [
        f"{c.tokens} tokens",
        f"first token {seconds(c.ttft_s)}",
        f"{c.tokens_per_s:.1f} tok/s",
    ]
    if not c.remote:
        load = f"loaded in {seconds(c.load_s)}" if c.load_s else "already loaded"
        parts = [load, *parts, f"weights {human_bytes(c.memory_bytes)}"]
        if c.peak_memory_bytes:
            parts.append(f"peak {human_bytes(c.peak_memory_bytes)}")
    return " · ".join(parts)


def base_column_md(result: BaseArenaResult, i: int, remote: bool = False) -> str:
    """Column ``i`` of the local (or remote) base models, as Markdown ("" when unused)."""
    columns = [c for c in result.columns if c.remote == remote]
    if i >= len(columns):
        return ""
    c = columns[i]
    title = f"#### {c.model}" + (" (the chat's model)" if c.chat_model else "")
    sub = f"<sub>{c.family}</sub>" if c.family else ""
    notes = "".join(f"\n\n> {e.reason}" for e in c.evicted)
    if c.error:
        return f"{title}\n{sub}{notes}\n\n**Not answered:** {c.error}"
    if c.status in ("waiting", "loading"):
        return f"{title}\n{sub}{notes}\n\n*{c.status}…*"
    return f"{title}\n{sub} <sub>· {base_numbers(c)}</sub>{notes}\n\n{c.text or '…'}"


def base_summary_md(result: BaseArenaResult) -> str:
    local = sum(not c.remote for c in result.columns)
    text = (
        f"{local} base model{'' if local == 1 else 's'}, one after another"
        f"{f' + {len(result.columns) - local} remote' if local < len(result.columns) else ''}"
        f" · total {seconds(result.total_s)}"
    )
    if result.evicted:
        text += (
            f" · unloaded to stay within memory: {', '.join(e.model_id for e in result.evicted)}"
        )
    return text


# blind votes ---------------------------------------------------------------------------------
LEADERBOARD_HEADERS = ["rank", "adapter", "rating", "95% interval", "games", "W-T-L", "all bad"]


def vote_label(vote: str) -> str:
    """A vote button's text: "A is better", "Tie", "All bad"."""
    return {"tie": "Tie", "bad": "All bad"}.get(vote, f"{vote} is better")


def blind_column_md(update: BlindUpdate | None, i: int) -> str:
    """Column ``i`` of a blind comparison: its position and answer, no name."""
    if update is None or i >= len(update.answers):
        return ""
    return f"#### {POSITIONS[i]}\n\n{update.answers[i] or '…'}"


def blind_summary_md(update: BlindUpdate, voting: bool) -> str:
    text = f"{len(update.answers)} answers, names hidden · total {seconds(update.total_s)}"
    if voting:
        text += " · **vote for the better answer** (or tie, or all bad) to see who wrote which"
    elif update.done:
        text += " · stopped before the end: no vote for this one"
    return text


def revealed_column_md(vote: dict[str, Any], i: int) -> str:
    """Column ``i`` after the vote: position, who answered, whether it won, the answer."""
    columns = vote["columns"]
    if i >= len(columns):
        return ""
    c = columns[i]
    mark = " ✓ your pick" if vote["winner"] == c["position"] else ""
    created = (c.get("version") or {}).get("created")
    version = f"<sub>adapter created {created}</sub>\n\n" if created else ""
    return f"#### {c['position']}: {c['adapter']}{mark}\n{version}\n{c['answer'] or '…'}"


def vote_summary_md(vote: dict[str, Any]) -> str:
    picked = {"tie": "a tie", "bad": "all bad"}.get(vote["winner"])
    picked = picked or f"{vote['winner']} ({vote['winner_adapter']})"
    return f"Vote recorded: {picked} · board {vote['board']} · the leaderboard below includes it"


def leaderboard_rows(result: dict[str, Any], board: str) -> list[list[Any]]:
    """The rows of ``board``'s leaderboard (the first board when ``board`` has none)."""
    boards = {b["base_model"]: b for b in result["boards"]}
    chosen = boards.get(board) or next(iter(boards.values()), None)
    if chosen is None:
        return []
    return [
        [
            "–" if r["rank"] is None else r["rank"],
            r["adapter"],
            f"{r['rating']:.0f}",
            "too few games" if r["provisional"] else f"{r['low']:.0f} – {r['high']:.0f}",
            r["games"],
            f"{r['wins']}-{r['ties']}-{r['losses']}",
            r["all_bad"],
        ]
        for r in chosen["rows"]
    ]


def leaderboard_md(result: dict[str, Any], board: str) -> str:
    boards = {b["base_model"]: b for b in result["boards"]}
    chosen = boards.get(board) or next(iter(boards.values()), None)
    if chosen is None:
        return "No blind votes yet: run *Compare blind* and vote."
    others = [b for b in boards if b != chosen["base_model"]]
    n = chosen["votes"]
    text = (
        f"**{chosen['base_model']}** · {n} vote{'' if n == 1 else 's'} · Bradley–Terry "
        f"ratings (Elo-like scale, mean 1000), 95% bootstrap intervals ({result['rounds']} "
        "resamples); ties and all-bad count half; a rank is shared until the intervals "
        f"separate, and given after {result['min_games']} games"
    )
    if others:
        text += f" · other base models: {', '.join(others)}"
    return text


def export_md(result: dict[str, Any]) -> str:
    """What a vote export wrote and skipped, and where the Fine-tune tab finds it."""
    c = result["counts"]
    skipped = [
        f"{c[k]} {label}"
        for k, label in (
            ("ties", "ties"),
            ("both_bad", "all bad"),
            ("same_answer", "pairs with the same answer"),
            ("without_image", "votes whose image was not kept (no SFT row)"),
        )
        if c.get(k)
    ]
    return (
        f"**Exported {c['votes']} votes:** {c['pairs']} preference pairs, "
        f"{c['sft_rows']} chosen answers"
        + (f" · skipped {', '.join(skipped)}" if skipped else "")
        + f"\n\nFine-tune tab → Data: *Folder on this server* `{result['folder']}` "
        "(method **dpo** trains on the pairs, the others on the chosen answers), "
        "or upload the zip below."
    )
