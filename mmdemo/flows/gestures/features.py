"""Landmarks -> the feature vector every gesture classifier reads.

Normalised so that the same hand shape gives the same features anywhere in any picture:
pixel-square coordinates, wrist at the origin, divided by the palm's size, left hands mirrored
into right hands. Orientation is kept on purpose: thumbs up and thumbs down differ only by it.
"""

from __future__ import annotations

import numpy as np

from mmdemo.flows.gestures.handmodel import FINGERS, THUMB, TIPS

FEATURE_VERSION = 1
_CHAINS = [(0, *THUMB), *[(0, *f) for f in FINGERS]]
_BENDS = [(c[i], c[i + 1], c[i + 2]) for c in _CHAINS for i in range(3)]
_TIP_PAIRS = [(a, b) for i, a in enumerate(TIPS) for b in TIPS[i + 1 :]]
_THUMB_TO = [(4, 5), (4, 6), (4, 10)]  # thumb tip to index knuckle, index PIP, middle PIP
FEATURE_SIZE = 60 + len(_BENDS) + len(_TIP_PAIRS) + len(_THUMB_TO)


def normalise(
    landmarks: np.ndarray, width: float = 1.0, height: float = 1.0, left: bool | np.ndarray = False
) -> np.ndarray:
    """(N, 21, 3) or (21, 3) MediaPipe landmarks -> wrist-origin, palm-size units, mirrored
    to a right hand where ``left``."""
    pts = np.asarray(landmarks, dtype=np.float64)
    single = pts.ndim == 2
    pts = pts[None] if single else pts
    pts = pts * np.array([width, height, width], dtype=np.float64)
    pts = pts - pts[:, :1]
    palm = np.linalg.norm(pts[:, [5, 9, 13, 17]], axis=-1).mean(-1)
    palm = palm + 0.5 * np.linalg.norm(pts[:, 5] - pts[:, 17], axis=-1)
    pts = pts / np.maximum(palm, 1e-9)[:, None, None]
    mirror = np.broadcast_to(np.asarray(left, dtype=bool), (len(pts),))
    pts[mirror, :, 0] *= -1
    return pts[0] if single else pts


def features(points: np.ndarray) -> np.ndarray:
    """(N, 21, 3) normalised landmarks -> (N, FEATURE_SIZE) float32."""
    pts = np.asarray(points, dtype=np.float64)
    single = pts.ndim == 2
    pts = pts[None] if single else pts
    coords = pts[:, 1:].reshape(len(pts), -1)
    idx = np.array(_BENDS)
    u = pts[:, idx[:, 1]] - pts[:, idx[:, 0]]
    v = pts[:, idx[:, 2]] - pts[:, idx[:, 1]]
    cos = (u * v).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1) + 1e-9)
    pairs = np.array(_TIP_PAIRS + _THUMB_TO)
    dist = np.linalg.norm(pts[:, pairs[:, 0]] - pts[:, pairs[:, 1]], axis=-1)
    out = np.concatenate([coords, cos, dist], -1).astype(np.float32)
    return out[0] if single else out


def augment(
    rng: np.random.Generator, pts: np.ndarray, copies: int, tilt: float = 15.0
) -> np.ndarray:
    """``copies`` of each normalised hand (N, 21, 3), tilted up to ``tilt`` degrees either
    way, rescaled, jittered and (half of them) mirrored."""
    reps = np.repeat(pts, copies, 0)
    angle = np.radians(rng.uniform(-tilt, tilt, len(reps)))
    c, s = np.cos(angle), np.sin(angle)
    x, y = reps[..., 0].copy(), reps[..., 1].copy()
    reps[..., 0] = c[:, None] * x - s[:, None] * y
    reps[..., 1] = s[:, None] * x + c[:, None] * y
    reps *= rng.uniform(0.9, 1.1, (len(reps), 1, 1))
    reps += rng.normal(0, 0.025, reps.shape)
    flip = rng.random(len(reps)) < 0.5
    reps[flip, :, 0] *= -1
    return reps
