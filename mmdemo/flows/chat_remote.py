"""A chat turn answered by the remote VLM (Settings.remote_vlm_url) instead of the local one."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from mmdemo.flows.chat import (
    BASE_NAME,
    AnswerMetrics,
    ChatSession,
    ChatTurn,
    ChatUpdate,
    build_messages,
)
from mmdemo.flows.generation import GenerationSettings
from mmdemo.flows.remote import RemoteClient, openai_messages


def answer_remote(
    remote: RemoteClient,
    session: ChatSession,
    turn: ChatTurn,
    adapter: str | None,
    gen: GenerationSettings,
    stop: threading.Event,
) -> Iterator[ChatUpdate]:
    """Stream the remote answer to ``turn`` (the adapter is the served model's name); the
    turn joins the session when done, with the metrics the server's counts allow."""
    turn.adapter = adapter or BASE_NAME
    messages, context_images = build_messages([*session.turns, turn], session.system)
    started = time.perf_counter()
    model = remote.model_name(adapter, BASE_NAME)
    first: float | None = None
    reply = None
    for reply in remote.stream(model, openai_messages(messages, context_images), gen, stop):
        first = first or time.perf_counter()
        turn.answer = reply.text
        if not reply.done:
            yield ChatUpdate(turn.answer)
    total = time.perf_counter() - started
    tokens = reply.completion_tokens if reply else 0
    decode = total - ((first or started) - started)
    turn.metrics = AnswerMetrics(
        adapter=turn.adapter,
        queue_wait_s=0.0,
        switch_s=0.0,
        ttft_s=(first or started) - started,
        tokens=tokens,
        tokens_per_s=tokens / decode if tokens and decode > 0 else 0.0,
        total_s=total,
        peak_memory_bytes=0,
        stopped=stop.is_set(),
        prompt_tokens=reply.prompt_tokens if reply else 0,
    )
    session.add(turn)
    yield ChatUpdate(turn.answer, turn.metrics)
