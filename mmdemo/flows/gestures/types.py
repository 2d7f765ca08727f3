"""What the gesture flows return: hands, image, video and live-frame results (typed, with
``to_json`` for the API)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmdemo.errors import BadInputError
from mmdemo.flows.gestures.motion import MotionEvent
from mmdemo.flows.gestures.spelling import SpellingConfig
from mmdemo.flows.gestures.vocabulary import NONE, lookup


@dataclass(frozen=True)
class HandResult:
    handedness: str
    gesture: str  # class name, or "none"
    confidence: float
    landmarks: np.ndarray  # (21, 3): x, y in [0, 1] of the image, z relative depth
    size_px: float  # the hand's larger side in pixels

    @property
    def label(self) -> str:
        return lookup(self.gesture).label if self.gesture != NONE else NONE

    @property
    def caption(self) -> str:
        return f"{self.handedness} · {self.label} {self.confidence:.0%}"

    def to_json(self) -> dict[str, Any]:
        return {
            "handedness": self.handedness,
            "gesture": self.gesture,
            "confidence": round(self.confidence, 4),
            "landmarks": np.round(self.landmarks, 5).tolist(),
        }


@dataclass(frozen=True)
class ImageResult:
    hands: tuple[HandResult, ...]
    annotated: Any  # PIL image with the skeletons drawn
    width: int
    height: int
    notes: tuple[str, ...] = ()
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"hands": [h.to_json() for h in self.hands], "notes": list(self.notes)}


@dataclass(frozen=True)
class VideoOptions:
    """How a video file is read."""

    fps: float = 8.0  # frames analysed per second of video
    max_seconds: float = 600.0  # only this much of a long video is analysed
    spelling: SpellingConfig = field(default_factory=SpellingConfig)

    def __post_init__(self) -> None:
        if not 0.5 <= self.fps <= 30:
            raise BadInputError(f"{self.fps} frames/s is outside 0.5-30", fix="use e.g. 8")
        if self.max_seconds <= 0:
            raise BadInputError("the analysed length must be positive", fix="use e.g. 600 s")


@dataclass(frozen=True)
class VideoProgress:
    """A snapshot while a video is analysed; the last one has ``result``."""

    done_s: float
    total_s: float
    transcript: str
    frame: Any = None  # the newest annotated frame
    result: VideoResult | None = None


@dataclass(frozen=True)
class VideoResult:
    frames: tuple[tuple[float, tuple[HandResult, ...]], ...]
    transcript: str
    motions: tuple[MotionEvent, ...]
    analysed_s: float
    duration_s: float | None
    notes: tuple[str, ...] = ()
    cancelled: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "frames": [
                {"time": round(t, 3), "hands": [h.to_json() for h in hands]}
                for t, hands in self.frames
            ],
            "transcript": self.transcript,
            "motions": [
                {"gesture": m.gesture, "confidence": round(m.confidence, 3), "end": round(m.end, 2)}
                for m in self.motions
            ],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class LiveUpdate:
    hands: tuple[HandResult, ...]
    transcript: str
    token: str | None  # what the transcript gained on this frame
    motion: MotionEvent | None
    annotated: Any = None
    notes: tuple[str, ...] = ()
