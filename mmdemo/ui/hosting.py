"""Hosting the app: request budgets on heavy events (per client address and for the whole
server), login, upload limits, and the OpenAI-compatible ``/v1`` routes on the same server.

Each event handler is marked where it is wired: ``ctx.heavy(fn)`` (it starts model work, so
it spends from the budgets) or ``ctx.light(fn, why)``; tests/test_security_limits.py fails
on any queued event that is neither. The Gradio internals this needs (the request of the
running event, uvicorn's reading of forwarded headers) are in ``ui/gradio_compat.py``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

from mmdemo.config import Settings
from mmdemo.flows.limits import RateLimiter, client_key
from mmdemo.ui.common import user_error
from mmdemo.ui.gradio_compat import current_request

MARK = "mmdemo_load"  # on every wired handler: ("heavy", cost) or ("light", why)
# a streamed chunk (microphone, webcam) is a small request: this many make one
STREAM_CHUNKS_PER_REQUEST = 40


def heavy(
    fn: Callable[..., Any], limiter: RateLimiter, settings: Settings, cost: float = 1.0
) -> Callable[..., Any]:
    """``fn`` that first spends ``cost`` requests of its client's budget and of the server's
    (a gr.Error naming the wait when spent), marked heavy.

    Same signature (Gradio reads it for special arguments) and same kind (generator or not).
    """

    def take() -> None:
        try:
            limiter.take(_client_of_event(settings), cost)
        except Exception as exc:
            raise user_error(exc) from exc

    return _marked(fn, ("heavy", cost), take)


def light(fn: Callable[..., Any], why: str) -> Callable[..., Any]:
    """``fn`` marked as no model work (``why`` says so for the reader and the tests)."""
    if not why.strip():
        raise ValueError("say why the event is light")
    return _marked(fn, ("light", why), None)


def load_of(fn: Any) -> tuple[str, Any] | None:
    """How a handler was marked where it was wired, or None if it was not."""
    return getattr(fn, MARK, None)


def _marked(
    fn: Callable[..., Any], mark: tuple[str, Any], before: Callable[[], None] | None
) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(f"{fn!r}: async handlers are not wired by mmdemo")
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            if before is not None:
                before()
            yield from fn(*args, **kwargs)

        wrapper: Callable[..., Any] = gen_wrapper
    else:

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if before is not None:
                before()
            return fn(*args, **kwargs)

    setattr(wrapper, MARK, mark)
    return wrapper


def _client_of_event(settings: Settings) -> str:
    """The budget key of the client of the event being handled ("local" outside a request)."""
    request = current_request()
    if request is None:
        return "local"
    return client_key(request, settings)


def launch_options(settings: Settings) -> dict[str, Any]:
    """``demo.launch`` keyword arguments that hosting decides: upload size, login."""
    options: dict[str, Any] = {"max_file_size": f"{settings.max_upload_mb}mb"}
    if settings.auth_user:
        options["auth"] = (settings.auth_user, settings.auth_password)
        options["auth_message"] = "mmdemo: sign in with the user name and password you were given"
    return options


def mode_line(settings: Settings) -> str:
    """The start-up log line saying which mode is on and why."""
    reason = settings.mode_reason or "as configured"
    return f"hosted mode: {'on' if settings.hosted else 'off'} ({reason})"


def with_routes(router: Any) -> dict[str, Any]:
    """``demo.launch(app_kwargs=...)`` that serves ``router`` (``/v1``) on Gradio's own
    server. Gradio hands ``app_kwargs`` to its FastAPI app and runs a ``lifespan`` given there
    when the server starts, before it answers anyone; the routes join then, through FastAPI's
    ``include_router``. Alike for ``python app.py``, ``--share`` and Spaces."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        if router not in getattr(app.state, "mmdemo_routers", ()):  # a restart adds no twin
            app.include_router(router)
            app.state.mmdemo_routers = (*getattr(app.state, "mmdemo_routers", ()), router)
        yield

    return {"lifespan": lifespan}
