"""The assistant's LLM stage: a ``Responder`` turns (history, user text, image) into streamed
text deltas, and stops computing as soon as the user's stop event is set.

Two responders live here: the text LLM (no image, no adapter) and the VLM through the
visual-chat service (with an image or a chosen adapter; the adapter is pinned per request).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mmdemo.errors import MMDemoError

SYSTEM_PROMPT = (
    "You are a friendly voice assistant. Your answers are spoken aloud, so answer in one to "
    "three short sentences of plain words: no lists, no markdown, no emoji."
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
    max_new_tokens: int = 96
    # older turns are dropped from the prompt beyond this many
    max_history_turns: int = 6
    system_prompt: str = SYSTEM_PROMPT
    # greedy decoding keeps answers reproducible; repetition_penalty tames small models
    repetition_penalty: float = 1.1

    def __post_init__(self) -> None:
        if not 1 <= self.max_new_tokens <= 4096:
            raise MMDemoError(f"max_new_tokens={self.max_new_tokens} is outside 1..4096")
        if self.max_history_turns < 0:
            raise MMDemoError("max_history_turns must be >= 0")


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
    model: Any, tokenizer: Any, inputs: Any, stop: threading.Event, config: GenerationConfig
) -> Iterator[str]:
    """Stream text deltas of ``model.generate`` through the shared generation runner
    (``flows.generation``: worker thread, a stop that halts the compute, OOM by name)."""
    from mmdemo.flows.generation import RowStreamer, TokenClock, eos_token_ids, run_generation

    streamer = RowStreamer(1, eos_token_ids(model, tokenizer), TokenClock())
    kwargs = {
        "max_new_tokens": config.max_new_tokens,
        "do_sample": False,
        "repetition_penalty": config.repetition_penalty,
        "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id,
    }
    sent = ""
    try:
        # every token (min_interval 0): the first clause goes to the TTS as soon as it exists
        for _ in run_generation(model, dict(inputs), streamer, stop, kwargs, min_interval=0.0):
            if stop.is_set():
                break
            text = tokenizer.decode(streamer.rows[0], skip_special_tokens=True)
            if text.startswith(sent) and len(text) > len(sent):
                delta, sent = text[len(sent) :], text
                yield delta
    except MMDemoError:
        raise
    except Exception as exc:
        raise MMDemoError(f"the answer failed: {type(exc).__name__}: {exc}") from exc


class TextLLMResponder:
    """Answers with the text LLM backend (``manager.get("llm")``) through its chat template."""

    name = "llm"

    def __init__(self, manager: Any, config: GenerationConfig | None = None) -> None:
        self.manager = manager
        self.config = config or GenerationConfig()

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
        yield from stream_generate(bundle.model, bundle.tokenizer, inputs, stop, self.config)


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
        from mmdemo.flows.chat import ChatSession
        from mmdemo.flows.chat import Turn as ChatTurn
        from mmdemo.flows.generation import GenerationSettings

        recent = history[-self.config.max_history_turns :] if self.config.max_history_turns else ()
        session = ChatSession(
            [ChatTurn(t.user, [], [], t.assistant) for t in recent],
            system=self.config.system_prompt,
        )
        gen = GenerationSettings(max_new_tokens=self.config.max_new_tokens, greedy=True)
        images = [image] if image is not None else []  # the chat service checks and bounds it
        sent = ""
        for update in self.chat.stream(session, user_text, images, adapter, gen, stop):
            # partial updates are raw text; the last one is the whole answer, stripped
            done = sent.strip() if update.metrics is not None else sent
            if update.text.startswith(done):
                delta, sent = update.text[len(done) :], update.text
                if delta:
                    yield delta


@dataclass
class Responders:
    """Which responder answers: ``vision`` when the user gave an image, else ``text``."""

    text: Responder
    vision: Responder

    @classmethod
    def default(
        cls, manager: Any, config: GenerationConfig | None = None, chat: Any = None
    ) -> Responders:
        """The text LLM, and the VLM through ``chat`` (a ChatService; one is made if None)."""
        if chat is None:
            from mmdemo.flows.chat import ChatService
            from mmdemo.models.adapters import AdapterStore

            chat = ChatService(manager, AdapterStore(manager.settings))
        return cls(TextLLMResponder(manager, config), ChatResponder(chat, config))

    def pick(self, has_image: bool, adapter: str | None = None) -> Responder:
        """The VLM answers when there is an image or an adapter was chosen, else the text LLM."""
        wants_adapter = adapter not in (None, "", "base")
        return self.vision if has_image or wants_adapter else self.text
