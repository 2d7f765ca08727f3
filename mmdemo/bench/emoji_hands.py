"""The gesture benchmark's labelled hand pictures: skin-tone hand emoji from the Twemoji
(``emoji-datasource-twitter``, CC-BY 4.0) and Noto (``emoji-datasource-google``, Apache-2.0)
npm packages, 64 px PNGs rendered at several sizes and tilts on plain, photo and cropped
backgrounds. Never used to train the classifier."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.errors import MMDemoError

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("emoji-datasource-twitter@16.0.0", "emoji-datasource-google@16.0.0")
INSTALL = "npm install --prefix .cache/emoji " + " ".join(PACKAGES)
TONES = ("1f3fb", "1f3fc", "1f3fd", "1f3fe", "1f3ff")
# emoji code point -> the built-in class it shows
LABELLED = {
    "270b": "open_palm",  # raised hand
    "1f590": "open_palm",  # hand with fingers splayed
    "1f91a": "open_palm",  # raised back of hand
    "1f44b": "open_palm",  # waving hand (its still shape)
    "1f44d": "thumbs_up",
    "1f44e": "thumbs_down",
    "261d": "pointing_up",
    "1f446": "pointing_up",  # backhand index pointing up
    "270c": "victory",
    "1f91f": "i_love_you",
    "1f919": "call_me",
    "1f44c": "ok",
    "270a": "fist",  # raised fist
    "1f44a": "fist",  # oncoming fist
    "1f91e": "R",  # crossed fingers = fingerspelled R
}
# hand shapes that are none of the built-in classes: the answer should be "none"
UNNAMED = {
    "1f918": "sign of the horns",
    "1f596": "vulcan salute",
    "1f448": "pointing left",
    "1f449": "pointing right",
    "1f447": "pointing down",
    "1f90c": "pinched fingers",
    "1f90f": "pinching hand",
}
SIZES, QUICK_SIZES = (128, 200), (176,)
TILTS, QUICK_TILTS = (-20, -10, 0, 10, 20), (-20, 0, 20)
BACKGROUNDS, QUICK_BACKGROUNDS = ("light", "dark", "photo", "crop"), ("light", "photo")


@dataclass(frozen=True)
class Sample:
    image: Any  # PIL RGB
    label: str  # built-in class, or "none" for UNNAMED shapes
    source: str  # set/code-tone
    variant: str


def emoji_root() -> Path:
    root = Path(os.environ.get("MMDEMO_EMOJI_DIR", REPO / ".cache" / "emoji" / "node_modules"))
    for package in PACKAGES:
        name = package.split("@")[0]
        if not (root / name / "img").is_dir():
            raise MMDemoError(f"the npm package {name} is not in {root}", fix=INSTALL)
    return root


def samples(quick: bool = False) -> Iterator[Sample]:
    """Every labelled picture, in a fixed order (deterministic)."""
    from PIL import Image

    root = emoji_root()
    photos = [
        Image.open(REPO / "assets" / "images" / f"{n}.jpg").convert("RGB")
        for n in ("coffee", "rocket", "astronaut")
    ]
    codes = [(c, label) for c, label in LABELLED.items()] + [(c, "none") for c in UNNAMED]
    sizes, tilts, grounds = (
        (QUICK_SIZES, QUICK_TILTS, QUICK_BACKGROUNDS) if quick else (SIZES, TILTS, BACKGROUNDS)
    )
    for set_name in ("twitter", "google"):
        folder = root / f"emoji-datasource-{set_name}" / "img" / set_name / "64"
        for (code, label), tone in itertools.product(codes, TONES):
            path = folder / f"{code}-{tone}.png"
            if not path.is_file():
                continue
            src = Image.open(path).convert("RGBA")
            for k, (size, tilt, ground) in enumerate(itertools.product(sizes, tilts, grounds)):
                hand = src.resize((size, size), Image.LANCZOS)
                if tilt:
                    hand = hand.rotate(tilt, Image.BICUBIC, expand=True)
                image = _compose(hand, ground, photos[k % len(photos)], k)
                yield Sample(
                    image, label, f"{set_name}/{code}-{tone}", f"{size}px {tilt:+d}° {ground}"
                )


def _compose(hand: Any, ground: str, photo: Any, k: int) -> Any:
    from PIL import Image

    w, h = 640, 480
    if ground == "photo":
        x0 = (k * 37) % max(1, photo.width - 320)
        y0 = (k * 23) % max(1, photo.height - 240)
        canvas = photo.crop((x0, y0, x0 + 320, y0 + 240)).resize((w, h))
    else:
        colour = (40, 42, 50) if ground == "dark" else (236, 233, 226)
        canvas = Image.new("RGB", (w, h), colour)
    x = (w - hand.width) // 2 + (k * 29) % 121 - 60
    y = (h - hand.height) // 2 + (k * 17) % 81 - 40
    canvas.paste(hand, (x, y), hand)
    if ground == "crop":  # a tight crop around the hand, scaled back to 640x480
        margin = max(hand.width, hand.height) // 4
        box = (max(0, x - margin), max(0, y - margin), min(w, x + hand.width + margin))
        box = (*box, min(h, y + hand.height + margin))
        canvas = canvas.crop(box).resize((w, h))
    return canvas
