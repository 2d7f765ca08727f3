"""Training examples: (image, prompt, answer) triples, and a synthetic shapes set that needs no
download (used for the demo adapters and for tests)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

COLORS = {
    "red": (220, 30, 30),
    "green": (30, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (240, 210, 30),
    "purple": (140, 50, 180),
    "orange": (245, 140, 20),
}
SHAPES = ("circle", "square", "triangle")


@dataclass(frozen=True)
class Example:
    image: Any  # PIL.Image
    prompt: str
    answer: str
    facts: tuple[tuple[str, str], ...] = ()  # e.g. (("color", "red"), ("shape", "circle"))
    kind: str = "open"  # closed (fixed answer set: yes/no, a colour) | open | caption
    qid: str = ""  # stable id, for per-question results
    rejected: str = ""  # a preference pair: the answer not preferred (``answer`` is preferred)


def draw_shape(color: str, shape: str, size: int, rng: random.Random) -> Any:
    """A shape of one colour on a light, slightly noisy background."""
    from PIL import Image, ImageDraw

    bg = tuple(rng.randint(225, 255) for _ in range(3))
    image = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(image)
    margin = rng.randint(size // 10, size // 4)
    box = (margin, margin, size - margin, size - margin)
    fill = COLORS[color]
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon(
            [(size // 2, margin), (margin, size - margin), (size - margin, size - margin)],
            fill=fill,
        )
    return image


def shapes_dataset(
    n: int,
    answer: Callable[[str, str], str],
    prompts: tuple[str, ...] = ("What color is the shape?", "Describe the image."),
    seed: int = 0,
    size: int = 96,
) -> list[Example]:
    """``n`` synthetic examples; ``answer(color, shape)`` writes the target text."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        color, shape = rng.choice(tuple(COLORS)), rng.choice(SHAPES)
        out.append(
            Example(
                draw_shape(color, shape, size, rng),
                rng.choice(prompts),
                answer(color, shape),
                (("color", color), ("shape", shape)),
            )
        )
    return out
