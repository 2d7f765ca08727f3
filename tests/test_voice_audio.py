"""Audio input: every format, rate, width and channel layout a user may send, and the bad
ones, become 16 kHz mono speech or a clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmdemo.errors import BadInputError
from mmdemo.flows.audio import SAMPLE_RATE, chunk_to_16k, prepare, read_audio, wav_bytes
from tests.voice_helpers import read_clip, write_audio


@pytest.fixture(scope="module")
def speech(librivox: list[tuple[Path, str]]) -> tuple[Any, int]:
    """A real 3 s utterance ("he was not an ill disposed young man")."""
    return read_clip(librivox[1][0])


def correlation(a: Any, b: Any) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


def resampled(samples: Any, rate: int) -> Any:
    import torch
    import torchaudio.functional as AF

    return AF.resample(torch.from_numpy(samples), SAMPLE_RATE, rate).numpy()


@pytest.mark.parametrize(
    ("name", "rate", "channels", "subtype"),
    [
        ("16k 16-bit mono", 16000, 1, "PCM_16"),
        ("8k telephone", 8000, 1, "PCM_16"),
        ("44.1k stereo", 44100, 2, "PCM_16"),
        ("48k 32-bit float", 48000, 1, "FLOAT"),
        ("22.05k 8-bit", 22050, 1, "PCM_U8"),
        ("16k 32-bit int stereo", 16000, 2, "PCM_32"),
        ("24k 64-bit float", 24000, 1, "DOUBLE"),
        ("ogg vorbis", 48000, 1, "VORBIS"),
    ],
)
def test_any_wav_becomes_the_same_16k_mono_speech(
    tmp_path: Path, speech: tuple[Any, int], name: str, rate: int, channels: int, subtype: str
) -> None:
    samples, _ = speech
    data = resampled(samples, rate)
    if channels == 2:
        data = np.stack([data, data * 0.5], axis=1)
    suffix = ".ogg" if subtype == "VORBIS" else ".wav"
    path = write_audio(tmp_path / f"clip{suffix}", data, rate, subtype)
    clip = read_audio(path)
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert clip.source_rate == rate and clip.source_channels == channels
    assert clip.seconds == pytest.approx(len(samples) / SAMPLE_RATE, abs=0.05)
    # the waveform survives the round trip (8-bit and 8 kHz lose detail, not the speech)
    assert correlation(clip.samples, samples) > (0.8 if rate == 8000 else 0.9), name


def test_browser_containers_decode_through_pyav(tmp_path: Path, speech: tuple[Any, int]) -> None:
    import av

    samples, _ = speech
    path = tmp_path / "mic.webm"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libopus", rate=48000, layout="mono")
        pcm = (resampled(samples, 48000) * 32767).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = 48000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    clip = read_audio(path)
    assert clip.seconds == pytest.approx(len(samples) / SAMPLE_RATE, abs=0.1)

    # lossy codec: compare loudness envelopes (20 ms frames) rather than samples
    def envelope(x: Any) -> Any:
        frames = len(x) // 320
        return np.sqrt((x[: frames * 320].reshape(frames, 320) ** 2).mean(axis=1))

    assert correlation(envelope(clip.samples), envelope(samples)) > 0.9


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("random bytes", bytes(range(256)) * 40, "corrupt or not audio"),
        ("text file", b"this is not a recording\n" * 50, "corrupt or not audio"),
        ("empty file", b"", "empty \\(0 bytes\\)"),
        ("truncated wav header", b"RIFF\x24\x00\x00\x00WAVEfmt ", "corrupt or not audio"),
    ],
)
def test_corrupt_files_give_a_clear_error(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / "upload.wav"
    path.write_bytes(content)
    with pytest.raises(BadInputError, match=message) as info:
        read_audio(path)
    assert info.value.fix and "WAV" in info.value.fix, name


@pytest.mark.parametrize(
    ("name", "data", "rate", "message"),
    [
        ("all zeros", np.zeros(16000, np.float32), 16000, "silent"),
        ("no samples", np.zeros(0, np.int16), 16000, "empty or too short"),
        ("a click", np.ones(100, np.float32), 16000, "too short"),
        ("absurd rate", np.ones(16000, np.float32) * 0.1, 50, "sample rate"),
        ("NaN samples", np.full(16000, np.nan, np.float32), 16000, "NaN"),
    ],
)
def test_unusable_arrays_are_refused(name: str, data: Any, rate: int, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        prepare(data, rate)


def test_long_recordings_are_read_only_up_to_the_limit(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ten_minutes = (rng.standard_normal(600 * 8000) * 0.1).astype(np.float32)
    path = write_audio(tmp_path / "long.wav", ten_minutes, 8000, "PCM_16")
    clip = read_audio(path, max_seconds=60)
    assert clip.truncated and clip.source_seconds == pytest.approx(600)
    assert clip.seconds == pytest.approx(60, abs=0.01)


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.uint8, np.float64])
def test_microphone_chunks_of_any_width_become_16k_float(dtype: Any) -> None:
    tone = np.sin(np.linspace(0, 200 * np.pi, 48000))
    scale = {np.int16: 32767, np.int32: 2**31 - 1, np.uint8: 127, np.float64: 1}[dtype]
    data = tone * scale + (128 if dtype is np.uint8 else 0)
    out = chunk_to_16k(data.astype(dtype), 48000)
    assert out.dtype == np.float32 and len(out) == 16000
    assert 0.9 < np.max(np.abs(out)) <= 1.01


def test_wav_bytes_round_trip() -> None:
    import io

    import soundfile as sf

    tone = (0.5 * np.sin(np.linspace(0, 100, 24000))).astype(np.float32)
    data, rate = sf.read(io.BytesIO(wav_bytes(tone, 24000)), dtype="float32")
    assert rate == 24000 and np.allclose(data, tone, atol=1e-3)
