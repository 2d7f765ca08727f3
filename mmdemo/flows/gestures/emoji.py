"""Hand emoji as labelled hand pictures, from npm packages: Twemoji
(``emoji-datasource-twitter``, graphics CC-BY 4.0) and Noto (``emoji-datasource-google``,
Apache-2.0), 64 px PNGs, and Microsoft's Fluent 3D emoji (``@lobehub/fluent-emoji-3d``, MIT),
256 px WebP; every skin tone, composed onto backgrounds at any size and tilt.

The benchmark (``mmdemo.bench.emoji_hands``: Twemoji and Noto) and the classifier's training
data (``emoji_landmarks``: all three) both draw from here, with different render grids; which
set, emoji and skin tone each picture came from is kept, so that evaluation can hold sources
out. Apple's and Facebook's sets (``emoji-datasource-apple``/``-facebook``, 64 px PNGs, same
layout as Twemoji's) are only ever scored (``mmdemo.bench.gestures_unseen``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.errors import MMDemoError

REPO = Path(__file__).resolve().parents[3]
PACKAGES = {  # emoji set -> npm package@version
    "twitter": "emoji-datasource-twitter@16.0.0",  # Twemoji
    "google": "emoji-datasource-google@16.0.0",  # Noto
    "fluent": "@lobehub/fluent-emoji-3d@1.1.0",  # Microsoft Fluent, 3D renders
    "apple": "emoji-datasource-apple@16.0.0",
    "facebook": "emoji-datasource-facebook@16.0.0",
}
BENCH_SETS = ("twitter", "google")  # what the benchmark shows
SETS = (*BENCH_SETS, "fluent")  # what training may use
# scored only (bench gestures-unseen), never trained on, never looked at while choosing
UNSEEN_SETS = ("apple", "facebook")
TITLES = {
    "twitter": "Twemoji",
    "google": "Noto",
    "fluent": "Fluent 3D",
    "apple": "Apple",
    "facebook": "Facebook",
}
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
# more one-hand shapes that are no built-in class, for training only (the benchmark keeps to
# the emoji above, so its figures stay comparable between versions)
EXTRA_NONE = {
    "1f595": "middle finger",
    "1faf0": "index finger and thumb crossed",
    "1faf5": "index pointing at the viewer",
}


@dataclass(frozen=True)
class Source:
    """One emoji image: set, code point and skin tone ("" for the default yellow)."""

    set: str
    code: str
    tone: str
    label: str  # built-in class, or "none"

    @property
    def name(self) -> str:
        return f"{self.set}/{self.code}" + (f"-{self.tone}" if self.tone else "")


def install(sets: tuple[str, ...] = SETS) -> str:
    """The command that installs the packages of ``sets`` where ``emoji_root`` looks."""
    return "npm install --prefix .cache/emoji " + " ".join(PACKAGES[s] for s in sets)


INSTALL = install(BENCH_SETS)


def _folder(root: Path, set_name: str) -> Path:
    if set_name == "fluent":
        return root / "@lobehub" / "fluent-emoji-3d" / "assets"
    return root / f"emoji-datasource-{set_name}" / "img" / set_name / "64"


def emoji_root(sets: tuple[str, ...] = BENCH_SETS) -> Path:
    """The node_modules folder holding the packages of ``sets`` (``MMDEMO_EMOJI_DIR``, else
    .cache/emoji/node_modules); refused with the install command if one is absent."""
    root = Path(os.environ.get("MMDEMO_EMOJI_DIR", REPO / ".cache" / "emoji" / "node_modules"))
    for set_name in sets:
        if not _folder(root, set_name).is_dir():
            package = PACKAGES[set_name].rsplit("@", 1)[0]
            raise MMDemoError(f"the npm package {package} is not in {root}", fix=install(sets))
    return root


def sources(
    sets: tuple[str, ...] = BENCH_SETS, extra: bool = False, yellow: bool = False
) -> list[Source]:
    """Labelled emoji images in a fixed order: the benchmark's, plus training-only ones with
    ``extra`` and the default yellow hands with ``yellow``."""
    codes = [*LABELLED.items(), *((c, "none") for c in UNNAMED)]
    if extra:
        codes += [(c, "none") for c in EXTRA_NONE]
    tones = (*TONES, "") if yellow else TONES
    return [Source(s, c, t, label) for s in sets for c, label in codes for t in tones]


def load(root: Path, source: Source) -> Any | None:
    """The source's RGBA picture, or None where the set lacks it."""
    from PIL import Image

    ext = ".webp" if source.set == "fluent" else ".png"
    names = [f"{source.code}-{source.tone}", source.code, f"{source.code}-fe0f"]
    for name in names[:1] if source.tone else names[1:]:
        path = _folder(root, source.set) / (name + ext)
        if path.is_file():
            return Image.open(path).convert("RGBA")
    return None


def photos(names: tuple[str, ...]) -> list[Any]:
    """Photos from assets/images to use as backgrounds."""
    from PIL import Image

    return [Image.open(REPO / "assets" / "images" / f"{n}.jpg").convert("RGB") for n in names]


def compose(hand: Any, ground: str, photo: Any, k: int, colour: tuple | None = None) -> Any:
    """A 640x480 picture of ``hand`` (RGBA) on a light, dark, photo or tightly cropped
    background, placed off-centre by ``k``."""
    from PIL import Image

    w, h = 640, 480
    if ground == "photo":
        x0 = (k * 37) % max(1, photo.width - 320)
        y0 = (k * 23) % max(1, photo.height - 240)
        canvas = photo.crop((x0, y0, x0 + 320, y0 + 240)).resize((w, h))
    else:
        colour = colour or ((40, 42, 50) if ground == "dark" else (236, 233, 226))
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
