"""Draw hand skeletons and their gesture labels onto a frame (PIL, no OpenCV needed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmdemo.flows.gestures.handmodel import EDGES

COLOURS = ((40, 200, 90), (250, 150, 30), (60, 140, 250), (230, 60, 160))


def draw_hands(image: Any, hands: Sequence[Any]) -> Any:
    """A copy of ``image`` (PIL or RGB array) with each hand's skeleton and label drawn.

    ``hands``: objects with ``landmarks`` (21, 3, normalised to the image) and ``caption``.
    """
    from PIL import Image, ImageDraw

    canvas = image.copy() if isinstance(image, Image.Image) else Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    w, h = canvas.size
    line = max(2, round(min(w, h) / 160))
    dot = line + 1
    for i, hand in enumerate(hands):
        colour = COLOURS[i % len(COLOURS)]
        pts = np.asarray(hand.landmarks)[:, :2] * np.array([w, h])
        for a, b in EDGES:
            draw.line([tuple(pts[a]), tuple(pts[b])], fill=colour, width=line)
        for x, y in pts:
            draw.ellipse([x - dot, y - dot, x + dot, y + dot], fill=(255, 255, 255), outline=colour)
        caption = getattr(hand, "caption", "")
        if caption:
            x, y = pts[:, 0].min(), max(0.0, pts[:, 1].min() - 4 * line - 12)
            box = draw.textbbox((x, y), caption)
            draw.rectangle([box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2], fill=colour)
            draw.text((x, y), caption, fill=(255, 255, 255))
    return canvas
