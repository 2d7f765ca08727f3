"""vLLM's runtime adapter routes on mmdemo's ``/v1``: ``POST /v1/load_lora_adapter``
``{"lora_name", "lora_path"}`` and ``POST /v1/unload_lora_adapter`` ``{"lora_name"}``, with
vLLM's answers: ``200`` and the text ``Success: LoRA adapter 'NAME' added successfully.``,
or an error object ``{"error": {"message", "type", "param", "code": <HTTP status>}}``.

A tool that manages a vLLM server's adapters (a LoRA controller, a gateway) manages mmdemo's
the same way. Changing what the server serves is local mode only; the request checks are
those of every ``/v1`` route (JSON only, same-site pages, the API key, the rate budget).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import TypeVar

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from mmdemo.errors import (
    AdapterError,
    BadInputError,
    MMDemoError,
    NotAllowedError,
    OutOfMemoryError,
)
from mmdemo.flows.adapter_ops import AdapterExistsError, AdapterNotFoundError, AdapterOps
from mmdemo.serve.guards import BodyTooLarge, read_body

Check = Callable[[Request], JSONResponse | None]
Body = TypeVar("Body", bound=BaseModel)


class LoadLoRAAdapterRequest(BaseModel):
    """vLLM's body for ``/v1/load_lora_adapter`` (other fields, e.g. ``load_inplace``, are
    accepted and ignored)."""

    model_config = ConfigDict(extra="allow")
    lora_name: str | None = None
    lora_path: str | None = None


class UnloadLoRAAdapterRequest(BaseModel):
    """vLLM's body for ``/v1/unload_lora_adapter`` (``lora_int_id`` is accepted, unused:
    mmdemo names adapters, it does not number them)."""

    model_config = ConfigDict(extra="allow")
    lora_name: str | None = None
    lora_int_id: int | None = None


def vllm_error(status: HTTPStatus, message: str, kind: str) -> JSONResponse:
    """vLLM's error object: the HTTP status as an integer ``code``."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": status.value}}
    return JSONResponse(body, status_code=status.value)


def error_of(exc: BaseException) -> JSONResponse:
    """The status and vLLM error type of one of our exceptions."""
    if isinstance(exc, AdapterNotFoundError):
        return vllm_error(HTTPStatus.NOT_FOUND, str(exc), "NotFoundError")
    if isinstance(exc, AdapterExistsError):
        return vllm_error(HTTPStatus.BAD_REQUEST, str(exc), "InvalidUserInput")
    if isinstance(exc, NotAllowedError):
        return vllm_error(HTTPStatus.FORBIDDEN, str(exc), "Forbidden")
    if isinstance(exc, BadInputError | AdapterError):
        return vllm_error(HTTPStatus.BAD_REQUEST, str(exc), "BadRequestError")
    if isinstance(exc, OutOfMemoryError):
        return vllm_error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc), "ServiceUnavailableError")
    if isinstance(exc, MMDemoError):
        return vllm_error(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc), "InternalServerError")
    message = f"{type(exc).__name__}: {exc}"
    return vllm_error(HTTPStatus.INTERNAL_SERVER_ERROR, message, "InternalServerError")


def add_lora_routes(router: APIRouter, ops: AdapterOps, check: Check, max_body: int) -> None:
    """Add the two routes to ``router`` (mounted at ``/v1``); ``check`` is what every
    ``/v1`` request passes first (a refusal response, or None)."""

    async def body_of(request: Request, model: type[Body]) -> Body | JSONResponse:
        try:
            raw = await read_body(request, max_body)
            return model.model_validate(json.loads(raw))
        except BodyTooLarge as exc:
            return vllm_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(exc), "BadRequestError")
        except (ValidationError, ValueError):
            message = f"the body must be a JSON object like {model.__name__}'s fields"
            return vllm_error(HTTPStatus.BAD_REQUEST, message, "InvalidUserInput")

    @router.post("/load_lora_adapter")
    async def load_lora_adapter(request: Request) -> object:
        """Serve an adapter of this server's store (by name or folder) or of the Hub
        (``org/repo@revision``) under ``lora_name``."""
        refused = check(request)
        if refused is not None:
            return refused
        body = await body_of(request, LoadLoRAAdapterRequest)
        if isinstance(body, JSONResponse):
            return body
        if not body.lora_name or not body.lora_path:
            message = "Both 'lora_name' and 'lora_path' must be provided."
            return vllm_error(HTTPStatus.BAD_REQUEST, message, "InvalidUserInput")
        try:
            info = await run_in_threadpool(ops.load_lora, body.lora_name, body.lora_path)
        except Exception as exc:
            return error_of(exc)
        return PlainTextResponse(f"Success: LoRA adapter '{info.name}' added successfully.")

    @router.post("/unload_lora_adapter")
    async def unload_lora_adapter(request: Request) -> object:
        """Stop serving an adapter that ``/v1/load_lora_adapter`` added."""
        refused = check(request)
        if refused is not None:
            return refused
        body = await body_of(request, UnloadLoRAAdapterRequest)
        if isinstance(body, JSONResponse):
            return body
        if not body.lora_name:
            message = "'lora_name' must be provided (mmdemo does not number its adapters)."
            return vllm_error(HTTPStatus.BAD_REQUEST, message, "InvalidUserInput")
        try:
            await run_in_threadpool(ops.unload_lora, body.lora_name)
        except Exception as exc:
            return error_of(exc)
        return PlainTextResponse(f"Success: LoRA adapter '{body.lora_name}' removed successfully.")
