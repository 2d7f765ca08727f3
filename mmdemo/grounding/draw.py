"""Boxes drawn on a copy of the image: a coloured outline each, its label on a tab of the
same colour above it (inside, when the box touches the top)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mmdemo.grounding.boxes import Box

# outline colours, in the order the boxes come (distinct on photos and on white)
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (0, 130, 200),
    (60, 180, 75),
    (245, 130, 48),
    (145, 30, 180),
    (0, 170, 170),
)


def box_colour(index: int) -> tuple[int, int, int]:
    """The outline colour of the ``index``-th box."""
    return PALETTE[index % len(PALETTE)]


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one fixed-size bitmap font
        return ImageFont.load_default()


def draw_boxes(image: Any, boxes: Sequence[Box]) -> Any:
    """A copy of ``image`` (PIL, RGB) with ``boxes`` (its pixels) outlined and labelled."""
    from PIL import ImageDraw

    out = image.convert("RGB").copy()
    if not boxes:
        return out
    draw = ImageDraw.Draw(out)
    side = min(out.size)
    width = max(2, round(side / 150))
    font = _font(max(10, round(side / 30)))
    for i, box in enumerate(boxes):
        colour = box_colour(i)
        draw.rectangle(box.xyxy, outline=colour, width=width)
        text = box.label or str(i + 1)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tab_w, tab_h = right - left + 2 * width, bottom - top + 2 * width
        y = box.y1 - tab_h if box.y1 - tab_h >= 0 else box.y1 + width
        x = min(max(box.x1, 0), max(out.width - tab_w, 0))
        draw.rectangle((x, y, x + tab_w, y + tab_h), fill=colour)
        draw.text((x + width - left, y + width - top), text, fill=(255, 255, 255), font=font)
    return out
