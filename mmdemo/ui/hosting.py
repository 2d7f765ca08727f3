"""Hosting the app: per-session rate limits on heavy events, login, upload limits, and the
OpenAI-compatible ``/v1`` routes on the same server."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import gradio as gr

from mmdemo.config import Settings
from mmdemo.flows.limits import RateLimiter
from mmdemo.ui.common import user_error

# Events that start model work: their concurrency ids, and the training handlers by name.
HEAVY_IDS = frozenset(
    {"vlm", "clip-embed", "clip-query", "voice-turn", "hands", "video", "video-ask", "model-load"}
)
HEAVY_NAMES = frozenset({"start", "bakeoff", "train", "evaluate"})
LIGHT_NAMES = frozenset({"show_adapter"})  # reads adapter metadata only


def session_key() -> str:
    """The Gradio session hash of the event being handled (its client's address if none)."""
    from gradio.context import LocalContext

    request = LocalContext.request.get(None)
    if request is None:
        return "local"
    session = getattr(request, "session_hash", None)
    if session:
        return f"session:{session}"
    client = getattr(request, "client", None)
    return f"client:{getattr(client, 'host', 'unknown')}"


def limited(fn: Callable[..., Any], limiter: RateLimiter) -> Callable[..., Any]:
    """``fn`` that first spends one request of the session's budget (a gr.Error when spent).

    Same signature (Gradio reads it for special arguments) and same kind (generator or not).
    """

    def take() -> None:
        try:
            limiter.take(session_key())
        except Exception as exc:
            raise user_error(exc) from exc

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            take()
            yield from fn(*args, **kwargs)

        return gen_wrapper
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        return fn  # none of ours; left as they are

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        take()
        return fn(*args, **kwargs)

    return wrapper


def limit_heavy_events(demo: gr.Blocks, limiter: RateLimiter) -> int:
    """Put the rate limit on every heavy event of ``demo``; returns how many were wrapped."""
    if not limiter.enabled:
        return 0
    count = 0
    for block_fn in demo.fns.values():
        if block_fn.fn is None or block_fn.name in LIGHT_NAMES:
            continue
        if block_fn.concurrency_id in HEAVY_IDS or block_fn.name in HEAVY_NAMES:
            block_fn.fn = limited(block_fn.fn, limiter)
            count += 1
    return count


def launch_options(settings: Settings) -> dict[str, Any]:
    """``demo.launch`` keyword arguments that hosting decides: upload size, login."""
    options: dict[str, Any] = {"max_file_size": f"{settings.max_upload_mb}mb"}
    if settings.auth_user:
        options["auth"] = (settings.auth_user, settings.auth_password)
        options["auth_message"] = "mmdemo: sign in with the user name and password you were given"
    return options


def mount_openai_api(demo: gr.Blocks) -> None:
    """Add ``/v1/models`` and ``/v1/chat/completions`` to the running app's server."""
    from mmdemo.serve.openai_api import build_router

    ctx = demo.mmdemo_context
    router = build_router(ctx.services.chat, ctx.settings, ctx.services.limiter)
    demo.server_app.include_router(router)
