"""OpenAI-style chat completions answered by the ChatService, so ``/v1/chat/completions``
shares adapters, batching and the VLM lock with the chat tab.

Plain values in (OpenAI message dicts, a model name, decoding settings), small dataclasses
out; the HTTP layer lives in ``mmdemo.serve.openai_api``.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mmdemo.errors import AdapterError, BadInputError, MMDemoError, NotAllowedError
from mmdemo.flows.chat import (
    BASE_NAME,
    MAX_IMAGES_IN_CONTEXT,
    ChatService,
    ChatSession,
    ChatTurn,
    adapter_summary,
)
from mmdemo.flows.chat_local import LocalEngine
from mmdemo.flows.families import family_states
from mmdemo.flows.fetch import fetch_image
from mmdemo.flows.generation import GenerationSettings
from mmdemo.flows.sizes import check_conversation, check_image_count
from mmdemo.models.dylora import RANK_MARK, split_rank
from mmdemo.models.families import by_model_id

MAX_FETCH_MB = 20  # largest image fetched from an http(s) URL (local mode only)


class UnknownModelError(MMDemoError):
    """The request names a model (adapter) this server does not have."""


@dataclass(frozen=True)
class CompletionChunk:
    """New text of the answer; the last chunk has ``done`` and the counts."""

    delta: str
    done: bool = False
    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    adapter: str = BASE_NAME


def model_list(chat: ChatService) -> list[dict[str, Any]]:
    """``base`` and every model the engine answers to, with what is known about each (the
    /v1/models data): an adapter's metadata, a DyLoRA adapter's lower ranks (any rank up to
    its own is served), nothing more for a remote server's models."""
    base = {"model": chat.engine.base_model, "kind": "base model", **base_family(chat)}
    models = [{"id": BASE_NAME, "parent": None, "metadata": base}]
    for name in chat.adapter_choices(ranks=True):
        if name == BASE_NAME:
            continue
        info = chat.engine.adapter(name)
        if info is None:
            metadata: dict[str, Any] = {}
        elif info.serve_rank is not None:
            metadata = {"dylora_of": split_rank(name)[0], "rank": info.serve_rank}
        else:
            metadata = adapter_summary(info)
        models.append({"id": name, "parent": BASE_NAME, "metadata": metadata})
    return models


def base_family(chat: ChatService) -> dict[str, Any]:
    """The base model's family and its state (loaded, available, ...) when this machine
    serves it; a remote server's base: its family as far as its name tells."""
    if not isinstance(chat.engine, LocalEngine):
        family = by_model_id(chat.engine.base_model)
        return {"family": family.key if family else "", "state": "remote"}
    row = next((f for f in family_states(chat.manager) if f.selected), None)
    if row is None:  # a model id no family claims (it may still load)
        return {
            "family": "",
            "state": next(s.state for s in chat.manager.status() if s.backend == "vlm"),
        }
    return {
        "family": row.key,
        "family_title": row.title,
        "architecture": row.architecture,
        "state": row.state,
        "mixed_batch": row.mixed_batch,
    }


def check_model(chat: ChatService, model: str) -> str:
    """The adapter a request's ``model`` names (refused with the names that exist)."""
    name = (model or "").strip() or BASE_NAME
    choices = chat.adapter_choices()
    if name not in choices and RANK_MARK in name:
        try:  # a DyLoRA adapter at a chosen rank: "name@r=k" (a remote server's: no such)
            if chat.engine.adapter(name) is not None:
                return name
        except AdapterError as exc:
            raise UnknownModelError(
                f"the model {name!r} does not exist on this server: {exc.message}",
                fix=exc.fix or "GET /v1/models lists the models",
            ) from None
    if name not in choices:
        raise UnknownModelError(
            f"the model {name!r} does not exist on this server",
            fix=f"use one of: {', '.join(choices)} (GET /v1/models lists them)",
        )
    return name


def image_bytes(url: str, hosted: bool, max_bytes: int, allow_local: bool = False) -> bytes:
    """The bytes of an image given as a data URL or (local mode only) an http(s) URL; URLs
    on this machine or a private network only with ``allow_local``."""
    url = (url or "").strip()
    if url.startswith("data:"):
        head, comma, payload = url.partition(",")
        if not comma or ";base64" not in head:
            raise BadInputError(
                "an image data URL must be base64", fix="send data:image/png;base64,<data>"
            )
        if len(payload) // 4 * 3 > max_bytes + 3:  # refused before decoding anything
            raise BadInputError(f"an image is over {_size(max_bytes)}", fix="send a smaller image")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise BadInputError(
                "an image data URL holds invalid base64", fix="encode the file with base64"
            ) from None
        if len(data) > max_bytes:
            raise BadInputError(f"an image is over {_size(max_bytes)}", fix="send a smaller image")
        return data
    if url.startswith(("http://", "https://")):
        if hosted:
            raise NotAllowedError(
                "image URLs are not fetched on this hosted server",
                fix="send the image inline as a data URL (data:image/png;base64,...)",
            )
        return fetch_image(url, min(max_bytes, MAX_FETCH_MB * 2**20), allow_local)
    raise BadInputError(
        f"image URL {url[:40]!r} is neither a data URL nor http(s)",
        fix="send data:image/png;base64,<data> or an https:// URL",
    )


def split_content(content: Any) -> tuple[str, list[str]]:
    """(text, image URLs) of an OpenAI message's content (a string or a list of parts)."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise BadInputError("message content must be a string or a list of parts")
    texts, urls = [], []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text") or ""))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            urls.append(str(url or ""))
        else:
            raise BadInputError(
                f"unsupported content part {kind!r}", fix="use 'text' and 'image_url' parts"
            )
    return "\n".join(t for t in texts if t), urls


def to_session(
    chat: ChatService, messages: Sequence[dict[str, Any]], hosted: bool
) -> tuple[ChatSession, str, list[bytes]]:
    """The earlier turns as a ChatSession, and the last user message's text and images.

    Sizes are checked first; then only the images a prompt shows (the newest
    MAX_IMAGES_IN_CONTEXT, as the chat tab keeps them) are fetched or decoded at all.
    """
    if not messages:
        raise BadInputError("messages is empty", fix="send at least one user message")
    parts = [(m.get("role"), *split_content(m.get("content"))) for m in messages]
    settings = chat.settings
    check_conversation(sum(len(text) for _, text, _ in parts), settings.max_conversation_chars)
    shown = _shown_images(parts)
    limit = settings.max_upload_mb * 2**20

    def images_of(i: int) -> list[bytes]:
        return [
            image_bytes(url, hosted, limit, settings.allow_local_urls)
            for j, url in enumerate(parts[i][2])
            if (i, j) in shown
        ]

    session = ChatSession()
    system: list[str] = []
    pending: tuple[str, list[bytes]] | None = None
    for i, (role, text, _) in enumerate(parts):
        if role in ("system", "developer"):  # images here would be shown nowhere
            system.append(text)
        elif role == "user":
            images = images_of(i)
            if pending is not None:  # two user messages in a row: one turn
                text = f"{pending[0]}\n{text}".strip()
                images = [*pending[1], *images]
            pending = (text, images)
        elif role == "assistant":
            if pending is None:
                raise BadInputError(
                    f"message {i} is an assistant answer with no user message before it",
                    fix="start with a user message",
                )
            turn = ChatTurn(pending[0], chat.prepare_images(pending[1]), [], answer=text.strip())
            session.add(turn)
            pending = None
        else:
            raise BadInputError(
                f"message {i} has role {role!r}", fix="use system, user and assistant"
            )
    if pending is None:
        raise BadInputError("the last message must be from the user", fix="end with a question")
    session.system = "\n".join(s for s in system if s)
    return session, pending[0], pending[1]


def _shown_images(parts: list[tuple[Any, str, list[str]]]) -> set[tuple[int, int]]:
    """(message, part) of the images a prompt shows: the newest MAX_IMAGES_IN_CONTEXT of the
    user messages, as ``build_messages`` keeps them; the question's own must all fit."""
    users = [i for i, (role, _, _) in enumerate(parts) if role == "user"]
    answered = max((i for i, (role, _, _) in enumerate(parts) if role == "assistant"), default=-1)
    asked = sum(len(parts[i][2]) for i in users if i > answered)
    check_image_count(asked, MAX_IMAGES_IN_CONTEXT)
    shown: set[tuple[int, int]] = set()
    for i in reversed(users):
        for j in reversed(range(len(parts[i][2]))):
            if len(shown) == MAX_IMAGES_IN_CONTEXT:
                return shown
            shown.add((i, j))
    return shown


def complete(
    chat: ChatService,
    model: str,
    messages: Sequence[dict[str, Any]],
    gen: GenerationSettings,
    hosted: bool = False,
    stop: threading.Event | None = None,
) -> Iterator[CompletionChunk]:
    """Answer OpenAI ``messages`` with adapter ``model``: new text as it comes, then counts.

    The streamed pieces hold back trailing whitespace and half-decoded characters, so they
    add up to exactly the final answer.
    """
    adapter = check_model(chat, model)
    session, text, images = to_session(chat, messages, hosted)
    sent = ""
    pictures = chat.prepare_images(images)  # decoded once, refused with the cause if bad
    for update in chat.stream(session, text, pictures, adapter, gen, stop):
        if update.metrics is None:
            stable = update.text.lstrip().rstrip().rstrip("\ufffd")
            if stable.startswith(sent) and len(stable) > len(sent):
                yield CompletionChunk(stable[len(sent) :], adapter=adapter)
                sent = stable
            continue
        final, m = update.text, update.metrics
        rest = final[len(sent) :] if final.startswith(sent) else final[_common(sent, final) :]
        length = m.tokens >= gen.max_new_tokens and not m.stopped
        yield CompletionChunk(
            rest,
            done=True,
            finish_reason="length" if length else "stop",
            prompt_tokens=m.prompt_tokens,
            completion_tokens=m.tokens,
            adapter=adapter,
        )


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n} bytes"


def _common(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
