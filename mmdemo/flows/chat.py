"""Visual chat: multi-turn conversations about images with the shared VLM and a chosen adapter.

Answers stream token by token from the app's ``ChatEngine``: this machine's VLM
(``chat_local``: the adapter a request names is pinned for it, so concurrent users with
different adapters each get their own adapter's answer) or a remote OpenAI-compatible server
(``chat_remote``), picked once by ``chat_engine`` when the app is wired.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mmdemo.errors import AdapterError, BadInputError, require_local
from mmdemo.flows.chat_local import LocalEngine, model_inputs
from mmdemo.flows.chat_remote import RemoteEngine
from mmdemo.flows.conversation import (
    BASE_NAME,
    MAX_IMAGES_IN_CONTEXT,
    MAX_PROMPT_CHARS,
    AnswerMetrics,
    ChatEngine,
    ChatSession,
    ChatTurn,
    ChatUpdate,
    build_messages,
)
from mmdemo.flows.generation import GenerationSettings
from mmdemo.flows.remote import vlm_endpoint
from mmdemo.flows.similar import SimilarRequest, context_note, find_similar
from mmdemo.flows.sizes import check_conversation, check_image_count, check_message
from mmdemo.images import load_image
from mmdemo.models.adapters import AdapterInfo, AdapterStore
from mmdemo.models.dylora import listed_ranks
from mmdemo.models.lora import check_compatible
from mmdemo.models.manager import ModelManager

__all__ = [  # the conversation's data, importable from here as before
    "BASE_NAME",
    "MAX_IMAGES_IN_CONTEXT",
    "AnswerMetrics",
    "ChatEngine",
    "ChatService",
    "ChatSession",
    "ChatTurn",
    "ChatUpdate",
    "build_messages",
    "chat_engine",
    "model_inputs",
]


def chat_engine(manager: ModelManager, store: AdapterStore) -> ChatEngine:
    """The engine the settings ask for: the remote VLM when ``remote_vlm_url`` is set, else
    this machine's VLM with ``store``'s adapters (called once, when the app is wired)."""
    if manager.settings.remote_vlm_url:
        return RemoteEngine(vlm_endpoint(manager.settings))
    return LocalEngine(manager, store)


def adapter_summary(info: AdapterInfo) -> dict[str, Any]:
    """An adapter as plain data (the `adapters` API endpoint, /v1/models and the CLI)."""
    return {
        "name": info.name,
        "method": info.method,
        "peft_type": info.peft_type,
        "rank": info.rank,
        "dataset": info.dataset,
        "metrics": info.metrics,
        "base_model": info.base_model,
        "base_model_type": info.base_model_type,
        "builtin": info.builtin,
        "description": info.description,
        "created": info.created,
        "source": info.source or ("built in" if info.builtin else "uploaded"),
        "ranks": listed_ranks(info),  # DyLoRA: also served as name@r=k (any k up to r)
    }


class ChatService:
    """The chat capability over the shared manager and adapter store (one per app)."""

    @classmethod
    def standalone(cls, manager: ModelManager, retrieval: Any = None) -> ChatService:
        """A service over the settings' adapter store and engine (the app makes one, in
        ``mmdemo.wiring``; scripts and benchmarks make their own)."""
        store = AdapterStore(manager.settings)
        return cls(manager, store, retrieval=retrieval, engine=chat_engine(manager, store))

    def __init__(
        self,
        manager: ModelManager,
        store: AdapterStore,
        retrieval: Any = None,
        engine: ChatEngine | None = None,
    ) -> None:
        self.manager = manager
        self.store = store  # the adapters on this machine (the local engine serves them)
        self.retrieval = retrieval  # IndexService for "similar cases" (optional)
        self.settings = manager.settings
        # what computes the answers (default: this machine's VLM); knobs live on it
        self.engine: ChatEngine = engine or LocalEngine(manager, store)

    # adapters -----------------------------------------------------------------------------
    def adapter_info(self, name: str | None) -> AdapterInfo | None:
        """The adapter of this machine's store that ``name`` names (None: base)."""
        if not name or name == BASE_NAME:
            return None
        return self.store.get(name)

    def adapter_choices(self, ranks: bool = False) -> list[str]:
        """``base`` and every name the engine answers to (this machine: the adapters; a remote
        VLM: the models the server lists); ``ranks``: DyLoRA adapters' ``name@r=k`` too."""
        return self.engine.choices(ranks)

    def resident_adapters(self) -> set[str]:
        """Adapters held in memory on the VLM now (none while the VLM is not loaded)."""
        if not self.manager.is_loaded("vlm"):
            return set()
        return set(self.manager.get("vlm").adapters.resident_names())

    def warm_adapter(self, info: AdapterInfo) -> float | None:
        """Load ``info`` onto the VLM ahead of the first answer when the VLM is loaded;
        seconds it took, or None when the VLM is not loaded (it loads on first use)."""
        if not self.manager.is_loaded("vlm"):
            return None
        return self.manager.get("vlm").adapters.load(info)

    def adapters_summary(self) -> list[dict[str, Any]]:
        """Every adapter as plain data (the `adapters` API endpoint and the CLI)."""
        return [adapter_summary(a) for a in self.store.list()]

    def install_adapter(
        self, source: Path, name: str | None = None, meta: dict[str, Any] | None = None
    ) -> AdapterInfo:
        """Accept an uploaded adapter only if it fits the loaded VLM (loading the VLM if
        needed); ``meta`` joins its metadata (where it came from)."""
        info = self.store.install(source, name, meta)
        try:
            bundle = self.manager.get("vlm")
            check_compatible(info, bundle.model, bundle.family)
            bundle.adapters.load(info)
        except BaseException:
            self.store.delete(info.name)
            raise
        return info

    def delete_adapter(self, name: str) -> None:
        """Delete an installed adapter (refused on a hosted server: visitors share them)."""
        require_local(self.settings, "deleting a shared adapter")
        info = self.store.get(name)
        if info.builtin:
            raise AdapterError(f"{name!r} ships with mmdemo and cannot be deleted")
        if self.manager.is_loaded("vlm"):
            self.manager.get("vlm").adapters.drop(name)
        self.store.delete(name)

    # chat ---------------------------------------------------------------------------------
    def prepare_images(self, sources: Sequence[Any]) -> list[Any]:
        limit = self.settings.max_upload_mb * 2**20
        return [load_image(s, self.settings.max_image_side, limit) for s in sources]

    def stream(
        self,
        session: ChatSession,
        text: str,
        image_sources: Sequence[Any] = (),
        adapter: str | None = BASE_NAME,
        gen: GenerationSettings | None = None,
        stop: threading.Event | None = None,
        similar: SimilarRequest | None = None,
    ) -> Iterator[ChatUpdate]:
        """Answer ``text`` (+ images) in ``session``; the turn joins the session when done.

        With ``similar``, indexed images like the first given image join the context.
        """
        text = (text or "").strip()
        if not text:
            raise BadInputError(
                "the message is empty", fix="type a question, e.g. 'What is in this image?'"
            )
        check_message(len(text), MAX_PROMPT_CHARS)
        check_conversation(session.chars() + len(text), self.settings.max_conversation_chars)
        check_image_count(len(image_sources), MAX_IMAGES_IN_CONTEXT)
        images = self.prepare_images(image_sources)
        paths = [
            str(getattr(s, "name", s)) if not hasattr(s, "size") else "" for s in image_sources
        ]
        turn = ChatTurn(text, images, paths)
        if similar is not None and images:
            if self.retrieval is None:
                raise BadInputError("similar cases need the CLIP index service")
            turn.similar = find_similar(self.retrieval, similar, images[0])
            if turn.similar:
                turn.note = context_note(turn.similar, similar.index)
        yield from self._answer(session, turn, adapter, gen or GenerationSettings(), stop)

    def _answer(
        self,
        session: ChatSession,
        turn: ChatTurn,
        adapter: str | None,
        gen: GenerationSettings,
        stop: threading.Event | None,
    ) -> Iterator[ChatUpdate]:
        """The engine's answer to ``turn`` after ``session``; the turn joins it when done."""
        messages, images = build_messages([*session.turns, turn], session.system)
        for update in self.engine.answer(messages, images, adapter, gen, stop or threading.Event()):
            turn.answer = update.text
            if update.metrics is None:
                yield update
            else:
                turn.adapter, turn.metrics = update.metrics.adapter, update.metrics
        session.add(turn)
        yield ChatUpdate(turn.answer, turn.metrics)

    def regenerate(self, session: ChatSession, **kwargs: Any) -> Iterator[ChatUpdate]:
        """Answer the last question again (the old answer is replaced)."""
        last = session.pop_last()
        if last is None:
            raise BadInputError("there is nothing to regenerate yet", fix="ask a question first")
        turn = ChatTurn(
            last.user, last.images, last.image_paths, similar=last.similar, note=last.note
        )
        try:
            yield from self._answer(
                session,
                turn,
                kwargs.get("adapter", last.adapter),
                kwargs.get("gen") or GenerationSettings(),
                kwargs.get("stop"),
            )
        except BaseException:
            if not session.turns or session.turns[-1] is not last:
                session.add(last)
            raise
