"""Stage 2: shot boundaries from frame-to-frame change in colour histograms (needs no model),
and one representative key frame per shot, saved as a JPEG as soon as its shot closes.

Memory stays flat whatever the length: the detector holds the open shot's running histogram
and at most ``CANDIDATES`` of its frames; closed shots keep only numbers and a file name.
"""

from __future__ import annotations

import statistics
import threading
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mmdemo.flows.video.config import VideoConfig
from mmdemo.flows.video.frames import FrameStats, picture_end, sample_frames
from mmdemo.flows.video.types import Sample, Shot, VideoInfo
from mmdemo.heap import trim_free_memory

BINS = 8  # levels per colour channel: 8 x 8 x 8 = 512 bins
CANDIDATES = 8  # frames of the open shot kept as key-frame candidates
HIST_WIDTH = 96  # pixels across the frame used for the histogram


def histogram(pixels: np.ndarray) -> np.ndarray:
    """Normalised joint RGB histogram (512 bins) of a subsampled frame."""
    step = max(1, pixels.shape[1] // HIST_WIDTH)
    q = pixels[::step, ::step] >> 5  # 0..7 per channel
    index = (q[..., 0].astype(np.int32) << 6) | (q[..., 1].astype(np.int32) << 3) | q[..., 2]
    counts = np.bincount(index.ravel(), minlength=BINS**3).astype(np.float32)
    return counts / max(1.0, float(counts.sum()))


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total variation distance between two histograms: 0 same colours, 1 disjoint."""
    return 0.5 * float(np.abs(a - b).sum())


@dataclass
class _Built:
    """A closed shot with what merging needs: its mean histogram and sample count."""

    shot: Shot
    mean: np.ndarray
    count: int
    flash: bool = False  # opened by a flash: it soon looked like the shot before again


@dataclass
class _Open:
    start: float
    cut: float
    soft: bool
    total: np.ndarray
    count: int = 0
    flash: bool = False
    stride: int = 1
    candidates: list[tuple[float, np.ndarray, np.ndarray]] = field(default_factory=list)

    @property
    def mean(self) -> np.ndarray:
        return self.total / max(1, self.count)

    def add(self, sample: Sample, hist: np.ndarray) -> None:
        if self.count % self.stride == 0:
            self.candidates.append((sample.time, sample.pixels, hist))
            if len(self.candidates) > CANDIDATES:  # keep every other one, sample half as often
                self.candidates = self.candidates[::2]
                self.stride *= 2
        self.total += hist
        self.count += 1

    def key(self) -> tuple[float, np.ndarray]:
        """The candidate whose colours are closest to the shot's average."""
        mean = self.mean
        t, pixels, _ = min(self.candidates, key=lambda c: distance(c[2], mean))
        return t, pixels


class ShotDetector:
    """Feed samples in time order; closed shots come back as they close.

    A cut is a histogram change of at least ``cut_threshold`` that is also ``cut_ratio``
    times the recent median change (so a shaky or busy video does not cut on every frame);
    a slow dissolve or pan closes a shot once the frame drifts ``drift_threshold`` from the
    shot's average; a shot reaching ``max_shot_s`` is split (a "soft" boundary).
    """

    def __init__(
        self,
        config: VideoConfig,
        interval: float,
        max_shot_s: float,
        save: Callable[[float, np.ndarray], str],
    ) -> None:
        self.config = config
        self.interval = interval
        self.max_shot_s = max_shot_s
        self.save = save
        self.recent: deque[float] = deque(maxlen=max(4, round(2.0 / interval)))
        self.previous: tuple[float, np.ndarray] | None = None
        self.open: _Open | None = None
        self.built: list[_Built] = []

    def feed(self, sample: Sample) -> None:
        hist = histogram(sample.pixels)
        cfg = self.config
        if self.open is None:
            self.open = _Open(sample.time, 0.0, False, np.zeros_like(hist))
        else:
            prev_time, prev_hist = self.previous
            change = distance(hist, prev_hist)
            age = sample.time - self.open.start
            baseline = statistics.median(self.recent) if self.recent else 0.0
            self.recent.append(change)
            big = change >= cfg.cut_threshold and change >= cfg.cut_ratio * baseline
            # back to how the shot before looked within moments: the cut was a flash
            back = self.built and distance(hist, self.built[-1].mean) < cfg.cut_threshold
            if age < cfg.min_shot_s and big and back:
                self.open.flash = True
            if age >= cfg.min_shot_s:
                if big:
                    self._close((prev_time + sample.time) / 2, change, soft=False, hist=hist)
                elif self.open.count and distance(hist, self.open.mean) >= cfg.drift_threshold:
                    cut = (prev_time + sample.time) / 2
                    self._close(cut, distance(hist, self.open.mean), soft=False, hist=hist)
                elif age >= self.max_shot_s:
                    self._close(sample.time, 0.0, soft=True, hist=hist)
        self.open.add(sample, hist)
        self.previous = (sample.time, hist)

    def _close(self, at: float, cut: float, soft: bool, hist: np.ndarray) -> None:
        shot = self.open
        key_time, pixels = shot.key()
        name = self.save(key_time, pixels)
        self.built.append(
            _Built(
                Shot(shot.start, at, shot.cut, key_time, name, shot.soft),
                shot.mean,
                shot.count,
                shot.flash,
            )
        )
        self.open = _Open(at, cut, soft, np.zeros_like(hist))

    def finish(self, end: float) -> list[_Built]:
        if self.open is not None and self.open.count:
            key_time, pixels = self.open.key()
            name = self.save(key_time, pixels)
            o = self.open
            last = max(end, self.previous[0] + self.interval / 2) if self.previous else end
            self.built.append(
                _Built(Shot(o.start, last, o.cut, key_time, name, o.soft), o.mean, o.count, o.flash)
            )
        self.open = None
        return self.built


def merge_similar(built: list[_Built], max_distance: float) -> list[_Built]:
    """Join neighbours whose average colours barely differ (a lighting change) and shots
    opened by a flash; splits of long shots stay apart (they spread key frames over time)."""
    out: list[_Built] = []
    for b in built:
        close = out and distance(out[-1].mean, b.mean) < max_distance
        if out and not b.shot.soft and (close or b.flash):
            out[-1] = _join(out[-1], b)
        else:
            out.append(b)
    return out


def _join(a: _Built, b: _Built) -> _Built:
    longer = a.shot if a.shot.end - a.shot.start >= b.shot.end - b.shot.start else b.shot
    shot = replace(a.shot, end=b.shot.end, key_time=longer.key_time, key_file=longer.key_file)
    count = a.count + b.count
    return _Built(shot, (a.mean * a.count + b.mean * b.count) / max(1, count), count)


def strongest(shots: list[Shot], limit: int) -> list[Shot]:
    """At most ``limit`` shots: keep the strongest cuts, join across the weaker ones (splits
    first). The key frame of a joined stretch is that of its longest shot."""
    if len(shots) <= limit:
        return list(shots)
    order = sorted(range(1, len(shots)), key=lambda i: (not shots[i].soft, shots[i].cut))
    keep = set(order[len(shots) - limit :])  # boundary indices kept
    out: list[Shot] = []
    longest: Shot | None = None
    for i, shot in enumerate(shots):
        if i == 0 or i in keep:
            if out:
                out[-1] = replace(out[-1], key_time=longest.key_time, key_file=longest.key_file)
            out.append(shot)
            longest = shot
        else:
            out[-1] = replace(out[-1], end=shot.end)
            if shot.end - shot.start > longest.end - longest.start:
                longest = shot
    out[-1] = replace(out[-1], key_time=longest.key_time, key_file=longest.key_file)
    return out


@dataclass
class ShotsResult:
    shots: list[Shot]  # every shot (chapters use these boundaries)
    key_frames: list[Shot]  # at most max_key_frames stretches with their key frames
    stats: FrameStats


def max_shot_seconds(duration: float, config: VideoConfig) -> float:
    if config.max_shot_s > 0:
        return config.max_shot_s
    return max(30.0, duration / config.max_key_frames)


def shots_stage(
    path: str | Path,
    info: VideoInfo,
    config: VideoConfig,
    folder: Path,
    stop: threading.Event | None = None,
) -> Generator[tuple[float, str], None, ShotsResult]:
    """Decode, detect shots, save key frames into ``folder``; yields (fraction, detail)."""
    from PIL import Image

    def save(t: float, pixels: Any) -> str:
        name = f"key-{round(t * 1000):09d}.jpg"
        Image.fromarray(pixels).save(folder / name, quality=88)
        return name

    stats = FrameStats()
    detector: ShotDetector | None = None
    for sample in sample_frames(path, info, config, stop, stats):
        if stats.sampled % 500 == 0:
            trim_free_memory()
        if detector is None:
            detector = ShotDetector(
                config, stats.interval, max_shot_seconds(info.duration, config), save
            )
        detector.feed(sample)
        if info.duration > 0:
            yield min(1.0, sample.time / info.duration), f"{sample.time:.0f} s decoded"
    if detector is None:
        return ShotsResult([], [], stats)
    built = merge_similar(detector.finish(picture_end(stats, info)), config.merge_distance)
    shots = [b.shot for b in built]
    key_frames = strongest(shots, config.max_key_frames)
    used = {s.key_file for s in key_frames}
    for s in shots:
        if s.key_file not in used:
            (folder / s.key_file).unlink(missing_ok=True)
    return ShotsResult(shots, key_frames, stats)
