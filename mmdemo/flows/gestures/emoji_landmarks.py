"""Training data from pictures: hand landmarks that MediaPipe's landmarker finds on rendered
hand emoji (Twemoji, Noto and Fluent 3D; every skin tone and the default yellow), with their
classes.

Each emoji is rendered ``VARIANTS`` times (random size, tilt, mirroring, placement and
background: a grid unlike the benchmark's) and the landmarker runs on every picture; where it
finds a hand, the largest hand's landmarks are kept with the emoji's class and its source
(set/code-tone), so evaluation can hold out whole sources. The arrays are small and are
shipped as ``assets/models/gestures-emoji-landmarks.npz``; ``extract`` (``python -m mmdemo
gestures train --extract``) rebuilds them from the npm packages.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmdemo.flows.gestures.emoji import PACKAGES, SETS, compose, emoji_root, load, photos, sources
from mmdemo.flows.gestures.features import normalise

EMOJI_LANDMARKS = (
    Path(__file__).resolve().parents[3] / "assets" / "models" / "gestures-emoji-landmarks.npz"
)
VARIANTS = 48  # renders per emoji image
SIZES = (96, 320)  # hand size range in pixels
TILT = 35.0  # degrees either way
GROUNDS = ("light", "dark", "photo", "crop")
BACKDROPS = ("cat", "retina", "coffee", "rocket", "astronaut")


@dataclass(frozen=True)
class EmojiLandmarks:
    """Landmarks found on rendered emoji: one row per picture where a hand was found."""

    landmarks: np.ndarray  # (N, 21, 3) float32, MediaPipe's normalised image coordinates
    left: np.ndarray  # (N,) bool: handedness reported as Left
    size: np.ndarray  # (N, 2) int: picture width, height
    label: np.ndarray  # (N,) str: built-in class or "none"
    source: np.ndarray  # (N,) str: set/code-tone
    info: dict  # what was rendered, how many pictures, the packages

    def __len__(self) -> int:
        return len(self.label)

    @property
    def set(self) -> np.ndarray:
        return np.array([s.split("/")[0] for s in self.source])

    @property
    def tone(self) -> np.ndarray:
        return np.array([s.rsplit("-", 1)[-1] if "-" in s else "" for s in self.source])

    def where(self, keep: np.ndarray) -> EmojiLandmarks:
        keep = np.asarray(keep, dtype=bool)
        parts = (self.landmarks, self.left, self.size, self.label, self.source)
        return EmojiLandmarks(*(a[keep] for a in parts), self.info)

    def normalised(self) -> np.ndarray:
        """(N, 21, 3) hands in wrist-origin, palm-size units, left hands mirrored."""
        w, h = self.size[:, 0].astype(float), self.size[:, 1].astype(float)
        pixels = self.landmarks * np.stack([w, h, w], -1)[:, None, :]
        return normalise(pixels, left=self.left)

    def save(self, path: Path = EMOJI_LANDMARKS) -> Path:
        import json

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".partial.npz")
        np.savez_compressed(
            tmp,
            landmarks=self.landmarks.astype(np.float16),  # 1e-3 of the picture: plenty
            left=self.left,
            size=self.size.astype(np.int16),
            label=self.label.astype(str),
            source=self.source.astype(str),
            info=np.array(json.dumps(self.info)),
        )
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path = EMOJI_LANDMARKS) -> EmojiLandmarks:
        import json

        with np.load(path, allow_pickle=False) as f:
            return cls(
                f["landmarks"].astype(np.float32),
                f["left"],
                f["size"].astype(np.int64),
                f["label"],
                f["source"],
                json.loads(str(f["info"])),
            )


def _seed(name: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little")


def renders(src: Any, name: str, backdrops: list[Any], n: int, seed: int = 0) -> list[Any]:
    """``n`` 640x480 pictures of one emoji, each with its own size, tilt, side and background
    (seeded by the emoji's name, so the same emoji always gets the same pictures)."""
    from PIL import Image, ImageOps

    rng = np.random.default_rng(_seed(name, seed))
    out = []
    for _ in range(n):
        side = int(rng.integers(SIZES[0], SIZES[1] + 1))
        hand = src.resize((side, side), Image.LANCZOS)
        if rng.random() < 0.5:
            hand = ImageOps.mirror(hand)
        hand = hand.rotate(float(rng.uniform(-TILT, TILT)), Image.BICUBIC, expand=True)
        ground = str(rng.choice(GROUNDS))
        colour = tuple(int(c) for c in rng.integers(190, 256, 3))
        if ground == "dark":
            colour = tuple(int(c) for c in rng.integers(0, 70, 3))
        photo = backdrops[int(rng.integers(len(backdrops)))]
        out.append(compose(hand, ground, photo, int(rng.integers(1000)), colour))
    return out


def extract(
    detect: Callable[[np.ndarray], list[Any]],
    sets: tuple[str, ...] = SETS,
    variants: int = VARIANTS,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> EmojiLandmarks:
    """Render every emoji of ``sets`` and keep the landmarks ``detect`` (a landmarker's
    ``detect``: RGB array -> hands) finds. Needs the npm packages (``emoji.install(sets)``)."""
    root = emoji_root(sets)
    backdrops = photos(BACKDROPS)
    rows: list[tuple] = []
    pictures = 0
    start = time.perf_counter()
    todo = sources(sets, extra=True, yellow=True)
    for i, source in enumerate(todo):
        src = load(root, source)
        if src is None:
            continue
        for image in renders(src, source.name, backdrops, variants, seed):
            pictures += 1
            hands = detect(np.asarray(image))
            if hands:
                size = (image.width, image.height)
                hand = max(hands, key=lambda h: float(np.ptp(h.landmarks[:, :2] * size, 0).max()))
                rows.append((hand.landmarks, hand.handedness == "Left", size, source))
        if (i + 1) % 20 == 0:
            log(
                f"  {i + 1}/{len(todo)} emoji, {len(rows)} hands in {pictures} pictures "
                f"({time.perf_counter() - start:.0f} s)"
            )
    info = {
        "packages": [PACKAGES[s] for s in sets],
        "sets": list(sets),
        "variants": variants,
        "seed": seed,
        "pictures": pictures,
        "render": f"{SIZES[0]}-{SIZES[1]} px, tilt ±{TILT:.0f}°, half mirrored, "
        f"{'/'.join(GROUNDS)} backgrounds",
    }
    return EmojiLandmarks(
        np.stack([r[0] for r in rows]).astype(np.float32),
        np.array([r[1] for r in rows]),
        np.array([r[2] for r in rows]),
        np.array([r[3].label for r in rows]),
        np.array([r[3].name for r in rows]),
        info,
    )
