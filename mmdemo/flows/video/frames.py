"""Stage 1: decode the picture with PyAV as a stream and sample frames at an interval that
adapts to the length. Only one frame is in memory at a time; a damaged or truncated stream
ends the sampling where the damage starts instead of failing the whole video.

``read_frames`` is the app's one video reader: the gesture flow samples its frames with it
too (at the frame rate the user picks)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.flows.video.config import VideoConfig
from mmdemo.flows.video.probe import is_still, sample_interval
from mmdemo.flows.video.types import Sample, VideoInfo, check, clock


@dataclass
class FrameStats:
    """What the decoder went through (for notes and the benchmark)."""

    interval: float = 0.0
    decoded: int = 0
    sampled: int = 0
    last_time: float = 0.0
    damaged: str = ""  # the decoder's complaint when the stream broke off
    keyframes_only: bool = False


def fit(width: int, height: int, side: int) -> tuple[int, int]:
    """Even dimensions with the longest side at most ``side`` (never upscaled)."""
    scale = min(1.0, side / max(1, width, height))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def read_frames(
    path: str | Path,
    info: VideoInfo,
    interval: float,
    side: int,
    stop: threading.Event | None = None,
    stats: FrameStats | None = None,
    max_seconds: float | None = None,
    keyframes_only: bool = False,
) -> Iterator[Sample]:
    """The one video reader (the video summary and the gesture flow use it): RGB frames on a
    grid of ``interval`` seconds of presentation time (so variable frame rate is handled), the
    longer side at most ``side``, turned upright as the file asks, up to ``max_seconds``.

    ``info`` comes from ``probe`` (which refused files that are not videos). A stream that
    breaks off ends the frames there with ``stats.damaged`` saying why, instead of failing;
    ``stats.sampled == 0`` afterwards means no frame could be decoded at all."""
    import av
    import numpy as np

    stats = stats if stats is not None else FrameStats()
    stats.interval = interval
    with av.open(str(path), metadata_errors="ignore") as container:
        stream = next(s for s in container.streams.video if not is_still(s))
        stream.thread_type = "AUTO"
        if keyframes_only:
            stream.codec_context.skip_frame = "NONKEY"
            stats.keyframes_only = True
        next_time = 0.0
        size: tuple[int, int] | None = None
        try:
            for frame in container.decode(stream):
                check(stop)
                stats.decoded += 1
                if frame.time is not None:
                    t = frame.time - info.start
                else:  # no timestamps: count frames
                    t = (stats.decoded - 1) / (info.fps or 25.0)
                if max_seconds is not None and t > max_seconds:
                    break
                if t < next_time - 1e-6:
                    continue
                if size is None:
                    size = fit(frame.width, frame.height, side)
                pixels = frame.reformat(
                    width=size[0], height=size[1], format="rgb24", interpolation="AREA"
                ).to_ndarray()
                turns = round((frame.rotation or 0) / 90.0) % 4
                if turns:
                    pixels = np.ascontiguousarray(np.rot90(pixels, k=turns))
                stats.sampled += 1
                stats.last_time = max(0.0, t)
                yield Sample(max(0.0, t), pixels)
                while next_time <= t + 1e-6:  # the next point of the sampling grid
                    next_time += interval
        except (av.error.FFmpegError, EOFError, ValueError) as exc:
            stats.damaged = str(exc).split(";")[0][:120] or type(exc).__name__


def sample_frames(
    path: str | Path,
    info: VideoInfo,
    config: VideoConfig,
    stop: threading.Event | None = None,
    stats: FrameStats | None = None,
) -> Iterator[Sample]:
    """The summary's frames: every ``sample_interval`` seconds, only the stream's own key
    frames for videos past ``keyframes_only_after_s`` (hours of video on a CPU: plenty for
    shots)."""
    yield from read_frames(
        path,
        info,
        sample_interval(info.duration, config),
        config.frame_side,
        stop,
        stats,
        keyframes_only=info.duration > config.keyframes_only_after_s,
    )


def cut_short(stats: FrameStats, info: VideoInfo) -> bool:
    """Whether the picture stops well before the length the container claims."""
    gap = max(2.0, 2 * stats.interval)
    return bool(stats.damaged) or (info.duration > 0 and stats.last_time < info.duration - gap)


def picture_end(stats: FrameStats, info: VideoInfo) -> float:
    """Where the picture really ends: the claimed length, or the last frame if cut short."""
    return stats.last_time + stats.interval if cut_short(stats, info) else info.duration


def frame_notes(stats: dict[str, Any], info: VideoInfo) -> list[str]:
    s = FrameStats(**stats)
    notes = []
    if s.sampled == 0:
        notes.append(
            "no frame of the picture could be decoded: the summary draws on the sound only"
        )
        return notes
    if info.rotation:
        notes.append(f"the video asks to be turned by {info.rotation}°: frames are shown upright")
    if cut_short(s, info):
        why = f" ({s.damaged})" if s.damaged else ""
        notes.append(
            f"the picture stops at {clock(s.last_time)} of {clock(info.duration)}{why}: the file "
            "is truncated or damaged after that; what came before is summarised"
        )
    if s.keyframes_only:
        notes.append(
            f"a long video: only the stream's own key frames were decoded ({s.sampled} frames "
            "looked at), so shot boundaries are as precise as those"
        )
    return notes
