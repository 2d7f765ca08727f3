"""What every tab's ``build(ctx)`` receives: settings, the model manager and the app's
shared services (made once, in ``flows.services``)."""

from __future__ import annotations

from dataclasses import dataclass

from mmdemo.config import Settings
from mmdemo.flows.services import Services
from mmdemo.models.manager import ModelManager


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    manager: ModelManager
    services: Services

    @classmethod
    def create(cls, settings: Settings, manager: ModelManager | None = None) -> AppContext:
        """The context of one app: its services made here, once, loading no model."""
        manager = manager or ModelManager(settings)
        return cls(settings, manager, Services.create(settings, manager))
