"""A visual-chat conversation as data (turns, sessions, streamed updates, the numbers under
an answer, the chat-template messages it becomes) and the ``ChatEngine`` interface that
answers it: the VLM on this machine (``chat_local``) or any OpenAI-compatible server
(``chat_remote``), picked once when the app is wired (``chat.chat_engine``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from mmdemo.flows.similar import SimilarCase

if TYPE_CHECKING:
    from mmdemo.flows.generation import GenerationSettings
    from mmdemo.flows.remote import RemoteEndpoint
    from mmdemo.models.adapters import AdapterInfo

BASE_NAME = "base"
MAX_IMAGES_IN_CONTEXT = 4  # older images stay in the history as text only (CPU prefill cost)
MAX_PROMPT_CHARS = 8000


@dataclass(frozen=True)
class AnswerMetrics:
    """The numbers shown under every answer."""

    adapter: str
    queue_wait_s: float
    switch_s: float
    ttft_s: float
    tokens: int
    tokens_per_s: float
    total_s: float
    peak_memory_bytes: int
    stopped: bool = False  # Stop ended it before its end-of-sequence token or token budget
    batch_rows: int = 1  # answers computed together with this one (1: alone)
    prompt_tokens: int = 0  # tokens of the prompt (text and image tokens)


@dataclass
class ChatTurn:
    """One question of a visual chat with its images and, once answered, the answer, the
    adapter that gave it and its numbers (the voice assistant's is ``responders.Turn``)."""

    user: str
    images: list[Any]  # normalized PIL images
    image_paths: list[str]  # what the UI shows
    answer: str = ""
    adapter: str = BASE_NAME
    metrics: AnswerMetrics | None = None
    similar: list[SimilarCase] = field(default_factory=list)  # retrieved context images
    note: str = ""  # tells the model what the similar cases are


@dataclass
class ChatSession:
    """One browser session's conversation (kept in gr.State, never shared)."""

    turns: list[ChatTurn] = field(default_factory=list)
    system: str = ""  # an optional system prompt (the voice assistant sets one)

    def clear(self) -> None:
        self.turns.clear()

    def chars(self) -> int:
        """Characters of the conversation so far (what the size cap counts)."""
        return len(self.system) + sum(len(t.user) + len(t.answer) for t in self.turns)

    def pop_last(self) -> ChatTurn | None:
        return self.turns.pop() if self.turns else None

    def add(self, turn: ChatTurn) -> None:
        """Append a turn and let go of the decoded images no prompt will show again: as in
        build_messages, only the newest MAX_IMAGES_IN_CONTEXT images go into a prompt, so
        older ones are kept as their paths (for the UI) only and a long conversation's memory
        stays bounded. The newest turn stays whole (a retry sends it again)."""
        self.turns.append(turn)
        budget = MAX_IMAGES_IN_CONTEXT
        for old in reversed(self.turns):
            similar = [i for i, c in enumerate(old.similar) if c.image is not None]
            own = len(old.images) + len(similar)
            if old is not turn and own > budget:  # build_messages keeps the tail of own
                keep_similar = set(similar[len(similar) - min(budget, len(similar)) :])
                keep_images = max(budget - len(similar), 0)
                old.images = old.images[len(old.images) - keep_images :] if keep_images else []
                old.similar = [
                    c if i in keep_similar or c.image is None else replace(c, image=None)
                    for i, c in enumerate(old.similar)
                ]
            budget = max(budget - own, 0)


@dataclass(frozen=True)
class ChatUpdate:
    text: str
    metrics: AnswerMetrics | None = None  # set on the last update of an answer


def build_messages(
    turns: Sequence[ChatTurn], system: str = ""
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Chat-template messages and the images they refer to, newest images first to keep."""
    budget = MAX_IMAGES_IN_CONTEXT
    keep: list[list[Any]] = []
    for turn in reversed(turns):
        own = [*turn.images, *(c.image for c in turn.similar if c.image is not None)]
        kept = own[-budget:] if budget > 0 else []
        budget -= len(kept)
        keep.append(kept)
    keep.reverse()
    messages: list[dict[str, Any]] = []
    images: list[Any] = []
    if system:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    for turn, kept in zip(turns, keep, strict=True):
        content: list[dict[str, Any]] = [{"type": "image"} for _ in kept]
        content.append(
            {"type": "text", "text": f"{turn.note}\n{turn.user}" if turn.note else turn.user}
        )
        messages.append({"role": "user", "content": content})
        images.extend(kept)
        if turn.answer:
            messages.append(
                {"role": "assistant", "content": [{"type": "text", "text": turn.answer}]}
            )
    return messages, images


class ChatEngine(Protocol):
    """What computes chat answers. The ChatService holds one and never asks which it is."""

    where: str  # where answers are computed, as users read it ("this machine's VLM")
    concurrent_answers: int  # answers it computes at once (the UI lets that many requests in)

    @property
    def base_model(self) -> str:
        """The model id answering as ``base`` ("" when the server picks it)."""
        ...

    def choices(self, ranks: bool = False) -> list[str]:
        """``base`` first, then every name a request may pick (``ranks``: DyLoRA adapters'
        lower ranks too)."""
        ...

    def adapter(self, name: str | None) -> AdapterInfo | None:
        """The mmdemo adapter that answers requests for ``name``: None for the base model and
        for models a remote server owns; an unknown local name raises ``AdapterError``."""
        ...

    def endpoint(self, name: str | None) -> RemoteEndpoint | None:
        """The OpenAI-compatible endpoint that answers requests for ``name`` (a remote VLM's
        model, so the arena can ask it directly), or None when this machine answers."""
        ...

    def answer(
        self,
        messages: list[dict[str, Any]],
        images: list[Any],
        adapter: str | None,
        gen: GenerationSettings,
        stop: threading.Event,
    ) -> Iterator[ChatUpdate]:
        """Stream the answer to chat-template ``messages`` (their images in order): the text
        so far, then the whole stripped answer with its metrics. ``stop`` ends it early."""
        ...
