"""The grounding task's answer format, its score (IoU@0.5) and its position-prior baseline.

An answer is one JSON list with one object per box, its corners as integers from 0 to 1000
of the image's width and height (origin top-left), the format Qwen2.5-VL and GLM-4.1V write
(with 0-1000 ints as Qwen2-VL, InternVL and GLM use)::

    [{"bbox_2d": [x1, y1, x2, y2], "label": "red circle"}]

so one answer reads the same whatever the image's size. A prediction is right when its first
box overlaps the true box with IoU >= 0.5 (the usual referring-expression accuracy); the mean
IoU says how close the misses come. The baseline a trained model must beat is the position
prior: for each question, the mean training box for that question, whatever the image shows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mmdemo.grounding.boxes import iou
from mmdemo.grounding.parse import parse_boxes

SCALE = 1000  # coordinates are integers 0..SCALE of each side
IOU_HIT = 0.5  # a box this close to the truth counts as found
Box4 = tuple[float, float, float, float]


def grounding_question(color: str, shape: str) -> str:
    return f"Where is the {color} {shape}?"


def to_1000(box: Box4, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A pixel box of an image of ``size`` (width, height) as 0-1000 integers."""
    width, height = size
    x1, y1, x2, y2 = box
    return (
        round(x1 / width * SCALE),
        round(y1 / height * SCALE),
        round(x2 / width * SCALE),
        round(y2 / height * SCALE),
    )


def grounding_answer(box: Sequence[int], label: str) -> str:
    """The answer text for one box in 0-1000 integers."""
    return json.dumps([{"bbox_2d": [int(v) for v in box], "label": label}])


def answer_box(text: str) -> Box4 | None:
    """The first box an answer gives, in 0-1000 (read as the house format), or None."""
    parsed = parse_boxes(text, "", (SCALE, SCALE))
    return parsed.boxes[0].xyxy if parsed.boxes else None


def box_iou(prediction: str, answer: str) -> float:
    """IoU of a predicted answer's first box with the reference answer's box (0 for none)."""
    truth, guess = answer_box(answer), answer_box(prediction)
    return iou(truth, guess) if truth and guess else 0.0


def mean_boxes(examples: Sequence[Any]) -> dict[str, Box4]:
    """The mean training box of each question (and of all, under ""): the position prior."""
    sums: dict[str, list[float]] = {}
    for ex in examples:
        box = answer_box(ex.answer)
        if box is None:
            continue
        for key in (ex.prompt, ""):
            acc = sums.setdefault(key, [0.0] * 5)
            acc[:4] = [a + b for a, b in zip(acc[:4], box, strict=True)]
            acc[4] += 1
    return {k: (v[0] / v[4], v[1] / v[4], v[2] / v[4], v[3] / v[4]) for k, v in sums.items()}


def prior_answer(means: dict[str, Box4], question: str) -> str:
    """What the position prior answers: the question's mean box (the overall mean for a
    question it never saw), in the answer format."""
    box = means.get(question) or means.get("")
    return grounding_answer([round(v) for v in box], "") if box else "[]"
