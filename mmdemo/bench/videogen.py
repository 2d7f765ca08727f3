"""Videos made with PyAV for the video benchmark and tests: scenes with known cut times
(plain colours with a moving square, or photos with a slow zoom), a sound track (speech clips
placed at known times, tones, silence), and the awkward variants users upload (rotated phone
video, variable frame rate, audio-only, video-only)."""

from __future__ import annotations

import fractions
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

AUDIO_RATE = 16000
# container suffix -> (video codec, audio codec)
CODECS = {
    ".mp4": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "aac"),
    ".webm": ("libvpx", "libopus"),
    ".m4a": (None, "aac"),
}


@dataclass(frozen=True)
class Scene:
    """A stretch between two cuts: a plain colour, or a photo (RGB uint8) slowly zoomed."""

    seconds: float
    color: tuple[int, int, int] = (128, 128, 128)
    image: Any = None


def cut_times(scenes: Sequence[Scene]) -> list[float]:
    """Times of the cuts between scenes (seconds)."""
    times, t = [], 0.0
    for scene in scenes[:-1]:
        t += scene.seconds
        times.append(round(t, 6))
    return times


def palette(n: int, seed: int = 0) -> list[tuple[int, int, int]]:
    """``n`` colours, each far from the one before it (so every cut is a real change)."""
    rng = np.random.default_rng(seed)
    colours: list[tuple[int, int, int]] = []
    while len(colours) < n:
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        if not colours or sum(abs(a - b) for a, b in zip(c, colours[-1], strict=True)) > 300:
            colours.append(c)
    return colours


def _frame(scene: Scene, t: float, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    if scene.image is not None:
        from PIL import Image

        img = Image.fromarray(scene.image)
        zoom = 1.0 - 0.12 * min(1.0, t / max(scene.seconds, 1e-6))
        cw, ch = img.width * zoom, img.height * zoom
        box = (
            (img.width - cw) / 2,
            (img.height - ch) / 2,
            (img.width + cw) / 2,
            (img.height + ch) / 2,
        )
        return np.asarray(img.resize((w, h), Image.BILINEAR, box=box).convert("RGB"))
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = scene.color
    side = max(4, h // 8)
    x = int((w - side) * ((t * 0.3) % 1.0))
    y = (h - side) // 2
    frame[y : y + side, x : x + side] = 255 - np.asarray(scene.color, np.uint8)
    return frame


def write_video(
    path: str | Path,
    scenes: Sequence[Scene] = (),
    *,
    audio: np.ndarray | None = None,
    size: tuple[int, int] = (320, 180),
    fps: int = 15,
    rotation: int | None = None,
    variable_rate: bool = False,
    preset: str = "veryfast",
) -> Path:
    """Encode ``scenes`` (no scenes: audio only) with ``audio`` (16 kHz mono float32; None:
    no sound track). ``rotation`` writes a display matrix as phones do; ``variable_rate``
    alternates frame durations (50 ms / 150 ms)."""
    import av

    path = Path(path)
    video_codec, audio_codec = CODECS[path.suffix.lower()]
    seconds = sum(s.seconds for s in scenes)
    if audio is not None and not scenes:
        seconds = len(audio) / AUDIO_RATE
    F = fractions.Fraction
    with av.open(str(path), "w") as out:
        v = a = None
        if scenes:
            v = out.add_stream(video_codec, rate=1000 if variable_rate else fps)
            v.width, v.height, v.pix_fmt = size[0], size[1], "yuv420p"
            if video_codec == "libx264":
                v.options = {"preset": preset, "crf": "26"}
            else:  # libvpx: real-time settings, else VP8 encodes slower than real time here
                v.options = {"deadline": "realtime", "cpu-used": "8"}
            if variable_rate:
                v.codec_context.time_base = F(1, 1000)
                v.time_base = F(1, 1000)
            if rotation is not None:
                v.set_display_rotation(rotation)
        if audio is not None:
            a = out.add_stream(audio_codec, rate=48000 if audio_codec == "libopus" else AUDIO_RATE)
            a.layout = "mono"
        out.start_encoding()  # the header, even for a video without a single frame
        pcm = np.asarray(audio if audio is not None else [], np.float32)
        sent = 0  # audio samples encoded so far

        def audio_until(t: float) -> None:
            nonlocal sent
            end = min(len(pcm), int(t * AUDIO_RATE))
            while a is not None and sent < end:
                chunk = pcm[sent : min(end, sent + 1024)]
                frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
                frame.sample_rate = AUDIO_RATE
                for packet in a.encode(frame):
                    out.mux(packet)
                sent += len(chunk)

        t, index = 0.0, 0
        bounds = np.cumsum([s.seconds for s in scenes]) if scenes else np.zeros(0)
        while v is not None and t < seconds - 1e-9:
            i = min(int(np.searchsorted(bounds, t, side="right")), len(scenes) - 1)
            start = bounds[i - 1] if i else 0.0
            frame = av.VideoFrame.from_ndarray(_frame(scenes[i], t - start, size), format="rgb24")
            if variable_rate:
                frame.pts = round(t * 1000)
                frame.time_base = F(1, 1000)
                step = 0.05 if index % 2 else 0.15
            else:
                frame.pts = index
                step = 1.0 / fps
            for packet in v.encode(frame):
                out.mux(packet)
            audio_until(t)
            t += step
            index += 1
        audio_until(seconds + 1)
        for stream in (v, a):
            if stream is not None:
                for packet in stream.encode(None):
                    out.mux(packet)
    return path


def place(
    clips: Sequence[tuple[float, np.ndarray]], seconds: float, noise: float = 0.002, seed: int = 0
) -> np.ndarray:
    """A 16 kHz track of ``seconds`` with each (start, samples) clip placed at its start,
    over a faint noise floor (so it is not digital silence)."""
    rng = np.random.default_rng(seed)
    track = (rng.standard_normal(int(seconds * AUDIO_RATE)) * noise).astype(np.float32)
    for start, samples in clips:
        a = int(start * AUDIO_RATE)
        b = min(len(track), a + len(samples))
        track[a:b] += samples[: b - a]
    return np.clip(track, -1, 1)


def music(seconds: float, seed: int = 0) -> np.ndarray:
    """Chords of sine tones changing every half second: sound, but no speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
    out = np.zeros_like(t, dtype=np.float32)
    for k in range(int(np.ceil(seconds * 2))):
        root = 220 * 2 ** (int(rng.integers(0, 12)) / 12)
        mask = (t >= k / 2) & (t < (k + 1) / 2)
        for ratio in (1.0, 1.25, 1.5):
            out[mask] += 0.1 * np.sin(2 * np.pi * root * ratio * t[mask])
    return out


def librivox_speech() -> list[tuple[np.ndarray, str]]:
    """The LibriVox clips (16 kHz float32) with their transcripts (Debian
    pocketsphinx-testdata); raises MMDemoError naming the package when it is missing."""
    from mmdemo.bench.voice import librivox_clips
    from mmdemo.flows.audio import read_audio

    return [(read_audio(path).samples, text) for path, text in librivox_clips()]


PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "horse")


def photo(name: str) -> np.ndarray:
    """A photo bundled with scikit-image, as RGB uint8."""
    from skimage import color, data

    image = getattr(data, name)()
    if image.ndim == 2 or image.dtype == bool:
        image = (
            color.gray2rgb(image.astype(np.float32)) * (255 if image.dtype == bool else 1)
        ).astype(np.uint8)
    return np.ascontiguousarray(image[..., :3])


def real_material(
    path: str | Path, gap: float = 1.2, size: tuple[int, int] = (320, 240)
) -> dict[str, Any]:
    """A test video from real material: a scikit-image photo per LibriVox clip, each shown
    while its clip is spoken (plus a short pause), so cut times and transcript are known.
    Returns {"path", "cuts", "transcript", "spoken": [(start, end, text)]}."""
    speech = librivox_speech()
    scenes, clips, spoken = [], [], []
    t = 0.0
    for (samples, text), name in zip(speech, PHOTOS, strict=False):
        length = len(samples) / AUDIO_RATE + gap
        clips.append((t + gap / 2, samples))
        spoken.append((t + gap / 2, t + gap / 2 + len(samples) / AUDIO_RATE, text))
        scenes.append(Scene(length, image=photo(name)))
        t += length
    write_video(path, scenes, audio=place(clips, t), size=size)
    return {
        "path": Path(path),
        "cuts": cut_times(scenes),
        "transcript": " ".join(text for _, _, text in spoken),
        "spoken": spoken,
        "duration": t,
    }
