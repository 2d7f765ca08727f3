"""Typed errors. Flows raise these; only the UI turns them into ``gr.Warning``/``gr.Error``.

Every error carries the cause (the message) and, where one exists, the fix (``fix``), so the
user sees both.
"""

from __future__ import annotations

import sys
from typing import Any


class MMDemoError(Exception):
    """Base class: a problem the user can understand and, usually, fix."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message}. Fix: {self.fix}" if self.fix else self.message


class SettingsError(MMDemoError, ValueError):
    """A setting (env var, TOML key, CLI flag) has a bad value."""


class ModelUnavailableError(MMDemoError):
    """A model is neither cached nor reachable, or its files cannot be loaded."""

    def __init__(self, message: str, *, backend: str, model_id: str, fix: str | None = None):
        super().__init__(message, fix=fix)
        self.backend = backend
        self.model_id = model_id


class MissingDependencyError(MMDemoError, ImportError):
    """An optional package a backend needs is not installed."""


class BadInputError(MMDemoError, ValueError):
    """The user's input (file, text, parameter) cannot be used as given."""


class AdapterError(MMDemoError):
    """An adapter cannot be loaded, validated or found."""


class OutOfMemoryError(MMDemoError):
    """The device ran out of memory for this request; the app itself is unharmed."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is torch's out-of-memory error (``torch.OutOfMemoryError``, which
    ``torch.cuda.OutOfMemoryError`` names too), caught by type. Without torch imported no
    exception can be one, so torch is not imported for the check."""
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    kinds = tuple(
        k
        for k in (
            getattr(torch, "OutOfMemoryError", None),
            getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None),
        )
        if isinstance(k, type)
    )
    return bool(kinds) and isinstance(exc, kinds)


def as_out_of_memory(
    exc: BaseException, what: str = "this answer", fix: str | None = None
) -> BaseException:
    """``exc`` as an ``OutOfMemoryError`` naming ``what`` ran out (caused by ``exc``) when it
    is torch's out-of-memory error; any other exception unchanged, to raise as it was."""
    if not is_out_of_memory(exc):
        return exc
    error = OutOfMemoryError(
        f"the device ran out of memory for {what}",
        fix=fix or "use fewer images, fewer new tokens, or a smaller model",
    )
    error.__cause__ = exc
    return error


class MethodUnavailableError(MMDemoError):
    """A fine-tuning method cannot run on this machine (missing package or hardware)."""


class TrainingStopped(MMDemoError):
    """A training run was stopped by the user before it finished."""


class RateLimitedError(MMDemoError):
    """A session sent more requests than the server allows; ``retry_after`` says when to retry."""

    def __init__(self, message: str, *, retry_after: float, fix: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.retry_after = retry_after


class DamagedFileError(MMDemoError):
    """A file mmdemo keeps is damaged (not by its own writes, which are atomic): the feature
    that reads it is off, the rest of the app works."""


class NotAllowedError(MMDemoError):
    """This server's operator turned the action off (hosted mode, training off)."""


def require_local(settings: Any, what: str) -> None:
    """Refuse ``what`` (e.g. "loading another model") on a hosted server (``settings.hosted``)."""
    if settings.hosted:
        raise NotAllowedError(
            f"{what} is turned off on this hosted server",
            fix="run mmdemo on your own machine (local mode) to do this",
        )
