"""Helpers shared by tabs: turning typed errors into messages the user reads."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from mmdemo.errors import MMDemoError

log = logging.getLogger("mmdemo.ui")


def user_error(exc: BaseException) -> gr.Error:
    """A ``gr.Error`` with the real cause and, where known, the fix."""
    if isinstance(exc, MMDemoError):
        return gr.Error(str(exc), title=type(exc).__name__.replace("Error", " error"))
    log.exception("unexpected error", exc_info=exc)
    return gr.Error(f"{type(exc).__name__}: {exc}", title="Unexpected error")


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run an event handler; MMDemoError (and anything else) becomes a readable gr.Error."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:
            raise user_error(exc) from exc

    return wrapper


def guarded_stream(fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """``guarded`` for generator handlers: errors raised while streaming become gr.Error."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
        try:
            yield from fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:
            raise user_error(exc) from exc

    return wrapper


def seconds(s: float) -> str:
    """Short human duration: 4 ms, 0.31 s, 12.4 s."""
    return f"{s * 1000:.0f} ms" if s < 0.1 else f"{s:.2f} s" if s < 10 else f"{s:.1f} s"
