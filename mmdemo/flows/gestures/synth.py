"""Training data for the built-in classifier, made offline from the kinematic hand model.

Every family of ``poses.FAMILIES`` is posed with random joint angles inside its ranges, seen
from random views, projected like MediaPipe's landmarks and named by its rule. "none" gets
hand shapes no class uses (random finger/thumb state mixes) and in-between poses half-way
from one shape to another, minus any that happen to fall inside a class's ranges. Then
landmark noise, depth noise and mirroring (a wrongly reported handedness) are added.
No image and no emoji is involved, so the benchmark's pictures stay unseen.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np

from mmdemo.flows.gestures.handmodel import HandPose, forward, rotation, to_image
from mmdemo.flows.gestures.poses import (
    FAMILIES,
    FINGER_STATES,
    THUMB_STATES,
    Family,
    sample_pose,
    sample_view,
)

STATE_NAMES = ("ext", "curl", "half", "hook")
THUMB_NAMES = ("out", "wide", "across", "palm", "along", "oppose", "tuck")
MARGIN = 10.0  # degrees: a "none" pose this close to a class's ranges is dropped


def _project(rng: np.random.Generator, pose: HandPose, views: str, roll: float) -> np.ndarray:
    n = len(pose.flex)
    r, y, p = sample_view(rng, n, views, roll)
    focal = rng.uniform(25, 80, n)  # camera distance in cm: mild perspective
    return to_image(forward(pose), rotation(r, y, p), focal)


def _palm(lm: np.ndarray) -> np.ndarray:
    return np.linalg.norm(lm[:, 9] - lm[:, 0], axis=-1)


def family_samples(rng: np.random.Generator, family: Family, n: int) -> tuple[np.ndarray, list]:
    """Up to ``n`` labelled hands of one family (landmarks (M, 21, 3), class names)."""
    thumbs = family.thumb if isinstance(family.thumb, str) else list(rng.choice(family.thumb, n))
    pose = sample_pose(rng, family.fingers, thumbs, n, family.spread, family.abduct)
    lm = _project(rng, pose, family.views, family.roll)
    labels = family.label(lm)
    keep = labels != ""
    for cond, closer in ((family.touch, True), (family.apart, False)):
        if cond is not None:
            a, b, limit = cond
            d = np.linalg.norm(forward(pose)[:, a] - forward(pose)[:, b], axis=-1)
            d = d / np.linalg.norm(forward(pose)[:, 9] - forward(pose)[:, 0], axis=-1)
            keep &= (d < limit) if closer else (d > limit)
    return lm[keep], list(labels[keep])


def _inside(pose: HandPose, i: int, family: Family) -> bool:
    """Whether hand ``i``'s joint angles fall within ``family``'s ranges (give or take)."""
    for f, state in enumerate(family.fingers):
        for j, (lo, hi) in enumerate(FINGER_STATES[state]):
            if not lo - MARGIN <= pose.flex[i, f, j] <= hi + MARGIN:
                return False
    values = (pose.thumb_alpha[i], pose.thumb_beta[i], None, *pose.thumb_flex[i])
    states = (family.thumb,) if isinstance(family.thumb, str) else family.thumb
    return any(
        all(
            v is None or lo - MARGIN <= v <= hi + MARGIN
            for v, (lo, hi) in zip(values, THUMB_STATES[s], strict=True)
        )
        for s in states
    )


def none_samples(rng: np.random.Generator, n: int) -> np.ndarray:
    """Hands that are none of the classes: unused state mixes and in-between poses."""
    half = n // 2
    fingers = [tuple(rng.choice(STATE_NAMES, 4)) for _ in range(half)]
    thumbs = list(rng.choice(THUMB_NAMES, half))
    mixes = sample_pose(rng, fingers, thumbs, half, (0.0, 1.0))
    names = list(FAMILIES)
    a = [FAMILIES[str(k)] for k in rng.choice(names, n - half)]
    b = [FAMILIES[str(k)] for k in rng.choice(names, n - half)]
    pa = sample_pose(rng, [f.fingers for f in a], [_one(rng, f.thumb) for f in a], n - half)
    pb = sample_pose(rng, [f.fingers for f in b], [_one(rng, f.thumb) for f in b], n - half)
    t = rng.uniform(0.35, 0.65, n - half)
    between = _blend(pa, pb, t)
    pose = _concat(mixes, between)
    keep = np.array([not any(_inside(pose, i, fam) for fam in FAMILIES.values()) for i in range(n)])
    pose = _select(pose, keep)
    return _project(rng, pose, "any", 60.0)


def _one(rng: np.random.Generator, thumb: str | tuple[str, ...]) -> str:
    return thumb if isinstance(thumb, str) else str(rng.choice(thumb))


def _blend(a: HandPose, b: HandPose, t: np.ndarray) -> HandPose:
    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        w = t.reshape((-1,) + (1,) * (x.ndim - 1))
        return (1 - w) * x + w * y

    return HandPose(*(mix(getattr(a, k), getattr(b, k)) for k in a.__dataclass_fields__))


def _concat(a: HandPose, b: HandPose) -> HandPose:
    fields = a.__dataclass_fields__
    return HandPose(*(np.concatenate([getattr(a, k), getattr(b, k)]) for k in fields))


def _select(pose: HandPose, keep: np.ndarray) -> HandPose:
    return replace(pose, **{k: getattr(pose, k)[keep] for k in pose.__dataclass_fields__})


def augment(rng: np.random.Generator, lm: np.ndarray) -> np.ndarray:
    """Landmark noise like a real detector's: jitter, depth noise and scale, mirroring."""
    lm = lm.copy()
    palm = _palm(lm)[:, None, None]
    noise = rng.uniform(0.005, 0.03, (len(lm), 1, 1)) * palm
    lm[..., :2] += rng.normal(0, 1, lm[..., :2].shape) * noise
    lm[..., 2] *= rng.uniform(0.3, 1.2, (len(lm), 1))
    lm[..., 2] += rng.normal(0, 1, lm[..., 2].shape) * noise[..., 0]
    flip = rng.random(len(lm)) < 0.5
    lm[flip, :, 0] *= -1
    return lm


def make_dataset(
    seed: int = 0, per_class: int = 2000, none_factor: float = 3.0
) -> tuple[np.ndarray, list[str]]:
    """Balanced landmarks (N, 21, 3) in image units (wrist at 0) and their class names."""
    rng = np.random.default_rng(seed)
    parts, labels = [], []
    counts: Counter = Counter()
    for family in FAMILIES.values():
        classes = [c for c in family.label.classes if c != "none"]  # type: ignore[attr-defined]
        for _ in range(40):  # shapes with a contact condition are kept rarely: draw again
            if all(counts[c] >= per_class for c in classes):
                break
            lm, names = family_samples(rng, family, int(per_class * len(classes) * family.weight))
            parts.append(lm)
            labels += names
            counts.update(names)
    lm = np.concatenate(parts)
    labels_arr = np.array(labels, dtype=object)
    none_from_views = counts.get("none", 0)
    extra = int(per_class * none_factor) - min(none_from_views, per_class)
    none_lm = none_samples(rng, int(extra * 1.3))
    lm = np.concatenate([lm, none_lm])
    labels_arr = np.concatenate([labels_arr, np.array(["none"] * len(none_lm), dtype=object)])
    keep = []
    for name in sorted(set(labels_arr)):
        idx = np.flatnonzero(labels_arr == name)
        cap = int(per_class * none_factor) if name == "none" else per_class
        keep.append(rng.permutation(idx)[:cap])
    order = rng.permutation(np.concatenate(keep))
    return augment(rng, lm[order]), [str(x) for x in labels_arr[order]]
