"""Moving gestures (wave, swipe left, swipe right) from a sliding window of landmarks.

Each frame gives three signals of the tracked hand: its horizontal and vertical shift and its
tilt change since the window began, in palm lengths (tilt in radians). The window is resampled
to a fixed rate and compared by dynamic time warping (DTW) with templates made from a motion
model (sinusoidal waves of a few amplitudes and speeds, eased swipes of a few lengths); the
nearest template names the gesture when its normalised distance is small enough, else nothing.
"Left" and "right" are as seen in the picture.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

MOVING = ("wave", "swipe_left", "swipe_right")


@dataclass(frozen=True)
class MotionConfig:
    """Sliding-window settings."""

    window_s: float = 1.6  # seconds of motion compared with the templates
    rate_hz: float = 15.0  # the window is resampled to this rate
    max_distance: float = 0.45  # match when DTW distance / template energy is below this
    gap_s: float = 0.4  # a hand missing this long starts the window afresh
    min_frames: int = 6  # fewer tracked frames than this in the window: no decision

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.rate_hz <= 0 or not 0 < self.max_distance < 1:
            raise ValueError("window_s and rate_hz must be positive, max_distance in (0, 1)")

    @property
    def steps(self) -> int:
        return max(4, round(self.window_s * self.rate_hz))


@dataclass(frozen=True)
class MotionEvent:
    """A moving gesture that just ended."""

    gesture: str
    confidence: float
    start: float  # seconds
    end: float


def _ease(u: np.ndarray) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(u, 0, 1))


def templates(config: MotionConfig) -> list[tuple[str, np.ndarray]]:
    """(gesture, (steps, 3) signal) pairs: dx, dy in palm lengths, tilt in radians."""
    t = np.linspace(0, config.window_s, config.steps)
    out = []
    zero = np.zeros_like(t)
    for freq in (1.5, 2.2, 3.0):
        for amp in (0.5, 0.9, 1.5):  # side-to-side waves
            for phase in (0.0, np.pi):
                dx = amp * np.sin(2 * np.pi * freq * t + phase) - amp * np.sin(phase)
                out.append(("wave", np.stack([dx, zero, zero], -1)))
        for tilt in (0.35, 0.6):  # waves that swing the hand about the wrist
            swing = tilt * np.sin(2 * np.pi * freq * t)
            out.append(("wave", np.stack([0.4 * swing, zero, swing], -1)))
    for length in (2.0, 3.5, 5.0):
        for start, dur in ((0.1, 0.5), (0.3, 0.8), (0.0, 1.2)):
            dx = length * _ease((t - start) / dur)
            out.append(("swipe_right", np.stack([dx, zero, zero], -1)))
            out.append(("swipe_left", np.stack([-dx, zero, zero], -1)))
    return out


def dtw(a: np.ndarray, b: np.ndarray, band: int) -> np.ndarray:
    """Dynamic time warping distances (L1 per step, Sakoe-Chiba band) between one signal
    ``a`` (n, c) and each of the templates ``b`` (T, m, c); computed an anti-diagonal at a time
    so every template and every cell of a diagonal go at once."""
    b = np.asarray(b)
    n, m = len(a), b.shape[1]
    cost = np.abs(a[None, :, None, :] - b[:, None, :, :]).sum(-1)  # (T, n, m)
    acc = np.full((len(b), n + 1, m + 1), np.inf)
    acc[:, 0, 0] = 0.0
    for k in range(2, n + m + 1):
        i = np.arange(max(1, k - m), min(n, k - 1) + 1)
        j = k - i
        ok = np.abs(i - j) <= band
        i, j = i[ok], j[ok]
        if len(i):
            prev = np.minimum(np.minimum(acc[:, i - 1, j], acc[:, i, j - 1]), acc[:, i - 1, j - 1])
            acc[:, i, j] = cost[:, i - 1, j - 1] + prev
    return acc[:, n, m]


def hand_signal(landmarks: np.ndarray, width: float, height: float) -> tuple[np.ndarray, float]:
    """(palm centre in pixels (2,), palm length in pixels) from image landmarks (21, 3)."""
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2] * np.array([width, height])
    centre = pts[[0, 5, 9, 13, 17]].mean(0)
    return centre, float(np.linalg.norm(pts[9] - pts[0]))


@dataclass
class MotionTracker:
    """Feed one frame at a time; get a ``MotionEvent`` when a moving gesture completes."""

    config: MotionConfig = field(default_factory=MotionConfig)
    _frames: deque = field(default_factory=deque, init=False)
    _names: list = field(default_factory=list, init=False)
    _bank: np.ndarray = field(default=None, init=False)  # type: ignore[assignment]
    _energy: np.ndarray = field(default=None, init=False)  # type: ignore[assignment]
    _armed: bool = field(default=True, init=False)  # False from an event until the hand rests

    def __post_init__(self) -> None:
        pairs = templates(self.config)
        self._names = [name for name, _ in pairs]
        self._bank = np.stack([tpl for _, tpl in pairs])
        self._energy = np.abs(self._bank).sum((1, 2)) + 1e-9

    def reset(self) -> None:
        self._frames.clear()
        self._armed = True

    def feed(
        self, time_s: float, landmarks: np.ndarray | None, width: float = 1.0, height: float = 1.0
    ) -> MotionEvent | None:
        """One frame: the tracked hand's image landmarks (21, 3), or None if no hand."""
        frames = self._frames
        if frames and time_s - frames[-1][0] > self.config.gap_s:
            self.reset()
        if landmarks is None:
            return None
        centre, palm = hand_signal(landmarks, width, height)
        pts = np.asarray(landmarks)[:, :2] * np.array([width, height])
        axis = pts[9] - pts[0]
        tilt = float(np.arctan2(axis[0], -axis[1]))
        frames.append((time_s, centre, palm, tilt))
        while frames and time_s - frames[0][0] > self.config.window_s:
            frames.popleft()
        if not self._armed:
            if self._resting():  # the next motion starts from here
                self._armed = True
                while len(frames) > 1 and time_s - frames[0][0] > 0.3:
                    frames.popleft()
            return None
        event = self._classify()
        if event is not None:
            self._armed = False  # one motion, one event
        return event

    def _resting(self, span_s: float = 0.3) -> bool:
        """Whether the hand has held still for the last ``span_s`` seconds."""
        frames = list(self._frames)
        recent = [f for f in frames if f[0] >= frames[-1][0] - span_s]
        if len(recent) < 2 or recent[-1][0] - recent[0][0] < span_s * 0.6:
            return False
        centre = np.array([f[1] for f in recent])
        palm = float(np.median([f[2] for f in recent])) or 1.0
        moved = np.linalg.norm(centre - centre[0], axis=-1).max() / palm
        turned = np.ptp(np.unwrap([f[3] for f in recent]))
        return bool(moved < 0.25 and turned < 0.15)

    def _classify(self) -> MotionEvent | None:
        cfg = self.config
        frames = list(self._frames)
        if len(frames) < cfg.min_frames:
            return None
        times = np.array([f[0] for f in frames])
        if times[-1] - times[0] < 0.6 * cfg.window_s:
            return None
        palm = float(np.median([f[2] for f in frames])) or 1.0
        centre = np.array([f[1] for f in frames])
        tilt = np.unwrap(np.array([f[3] for f in frames]))
        raw = np.column_stack(
            [(centre - centre[0]) / palm, (tilt - tilt[0])[:, None]]
        )  # dx, dy, tilt
        if np.abs(raw[:, :2]).max() < 0.4 and np.abs(raw[:, 2]).max() < 0.2:
            return None  # the hand hardly moved: nothing to compare
        grid = np.linspace(times[-1] - cfg.window_s, times[-1], cfg.steps)
        signal = np.stack([np.interp(grid, times, raw[:, k]) for k in range(3)], -1)
        dist = dtw(signal, self._bank, max(2, cfg.steps // 4)) / self._energy
        best = int(np.argmin(dist))
        if dist[best] >= cfg.max_distance:
            return None
        return MotionEvent(
            self._names[best], float(1.0 - dist[best]), float(times[0]), float(times[-1])
        )
