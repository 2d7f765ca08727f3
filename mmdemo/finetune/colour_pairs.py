"""The built-in preference task: "name the colour". Scenes like the built-in set's, a question
about the shape at one end, and two answers that both name the right shape; the preferred one
also names its colour ("a red circle" over "a circle"). DPO should move a model towards the
preferred style, which a user sees in its greedy answers (``names_colour``).

The VLM sees the scene as a picture; a text-only base reads it in words, as in ``textdata.py``.
Fixed seeds and splits, so runs compare.
"""

from __future__ import annotations

import random

from mmdemo.finetune.data import COLORS, Example
from mmdemo.finetune.evaluate import words
from mmdemo.finetune.synthetic import SCENE_SIZE, SPLITS, article, draw_scene, phrase, random_scene

SEED_OFFSET = 300  # other scenes than the question/answer sets'
ENDS = (("left", 0), ("right", -1))


def colour_split(split: str, with_images: bool, scenes: int | None = None) -> list[Example]:
    """One split of the task: two pairs per scene (the shape on the left, on the right)."""
    seed, default = SPLITS[split]
    rng = random.Random(seed + SEED_OFFSET)
    out = []
    for n in range(scenes or default):
        scene = random_scene(rng)
        image = draw_scene(scene, rng, SCENE_SIZE) if with_images else None
        context = "" if with_images else f"Scene, from left to right: {phrase(scene)}.\n"
        for j, (where, index) in enumerate(ENDS):
            colour, shape = scene[index]
            question = f"What shape is on the {where}?"
            prompt = question if with_images else f"{context}Question: {question}"
            out.append(
                Example(
                    image,
                    prompt,
                    f"{article(colour)} {colour} {shape}",
                    (("colour", colour), ("shape", shape)),
                    "open",
                    f"colour-{split}-{n}-{j}",
                    f"{article(shape)} {shape}",
                )
            )
    return out


def colour_pairs(base: str = "vlm", scale: float = 1.0) -> dict[str, list[Example]]:
    """Train, validation and test pairs (``base``: "vlm" draws the scenes, "llm" writes them)."""
    return {
        split: colour_split(split, base == "vlm", max(1, round(n * scale)))
        for split, (_, n) in SPLITS.items()
    }


def names_colour(prediction: str, reference: str) -> bool:
    """Whether an answer names the colour the preferred ``reference`` answer names."""
    wanted = [w for w in words(reference) if w in COLORS]
    return bool(wanted) and wanted[0] in words(prediction)
