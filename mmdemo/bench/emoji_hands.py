"""The gesture benchmark's labelled hand pictures: the hand emoji of
``mmdemo.flows.gestures.emoji`` (Twemoji and Noto, 5 skin tones) rendered at fixed sizes and
tilts on plain, photo and cropped backgrounds. The render grid differs from the training
data's (``flows/gestures/emoji_landmarks.py``); which source emoji each picture shows is kept
so that the benchmark scores only classifiers that never saw that source."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mmdemo.flows.gestures.emoji import (
    INSTALL,
    LABELLED,
    PACKAGES,
    TONES,
    UNNAMED,
    compose,
    emoji_root,
    load,
    photos,
    sources,
)

__all__ = ["INSTALL", "LABELLED", "PACKAGES", "TONES", "UNNAMED", "Sample", "samples"]
SIZES, QUICK_SIZES = (128, 200), (176,)
TILTS, QUICK_TILTS = (-20, -10, 0, 10, 20), (-20, 0, 20)
BACKGROUNDS, QUICK_BACKGROUNDS = ("light", "dark", "photo", "crop"), ("light", "photo")


@dataclass(frozen=True)
class Sample:
    image: Any  # PIL RGB
    label: str  # built-in class, or "none" for UNNAMED shapes
    source: str  # set/code-tone
    variant: str

    @property
    def set(self) -> str:
        return self.source.split("/")[0]


def samples(quick: bool = False) -> Iterator[Sample]:
    """Every labelled picture, in a fixed order (deterministic)."""
    from PIL import Image

    root = emoji_root()
    backdrops = photos(("coffee", "rocket", "astronaut"))
    sizes, tilts, grounds = (
        (QUICK_SIZES, QUICK_TILTS, QUICK_BACKGROUNDS) if quick else (SIZES, TILTS, BACKGROUNDS)
    )
    for source in sources():
        src = load(root, source)
        if src is None:
            continue
        for k, (size, tilt, ground) in enumerate(itertools.product(sizes, tilts, grounds)):
            hand = src.resize((size, size), Image.LANCZOS)
            if tilt:
                hand = hand.rotate(tilt, Image.BICUBIC, expand=True)
            image = compose(hand, ground, backdrops[k % len(backdrops)], k)
            yield Sample(image, source.label, source.name, f"{size}px {tilt:+d}° {ground}")
