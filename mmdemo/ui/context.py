"""What every tab's ``build(ctx)`` receives: settings, the model manager and the app's
shared services (made once, in ``flows.services``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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
