"""What every tab's ``build(ctx)`` receives: the settings, the app's shared services (made
once, in ``mmdemo.wiring``) and the per-session scratch folders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmdemo.config import Settings
from mmdemo.ui.sessions import SessionFolders

if TYPE_CHECKING:
    from mmdemo.wiring import Services


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    services: Services
    sessions: SessionFolders  # per-session scratch folders, removed when a session ends

    def session_folders(self) -> SessionFolders:
        """Per-session scratch folders (see ui/sessions.py)."""
        return self.sessions

    def heavy(self, fn: Callable[..., Any], *, stream: bool = False) -> Callable[..., Any]:
        """Wire ``fn`` as model work: each call (each chunk of a ``stream``, a fraction)
        first spends from its client's budget and the server's (see ui/hosting.py)."""
        from mmdemo.ui.hosting import STREAM_CHUNKS_PER_REQUEST, heavy

        cost = 1.0 / STREAM_CHUNKS_PER_REQUEST if stream else 1.0
        return heavy(fn, self.services.limiter, self.settings, cost)

    def light(self, fn: Callable[..., Any], why: str) -> Callable[..., Any]:
        """Wire ``fn`` as no model work; ``why`` says what it does instead."""
        from mmdemo.ui.hosting import light

        return light(fn, why)
