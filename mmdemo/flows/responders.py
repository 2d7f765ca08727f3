"""The assistant's LLM stage: a ``Responder`` turns (history, user text, image) into streamed
text deltas, and stops computing as soon as the user's stop event is set.

Two responders live here: the text LLM (no image, no adapter) and the VLM through the
visual-chat service (with an image or a chosen adapter; the adapter is pinned per request).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mmdemo.errors import MMDemoError

SYSTEM_PROMPT = (
    "You are a friendly voice assistant. Your answers are spoken aloud: answer in one or two "
    "short sentences of plain words, say each thing once, no lists, no markdown, no emoji."
)


@dataclass(frozen=True)
class Turn:
    """One finished exchange of a conversation."""

    user: str
    assistant: str
    image: bool = False  # an image was shown with this question
    interrupted: bool = False  # the answer was cut by the user


class Responder(Protocol):
    """Streams an answer. Implementations must stop soon after ``stop`` is set."""

    name: str

    def respond(
        self,
        history: Sequence[Turn],
        user_text: str,
        image: Any,
        stop: threading.Event,
        adapter: str | None = None,
    ) -> Iterator[str]: ...


@dataclass
class GenerationConfig:
    """Decoding knobs shared by the built-in responders."""

    # spoken answers are short; this bounds a turn's compute
    max_new_tokens: int = 64
    # older turns are dropped from the prompt beyond this many
    max_history_turns: int = 6
    system_prompt: str = SYSTEM_PROMPT
    # greedy decoding keeps answers reproducible; small models (SmolLM2-135M) then loop
    # ("She's a queen of clothes. She's a queen of clothes."): a repetition penalty and a
    # ban on repeating any 4 words in a row keep them from it
    repetition_penalty: float = 1.2
    no_repeat_ngram_size: int = 4
    # the answer ends after this many sentences (0: only max_new_tokens ends it)
    max_sentences: int = 2
    # keep the system prompt's KV cache and reuse it every turn (text LLM)
    reuse_system_cache: bool = True
    # the penalty also counts the prompt's tokens (transformers' default; the benchmark's
    # "before" configuration)
    penalty_counts_prompt: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.max_new_tokens <= 4096:
            raise MMDemoError(f"max_new_tokens={self.max_new_tokens} is outside 1..4096")
        if self.max_history_turns < 0:
            raise MMDemoError("max_history_turns must be >= 0")
        if self.max_sentences < 0 or self.no_repeat_ngram_size < 0:
            raise MMDemoError("max_sentences and no_repeat_ngram_size must be >= 0")

    def generate_kwargs(self, prompt_length: int = 0) -> dict[str, Any]:
        """``generate`` arguments; the repetition penalty counts the answer's own tokens only
        (transformers' default also penalises the prompt's, end-of-turn token included, which
        makes a small model ramble on instead of stopping)."""
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": False}
        if self.repetition_penalty != 1.0:
            from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor

            penalty = RepetitionPenaltyLogitsProcessor(
                self.repetition_penalty,
                prompt_ignore_length=0 if self.penalty_counts_prompt else prompt_length,
            )
            kwargs["logits_processor"] = LogitsProcessorList([penalty])
        if self.no_repeat_ngram_size:
            kwargs["no_repeat_ngram_size"] = self.no_repeat_ngram_size
        return kwargs


def chat_messages(
    history: Sequence[Turn],
    user_text: str,
    config: GenerationConfig,
    image: bool = False,
    parts: bool = False,
) -> list[dict[str, Any]]:
    """Chat-template messages: system, the recent turns, the new question (with an image
    part when ``image``). ``parts`` writes every content as a list of typed parts (VLMs)."""

    def content(text: str, with_image: bool = False) -> Any:
        if not parts:
            return text
        return [*([{"type": "image"}] if with_image else []), {"type": "text", "text": text}]

    messages = [{"role": "system", "content": content(config.system_prompt)}]
    recent = history[-config.max_history_turns :] if config.max_history_turns else []
    for turn in recent:
        messages.append({"role": "user", "content": content(turn.user)})
        messages.append({"role": "assistant", "content": content(turn.assistant)})
    messages.append({"role": "user", "content": content(user_text, image)})
    return messages


def stream_generate(
    model: Any,
    tokenizer: Any,
    inputs: Any,
    stop: threading.Event,
    config: GenerationConfig,
    **extra: Any,
) -> Iterator[str]:
    """Stream text deltas of ``model.generate`` through the shared generation runner
    (``flows.generation``: worker thread, a stop that halts the compute, OOM by name).

    The answer ends at ``config.max_sentences`` sentences; ``extra`` goes to ``generate``
    (a cached prompt prefix)."""
    from mmdemo.flows.generation import TokenStreamer, eos_token_ids, run_generation
    from mmdemo.flows.sentences import SentenceSplitter

    halt = threading.Event()  # the user's stop, or enough sentences
    streamer = TokenStreamer.of(1, eos_token_ids(model, tokenizer), halt)
    kwargs = {
        **config.generate_kwargs(inputs["input_ids"].shape[1]),
        "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id,
        **extra,
    }
    counter = SentenceSplitter(first_clause_words=0)
    sentences = 0
    sent = ""
    try:
        # every token (min_interval 0): the first clause goes to the TTS as soon as it exists
        for _ in run_generation(model, dict(inputs), streamer, kwargs, min_interval=0.0):
            if stop.is_set():
                halt.set()
                break
            text = tokenizer.decode(streamer.rows[0].tokens, skip_special_tokens=True)
            if text.startswith(sent) and len(text) > len(sent):
                delta, sent = text[len(sent) :], text
                sentences += len(counter.feed(delta))
                if config.max_sentences and sentences >= config.max_sentences:
                    halt.set()  # the rest would not be spoken
                    yield before_pending(delta, counter.pending)
                    break
                yield delta
    except MMDemoError:
        raise
    except Exception as exc:
        raise MMDemoError(f"the answer failed: {type(exc).__name__}: {exc}") from exc


def before_pending(delta: str, pending: str) -> str:
    """``delta`` without the start of a sentence that will not be said."""
    if pending and delta.endswith(pending):
        return delta[: len(delta) - len(pending)]
    return delta


class PromptCache:
    """The KV cache of a prompt prefix (the system prompt), computed once per loaded model and
    copied into every turn's ``generate``, so a turn prefills only its own tokens."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[Any, str] | None = None
        self._ids: Any = None
        self._cache: Any = None
        self.hits = 0  # turns that reused the cache

    def for_prompt(self, model: Any, prefix_ids: Any, input_ids: Any) -> Any:
        """A private copy of the prefix's cache when ``input_ids`` starts with ``prefix_ids``
        (else None: the turn prefills everything)."""
        import copy

        import torch
        from transformers import DynamicCache

        size = prefix_ids.shape[1]
        if input_ids.shape[1] <= size or not torch.equal(input_ids[:, :size], prefix_ids):
            return None
        key = (weakref.ref(model), tuple(prefix_ids[0].tolist()))
        with self._lock:
            if self._key is None or self._key[0]() is not model or self._key[1] != key[1]:
                cache = DynamicCache(config=model.config)
                with torch.inference_mode():
                    model(input_ids=prefix_ids, cache=cache, use_cache=True)
                self._key, self._cache = key, cache
            else:
                self.hits += 1
            return copy.deepcopy(self._cache)


class TextLLMResponder:
    """Answers with the text LLM backend (``manager.get("llm")``) through its chat template."""

    name = "llm"

    def __init__(self, manager: Any, config: GenerationConfig | None = None) -> None:
        self.manager = manager
        self.config = config or GenerationConfig()
        self.prompt_cache = PromptCache()

    def respond(
        self,
        history: Sequence[Turn],
        user_text: str,
        image: Any,
        stop: threading.Event,
        adapter: str | None = None,  # adapters belong to the VLM; the text LLM has none
    ) -> Iterator[str]:
        bundle = self.manager.get("llm")
        messages = chat_messages(history, user_text, self.config)
        inputs = bundle.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(bundle.device)
        extra = {}
        if self.config.reuse_system_cache:
            prefix = bundle.tokenizer.apply_chat_template(
                messages[:1], return_tensors="pt", return_dict=True
            )["input_ids"].to(bundle.device)
            cache = self.prompt_cache.for_prompt(bundle.model, prefix, inputs["input_ids"])
            if cache is not None:
                extra["cache"] = cache  # transformers 5 names it cache (past_key_values goes in 6)
        extra.update(bundle.generate_kwargs(inputs["input_ids"]))  # the decode route's loop
        yield from stream_generate(
            bundle.model, bundle.tokenizer, inputs, stop, self.config, **extra
        )


class ChatResponder:
    """Answers with the visual-chat service: the shared VLM with the user's adapter, pinned for
    the request like every chat answer (so voice and chat users never see each other's adapter).
    """

    name = "vlm"

    def __init__(self, chat: Any, config: GenerationConfig | None = None) -> None:
        self.chat = chat
        self.config = config or GenerationConfig()

    def respond(
        self,
        history: Sequence[Turn],
        user_text: str,
        image: Any,
        stop: threading.Event,
        adapter: str | None = None,
    ) -> Iterator[str]:
        from mmdemo.flows.chat import ChatSession, ChatTurn
        from mmdemo.flows.generation import GenerationSettings

        recent = history[-self.config.max_history_turns :] if self.config.max_history_turns else ()
        session = ChatSession(
            [ChatTurn(t.user, [], [], t.assistant) for t in recent],
            system=self.config.system_prompt,
        )
        gen = GenerationSettings(max_new_tokens=self.config.max_new_tokens, greedy=True)
        images = [image] if image is not None else []  # the chat service checks and bounds it
        from mmdemo.flows.sentences import SentenceSplitter

        counter, sentences = SentenceSplitter(first_clause_words=0), 0
        sent = ""
        stream = self.chat.stream(session, user_text, images, adapter, gen, stop)
        try:
            for update in stream:
                # partial updates are raw text; the last one is the whole answer, stripped
                done = sent.strip() if update.metrics is not None else sent
                if update.text.startswith(done):
                    delta, sent = update.text[len(done) :], update.text
                    if delta:
                        sentences += len(counter.feed(delta))
                        if self.config.max_sentences and sentences >= self.config.max_sentences:
                            yield before_pending(delta, counter.pending)
                            return  # closing the stream ends this answer's generation
                        yield delta
        finally:
            stream.close()


@dataclass
class Responders:
    """Which responder answers: ``vision`` when the user gave an image, else ``text``."""

    text: Responder
    vision: Responder

    @classmethod
    def default(cls, manager: Any, chat: Any, config: GenerationConfig | None = None) -> Responders:
        """The text LLM, and the VLM through ``chat`` (the app's one ChatService, so voice
        answers share its adapter store and batcher)."""
        return cls(TextLLMResponder(manager, config), ChatResponder(chat, config))

    def pick(self, has_image: bool, adapter: str | None = None) -> Responder:
        """The VLM answers when there is an image or an adapter was chosen, else the text LLM."""
        wants_adapter = adapter not in (None, "", "base")
        return self.vision if has_image or wants_adapter else self.text
