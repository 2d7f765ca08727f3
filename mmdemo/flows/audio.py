"""Audio in and out: read any upload or microphone chunk into 16 kHz mono float32, bounded.

Files are read with soundfile (WAV/FLAC/OGG/MP3), falling back to PyAV for containers
libsndfile does not know (WebM/Opus from browsers, M4A). Resampling uses torchaudio.
Every problem becomes a ``BadInputError`` that says what is wrong and what to do.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.errors import BadInputError

SAMPLE_RATE = 16000
MIN_RATE, MAX_RATE = 1000, 384_000
MAX_CHANNELS = 8  # 7.1 surround; more is no recording a person makes
MIN_SECONDS = 0.1
SILENCE_PEAK = 1e-4  # below this the recording is digital silence (muted mic)
FILE_FIX = "upload a WAV, FLAC, OGG or MP3 file, or record with the microphone"


@dataclass(frozen=True)
class Clip:
    """Speech ready for the ASR: 16 kHz mono float32, plus what was done to it."""

    samples: Any  # numpy float32, mono, 16 kHz, in [-1, 1]
    source_rate: int
    source_channels: int
    source_seconds: float  # duration of the input before any cut
    truncated: bool = False  # only the first ``max_seconds`` were kept

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def to_float32(data: Any) -> Any:
    """Integer PCM (8/16/32-bit, signed or unsigned) or float64 -> float32 in [-1, 1]."""
    import numpy as np

    arr = np.asarray(data)
    if arr.dtype == np.uint8:  # 8-bit WAV is unsigned, centred on 128
        return (arr.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(arr.dtype, np.signedinteger):
        return arr.astype(np.float32) / float(np.iinfo(arr.dtype).max + 1)
    if np.issubdtype(arr.dtype, np.unsignedinteger):
        info = np.iinfo(arr.dtype)
        half = (info.max + 1) / 2
        return ((arr.astype(np.float64) - half) / half).astype(np.float32)
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float32, copy=False)
    raise BadInputError(f"audio samples of type {arr.dtype} are not sound", fix=FILE_FIX)


def to_mono(arr: Any) -> Any:
    """Average the channels; accepts (samples, channels) and (channels, samples)."""
    if arr.ndim == 1:
        return arr
    if arr.ndim != 2:
        raise BadInputError(f"audio with shape {arr.shape} has more than two dimensions")
    channel_axis = 1 if arr.shape[1] <= arr.shape[0] else 0
    return arr.mean(axis=channel_axis)


def resample(samples: Any, rate: int, target: int = SAMPLE_RATE) -> Any:
    """Band-limited resampling with torchaudio (float32 numpy in, float32 numpy out)."""
    if rate == target or len(samples) == 0:
        return samples
    import torch
    import torchaudio.functional as AF

    tensor = torch.from_numpy(samples).float().unsqueeze(0)
    return AF.resample(tensor, int(rate), int(target))[0].numpy()


def prepare(
    data: Any,
    rate: int,
    max_seconds: float | None = None,
    source_seconds: float | None = None,
    channels: int | None = None,
) -> Clip:
    """Any PCM array at any sane rate -> a checked 16 kHz mono float32 ``Clip`` (``channels``:
    of the source, when ``data`` was already mixed down)."""
    import numpy as np

    rate = int(rate)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise BadInputError(
            f"the audio says its sample rate is {rate} Hz, which no recording uses",
            fix=f"use audio sampled between {MIN_RATE} and {MAX_RATE} Hz (16 or 48 kHz is usual)",
        )
    arr = np.asarray(data)
    channels = channels or (1 if arr.ndim == 1 else min(arr.shape))
    mono = to_mono(to_float32(arr))
    total = source_seconds if source_seconds is not None else len(mono) / rate
    truncated = total > len(mono) / rate + 1e-6
    if max_seconds is not None and len(mono) > max_seconds * rate:
        mono, truncated = mono[: int(max_seconds * rate)], True
    if not np.all(np.isfinite(mono)):
        raise BadInputError("the audio contains invalid samples (NaN or infinity)", fix=FILE_FIX)
    if len(mono) < MIN_SECONDS * rate:
        raise BadInputError(
            f"the recording is empty or too short ({len(mono) / rate:.2f} s)",
            fix="record at least half a second of speech",
        )
    peak = float(np.max(np.abs(mono)))
    if peak < SILENCE_PEAK:
        raise BadInputError(
            "the recording is silent (all samples are zero)",
            fix="check that the microphone is on and not muted, then record again",
        )
    if peak > 1.0:  # float files are allowed to exceed full scale; keep the ASR's input sane
        mono = mono / peak
    samples = np.ascontiguousarray(resample(mono.astype(np.float32), rate), dtype=np.float32)
    return Clip(samples, rate, channels, float(total), truncated)


def chunk_to_16k(data: Any, rate: int) -> Any:
    """A live microphone chunk -> 16 kHz mono float32, without the checks for a whole clip
    (a chunk may well be silent). Chunks are resampled one by one; the small edge effects
    do not matter to the VAD or the ASR."""
    if not MIN_RATE <= int(rate) <= MAX_RATE:
        raise BadInputError(f"the microphone reports a sample rate of {rate} Hz")
    import numpy as np

    mono = np.nan_to_num(to_mono(to_float32(data)))
    return resample(np.ascontiguousarray(mono, dtype=np.float32), int(rate))


def read_audio(
    source: str | Path | bytes,
    max_seconds: float | None = None,
    longest_s: float | None = None,
) -> Clip:
    """Read a file (path or bytes), keeping at most ``max_seconds`` of it in memory.

    Sample rate, channels and length (at most ``longest_s``) are checked from the header
    before anything is decoded, so a header that claims hours or a thousand channels costs
    nothing."""
    if source is None or (isinstance(source, (str, Path)) and not str(source).strip()):
        raise BadInputError("no audio was given", fix=FILE_FIX)
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise BadInputError(f"the audio file {Path(source).name} does not exist", fix=FILE_FIX)
    if isinstance(source, (str, Path)) and Path(source).stat().st_size == 0:
        raise BadInputError(f"the audio file {Path(source).name} is empty (0 bytes)", fix=FILE_FIX)
    try:
        data, rate, channels, total = _read_soundfile(source, max_seconds, longest_s)
    except BadInputError:
        raise
    except Exception:
        data, rate, channels, total = _read_pyav(source, max_seconds, longest_s)
    return prepare(data, rate, max_seconds, source_seconds=total, channels=channels)


def check_header(rate: float, channels: int, seconds: float, longest_s: float | None) -> None:
    """Refuse what a file's header claims before any sample is decoded."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise BadInputError(
            f"the audio says its sample rate is {int(rate)} Hz, which no recording uses",
            fix=f"use audio sampled between {MIN_RATE} and {MAX_RATE} Hz (16 or 48 kHz is usual)",
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise BadInputError(
            f"the audio says it has {channels} channels; at most {MAX_CHANNELS} are read",
            fix="export it as mono or stereo",
        )
    if longest_s is not None and seconds > longest_s:
        raise BadInputError(
            f"the audio is {seconds / 60:,.0f} minutes long; this server reads at most "
            f"{longest_s / 60:,.0f}",
            fix="cut it shorter (the operator sets the limit with MMDEMO_MAX_AUDIO_MINUTES)",
        )


def _read_soundfile(
    source: str | Path | bytes, max_seconds: float | None, longest_s: float | None
) -> tuple:
    """Read with libsndfile, block by block, mixing down to mono as it goes (memory: the mono
    samples kept, whatever the channel count)."""
    import numpy as np
    import soundfile as sf

    handle = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    with sf.SoundFile(handle) as f:
        rate, frames, channels = f.samplerate, f.frames, f.channels
        check_header(rate, channels, frames / max(rate, 1), longest_s)
        limit = frames if max_seconds is None else min(frames, int(max_seconds * rate) + 1)
        blocks = [
            block.mean(axis=1) if channels > 1 else block[:, 0]
            for block in f.blocks(blocksize=1 << 16, frames=limit, dtype="float32", always_2d=True)
        ]
    data = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    return data, rate, channels, frames / rate


def _read_pyav(
    source: str | Path | bytes, max_seconds: float | None, longest_s: float | None
) -> tuple:
    """Decode with FFmpeg (PyAV) for containers libsndfile does not read."""
    import av
    import numpy as np

    handle = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    name = "the audio" if isinstance(source, bytes) else Path(source).name
    try:
        with av.open(handle) as container:
            if not container.streams.audio:
                raise BadInputError(
                    f"{name} has no audio track (it holds {_holds(container)}): "
                    "not an audio recording",
                    fix=FILE_FIX,
                )
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate or stream.rate
            channels = stream.codec_context.channels or 1
            claimed = _seconds(stream.duration, stream.time_base) or (
                container.duration / 1e6 if container.duration else 0.0
            )
            check_header(rate or 0, channels, claimed, longest_s)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks, kept = [], 0
            cap = max_seconds if max_seconds is not None else longest_s  # header may be silent
            limit = None if cap is None else int(cap * rate) + 1
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    kept += len(chunk)
                if limit is not None and kept >= limit:
                    break
            if max_seconds is None:  # decoded past the longest length: refused, not cut
                check_header(rate, channels, kept / rate, longest_s)
            duration = (
                float(stream.duration * stream.time_base)
                if stream.duration is not None
                else kept / rate
            )
    except BadInputError:
        raise
    except Exception as exc:
        raise BadInputError(
            f"{name} cannot be read: it is corrupt or not audio ({type(exc).__name__})",
            fix=FILE_FIX,
        ) from exc
    if not chunks:
        raise BadInputError(f"{name} holds no sound", fix=FILE_FIX)
    data = np.concatenate(chunks)
    return data, int(rate), channels, max(duration, len(data) / rate)


def _holds(container: Any) -> str:
    """What a file without an audio track holds, in words: FFmpeg opens a picture as a
    one-frame video (its image demuxers), which is no video to the person who sent it."""
    streams = list(container.streams)
    if not streams:
        return "nothing"
    form = container.format.name
    if form == "image2" or form.endswith("_pipe"):
        codec = streams[0].codec_context.name
        return f"a still {'jpeg' if codec == 'mjpeg' else codec} image"
    return ", ".join(sorted({s.type for s in streams}))


def _seconds(value: Any, base: Any) -> float:
    return float(value * base) if value is not None and base is not None else 0.0


def wav_bytes(samples: Any, rate: int) -> bytes:
    """16-bit PCM WAV bytes (what Gradio's streaming audio output takes, chunk by chunk)."""
    import numpy as np
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(samples, dtype=np.float32), -1, 1), rate, format="WAV")
    return buf.getvalue()
