"""The built-in synthetic VQA set: scenes of two or three coloured shapes in a row, with a
caption, closed questions (yes/no, which colour, how many), open questions (what is left of
the square?) and grounding questions (where is the red circle? answered with the box the shape
was drawn in), in fixed train / validation / test splits. Needs no download and is the same on
every machine (seeded), so scores from different runs and methods compare."""

from __future__ import annotations

import random
from typing import Any

from mmdemo.finetune.data import COLORS, SHAPES, Example
from mmdemo.finetune.grounding import grounding_answer, grounding_question, to_1000

SCENE_SIZE = 96
NUMBERS = {2: "two", 3: "three"}
# split name -> (seed, number of scenes); every scene yields several questions
SPLITS = {"train": (1, 400), "validation": (2, 40), "test": (3, 60)}
TASKS = ("vqa", "caption", "grounding")

Scene = tuple[tuple[str, str], ...]  # ((colour, shape), ...) from left to right
Box4 = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels


def draw_scene(scene: Scene, rng: random.Random, size: int = SCENE_SIZE) -> Any:
    """The shapes from left to right on a light, slightly varied background."""
    return draw_scene_with_boxes(scene, rng, size)[0]


def draw_scene_with_boxes(
    scene: Scene, rng: random.Random, size: int = SCENE_SIZE
) -> tuple[Any, list[Box4]]:
    """The picture and each shape's box (x1, y1, x2, y2 in its pixels), in scene order: the
    box the shape was drawn in, so it is exact (a triangle's apex and base touch it too)."""
    from PIL import Image, ImageDraw

    bg = tuple(rng.randint(225, 255) for _ in range(3))
    image = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(image)
    slot = size / len(scene)
    boxes: list[Box4] = []
    for i, (color, shape) in enumerate(scene):
        half = slot * rng.uniform(0.30, 0.42)
        cx = slot * (i + 0.5) + rng.uniform(-0.06, 0.06) * slot
        cy = size / 2 + rng.uniform(-0.15, 0.15) * size
        box = (cx - half, cy - half, cx + half, cy + half)
        boxes.append(box)
        fill = COLORS[color]
        if shape == "circle":
            draw.ellipse(box, fill=fill)
        elif shape == "square":
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)], fill)
    return image, boxes


def random_scene(rng: random.Random) -> Scene:
    """Two or three objects; shapes differ and colours differ, so every question is clear."""
    n = rng.choice((2, 3))
    return tuple(zip(rng.sample(list(COLORS), n), rng.sample(SHAPES, n), strict=True))


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def phrase(objects: Scene) -> str:
    words = [f"{article(c)} {c} {s}" for c, s in objects]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def caption(scene: Scene) -> str:
    return f"From left to right: {phrase(scene)}."


def questions(scene: Scene, rng: random.Random) -> list[tuple[str, str, str]]:
    """(kind, question, answer) triples about one scene: closed first, then open.

    Closed questions ask what a small VLM can see at a glance (the colour at one end, the
    count); open ones ask for relations between objects (what is left of the
    square?) and the whole inventory, scored by token recall.
    """
    colors = [c for c, _ in scene]
    shapes = [s for _, s in scene]
    out: list[tuple[str, str, str]] = []
    # yes/no: two- and three-shape scenes are equally likely, so yes and no are too
    out.append(("closed", "Is there a shape in the middle?", "yes" if len(scene) == 3 else "no"))
    out.append(("closed", "What colour is the shape on the left?", colors[0]))
    out.append(("closed", "What colour is the shape on the right?", colors[-1]))
    out.append(("closed", "How many shapes are there?", NUMBERS[len(scene)]))
    i = rng.randrange(1, len(scene))
    out.append(("open", f"What is left of the {shapes[i]}?", phrase(scene[i - 1 : i])))
    out.append(("open", "What shapes are in the image?", phrase(scene)))
    return out


def _scenes(split: str, count: int, size: int, avoid: frozenset[Scene] = frozenset()):
    """(scene, image, questions, boxes) for ``count`` scenes of a split, skipping ``avoid``."""
    seed, _ = SPLITS[split]
    rng = random.Random(seed)
    made = 0
    while made < count:
        scene = random_scene(rng)
        image, boxes = draw_scene_with_boxes(scene, rng, size)
        qa = questions(scene, rng)
        if scene in avoid:
            continue
        made += 1
        yield scene, image, qa, boxes


def training_arrangements() -> frozenset[Scene]:
    """Every arrangement of objects the full training split shows (held out of the others)."""
    return frozenset(scene for scene, *_ in _scenes("train", SPLITS["train"][1], 8))


def synthetic_split(
    split: str,
    task: str = "vqa",
    scenes: int | None = None,
    size: int = SCENE_SIZE,
) -> list[Example]:
    """One fixed split of the built-in set. ``task``: "vqa" (questions), "caption", or
    "grounding" (where is each shape? answered in ``finetune/grounding.py``'s box format).

    Validation and test scenes never repeat an arrangement of objects (colours, shapes, order)
    that the training split shows, so held-out scores measure seeing, not remembering.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    avoid = frozenset() if split == "train" else training_arrangements()
    out: list[Example] = []
    made = _scenes(split, scenes or SPLITS[split][1], size, avoid)
    for n, (scene, image, qa, boxes) in enumerate(made):
        facts = tuple(("object", f"{c} {s}") for c, s in scene)
        if task == "grounding":
            for j, ((color, shape), box) in enumerate(zip(scene, boxes, strict=True)):
                answer = grounding_answer(to_1000(box, image.size), f"{color} {shape}")
                question = grounding_question(color, shape)
                out.append(
                    Example(image, question, answer, facts, "grounding", f"{split}-{n}-g{j}")
                )
            continue
        if task == "caption":
            out.append(
                Example(
                    image, "Describe the image.", caption(scene), facts, "caption", f"{split}-{n}"
                )
            )
            continue
        for j, (kind, question, answer) in enumerate(qa):
            out.append(Example(image, question, answer, facts, kind, f"{split}-{n}-{j}"))
    return out


def synthetic_dataset(task: str = "vqa", scale: float = 1.0) -> dict[str, list[Example]]:
    """All three splits (``scale`` shrinks or grows the number of scenes, for quick runs)."""
    return {
        split: synthetic_split(split, task, max(1, round(n * scale)))
        for split, (_, n) in SPLITS.items()
    }
