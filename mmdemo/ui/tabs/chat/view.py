"""How the Visual chat tab shows things: the conversation, an answer's metrics, an
adapter's card, the adapters table and the boxes "Find it" drew. Pure formatting: data in, text and rows out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdemo.flows.chat import AnswerMetrics, ChatService, ChatSession
from mmdemo.flows.grounding import GroundingResult
from mmdemo.ui.common import seconds
from mmdemo.units import human_bytes

ASSET_IMAGES = Path(__file__).resolve().parents[4] / "assets" / "images"
OFF = "off"  # no similar cases
ADAPTER_HEADERS = [
    "name",
    "method",
    "dataset",
    "score",
    "rank",
    "base model",
    "size",
    "source",
    "loaded",
]


def index_choices(chat: ChatService) -> list[str]:
    return [OFF, *(chat.retrieval.names() if chat.retrieval is not None else [])]


def metrics_md(m: AnswerMetrics | None) -> str:
    if m is None:
        return ""
    parts = [
        f"**{m.adapter}**",
        f"queue {seconds(m.queue_wait_s)}",
        f"adapter switch {seconds(m.switch_s)}"
        if m.batch_rows == 1
        else f"batched with {m.batch_rows - 1} other answer(s), no adapter switch",
        f"first token {seconds(m.ttft_s)}",
        f"{m.tokens_per_s:.1f} tok/s",
        f"{m.tokens} tokens",
        f"peak memory {human_bytes(m.peak_memory_bytes)}",
    ]
    if m.stopped:
        parts.append("stopped")
    return " · ".join(parts)


def to_messages(
    session: ChatSession, pending: tuple[str, list[str], str] | None = None
) -> list[dict]:
    """Chatbot message dicts for the conversation (+ a turn still being answered)."""
    rows = [(t.user, t.image_paths, t.answer) for t in session.turns]
    if pending:
        rows.append(pending)
    messages: list[dict] = []
    for user, paths, answer in rows:
        content: list[Any] = [{"path": p} for p in paths if p and Path(p).is_file()]
        messages.append({"role": "user", "content": [*content, user] if content else user})
        if answer:
            messages.append({"role": "assistant", "content": answer})
    return messages


def adapter_md(info: Any, took: float | None) -> str:
    """An adapter's card: what it is, how it was trained and scored, and (``took``) how long
    loading it onto the VLM took."""
    switch = ""
    if took is not None:
        switch = f"\n\nready in {seconds(took)} (kept loaded; switching back is instant)"
    score = ", ".join(f"{k} {v}" for k, v in info.metrics.items()) or "not evaluated"
    return (
        f"**{info.name}** — {info.description or info.method}\n\n"
        f"method `{info.method}` · rank {info.serve_rank or info.rank} · "
        f"dataset {info.dataset or 'unknown'} · "
        f"score {score} · base `{info.base_model or '?'}`{switch}"
    )


def adapter_rows(chat: ChatService) -> list[list[Any]]:
    """The adapters table: one row per adapter in the store."""
    resident = chat.resident_adapters()
    rows = []
    for a in chat.store.list():
        score = ", ".join(f"{k} {v}" for k, v in list(a.metrics.items())[:1]) or "—"
        rows.append(
            [
                a.name,
                a.method,
                a.dataset or "—",
                score,
                a.rank or "—",
                a.base_model or "—",
                human_bytes(a.size_bytes),
                a.source or ("built in" if a.builtin else "uploaded"),
                "yes" if a.name in resident else "",
            ]
        )
    return rows


BOX_HEADERS = ["#", "label", "x1", "y1", "x2", "y2"]


def box_rows(result: GroundingResult) -> list[list[Any]]:
    """The boxes as table rows, in pixels of the uploaded image."""
    return [
        [i + 1, b.label, round(b.x1), round(b.y1), round(b.x2), round(b.y2)]
        for i, b in enumerate(result.boxes)
    ]


def grounding_md(result: GroundingResult) -> str:
    """What was found and how the coordinates were read (or why there are no boxes)."""
    family = result.family or "unknown family"
    if not result.boxes:
        head = f"**No boxes** ({family}): {result.reason}"
    else:
        head = (
            f"**{len(result.boxes)} box(es)** from {family}'s {result.format}; {result.assumption}"
        )
    raw = result.raw.replace("```", "' ' '")[:1000] or "(empty)"
    return f"{head}\n\nThe answer:\n\n```text\n{raw}\n```"
