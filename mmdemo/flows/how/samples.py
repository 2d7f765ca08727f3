"""Built-in inputs, so every view works without uploads (hosted servers too): the repository's
sample photos with a caption each, and seeded drawings of shapes labelled by shape."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).resolve().parents[3] / "assets" / "images"
# (file in assets/images, its caption)
SAMPLE_PAIRS = (
    ("cat.jpg", "a photo of a cat"),
    ("coffee.jpg", "a cup of coffee"),
    ("rocket.jpg", "a rocket launching into the sky"),
    ("astronaut.jpg", "an astronaut in a space suit"),
    ("red-circle.png", "a red circle"),
    ("blue-square.png", "a blue square"),
)
SHAPES_PER_CLASS = 6


def sample_pairs() -> tuple[list[Path], list[str]]:
    """The sample photos and their captions, pair by pair."""
    return [ASSETS / name for name, _ in SAMPLE_PAIRS], [text for _, text in SAMPLE_PAIRS]


def sample_shapes(per_class: int = SHAPES_PER_CLASS, seed: int = 0) -> tuple[list[Any], list[str]]:
    """(PIL images, labels): ``per_class`` drawings of each shape (circle, square, triangle) in
    random colours, sizes and places, as the fine-tuning studio's synthetic set draws them."""
    from mmdemo.finetune.data import COLORS, SHAPES
    from mmdemo.finetune.synthetic import draw_scene

    rng = random.Random(seed)
    images, labels = [], []
    for shape in SHAPES:
        for _ in range(per_class):
            colour = rng.choice(list(COLORS))
            images.append(draw_scene(((colour, shape),), rng, size=128))
            labels.append(shape)
    return images, labels
