"""What every tab's ``build(ctx)`` receives: settings, the model manager and the app's
shared services (made once, in ``flows.services``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmdemo.config import Settings
from mmdemo.flows.services import ModelManager, Services, create_manager

if TYPE_CHECKING:
    from mmdemo.ui.sessions import SessionFolders


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    manager: ModelManager
    services: Services

    sessions: SessionFolders  # per-session scratch folders, removed when a session ends

    @classmethod
    def create(cls, settings: Settings, manager: ModelManager | None = None) -> AppContext:
        """The context of one app: its services made here, once, loading no model."""
        from mmdemo.ui.sessions import SessionFolders

        manager = manager or create_manager(settings)
        return cls(settings, manager, Services.create(settings, manager), SessionFolders())

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
