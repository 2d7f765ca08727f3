"""``/v1/models`` and ``/v1/chat/completions``: any OpenAI client talks to mmdemo; adapters
are models (``serve/lora_api.py`` adds vLLM's runtime load / unload routes). Mounted on the Gradio app's FastAPI server (same host and port as the UI).

Generation goes through the app's ChatService (``mmdemo.flows.completions``), so API and
chat-tab requests share adapters, mixed-adapter batches and the VLM lock. Errors are OpenAI
error objects with the matching HTTP status.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mmdemo.config import Settings
from mmdemo.errors import (
    AdapterError,
    BadInputError,
    MMDemoError,
    NotAllowedError,
    OutOfMemoryError,
    RateLimitedError,
)
from mmdemo.flows.adapter_ops import AdapterOps
from mmdemo.flows.chat import ChatService
from mmdemo.flows.completions import CompletionChunk, UnknownModelError, complete, model_list
from mmdemo.flows.generation import GenerationSettings
from mmdemo.flows.limits import RateLimiter, client_key
from mmdemo.flows.remote import RemoteError
from mmdemo.serve.guards import (
    BodyTooLarge,
    check_json,
    check_origin,
    error_response,
    key_matches,
    read_body,
    while_connected,
)
from mmdemo.serve.lora_api import add_lora_routes

CREATED = int(time.time())  # the "created" of the models (they exist since startup)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The fields mmdemo reads; others (tools, logprobs, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = "base"
    messages: list[ChatMessage]
    max_tokens: int | None = Field(default=None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=4096)
    # omitted or 0: greedy decoding (the chat tab's default), so answers are repeatable
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None

    def generation(self) -> GenerationSettings:
        tokens = self.max_completion_tokens or self.max_tokens or 256
        if not self.temperature:
            return GenerationSettings(max_new_tokens=tokens, greedy=True)
        return GenerationSettings(
            max_new_tokens=tokens,
            temperature=self.temperature,
            top_p=self.top_p or 1.0,
            greedy=False,
        )


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


def error_for(exc: BaseException) -> JSONResponse:
    """The status and OpenAI error type of one of our exceptions."""
    if isinstance(exc, UnknownModelError):
        return error_response(404, str(exc), "invalid_request_error", "model_not_found")
    if isinstance(exc, RateLimitedError):
        body = error_response(429, str(exc), "rate_limit_error", "rate_limit_exceeded")
        body.headers["Retry-After"] = str(int(exc.retry_after))
        return body
    if isinstance(exc, NotAllowedError):
        return error_response(403, str(exc), "permission_error", "not_allowed")
    if isinstance(exc, BadInputError | AdapterError):
        return error_response(400, str(exc), "invalid_request_error", "bad_input")
    if isinstance(exc, OutOfMemoryError):
        return error_response(503, str(exc), "server_error", "out_of_memory")
    if isinstance(exc, RemoteError):
        return error_response(502, str(exc), "server_error", "upstream_error")
    if isinstance(exc, MMDemoError):
        return error_response(500, str(exc), "server_error", type(exc).__name__)
    return error_response(500, f"{type(exc).__name__}: {exc}", "server_error", "internal_error")


def _usage(chunk: CompletionChunk) -> dict[str, int]:
    total = chunk.prompt_tokens + chunk.completion_tokens
    return Usage(
        prompt_tokens=chunk.prompt_tokens,
        completion_tokens=chunk.completion_tokens,
        total_tokens=total,
    ).model_dump()


def build_router(
    chat: ChatService, settings: Settings, limiter: RateLimiter, ops: AdapterOps | None = None
) -> APIRouter:
    """The /v1 routes over the app's ChatService (and its adapter operations: vLLM's
    ``/v1/load_lora_adapter`` and ``/v1/unload_lora_adapter``)."""
    router = APIRouter(prefix="/v1")
    keys = settings.api_keys

    def check_access(request: Request) -> JSONResponse | None:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if keys and not key_matches(given, keys):
            return error_response(
                401,
                "a valid API key is needed: send 'Authorization: Bearer <key>' "
                "(MMDEMO_API_KEY, or the login password)",
                "invalid_request_error",
                "invalid_api_key",
            )
        try:  # one budget per client address, shared with its Gradio events
            limiter.take(client_key(request, settings))
        except RateLimitedError as exc:
            return error_for(exc)
        return None

    def check_post(request: Request) -> JSONResponse | None:
        """What every POST passes first: same-site pages, a JSON body, the key, the budget."""
        return (
            check_origin(request, settings.origins) or check_json(request) or check_access(request)
        )

    @router.get("/models")
    def list_models(request: Request) -> Any:
        """base and every adapter, with its metadata."""
        refused = check_origin(request, settings.origins) or check_access(request)
        if refused is not None:
            return refused
        try:
            models = model_list(chat)
        except Exception as exc:  # every failure becomes an OpenAI error
            return error_for(exc)
        data = [
            {"id": m["id"], "object": "model", "created": CREATED, "owned_by": "mmdemo", **m}
            for m in models
        ]
        return {"object": "list", "data": data}

    @router.post("/chat/completions")
    async def chat_completions(request: Request) -> Any:
        """A chat answer from base or an adapter, whole or streamed (server-sent events)."""
        refused = check_post(request)
        if refused is not None:
            return refused
        try:
            raw = await read_body(request, settings.max_request_mb * 2**20)
            body = ChatCompletionRequest.model_validate(json.loads(raw))
        except BodyTooLarge as exc:
            return error_response(413, str(exc), "invalid_request_error", "request_too_large")
        except (ValidationError, ValueError) as exc:
            return error_response(400, _validation_message(exc), "invalid_request_error")
        if body.n != 1:
            return error_response(400, "only n=1 is supported", "invalid_request_error")
        stop = threading.Event()
        try:
            gen = body.generation()
            messages = [m.model_dump(exclude_none=False) for m in body.messages]
            chunks = complete(chat, body.model, messages, gen, settings.hosted, stop)
            # the first chunk is computed here so bad requests get a proper status code;
            # generation blocks, so it runs in a worker thread, never on the event loop
            first = await while_connected(request, stop, next, chunks, None)
            if first is None:
                raise MMDemoError("the model gave no answer")
        except Exception as exc:
            return error_for(exc)
        ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if body.stream:
            usage = body.stream_options is not None and body.stream_options.include_usage
            events = _sse(ident, body.model, first, chunks, stop, usage)
            return StreamingResponse(events, media_type="text/event-stream")
        try:  # a client that goes away stops the generation
            text, last = await while_connected(request, stop, _collect, first, chunks)
        except Exception as exc:
            return error_for(exc)
        return {
            "id": ident,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": last.finish_reason or "stop",
                }
            ],
            "usage": _usage(last),
        }

    ops = ops or AdapterOps(chat, settings)
    add_lora_routes(router, ops, check_post, settings.max_request_mb * 2**20)
    return router


def _collect(first: CompletionChunk, rest: Iterator[CompletionChunk]) -> tuple[str, Any]:
    text, last = first.delta, first
    for chunk in rest:
        text, last = text + chunk.delta, chunk
    return text, last


def _sse(
    ident: str,
    model: str,
    first: CompletionChunk,
    rest: Iterator[CompletionChunk],
    stop: threading.Event,
    include_usage: bool,
) -> Iterator[str]:
    """OpenAI chunk objects as server-sent events, ending with ``data: [DONE]``."""
    created = int(time.time())

    def event(delta: dict[str, Any], finish: str | None, usage: Any = None) -> str:
        chunk: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage is not None:
            chunk["choices"], chunk["usage"] = [], usage
        return f"data: {json.dumps(chunk)}\n\n"

    yield event({"role": "assistant", "content": ""}, None)
    chunk = first
    try:
        while True:
            if chunk.delta:
                yield event({"content": chunk.delta}, None)
            if chunk.done:
                yield event({}, chunk.finish_reason or "stop")
                if include_usage:
                    yield event({}, None, _usage(chunk))
                break
            chunk = next(rest)
    except StopIteration:
        pass
    except Exception as exc:  # the status line is sent: report in-stream
        yield f"data: {json.dumps(json.loads(error_for(exc).body))}\n\n"
    finally:
        stop.set()  # a client that went away stops the generation
        rest.close()
    yield "data: [DONE]\n\n"


def _validation_message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"invalid request: {where}: {first.get('msg')}"
    return "the request body is not valid JSON"


__all__ = ["ChatCompletionRequest", "build_router", "error_response"]
