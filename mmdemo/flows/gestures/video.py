"""Decode a video file as a stream of RGB frames at a fixed sampling rate (PyAV).

Frames are decoded one at a time and dropped once sampled, so memory stays bounded for any
length; ``max_seconds`` bounds the time spent. A file that is not a video, has no video stream
or yields no frame is refused with its cause; one that breaks off part-way (truncated) ends
early with ``truncated`` set on the last ``Frame`` so the caller can say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.errors import BadInputError

VIDEO_FIX = "upload an MP4, WebM, MOV, MKV or AVI file with a video track"


@dataclass(frozen=True)
class VideoInfo:
    duration: float | None  # seconds, if the container says
    width: int
    height: int
    fps: float | None


@dataclass(frozen=True)
class Frame:
    time: float  # seconds from the start
    rgb: Any  # (H, W, 3) uint8
    truncated: str = ""  # set on the last frame when decoding broke off: the reason


def probe(path: str | Path) -> VideoInfo:
    """Open the file and describe its first video stream (refuses non-videos)."""
    import av

    with _open(path) as container:
        stream = _video_stream(container, path)
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        rate = float(stream.average_rate) if stream.average_rate else None
        return VideoInfo(duration, stream.codec_context.width, stream.codec_context.height, rate)


def _open(path: str | Path) -> Any:
    import av

    p = Path(str(path))
    if not p.is_file():
        raise BadInputError(f"{p.name}: file not found", fix=VIDEO_FIX)
    if p.stat().st_size == 0:
        raise BadInputError(f"{p.name} is empty (0 bytes)", fix="upload the video again")
    try:
        return av.open(str(p), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise BadInputError(
            f"{p.name} is not a video FFmpeg can read ({exc})", fix=VIDEO_FIX
        ) from None


def _video_stream(container: Any, path: str | Path) -> Any:
    from mmdemo.flows.video.probe import IMAGE_DEMUXERS

    if container.format.name.split(",")[0] in IMAGE_DEMUXERS:
        raise BadInputError(f"{Path(str(path)).name} is a still image, not a video", fix=VIDEO_FIX)
    if not container.streams.video:
        raise BadInputError(f"{Path(str(path)).name} has no video track", fix=VIDEO_FIX)
    return container.streams.video[0]


def sample_frames(
    path: str | Path, fps: float = 8.0, max_seconds: float | None = None, max_side: int = 640
) -> Iterator[Frame]:
    """RGB frames every ``1/fps`` seconds, scaled so the longer side is at most ``max_side``."""
    import av

    if fps <= 0:
        raise BadInputError(f"sampling rate {fps} frames/s is not positive", fix="use e.g. 8")
    name = Path(str(path)).name
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        width, height = stream.codec_context.width, stream.codec_context.height
        scale = min(1.0, max_side / max(width, height, 1))
        size = (max(2, round(width * scale)), max(2, round(height * scale)))
        next_t, count, last = 0.0, 0, None
        start = None
        try:
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                start = frame.time if start is None else start
                t = frame.time - start
                if max_seconds is not None and t > max_seconds:
                    break
                if t + 1e-6 < next_t:
                    continue
                rgb = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
                if last is not None:
                    yield last
                last = Frame(t, rgb)
                count += 1
                while next_t <= t + 1e-6:  # the next point of the sampling grid
                    next_t += 1.0 / fps
        except (av.FFmpegError, EOFError, ValueError) as exc:
            if last is None:
                raise BadInputError(
                    f"{name} could not be decoded ({exc})", fix="re-export the video; " + VIDEO_FIX
                ) from None
            yield Frame(last.time, last.rgb, f"decoding stopped at {last.time:.1f} s: {exc}")
            return
        if last is None:
            raise BadInputError(f"{name} holds no video frames", fix=VIDEO_FIX)
        yield last
