"""Test media for the gesture tests: real hand pictures (emoji, shipped in assets) moved
across frames and written as videos, and constructed landmark sequences."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
GESTURE_IMAGES = REPO / "assets" / "images" / "gestures"


def hand_sprite(name: str = "open-palm", side: int = 150) -> object:
    """The hand of a shipped example picture, cut from its plain background (RGBA)."""
    from PIL import Image

    image = Image.open(GESTURE_IMAGES / f"{name}.png").convert("RGB")
    arr = np.asarray(image).astype(int)
    background = arr[0, 0]
    mask = (np.abs(arr - background).sum(-1) > 30).astype(np.uint8) * 255
    rgba = Image.fromarray(np.dstack([arr.astype(np.uint8), mask]), "RGBA")
    rgba = rgba.crop(rgba.getbbox())
    return rgba.resize((side, side))


def write_video(
    path: Path,
    position: Callable[[float], tuple[float, float]],
    seconds: float = 3.0,
    fps: int = 15,
    sprite: str = "open-palm",
    size: tuple[int, int] = (480, 360),
) -> Path:
    """An H.264 MP4 of a hand picture whose centre is at ``position(t)`` (fractions of the
    frame) at time ``t``."""
    import av
    from PIL import Image

    hand = hand_sprite(sprite)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(round(seconds * fps)):
            fx, fy = position(i / fps)
            frame = Image.new("RGB", size, (236, 233, 226))
            x = round(fx * size[0] - hand.width / 2)
            y = round(fy * size[1] - hand.height / 2)
            frame.paste(hand, (x, y), hand)
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def swipe(start: float, end: float, t0: float = 1.0, dur: float = 0.6) -> Callable:
    def pos(t: float) -> tuple[float, float]:
        u = min(max((t - t0) / dur, 0.0), 1.0)
        return start + (end - start) * (0.5 - 0.5 * np.cos(np.pi * u)), 0.5

    return pos


def wave(centre: float = 0.5, amp: float = 0.12, hz: float = 1.8) -> Callable:
    return lambda t: (centre + amp * np.sin(2 * np.pi * hz * t), 0.5)
