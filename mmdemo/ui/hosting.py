"""Hosting the app: request budgets on heavy events (per client address and for the whole
server), login, upload limits, and the OpenAI-compatible ``/v1`` routes on the same server.

Each event handler is marked where it is wired: ``ctx.heavy(fn)`` (it starts model work, so
it spends from the budgets) or ``ctx.light(fn, why)``; tests/test_security_limits.py fails
on any queued event that is neither. A heavy handler learns its client the public way: its
wrapper declares one more ``gr.Request`` parameter, which Gradio fills (as for any handler
that asks for the request) and which the wrapper takes off before calling the handler. The
Gradio internal this module needs (uvicorn's reading of forwarded headers) is in
``ui/gradio_compat.py``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import typing
from collections.abc import AsyncIterator, Callable
from typing import Any

import gradio as gr

from mmdemo.config import Settings
from mmdemo.flows.limits import RateLimiter, client_key
from mmdemo.ui.common import user_error

MARK = "mmdemo_load"  # on every wired handler: ("heavy", cost) or ("light", why)
REQUEST = "mmdemo_request"  # the parameter a heavy handler's wrapper adds for Gradio to fill
# a streamed chunk (microphone, webcam) is a small request: this many make one
STREAM_CHUNKS_PER_REQUEST = 40


def heavy(
    fn: Callable[..., Any], limiter: RateLimiter, settings: Settings, cost: float = 1.0
) -> Callable[..., Any]:
    """``fn`` that first spends ``cost`` requests of its client's budget and of the server's
    (a gr.Error naming the wait when spent), marked heavy.

    Same kind (generator or not) and the same signature plus one ``gr.Request`` parameter:
    Gradio fills it with the event's request, whose client pays ("local" outside an event),
    and ``fn`` never sees it.
    """

    def take(request: gr.Request | None) -> None:
        key = "local" if request is None else client_key(request, settings)
        try:
            limiter.take(key, cost)
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
    fn: Callable[..., Any],
    mark: tuple[str, Any],
    before: Callable[[gr.Request | None], None] | None,
) -> Callable[..., Any]:
    """``fn`` wrapped and marked; with ``before``, the wrapper asks Gradio for the request
    and calls ``before(request)`` first."""
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(f"{fn!r}: async handlers are not wired by mmdemo")
    at = _request_slot(fn) if before is not None else 0

    def arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple, dict]:
        if before is None:
            return args, kwargs
        request, args, kwargs = _take_request(at, args, kwargs)
        before(request)
        return args, kwargs

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            args, kwargs = arguments(args, kwargs)
            yield from fn(*args, **kwargs)

        wrapper: Callable[..., Any] = gen_wrapper
    else:

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            args, kwargs = arguments(args, kwargs)
            return fn(*args, **kwargs)

    if before is not None:
        _ask_for_request(wrapper, fn, at)
    setattr(wrapper, MARK, mark)
    return wrapper


def _request_slot(fn: Callable[..., Any]) -> int:
    """Where the request parameter goes: after ``fn``'s positional parameters (Gradio fills
    positional ones only), before any ``*args``."""
    params = list(inspect.signature(fn).parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return next((i for i, p in enumerate(params) if p.kind not in positional), len(params))


def _ask_for_request(wrapper: Callable[..., Any], fn: Callable[..., Any], at: int) -> None:
    """Give ``wrapper`` the signature and annotations of ``fn`` plus a ``gr.Request``
    parameter at ``at``: Gradio reads both (``inspect.signature``, ``typing.get_type_hints``)
    to decide what it injects, and leaves such a parameter out of the API's description."""
    sig = inspect.signature(fn)
    if REQUEST in sig.parameters:
        raise TypeError(f"{fn!r} already has a parameter called {REQUEST}")
    params = list(sig.parameters.values())
    extra = inspect.Parameter(
        REQUEST, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=gr.Request
    )
    wrapper.__signature__ = sig.replace(parameters=[*params[:at], extra, *params[at:]])  # type: ignore[attr-defined]
    # a new dict: functools.wraps shares fn's, which must stay as it is
    wrapper.__annotations__ = {**getattr(fn, "__annotations__", {}), REQUEST: gr.Request}
    try:
        typing.get_type_hints(wrapper)
    except Exception as exc:  # Gradio would inject nothing, and every client be "local"
        raise TypeError(
            f"{fn!r}: its annotations cannot be resolved ({exc}); import the names they use "
            "at run time, not only under TYPE_CHECKING"
        ) from exc


def _take_request(
    at: int, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[gr.Request | None, tuple[Any, ...], dict[str, Any]]:
    """The request Gradio passed, and the handler's own arguments. Gradio puts each value it
    fills at its parameter's index in the list of inputs (``list.insert``: past the end of a
    shorter list, at its end), so the request is at ``at`` or, when the event has fewer
    inputs than the handler has parameters, last. A direct call passes none."""
    if REQUEST in kwargs:
        kwargs = dict(kwargs)
        return kwargs.pop(REQUEST), args, kwargs
    if args:
        i = min(at, len(args) - 1)
        if isinstance(args[i], gr.Request):
            return args[i], args[:i] + args[i + 1 :], kwargs
    return None, args, kwargs


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
