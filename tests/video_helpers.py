"""Shared bits of the video tests: small videos made with PyAV, and running a stage or the
whole pipeline to its result."""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from mmdemo.bench.videogen import Scene, palette, place, write_video
from mmdemo.config import Settings
from mmdemo.flows.video.config import VideoConfig
from mmdemo.flows.video.service import VideoService
from mmdemo.flows.video.types import Progress, VideoResult
from mmdemo.models.manager import ModelManager

REAL_ASR = "embedded:whisper-tiny.en"


@pytest.fixture(scope="session")
def real_asr_manager(tiny_settings: Settings) -> Iterator[ModelManager]:
    """Tiny models, except the real embedded speech recogniser (offline, fast): the
    transcript is then real while everything else stays random-weight."""
    manager = ModelManager(tiny_settings.replace(asr=REAL_ASR))
    yield manager
    manager.unload_all()


def drain(stage: Generator[Any, None, Any]) -> Any:
    """Run a stage generator to the end; its return value."""
    while True:
        try:
            next(stage)
        except StopIteration as done:
            return done.value


def colour_video(
    path: Path,
    seconds: tuple[float, ...] = (3.0, 4.0, 3.0, 4.0),
    audio: Any = "noise",
    **kwargs: Any,
) -> tuple[Path, list[float]]:
    """Plain-colour scenes of the given lengths (cuts known), a faint noise track by default;
    returns (path, cut times)."""
    scenes = [Scene(s, c) for s, c in zip(seconds, palette(len(seconds), 1), strict=True)]
    if isinstance(audio, str) and audio == "noise":
        audio = place([], sum(seconds))
    write_video(path, scenes, audio=audio, **kwargs)
    cuts, t = [], 0.0
    for s in seconds[:-1]:
        t += s
        cuts.append(t)
    return path, cuts


def service_for(settings: Settings, manager: Any, **config: Any) -> VideoService:
    return VideoService(settings, manager, config=VideoConfig(**config))


def messages(service: VideoService, path: Path, stop: threading.Event | None = None) -> Iterator:
    yield from service.run(path, stop)


def final(service: VideoService, path: Path, stop: threading.Event | None = None) -> VideoResult:
    results = [m for m in service.run(path, stop) if not isinstance(m, Progress)]
    return results[-1]


def boundaries(result: VideoResult) -> list[float]:
    """Where the key-frame stretches start (the detected cuts), without the first."""
    return [k.start for k in result.key_frames[1:]]
