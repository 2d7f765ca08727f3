"""The chat engine behind any OpenAI-compatible server (Settings.remote_vlm_url): vLLM, SGLang,
LMDeploy serving a base model with many LoRAs, or another mmdemo. Adapters are the models the
server lists; nothing is loaded on this machine."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

from mmdemo.errors import MMDemoError
from mmdemo.flows.conversation import BASE_NAME, AnswerMetrics, ChatUpdate
from mmdemo.flows.generation import GenerationSettings
from mmdemo.flows.remote import RemoteClient, RemoteEndpoint, openai_messages
from mmdemo.models.adapters import AdapterInfo
from mmdemo.redact import redact_url

# answers the server is sent at once from this app (it batches them itself)
REMOTE_CONCURRENCY = 8


class RemoteEngine:
    """Answers with the model a remote server serves under the requested name."""

    concurrent_answers = REMOTE_CONCURRENCY

    def __init__(self, endpoint: RemoteEndpoint) -> None:
        self.client = RemoteClient(endpoint)
        self.where = f"the remote VLM at {redact_url(endpoint.base_url)}"

    @property
    def base_model(self) -> str:
        return self.client.endpoint.model

    def choices(self, ranks: bool = False) -> list[str]:
        """``base`` and the models the server lists (an unreachable server: ``base`` only,
        so a page still opens; asking then names the server and the cause). A server that
        says which models are adapters of which (vLLM's ``parent``) lists only those besides
        ``base``: its other names for the base model are not adapters."""
        try:
            listed = self.client.models()
        except MMDemoError:
            return [BASE_NAME]
        served = [str(m["id"]) for m in listed]
        base = self.client.endpoint.model or (served[0] if served else "")
        if any(m.get("parent") for m in listed):
            served = [str(m["id"]) for m in listed if m.get("parent")]
        return [BASE_NAME, *(n for n in served if n not in (base, BASE_NAME))]

    def adapter(self, name: str | None) -> AdapterInfo | None:
        return None  # the server's models carry no mmdemo adapter here

    def endpoint(self, name: str | None) -> RemoteEndpoint:
        """The server's model for ``name`` as an endpoint of its own (an arena column)."""
        base = not name or name == BASE_NAME
        return dataclasses.replace(
            self.client.endpoint,
            label=name or BASE_NAME,
            model=self.client.endpoint.model if base else str(name),
        )

    def answer(
        self,
        messages: list[dict[str, Any]],
        images: list[Any],
        adapter: str | None,
        gen: GenerationSettings,
        stop: threading.Event,
    ) -> Iterator[ChatUpdate]:
        """The server's streamed answer, with the metrics its counts allow."""
        started = time.perf_counter()
        model = self.client.model_name(adapter, BASE_NAME)
        first: float | None = None
        reply = None
        for reply in self.client.stream(model, openai_messages(messages, images), gen, stop):
            first = first or time.perf_counter()
            if not reply.done:
                yield ChatUpdate(reply.text)
        total = time.perf_counter() - started
        tokens = reply.completion_tokens if reply else 0
        decode = total - ((first or started) - started)
        metrics = AnswerMetrics(
            adapter=adapter or BASE_NAME,
            queue_wait_s=0.0,
            switch_s=0.0,
            ttft_s=(first or started) - started,
            tokens=tokens,
            tokens_per_s=tokens / decode if tokens and decode > 0 else 0.0,
            total_s=total,
            peak_memory_bytes=0,
            stopped=bool(reply and reply.stopped),
            prompt_tokens=reply.prompt_tokens if reply else 0,
        )
        yield ChatUpdate(reply.text if reply else "", metrics)
