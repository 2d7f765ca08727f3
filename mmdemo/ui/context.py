"""What every tab's ``build(ctx)`` receives: settings and the shared, heavy services."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mmdemo.config import Settings
from mmdemo.models.manager import ModelManager

if TYPE_CHECKING:
    from mmdemo.retrieval import IndexService
    from mmdemo.ui.sessions import SessionFolders

SESSION_FOLDERS = "session_folders"
INDEX_SERVICE = "clip_index"  # its key in ``services`` (tabs built before this accessor use it)


@dataclass
class AppContext:
    settings: Settings
    manager: ModelManager
    # services later tabs add (adapter store, index service, ...), by name
    services: dict[str, Any] = field(default_factory=dict)

    def index_service(self) -> IndexService:
        """The app's one CLIP ``IndexService`` (the CLIP, chat and video tabs share it);
        made on first call, which loads no model."""
        service = self.services.get(INDEX_SERVICE)
        if service is None:
            from mmdemo.retrieval import IndexService

            service = self.services[INDEX_SERVICE] = IndexService(self.settings, self.manager)
        return service

    def session_folders(self) -> SessionFolders:
        """Per-session scratch folders, removed when a session ends (see ui/sessions.py)."""
        folders = self.services.get(SESSION_FOLDERS)
        if folders is None:
            from mmdemo.ui.sessions import SessionFolders

            folders = self.services[SESSION_FOLDERS] = SessionFolders()
        return folders
