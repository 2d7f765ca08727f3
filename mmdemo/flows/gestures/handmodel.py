"""A kinematic model of a right hand that poses fingers and returns MediaPipe's 21 landmarks.

Used only to make training data for the built-in classifier (no image, no camera). Bone
lengths and knuckle positions are adult averages in centimetres (hand length ~19 cm; phalanx
ratios after Buchholz et al. 1992, "Anthropometric data for describing the kinematics of the
human hand"). Frame: palm facing the camera, fingers along +Y, thumb towards +X, +Z towards
the camera. Everything is vectorised over N hands.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# MediaPipe landmark indices
WRIST = 0
THUMB = (1, 2, 3, 4)  # CMC, MCP, IP, TIP
FINGERS = ((5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20))  # MCP, PIP, DIP, TIP
TIPS = (4, 8, 12, 16, 20)
# Skeleton edges, as MediaPipe draws them
EDGES = (
    (0, 1), (1, 2), (2, 3), (3, 4),
    (0, 5), (5, 6), (6, 7), (7, 8),
    (5, 9), (9, 10), (10, 11), (11, 12),
    (9, 13), (13, 14), (14, 15), (15, 16),
    (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
)  # fmt: skip

# Knuckles (MCP) of index, middle, ring, little finger; thumb base (CMC)
MCP = np.array([[2.3, 8.4, 0.0], [0.5, 8.7, 0.0], [-1.3, 8.3, 0.0], [-2.9, 7.4, 0.0]])
CMC = np.array([2.2, 2.3, 0.8])
# proximal, middle, distal phalanx of each finger; thumb metacarpal, proximal, distal
PHALANX = np.array([[3.9, 2.3, 1.8], [4.3, 2.8, 1.9], [4.0, 2.7, 1.9], [3.2, 2.0, 1.7]])
THUMB_BONES = np.array([4.2, 3.0, 2.4])
# Direction of each finger in the palm plane at rest (degrees from +Y towards +X) and how far
# each one moves when the hand spreads.
FINGER_ANGLE = np.array([8.0, 0.0, -6.0, -14.0])
SPREAD_ANGLE = np.array([10.0, 2.0, -8.0, -16.0])


@dataclass
class HandPose:
    """Joint angles for N hands, degrees. Arrays of shape (N, 4) for the fingers
    (index, middle, ring, little), (N,) for the rest."""

    flex: np.ndarray  # (N, 4, 3): MCP, PIP, DIP flexion (towards the palm)
    abduct: np.ndarray  # (N, 4): extra sideways angle per finger (+ towards the thumb)
    thumb_alpha: np.ndarray  # (N,) thumb metacarpal in the palm plane, from +Y towards +X
    thumb_beta: np.ndarray  # (N,) thumb metacarpal out of the palm plane (palmar abduction)
    thumb_twist: np.ndarray  # (N,) rotation of the thumb's bending plane about its axis
    thumb_flex: np.ndarray  # (N, 2): thumb MCP and IP flexion
    arch: np.ndarray  # (N,) palm arch 0..1 (ring and little knuckles come forward)
    size: np.ndarray  # (N,) overall scale
    proportions: np.ndarray  # (N, 21) per-bone length jitter (multiplicative)


def _bend(d: np.ndarray, n: np.ndarray, angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotate direction ``d`` towards ``n`` by ``angle`` (radians); the frame turns with it."""
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    return c * d + s * n, c * n - s * d


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def forward(pose: HandPose) -> np.ndarray:
    """(N, 21, 3) landmark positions in the hand frame (centimetres)."""
    n = pose.flex.shape[0]
    rad = np.radians
    out = np.zeros((n, 21, 3))
    scale = pose.size[:, None]
    jit = pose.proportions
    for f, (mcp_i, *_rest) in enumerate(FINGERS):
        base = MCP[f] * np.array([1.0, 1.0, 1.0])
        m = np.repeat(base[None], n, 0)
        m[:, 2] += pose.arch * (0.0, 0.0, 0.4, 1.0)[f]
        m[:, 1] -= pose.arch * (0.0, 0.0, 0.1, 0.3)[f]
        angle = rad(FINGER_ANGLE[f] + pose.abduct[:, f])
        d = np.stack([np.sin(angle), np.cos(angle), np.zeros(n)], -1)
        nrm = np.repeat(np.array([[0.0, 0.0, 1.0]]), n, 0)
        points = [m]
        p = m
        for j in range(3):
            d, nrm = _bend(d, nrm, rad(pose.flex[:, f, j]))
            length = PHALANX[f, j] * jit[:, mcp_i + j]
            p = p + length[:, None] * d
            points.append(p)
        out[:, FINGERS[f]] = np.stack(points, 1)
    # thumb
    alpha, beta = rad(pose.thumb_alpha), rad(pose.thumb_beta)
    d = np.stack([np.sin(alpha) * np.cos(beta), np.cos(alpha) * np.cos(beta), np.sin(beta)], -1)
    across = np.stack([-np.cos(alpha), np.sin(alpha), np.zeros(n)], -1)
    toward_palm = np.repeat(np.array([[0.0, 0.0, -1.0]]), n, 0)
    nrm = np.cos(beta)[:, None] * across + np.sin(beta)[:, None] * toward_palm
    nrm = _unit(nrm - (nrm * d).sum(-1, keepdims=True) * d)
    # twist the bending plane about the thumb's axis
    side = np.cross(d, nrm)
    t = rad(pose.thumb_twist)[:, None]
    nrm = np.cos(t) * nrm + np.sin(t) * side
    c = np.repeat(CMC[None], n, 0)
    mcp = c + (THUMB_BONES[0] * jit[:, 1])[:, None] * d
    d, nrm = _bend(d, nrm, rad(pose.thumb_flex[:, 0]))
    ip = mcp + (THUMB_BONES[1] * jit[:, 2])[:, None] * d
    d, nrm = _bend(d, nrm, rad(pose.thumb_flex[:, 1]))
    tip = ip + (THUMB_BONES[2] * jit[:, 3])[:, None] * d
    out[:, THUMB] = np.stack([c, mcp, ip, tip], 1)
    return out * scale[:, None]


def rotation(roll: np.ndarray, yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations: pitch about X, then yaw about Y, then roll about the camera axis."""
    r, y, p = np.radians(roll), np.radians(yaw), np.radians(pitch)
    n = r.shape[0]
    one, zero = np.ones(n), np.zeros(n)
    rx = np.stack(
        [one, zero, zero, zero, np.cos(p), -np.sin(p), zero, np.sin(p), np.cos(p)], -1
    ).reshape(n, 3, 3)
    ry = np.stack(
        [np.cos(y), zero, np.sin(y), zero, one, zero, -np.sin(y), zero, np.cos(y)], -1
    ).reshape(n, 3, 3)
    rz = np.stack(
        [np.cos(r), -np.sin(r), zero, np.sin(r), np.cos(r), zero, zero, zero, one], -1
    ).reshape(n, 3, 3)
    return rz @ ry @ rx


def to_image(points: np.ndarray, rot: np.ndarray, focal: np.ndarray | None = None) -> np.ndarray:
    """Rotate hands into view and project them like MediaPipe's landmarks: x right, y down,
    z (relative depth, negative towards the camera) on the same scale as x, wrist at 0."""
    centred = points - points[:, :1]
    view = np.einsum("nij,nkj->nki", rot, centred)
    if focal is not None:  # weak perspective: nearer points spread a little
        view = view * (focal[:, None, None] / (focal[:, None, None] - view[..., 2:3]))
    return np.stack([view[..., 0], -view[..., 1], -view[..., 2]], -1)
