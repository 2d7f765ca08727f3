"""The built-in set for a text-only base: the synthetic scenes written out in words, with the
same questions and short answers (the model must read the scene and answer in one phrase)."""

from __future__ import annotations

import random

from mmdemo.finetune.data import Example
from mmdemo.finetune.synthetic import SPLITS, phrase, questions, random_scene


def text_split(split: str, scenes: int | None = None) -> list[Example]:
    seed, default = SPLITS[split]
    rng = random.Random(seed + 100)
    out = []
    for n in range(scenes or default):
        scene = random_scene(rng)
        context = f"Scene, from left to right: {phrase(scene)}."
        for j, (kind, question, answer) in enumerate(questions(scene, rng)):
            prompt = f"{context}\nQuestion: {question} Answer in a few words."
            out.append(Example(None, prompt, answer, (), kind, f"text-{split}-{n}-{j}"))
    return out


def text_dataset(scale: float = 1.0) -> dict[str, list[Example]]:
    return {split: text_split(split, max(1, round(n * scale))) for split, (_, n) in SPLITS.items()}
