"""What ``/v1`` checks before it reads a request, and how it watches a running one.

Callers from other sites: a page elsewhere can make a browser POST a ``text/plain`` body
anywhere without asking first, so ``/v1`` takes only ``application/json`` and refuses any
``Origin`` that is neither this server's nor an allowed one. Sizes: the body is read as a
stream and dropped at the cap, never parsed whole first. API keys are compared in constant
time. A non-streamed answer is generated while the client is still connected.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

T = TypeVar("T")
DISCONNECT_POLL_S = 0.25  # how often a running answer checks that its client is still there
DEFAULT_PORTS = {"http": 80, "https": 443}


class BodyTooLarge(ValueError):
    """The request body is over the server's cap."""


def error_response(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    """An OpenAI error object: {"error": {"message", "type", "param", "code"}}."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status)


def key_matches(given: str, keys: Sequence[str]) -> bool:
    """Whether ``given`` is one of ``keys``, in time that does not depend on where the first
    differing character is (every key is compared, always)."""
    found = False
    for key in keys:
        found |= hmac.compare_digest(given.encode(), key.encode())
    return found


def check_origin(request: Request, allowed: Sequence[str]) -> JSONResponse | None:
    """403 when the request comes from a web page (an ``Origin`` header) of another site than
    this server and the allowed origins; requests without ``Origin`` (SDKs, curl) pass."""
    origin = request.headers.get("origin")
    if origin is None:
        return None
    origin = origin.strip().lower()
    host = request.headers.get("host", "").strip().lower()
    if origin in allowed or (host and _netloc(origin) == _netloc(f"http://{host}")):
        return None
    return error_response(
        403,
        f"requests from the web page at {origin[:100]!r} are not allowed. Fix: call /v1 "
        "from your own server or an SDK, or ask the operator to list the origin in "
        "MMDEMO_ALLOWED_ORIGINS",
        "permission_error",
        "origin_not_allowed",
    )


def _netloc(origin: str) -> tuple[str, int] | None:
    """(host, port) of an origin, the scheme's default port filled in (None if malformed)."""
    try:
        parts = urlsplit(origin)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if not parts.hostname or parts.scheme not in DEFAULT_PORTS:
        return None
    # the server sees plain http behind a TLS proxy, so an https page matches either port
    return parts.hostname, 0 if port in DEFAULT_PORTS.values() else port


def check_json(request: Request) -> JSONResponse | None:
    """415 unless the body is declared ``application/json`` (the type a cross-site page
    cannot send without the browser asking this server first)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        return None
    return error_response(
        415,
        f"the request body is {kind[:60] or 'untyped'}, not JSON. Fix: send the JSON body "
        "with 'Content-Type: application/json'",
        "invalid_request_error",
        "unsupported_media_type",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The body, read as a stream and refused as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(_too_large(limit))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(_too_large(limit))
    return bytes(body)


def _too_large(limit: int) -> str:
    return (
        f"the request body is over this server's {limit / 2**20:.0f} MB limit. Fix: send "
        "fewer or smaller images (the operator sets the limit with MMDEMO_MAX_REQUEST_MB)"
    )


async def while_connected(
    request: Request, stop: threading.Event, fn: Callable[..., T], *args: Any
) -> T:
    """``fn(*args)`` in a worker thread; if the client disconnects meanwhile, ``stop`` is set
    so the generation behind ``fn`` ends early (the result is still awaited and returned)."""
    work = asyncio.ensure_future(run_in_threadpool(fn, *args))
    while not work.done():
        await asyncio.wait({work}, timeout=DISCONNECT_POLL_S)
        if not work.done() and not stop.is_set() and await request.is_disconnected():
            stop.set()
    return work.result()
