"""Boxes in original-image pixels, their overlap (IoU), and the resize rule Qwen2.5-VL's
processor applies (its absolute coordinates are pixels of the resized image)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

# Qwen2.5-VL's processor defaults (preprocessor_config.json): a side is a multiple of 28
# (14-pixel patches merged 2x2), and the area lies between these bounds
QWEN_FACTOR = 28
QWEN_MIN_PIXELS = 56 * 56
QWEN_MAX_PIXELS = 28 * 28 * 16384


@dataclass(frozen=True)
class Box:
    """One box in pixels of the original image (origin top-left, x right, y down)."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: str = ""
    span: str = ""  # the text of the answer it was read from
    coords: str = ""  # how its numbers were read, e.g. "0-1000" or "pixels"

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes; 0 when either is empty."""
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    inter_w = min(ax2, bx2) - max(ax1, bx1)
    inter_h = min(ay2, by2) - max(ay1, by1)
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


def smart_resize(
    width: int,
    height: int,
    factor: int = QWEN_FACTOR,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> tuple[int, int]:
    """(width, height) of the image Qwen2-VL / Qwen2.5-VL processors feed the model: each
    side rounded to a multiple of ``factor``, then scaled (keeping the aspect) into
    [``min_pixels``, ``max_pixels``] (the rule of transformers' ``smart_resize``)."""
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return w_bar, h_bar
