"""The app's shared services, made once in one place and handed to every tab.

Cheap to make: none of them loads a model (models load on first use through the manager).
The CLI and benchmarks make the single service they need directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmdemo.config import Settings
from mmdemo.models.manager import ModelManager  # light: loads nothing; the UI takes it from here

if TYPE_CHECKING:
    from mmdemo.flows.arena import ArenaService
    from mmdemo.flows.assistant import VoiceAssistant
    from mmdemo.flows.chat import ChatService
    from mmdemo.flows.gestures.service import GestureService
    from mmdemo.flows.limits import RateLimiter
    from mmdemo.flows.train import TrainService
    from mmdemo.flows.video.service import VideoService
    from mmdemo.retrieval import IndexService

__all__ = ["ModelManager", "Services", "create_manager"]


def create_manager(settings: Settings) -> ModelManager:
    """The process's one ModelManager (made by the app, passed down; it loads nothing until a
    model is first used)."""
    return ModelManager(settings)


@dataclass(frozen=True)
class Services:
    """One of each, shared by all users: chat and the arena and voice share one ChatService
    (one adapter store, one batcher), chat and video share the CLIP index service."""

    index: IndexService
    chat: ChatService
    arena: ArenaService
    voice: VoiceAssistant
    gestures: GestureService
    video: VideoService
    train: TrainService
    limiter: RateLimiter  # heavy-request budgets per client and server-wide (hosted mode)

    @classmethod
    def create(cls, settings: Settings, manager: ModelManager) -> Services:
        from mmdemo.flows.arena import ArenaService
        from mmdemo.flows.assistant import VoiceAssistant
        from mmdemo.flows.chat import ChatService
        from mmdemo.flows.gestures.service import GestureService
        from mmdemo.flows.limits import RateLimiter
        from mmdemo.flows.remote import arena_remotes
        from mmdemo.flows.responders import Responders
        from mmdemo.flows.train import TrainService
        from mmdemo.flows.video.service import VideoService
        from mmdemo.retrieval import IndexService

        index = IndexService(settings, manager)
        chat = ChatService.standalone(manager, retrieval=index)
        return cls(
            index=index,
            chat=chat,
            arena=ArenaService(chat, arena_remotes(settings)),
            voice=VoiceAssistant(manager, Responders.default(manager, chat)),
            gestures=GestureService(
                manager,
                settings.home,
                hosted=settings.hosted,
                max_video_s=settings.video_seconds,
                allow_training=settings.allow_training,
            ),
            video=VideoService(settings, manager, index),
            train=TrainService(settings),
            limiter=RateLimiter(
                settings.requests_per_minute, total_per_minute=settings.total_requests_per_minute
            ),
        )
