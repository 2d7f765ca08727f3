"""The rank menu of a DyLoRA adapter where it is served (chat tab): which ranks it offers, with
the score its training measured at each, and the name a picked rank is served under."""

from __future__ import annotations

from mmdemo.flows.chat import ChatService
from mmdemo.models.dylora import is_dylora, rank_name


def rank_options(chat: ChatService, adapter: str | None) -> list[tuple[str, int]]:
    """(label, rank) from the adapter's own rank down to 1; empty when ``adapter`` is not a
    local DyLoRA adapter (base, another method, a remote VLM's model)."""
    info = chat.engine.adapter(adapter)
    if info is None or not is_dylora(info):
        return []
    options = []
    for k in range(int(info.rank), 0, -1):
        scores = info.rank_scores.get(k, {})
        score = next((f" · {m} {v:.2f}" for m, v in scores.items() if m != "count"), "")
        whole = " (as trained)" if k == info.rank else ""
        options.append((f"r={k}{whole}{score}", k))
    return options


def served_name(chat: ChatService, adapter: str | None, rank: int | float | None) -> str | None:
    """The adapter name to answer with: ``name@r=k`` when ``adapter`` is a DyLoRA adapter and
    ``rank`` is below its own; otherwise ``adapter`` unchanged (a stale rank left over from
    another adapter is ignored)."""
    if not rank:
        return adapter
    info = chat.engine.adapter(adapter)
    if info is None or not is_dylora(info) or int(rank) >= int(info.rank or 0):
        return adapter
    return rank_name(info.name, int(rank))
