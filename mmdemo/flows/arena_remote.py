"""The arena's remote columns: the same image and prompt sent to models behind
OpenAI-compatible endpoints (GPT-4o, Gemini, Claude, a vLLM box), in threads beside the local
batch; with a remote VLM, its base and adapters are asked the same way. A column whose key is
missing says so and sends nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mmdemo.flows.generation import GenerationSettings
from mmdemo.flows.remote import RemoteClient, RemoteEndpoint, openai_messages
from mmdemo.redact import redact_text, url_host

MAX_REMOTE = 3  # remote columns at once


@dataclass
class RemoteSlot:
    """One remote column as it fills."""

    endpoint: RemoteEndpoint
    text: str = ""
    error: str = ""
    tokens: int = 0
    tokens_per_s: float = 0.0
    ttft_s: float | None = None  # seconds from the start to its first text
    done: bool = False

    @property
    def label(self) -> str:
        return f"{self.endpoint.model or 'its base model'} via {url_host(self.endpoint.base_url)}"


class RemoteRun:
    """Ask every remote endpoint at once, each in its own thread."""

    def __init__(
        self,
        endpoints: Sequence[RemoteEndpoint],
        prompt: str,
        images: Sequence[Any],
        gen: GenerationSettings,
        stop: threading.Event,
        clients: dict[str, RemoteClient],
    ) -> None:
        self.slots = [RemoteSlot(e) for e in endpoints]
        content = [{"type": "image"} for _ in images] + [{"type": "text", "text": prompt}]
        self.messages = openai_messages([{"role": "user", "content": content}], images)
        self.gen, self.stop, self.clients = gen, stop, clients
        self.threads = [
            threading.Thread(target=self._ask, args=(slot,), daemon=True, name="mmdemo-remote")
            for slot in self.slots
        ]
        self.started = time.perf_counter()

    def start(self) -> RemoteRun:
        self.started = time.perf_counter()
        for thread in self.threads:
            thread.start()
        return self

    @property
    def done(self) -> bool:
        return all(slot.done for slot in self.slots)

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    @property
    def ttft_s(self) -> float:
        """The first column's first-text time (0 before any text)."""
        return min((s.ttft_s for s in self.slots if s.ttft_s is not None), default=0.0)

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _ask(self, slot: RemoteSlot) -> None:
        endpoint = slot.endpoint
        try:
            if endpoint.api_key() is None:  # no network call without a key
                slot.error = (
                    f"{endpoint.key_env} is not set, so {endpoint.label} was not asked. "
                    f"Fix: export {endpoint.key_env}=<your key> before starting mmdemo"
                )
                return
            client = self.clients.get(endpoint.label)
            if client is None or client.endpoint != endpoint:
                client = self.clients[endpoint.label] = RemoteClient(endpoint)
            started = time.perf_counter()
            first = None
            model = client.model_name(endpoint.model or None)
            for reply in client.stream(model, self.messages, self.gen, self.stop):
                if first is None:
                    first = time.perf_counter()
                    slot.ttft_s = first - self.started
                slot.text = reply.text
                if reply.done:
                    slot.tokens = reply.completion_tokens
            decode = time.perf_counter() - (first or started)
            slot.tokens_per_s = slot.tokens / decode if slot.tokens and decode > 0 else 0.0
        except Exception as exc:  # shown in the column; the other columns go on
            slot.error = redact_text(str(exc))
        finally:
            slot.done = True
