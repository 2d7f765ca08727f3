"""Visual chat: multi-turn conversations about images with the shared VLM and a chosen adapter.

Answers stream token by token. The adapter a request names is pinned for the whole request,
so concurrent users with different adapters each get their own adapter's answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mmdemo.errors import (
    AdapterError,
    BadInputError,
    MMDemoError,
    OutOfMemoryError,
    require_local,
)
from mmdemo.flows.batching import BATCH_FAMILIES, Batcher, BatchRequest
from mmdemo.flows.generation import (
    GenerationSettings,
    RowStreamer,
    TokenClock,
    eos_token_ids,
    peak_memory_bytes,
    run_generation,
)
from mmdemo.flows.remote import RemoteClient, vlm_endpoint
from mmdemo.flows.similar import SimilarCase, SimilarRequest, context_note, find_similar
from mmdemo.flows.sizes import check_conversation, check_image_count, check_message
from mmdemo.images import load_image
from mmdemo.models.adapters import WEIGHTS, AdapterInfo, AdapterStore
from mmdemo.models.dylora import listed_ranks, served_names
from mmdemo.models.lora import check_compatible, touches_vision
from mmdemo.models.manager import ModelManager

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
    stopped: bool = False
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


def model_inputs(bundle: Any, messages: list[dict[str, Any]], images: list[Any]) -> dict[str, Any]:
    processor = bundle.processor
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[prompt], images=[images] if images else None, return_tensors="pt")
    return {k: v.to(bundle.device) if hasattr(v, "to") else v for k, v in inputs.items()}


class ChatService:
    """The chat capability over the shared manager and adapter store (one per app)."""

    @classmethod
    def standalone(cls, manager: ModelManager, retrieval: Any = None) -> ChatService:
        """A service over the settings' adapter store (the app makes one, in
        ``mmdemo.wiring``; scripts and benchmarks make their own)."""
        return cls(manager, AdapterStore(manager.settings), retrieval=retrieval)

    def __init__(self, manager: ModelManager, store: AdapterStore, retrieval: Any = None):
        self.manager = manager
        self.store = store
        self.retrieval = retrieval  # IndexService for "similar cases" (optional)
        self.settings = manager.settings
        # seconds between streamed updates: decoding text for every token would steal CPU
        # from generation on small machines; 0 streams every token
        self.stream_interval = 0.03
        # concurrent LoRA/base requests share one mixed-adapter batch (False: one at a time)
        self.batching = True
        self.batch_window_s = 0.05  # how long a request waits for others to join its batch
        self.batch_max_rows = 8  # most answers in one batch (a full batch starts at once)
        self._batcher: Batcher | None = None
        self._batcher_lock = threading.Lock()
        self._vision_adapters: dict[tuple[str, float], bool] = {}
        # an OpenAI-compatible server answering in place of the local VLM (none: local)
        self.remote: RemoteClient | None = None
        if self.settings.remote_vlm_url:
            self.remote = RemoteClient(vlm_endpoint(self.settings), include_usage=True)

    # adapters -----------------------------------------------------------------------------
    def adapter_info(self, name: str | None) -> AdapterInfo | None:
        if not name or name == BASE_NAME:
            return None
        return self.store.get(name)

    def adapter_choices(self, ranks: bool = False) -> list[str]:
        """``base`` and every adapter (with a remote VLM: the models the server lists);
        ``ranks``: each DyLoRA adapter followed by its lower ranks (``name@r=k``)."""
        if self.remote is not None:
            try:
                served = [str(m["id"]) for m in self.remote.models()]
            except MMDemoError:  # an unreachable server must not break the page
                return [BASE_NAME]
            base = self.remote.endpoint.model or (served[0] if served else "")
            return [BASE_NAME, *(n for n in served if n not in (base, BASE_NAME))]
        if not ranks:
            return [BASE_NAME, *self.store.names()]
        return [BASE_NAME, *(n for a in self.store.list() for n in served_names(a))]

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
        return [
            {
                "name": a.name,
                "method": a.method,
                "peft_type": a.peft_type,
                "rank": a.rank,
                "dataset": a.dataset,
                "metrics": a.metrics,
                "base_model": a.base_model,
                "base_model_type": a.base_model_type,
                "builtin": a.builtin,
                "description": a.description,
                "created": a.created,
                "ranks": listed_ranks(a),  # DyLoRA: also served as name@r=k (any k up to r)
            }
            for a in self.store.list()
        ]

    def install_adapter(self, source: Path, name: str | None = None) -> AdapterInfo:
        """Accept an uploaded adapter only if it fits the loaded VLM (loading the VLM if needed)."""
        info = self.store.install(source, name)
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
        stop = stop or threading.Event()
        if self.remote is not None:
            from mmdemo.flows.chat_remote import answer_remote  # it imports this module

            yield from answer_remote(self.remote, session, turn, adapter, gen, stop)
            return
        info = self.adapter_info(adapter)
        turn.adapter = info.name if info else BASE_NAME
        bundle = self.manager.get("vlm")
        messages, context_images = build_messages([*session.turns, turn], session.system)
        started = time.perf_counter()
        inputs = model_inputs(bundle, messages, context_images)
        if self._batchable(bundle, info):
            request = BatchRequest(
                inputs,
                info,
                gen,
                stop,
                eos_token_ids(bundle.model, bundle.tokenizer),
            )
            self._batcher_for(bundle).submit(request)
            for _ in request.updates(self.stream_interval):
                turn.answer = bundle.tokenizer.decode(request.tokens, skip_special_tokens=True)
                yield ChatUpdate(turn.answer)
            if request.error is not None:
                raise _generation_error(request.error)
            tokens, clock, rows = request.tokens, request.clock, request.rows
            waited, switched = request.queue_wait_s, request.switch_s
        else:
            with bundle.adapters.pin((info,)) as pinned:
                clock = TokenClock()
                streamer = RowStreamer(1, eos_token_ids(pinned.model, bundle.tokenizer), clock)
                for _ in run_generation(
                    pinned.model,
                    inputs,
                    streamer,
                    stop,
                    gen.generate_kwargs(),
                    self.stream_interval,
                ):
                    turn.answer = bundle.tokenizer.decode(
                        streamer.rows[0], skip_special_tokens=True
                    )
                    yield ChatUpdate(turn.answer)
            tokens, waited, switched = streamer.rows[0], pinned.queue_wait_s, pinned.switch_s
            rows = 1
        turn.answer = bundle.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        turn.metrics = AnswerMetrics(
            adapter=turn.adapter,
            queue_wait_s=waited,
            switch_s=switched,
            ttft_s=clock.ttft,
            tokens=clock.tokens[0] if clock.tokens else 0,
            tokens_per_s=clock.tokens_per_s(0),
            total_s=time.perf_counter() - started,
            peak_memory_bytes=peak_memory_bytes(clock, bundle.device),
            stopped=stop.is_set(),
            batch_rows=max(rows, 1),
            prompt_tokens=int(inputs["input_ids"].shape[-1]),
        )
        session.add(turn)
        yield ChatUpdate(turn.answer, turn.metrics)

    def _batchable(self, bundle: Any, info: AdapterInfo | None) -> bool:
        """Base and LoRA adapters on the language model batch together; the rest is serial."""
        if not self.batching or bundle.family not in BATCH_FAMILIES:
            return False
        if info is None:
            return True
        if not info.is_lora:
            return False
        weights = info.path / WEIGHTS
        key = (str(weights), weights.stat().st_mtime if weights.exists() else 0.0)
        if key not in self._vision_adapters:  # its rows would not line up with the images'
            self._vision_adapters[key] = touches_vision(info)
        return not self._vision_adapters[key]

    def _batcher_for(self, bundle: Any) -> Batcher:
        """The batcher of the loaded VLM (a reloaded VLM gets a new one)."""
        with self._batcher_lock:
            if self._batcher is None or self._batcher.bundle is not bundle:
                self._batcher = Batcher(bundle, self.batch_window_s)
            self._batcher.window_s = self.batch_window_s
            self._batcher.max_rows = self.batch_max_rows
            return self._batcher

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


def _generation_error(exc: BaseException) -> BaseException:
    if type(exc).__name__ == "OutOfMemoryError":
        return OutOfMemoryError(
            "the device ran out of memory for this answer",
            fix="use fewer images, fewer new tokens, or a smaller model",
        )
    return exc
