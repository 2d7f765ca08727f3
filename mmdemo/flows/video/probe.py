"""Check an uploaded file before any work: exists, not empty, not huge, a container FFmpeg
reads, with a picture or a sound track, a sane length. Every refusal says cause and fix.
The video summary and the gesture flow both open videos through it (and ``frames.read_frames``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdemo.errors import BadInputError
from mmdemo.flows.video.config import VideoConfig
from mmdemo.flows.video.types import VideoInfo, clock

FIX = "upload a video file (MP4, WebM, MKV or MOV), or an audio recording"
# FFmpeg demuxers that read single pictures: a photo is not a video
IMAGE_DEMUXERS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "gif", "bmp_pipe", "tiff_pipe")
# codecs of still pictures: a stream of these with one frame is an image, or cover art
STILL_CODECS = ("png", "mjpeg", "bmp", "gif", "webp", "tiff")


def _seconds(value: Any, base: Any) -> float:
    return float(value * base) if value is not None and base is not None else 0.0


def probe(
    path: str | Path, config: VideoConfig | None = None, max_bytes: int | None = None
) -> VideoInfo:
    """A checked ``VideoInfo``; raises ``BadInputError`` naming what is wrong and the fix.
    ``config`` bounds the length (``max_hours``); without it any length passes (a caller that
    reads only the start, like the gesture flow, bounds its own reading)."""
    import av

    if path is None or not str(path).strip():
        raise BadInputError("no video was given", fix=FIX)
    path = Path(str(path))
    name = path.name
    if not path.is_file():
        raise BadInputError(f"the file {name} does not exist", fix=FIX)
    size = path.stat().st_size
    if size == 0:
        raise BadInputError(f"{name} is empty (0 bytes)", fix="upload the file again")
    if max_bytes is not None and size > max_bytes:
        raise BadInputError(
            f"{name} is {size / 2**20:,.0f} MB; uploads are limited to {max_bytes / 2**20:,.0f} MB",
            fix="cut or re-encode the video smaller, or run `python -m mmdemo video summarize "
            "FILE --out DIR` on the machine itself (no upload limit), or raise MMDEMO_MAX_UPLOAD_MB",
        )
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.EOFError:
        raise BadInputError(
            f"{name} ends before any picture or sound: it is empty (0 seconds) or cut off",
            fix="export or record the video again, and upload the whole file",
        ) from None
    except av.error.FFmpegError as exc:
        raise BadInputError(
            f"{name} cannot be read as a video: it is corrupt, truncated or not a media file "
            f"({_why(exc)})",
            fix=FIX,
        ) from None
    with container:
        fmt = container.format.name
        if fmt.split(",")[0] in IMAGE_DEMUXERS:
            raise BadInputError(f"{name} is a still image, not a video", fix=FIX)
        videos = [s for s in container.streams.video if not is_still(s)]
        audios = list(container.streams.audio)
        if not videos and not audios:
            raise BadInputError(
                f"{name} holds no picture and no sound (streams: "
                f"{', '.join(s.type for s in container.streams) or 'none'}): it is empty "
                "(0 seconds) or not a video",
                fix=FIX,
            )
        start = container.start_time / 1e6 if container.start_time is not None else 0.0
        duration = container.duration / 1e6 if container.duration is not None else 0.0
        v = videos[0] if videos else None
        a = audios[0] if audios else None
        for stream in (v, a):
            if stream is not None and duration <= 0:
                duration = _seconds(stream.duration, stream.time_base)
        width = height = rotation = 0
        fps = 0.0
        if v is not None:
            width, height = v.codec_context.width, v.codec_context.height
            rate = v.average_rate or v.guessed_rate
            fps = float(rate) if rate else 0.0
            rotation = _rotation(container, v)
            if rotation in (90, 270):
                width, height = height, width
        # a header that does not say how long: the packets do (read, not decoded)
        length = duration if duration > 0 else _packets_end(container, v or a) - start
    if config is not None and length > config.max_hours * 3600:
        raise BadInputError(
            f"{name} is {clock(length)} long; this server takes videos up to "
            f"{clock(config.max_hours * 3600)}",
            fix="cut the video into parts (the operator sets the limit with "
            "MMDEMO_MAX_VIDEO_MINUTES)",
        )
    return VideoInfo(
        name=name,
        size=size,
        duration=max(0.0, duration),
        has_video=v is not None,
        has_audio=a is not None,
        width=width,
        height=height,
        fps=fps,
        rotation=rotation,
        video_codec=v.codec_context.name if v is not None else "",
        audio_codec=a.codec_context.name if a is not None else "",
        container=fmt,
        start=start,
    )


def _packets_end(container: Any, stream: Any) -> float:
    """Where the last packet of ``stream`` ends (seconds): demuxing reads the file without
    decoding a frame."""
    import av

    end = 0.0
    try:
        for packet in container.demux(stream):
            if packet.pts is not None and packet.time_base is not None:
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    except av.error.FFmpegError:
        pass  # a damaged tail: the length up to it
    return end


def _why(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[0].strip() if text else type(exc).__name__


def is_still(stream: Any) -> bool:
    """Cover art in an audio file (an attached picture) or a one-picture stream."""
    if stream.disposition & 0x0400:  # AV_DISPOSITION_ATTACHED_PIC
        return True
    return stream.codec_context.name in STILL_CODECS and (stream.frames or 0) == 1


def _rotation(container: Any, stream: Any) -> int:
    """Display rotation (multiples of 90, counter-clockwise), read from the first frame's
    display matrix (FFmpeg attaches the stream's matrix to decoded frames)."""
    try:
        for frame in container.decode(stream):
            return round((frame.rotation or 0) / 90.0) * 90 % 360
    except Exception:  # a file too damaged to decode is reported by the frames stage
        return 0
    return 0


def sample_interval(duration: float, config: VideoConfig) -> float:
    """Seconds between sampled frames: dense for short videos, sparse for long ones, so at
    most ``max_samples`` frames are looked at (within the configured bounds)."""
    if duration <= 0:
        return config.min_interval_s
    wanted = duration / config.max_samples
    return min(config.max_interval_s, max(config.min_interval_s, wanted))
