"""What every tab's ``build(ctx)`` receives: settings and the shared, heavy services."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mmdemo.config import Settings
from mmdemo.models.manager import ModelManager


@dataclass
class AppContext:
    settings: Settings
    manager: ModelManager
    # services later tabs add (adapter store, index service, ...), by name
    services: dict[str, Any] = field(default_factory=dict)
