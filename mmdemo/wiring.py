"""Wiring: the one place that makes the app's shared services, from settings and the model
manager, and hands them to the UI (``mmdemo.ui.app``) and the ``/v1`` routes.

It may import every layer below the UI (models, flows, retrieval, serve); the UI imports
only this module's functions, so no model-layer name reaches a tab. Cheap to call: nothing
here loads a model (models load on first use through the manager). The CLI and benchmarks
make the single service they need directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmdemo.config import Settings

if TYPE_CHECKING:
    from mmdemo.flows.adapter_ops import AdapterOps
    from mmdemo.flows.arena import ArenaService
    from mmdemo.flows.arena_blind import BlindArena
    from mmdemo.flows.assistant import VoiceAssistant
    from mmdemo.flows.chat import ChatService
    from mmdemo.flows.clip import ClipSearch
    from mmdemo.flows.gestures.service import GestureService
    from mmdemo.flows.grounding import GroundingService
    from mmdemo.flows.how.service import HowItWorks
    from mmdemo.flows.limits import RateLimiter
    from mmdemo.flows.system import SystemService
    from mmdemo.flows.train import TrainService
    from mmdemo.flows.video.service import VideoService
    from mmdemo.flows.votes import VoteBook
    from mmdemo.models.manager import ModelManager
    from mmdemo.retrieval import IndexService


def create_manager(settings: Settings) -> ModelManager:
    """The process's one ModelManager (made by the app, passed down; it loads nothing until a
    model is first used)."""
    from mmdemo.models.manager import ModelManager

    return ModelManager(settings)


@dataclass(frozen=True)
class Services:
    """One of each, shared by all users: chat and the arena and voice share one ChatService
    (one adapter store, one batcher), chat, video and CLIP search share the index service."""

    system: SystemService  # the model report, loading and unloading (the System tab)
    index: IndexService
    clip: ClipSearch  # the CLIP tab's jobs over ``index``
    chat: ChatService
    adapter_ops: AdapterOps  # Hub downloads, runtime load / unload, merges, merged exports
    grounding: GroundingService  # boxes for "where is ...?" over ``chat``'s engine
    arena: ArenaService
    blind: BlindArena  # blind comparisons over ``arena``; their votes and leaderboard in ``votes``
    votes: VoteBook
    voice: VoiceAssistant
    gestures: GestureService
    video: VideoService
    train: TrainService
    how: HowItWorks  # the How-it-works views over the same VLM and CLIP
    limiter: RateLimiter  # heavy-request budgets per client and server-wide (hosted mode)


def create_services(settings: Settings, manager: ModelManager) -> Services:
    """Every service of one app over ``manager``, loading no model."""
    from mmdemo.flows.adapter_ops import AdapterOps
    from mmdemo.flows.arena import ArenaService
    from mmdemo.flows.arena_blind import BlindArena
    from mmdemo.flows.assistant import VoiceAssistant
    from mmdemo.flows.chat import ChatService, chat_engine
    from mmdemo.flows.clip import ClipSearch
    from mmdemo.flows.gestures.service import GestureService
    from mmdemo.flows.grounding import GroundingService
    from mmdemo.flows.how.service import HowItWorks
    from mmdemo.flows.limits import RateLimiter
    from mmdemo.flows.remote import arena_remotes
    from mmdemo.flows.responders import Responders
    from mmdemo.flows.system import SystemService
    from mmdemo.flows.train import TrainService
    from mmdemo.flows.video.service import VideoService
    from mmdemo.flows.votes import VoteBook
    from mmdemo.models.adapters import AdapterStore
    from mmdemo.retrieval import IndexService

    index = IndexService(settings, manager)
    store = AdapterStore(settings)
    # the one place the chat engine is picked: this machine's VLM or a remote server
    chat = ChatService(manager, store, retrieval=index, engine=chat_engine(manager, store))
    arena = ArenaService(chat, arena_remotes(settings))
    votes = VoteBook(settings.votes_dir, hosted=settings.hosted)
    return Services(
        system=SystemService(manager),
        index=index,
        clip=ClipSearch(index),
        chat=chat,
        adapter_ops=AdapterOps(chat),
        grounding=GroundingService(chat),
        arena=arena,
        blind=BlindArena(arena, votes),
        votes=votes,
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
        how=HowItWorks(settings, manager),
        limiter=RateLimiter(
            settings.requests_per_minute, total_per_minute=settings.total_requests_per_minute
        ),
    )


def openai_router(services: Services, settings: Settings) -> Any:
    """The ``/v1`` routes (a FastAPI router: models, chat completions, vLLM's runtime adapter
    loading) over the app's chat service, adapter operations and request budgets."""
    from mmdemo.serve.openai_api import build_router

    return build_router(services.chat, settings, services.limiter, services.adapter_ops)
