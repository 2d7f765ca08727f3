"""Hand shapes of the built-in classes, as joint-angle ranges for the kinematic hand model.

A *family* is one hand shape (finger and thumb states) seen from a range of views; a rule on
the projected landmarks names the class, so one shape can be two classes by orientation
(thumbs up / thumbs down, U / H, G / Q, K / P) and "none" when it points elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mmdemo.flows.gestures.handmodel import HandPose

# Finger states: (MCP, PIP, DIP) flexion ranges in degrees
FINGER_STATES: dict[str, tuple[tuple[float, float], ...]] = {
    "ext": ((-10, 15), (0, 15), (0, 10)),  # straight
    # in a fist; the landmarker often folds a curled finger at the middle joint alone
    "curl": ((20, 95), (90, 160), (5, 75)),
    "half": ((15, 45), (25, 60), (10, 40)),  # curved, as in C
    "ocurl": ((35, 60), (45, 80), (20, 45)),  # curved further, tips meet the thumb (O, OK)
    "hook": ((-10, 20), (60, 95), (40, 80)),  # X
    "ecurl": ((10, 35), (95, 120), (60, 85)),  # E: tips folded down onto the thumb
}
# Thumb states: alpha (in the palm plane), beta (out of it), twist, MCP flexion, IP flexion
THUMB_STATES: dict[str, tuple[tuple[float, float], ...]] = {
    "out": ((45, 80), (10, 40), (-15, 15), (0, 20), (0, 20)),  # open hand, I-love-you
    "wide": ((65, 95), (5, 35), (-15, 15), (0, 15), (0, 15)),  # L, Y: at a right angle
    "up": ((20, 100), (0, 45), (-15, 15), (0, 20), (0, 25)),  # thumbs up: straight, away
    "relaxed": ((20, 50), (15, 50), (-15, 15), (0, 30), (0, 30)),  # pointing: loosely by
    "along": ((0, 15), (5, 25), (-10, 10), (5, 25), (0, 20)),  # A: beside the index knuckle
    "across": ((15, 40), (45, 75), (-15, 15), (30, 60), (15, 45)),  # over curled fingers (S)
    "palm": ((0, 25), (25, 55), (-15, 15), (45, 75), (20, 50)),  # B: folded onto the palm
    "oppose": ((20, 45), (45, 80), (-20, 20), (0, 30), (0, 35)),  # C, O: facing the fingers
    "tuck": ((5, 25), (35, 65), (-15, 15), (45, 75), (35, 70)),  # E: under the fingertips
    "parallel": ((10, 30), (15, 40), (-15, 15), (0, 15), (0, 15)),  # G: beside the index
    "between": ((10, 30), (35, 65), (-15, 15), (0, 25), (0, 25)),  # K, P: between two fingers
}


@dataclass(frozen=True)
class Family:
    """One hand shape, the views it is seen from, and the rule that names it."""

    fingers: tuple[str, str, str, str]  # index, middle, ring, little
    thumb: str | tuple[str, ...]  # one state, or several to draw from
    label: Callable[[np.ndarray], np.ndarray]  # (N, 21, 3) image landmarks -> class names
    spread: tuple[float, float] = (0.0, 0.6)  # 0: fingers together, 1: spread wide
    views: str = "front"  # front | side | any
    roll: float = 30.0  # std of the in-plane tilt (degrees); 180 means any tilt
    abduct: tuple[tuple[float, float], ...] | None = None  # per-finger override (degrees)
    touch: tuple[int, int, float] | None = None  # landmarks a, b closer than d (palm lengths)
    apart: tuple[int, int, float] | None = None  # landmarks a, b farther apart than d
    weight: float = 1.0  # relative number of samples
    classes: tuple[str, ...] = field(default=())  # the classes ``label`` can return


def angle_from_up(lm: np.ndarray, a: int, b: int) -> np.ndarray:
    """Degrees between image-up and the landmark vector a -> b (0 up, 180 down)."""
    v = lm[:, b, :2] - lm[:, a, :2]
    return np.degrees(np.arccos(np.clip(-v[:, 1] / (np.linalg.norm(v, axis=-1) + 1e-9), -1, 1)))


def by_direction(a: int, b: int, zones: list[tuple[float, float, str]]) -> Callable:
    """A rule naming the class by the direction of a -> b; outside every zone: "" (dropped)."""

    def rule(lm: np.ndarray) -> np.ndarray:
        ang = angle_from_up(lm, a, b)
        out = np.full(len(lm), "", dtype=object)
        for lo, hi, name in zones:
            out[(ang >= lo) & (ang < hi)] = name
        return out

    rule.classes = tuple(z[2] for z in zones)  # type: ignore[attr-defined]
    return rule


def upright(name: str, limit: float = 50.0) -> Callable:
    """The class when the hand points up (wrist -> middle knuckle within ``limit``)."""
    return by_direction(0, 9, [(0, limit, name)])


C_, E_, X_ = "curl", "ext", "hook"
FAMILIES: dict[str, Family] = {
    "open": Family((E_,) * 4, "out", upright("open_palm", 80), spread=(0.3, 1.0), views="any"),
    "fist": Family((C_,) * 4, "across", upright("fist", 100), views="any", roll=35, weight=1.5),
    "thumb": Family(
        (C_,) * 4,
        "up",
        by_direction(2, 4, [(0, 45, "thumbs_up"), (60, 120, "none"), (135, 181, "thumbs_down")]),
        views="any",
        roll=180,
        weight=3,
    ),
    "point": Family(
        (E_, C_, C_, C_),
        ("across", "relaxed", "along"),
        by_direction(5, 8, [(0, 45, "pointing_up"), (60, 181, "none")]),
        views="any",
        roll=180,
        weight=2,
    ),
    "victory": Family(
        (E_, E_, C_, C_),
        "across",
        by_direction(0, 9, [(0, 60, "victory"), (135, 181, "none")]),
        abduct=((8, 18), (-14, -6), (-5, 5), (-5, 5)),
        views="any",
        roll=60,
    ),
    "ily": Family((E_, C_, C_, E_), "out", upright("i_love_you", 90), views="any"),
    "call": Family((C_, C_, C_, E_), "wide", upright("call_me", 120), views="any", roll=60),
    "ok": Family(
        ("ocurl", E_, E_, E_),
        "oppose",
        upright("ok", 70),
        spread=(0.2, 1.0),
        touch=(4, 8, 0.22),
        views="any",
    ),
    "A": Family((C_,) * 4, "along", upright("A", 45)),
    "B": Family((E_,) * 4, "palm", upright("B", 50), spread=(0.0, 0.15)),
    "C": Family(("half",) * 4, "oppose", upright("C", 50), (0.0, 0.2), "side", apart=(4, 8, 0.3)),
    "E": Family(("ecurl",) * 4, "tuck", upright("E", 50)),
    "G": Family(
        (E_, C_, C_, C_),
        "parallel",
        by_direction(5, 8, [(60, 120, "G"), (140, 181, "Q")]),
        views="any",
        roll=180,
    ),
    "U": Family(
        (E_, E_, C_, C_),
        "across",
        by_direction(5, 8, [(0, 45, "U"), (60, 120, "H")]),
        abduct=((-4, 2), (-2, 4), (-5, 5), (-5, 5)),
        roll=180,
    ),
    "I": Family((C_, C_, C_, E_), "across", upright("I", 50)),
    "K": Family(
        (E_, E_, C_, C_),
        "between",
        by_direction(0, 9, [(0, 50, "K"), (130, 181, "P")]),
        abduct=((6, 14), (-12, -4), (-5, 5), (-5, 5)),
        roll=180,
    ),
    "L": Family((E_, C_, C_, C_), "wide", by_direction(5, 8, [(0, 50, "L")]), roll=25),
    "O": Family(("ocurl",) * 4, "oppose", upright("O", 60), (0.0, 0.2), "side", touch=(4, 8, 0.2)),
    "R": Family(
        (E_, E_, C_, C_),
        "across",
        upright("R", 50),
        abduct=((-16, -10), (10, 16), (-5, 5), (-5, 5)),
    ),
    "W": Family((E_, E_, E_, C_), "across", upright("W", 50), spread=(0.5, 1.0)),
    "X": Family((X_, C_, C_, C_), "across", upright("X", 50)),
}


def _uniform(rng: np.random.Generator, lo_hi: tuple[float, float], n: int) -> np.ndarray:
    return rng.uniform(lo_hi[0], lo_hi[1], n)


def sample_pose(
    rng: np.random.Generator,
    fingers: list[tuple[str, ...]] | tuple[str, ...],
    thumbs: list[str] | str,
    n: int,
    spread: tuple[float, float] = (0.0, 0.6),
    abduct: tuple[tuple[float, float], ...] | None = None,
) -> HandPose:
    """Joint angles for ``n`` hands; ``fingers``/``thumbs`` may be per-sample lists."""
    if isinstance(fingers, tuple):
        fingers = [fingers] * n
    if isinstance(thumbs, str):
        thumbs = [thumbs] * n
    flex = np.zeros((n, 4, 3))
    for i, states in enumerate(fingers):
        for f, state in enumerate(states):
            for j, (lo, hi) in enumerate(FINGER_STATES[state]):
                flex[i, f, j] = rng.uniform(lo, hi)
    thumb = np.array([[rng.uniform(*r) for r in THUMB_STATES[t]] for t in thumbs])
    from mmdemo.flows.gestures.handmodel import SPREAD_ANGLE

    s = _uniform(rng, spread, n)
    ab = s[:, None] * SPREAD_ANGLE[None] + rng.normal(0, 2.0, (n, 4))
    if abduct is not None:
        ab = np.stack([_uniform(rng, r, n) for r in abduct], -1)
    # curled fingers lie together whatever the spread
    curled = np.array([[st != "ext" for st in states] for states in fingers])
    ab = np.where(curled, rng.normal(0, 2.0, (n, 4)), ab)
    return HandPose(
        flex=flex,
        abduct=ab,
        thumb_alpha=thumb[:, 0],
        thumb_beta=thumb[:, 1],
        thumb_twist=thumb[:, 2],
        thumb_flex=thumb[:, 3:5],
        arch=rng.uniform(0, 1, n),
        size=rng.uniform(0.85, 1.15, n),
        proportions=rng.normal(1.0, 0.05, (n, 21)),
    )


def sample_view(
    rng: np.random.Generator, n: int, views: str, roll_std: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(roll, yaw, pitch) in degrees for ``n`` hands."""
    if roll_std >= 180:
        roll = rng.uniform(-180, 180, n)
    else:
        roll = np.clip(rng.normal(0, roll_std, n), -2 * roll_std, 2 * roll_std)
    if views == "front":
        yaw = rng.normal(0, 20, n)
    elif views == "side":
        yaw = rng.choice([-1.0, 1.0], n) * rng.uniform(35, 110, n)
    else:
        yaw = rng.uniform(-75, 75, n)
    back = rng.random(n) < 0.3  # seen from the back of the hand
    yaw = np.where(back, yaw + 180, yaw)
    pitch = np.clip(rng.normal(0, 20, n), -50, 50)
    return roll, yaw, pitch
