"""How the Arena tab shows a comparison: each column's answer and the summary line. Pure
formatting of the ``ArenaResult`` the arena streams."""

from __future__ import annotations

from mmdemo.flows.arena import ArenaResult
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
