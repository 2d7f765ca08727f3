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
    BENCH_SETS,
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


def backdrops() -> list[Any]:
    """The photos the grid's photo backgrounds are cut from."""
    return photos(("coffee", "rocket", "astronaut"))


def renders(
    src: Any, label: str, source: str, grounds_from: list[Any], quick: bool = False
) -> Iterator[Sample]:
    """One emoji picture (RGBA) drawn on the benchmark's grid of sizes, tilts and
    backgrounds (the same grid for every emoji set; ``grounds_from``: ``backdrops()``)."""
    from PIL import Image

    sizes, tilts, grounds = (
        (QUICK_SIZES, QUICK_TILTS, QUICK_BACKGROUNDS) if quick else (SIZES, TILTS, BACKGROUNDS)
    )
    for k, (size, tilt, ground) in enumerate(itertools.product(sizes, tilts, grounds)):
        hand = src.resize((size, size), Image.LANCZOS)
        if tilt:
            hand = hand.rotate(tilt, Image.BICUBIC, expand=True)
        image = compose(hand, ground, grounds_from[k % len(grounds_from)], k)
        yield Sample(image, label, source, f"{size}px {tilt:+d}° {ground}")


def samples(quick: bool = False, sets: tuple[str, ...] = BENCH_SETS) -> Iterator[Sample]:
    """Every labelled picture of ``sets``, in a fixed order (deterministic); refused with the
    install command where a set's package is absent."""
    root, photos_ = emoji_root(sets), backdrops()
    for source in sources(sets):
        src = load(root, source)
        if src is not None:
            yield from renders(src, source.label, source.name, photos_, quick)
