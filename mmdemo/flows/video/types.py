"""Small typed messages passed between the video stages, and the result the UI shows."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mmdemo.errors import MMDemoError

# The steps a user sees, in order: (stage key, words shown).
STEPS = (
    ("open", "reading the file"),
    ("shots", "shots and key frames"),
    ("speech", "transcribing the sound"),
    ("captions", "captioning key frames"),
    ("summary", "chapters and summary"),
)


class Cancelled(MMDemoError):
    """The user stopped the run; finished stages stay in the cache."""


def check(stop: threading.Event | None) -> None:
    """Raise ``Cancelled`` once ``stop`` is set (called between frames and chunks)."""
    if stop is not None and stop.is_set():
        raise Cancelled("the video summary was cancelled", fix="run it again to continue")


def clock(seconds: float) -> str:
    """1:02:03 or 01:23 (what a player shows)."""
    total = max(0, int(seconds + 0.5))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


@dataclass(frozen=True)
class VideoInfo:
    """What the container says, checked (``probe.py``)."""

    name: str  # file name, for messages
    size: int  # bytes
    duration: float  # seconds (best estimate; 0 when the file does not say)
    has_video: bool
    has_audio: bool
    width: int = 0  # as displayed, after rotation
    height: int = 0
    fps: float = 0.0  # average frame rate
    rotation: int = 0  # degrees counter-clockwise applied for display (phone video)
    video_codec: str = ""
    audio_codec: str = ""
    container: str = ""
    start: float = 0.0  # the container's start time; every time here is relative to it


@dataclass(frozen=True)
class Sample:
    """One sampled frame: RGB pixels (already rotated) at a time in seconds."""

    time: float
    pixels: Any  # numpy uint8 (H, W, 3)


@dataclass(frozen=True)
class Shot:
    """A stretch between two cuts and its representative frame."""

    start: float
    end: float
    cut: float  # histogram change of the cut that opened it (0: first shot or a split)
    key_time: float
    key_file: str  # file name of the key frame, in the shots stage folder
    soft: bool = False  # opened by splitting a long shot, not by a cut


@dataclass(frozen=True)
class KeyFrame:
    """A key frame as the user sees it."""

    time: float
    start: float  # the span of the shot(s) it stands for
    end: float
    path: str  # JPEG in the cache
    caption: str = ""
    source: str = ""  # "vlm", "clip" (labels) or "" (none)


@dataclass(frozen=True)
class Segment:
    """A stretch of recognised speech."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Chapter:
    start: float
    end: float
    title: str
    bullets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Progress:
    """Where a run is: a step of ``STEPS``, how far within it, and an estimate for the rest."""

    stage: str
    step: int  # 1-based index into STEPS
    fraction: float  # of this step
    overall: float  # of the whole run (steps weighted by their usual cost)
    eta_s: float | None  # seconds left for the whole run, once there is a basis
    detail: str = ""

    @property
    def label(self) -> str:
        return STEPS[self.step - 1][1]

    def describe(self) -> str:
        eta = f" · about {clock(self.eta_s)} left" if self.eta_s is not None else ""
        detail = f" ({self.detail})" if self.detail else ""
        return (
            f"Step {self.step} of {len(STEPS)}: {self.label}{detail} · "
            f"{self.fraction:.0%} of this step, {self.overall:.0%} overall{eta}"
        )


@dataclass
class VideoResult:
    """Everything found so far; ``complete`` is False for partial results (a stage failed or
    the run was cancelled). ``stages`` holds seconds per stage in this run (0 = cached)."""

    video_id: str
    info: VideoInfo
    key_frames: list[KeyFrame] = field(default_factory=list)
    transcript: list[Segment] = field(default_factory=list)
    chapters: list[Chapter] = field(default_factory=list)
    summary: str = ""
    notes: list[str] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)  # stages taken from the cache
    complete: bool = False

    def snapshot(self) -> VideoResult:
        """A copy whose lists later stages do not change (a partial result to show)."""
        return replace(
            self,
            key_frames=list(self.key_frames),
            transcript=list(self.transcript),
            chapters=list(self.chapters),
            notes=list(self.notes),
            stages=dict(self.stages),
            reused=list(self.reused),
        )

    def to_json(self) -> dict[str, Any]:
        """The ``/video_summary`` answer: plain data, times in seconds."""
        return {
            "video_id": self.video_id,
            "duration": round(self.info.duration, 3),
            "chapters": [
                {
                    "start": round(c.start, 2),
                    "end": round(c.end, 2),
                    "title": c.title,
                    "bullets": list(c.bullets),
                }
                for c in self.chapters
            ],
            "key_frames": [
                {"time": round(k.time, 2), "caption": k.caption} for k in self.key_frames
            ],
            "transcript": [
                {"start": round(s.start, 2), "end": round(s.end, 2), "text": s.text}
                for s in self.transcript
            ],
            "summary": self.summary,
            "notes": list(self.notes),
            "complete": self.complete,
        }

    def to_record(self) -> dict[str, Any]:
        """Everything, for the cache (``from_record`` reads it back)."""
        return {
            "video_id": self.video_id,
            "info": asdict(self.info),
            "key_frames": [asdict(k) for k in self.key_frames],
            "transcript": [asdict(s) for s in self.transcript],
            "chapters": [asdict(c) for c in self.chapters],
            "summary": self.summary,
            "notes": list(self.notes),
            "complete": self.complete,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> VideoResult:
        return cls(
            video_id=data["video_id"],
            info=VideoInfo(**data["info"]),
            key_frames=[KeyFrame(**k) for k in data["key_frames"]],
            transcript=[Segment(**s) for s in data["transcript"]],
            chapters=[
                Chapter(c["start"], c["end"], c["title"], tuple(c["bullets"]))
                for c in data["chapters"]
            ],
            summary=data["summary"],
            notes=list(data["notes"]),
            complete=bool(data["complete"]),
        )


@dataclass(frozen=True)
class Answer:
    """An answer to a question about a video, with the times it draws on."""

    text: str
    citations: tuple[float, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class FrameHit:
    """A key frame ranked by a text query."""

    rank: int
    score: float
    frame: KeyFrame
