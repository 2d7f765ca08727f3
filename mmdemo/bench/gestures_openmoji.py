"""Gestures on a hand-emoji set that no choice has seen: OpenMoji.

The synthetic hand model, the shipped classifier's training data (Twemoji, Noto, Fluent 3D)
and the gesture benchmark's pictures were all shaped while looking at the same emoji sets, so
their held-out figures are held out from training, not from every design choice. OpenMoji
(npm ``openmoji``, CC-BY-SA 4.0; SVG only) was never looked at while the app was built: its
hand emoji, rendered on the gesture benchmark's own grid (sizes, tilts, backgrounds), give the
headline no decision was fitted to. Scored: the shipped classifier (``shipped``) against the
synthetic-only classifier trained in the same run (the baseline), both on the pictures where
the landmarker found a hand (``gestures_unseen.score_unseen``). The landmarker finds a hand in
few of these line drawings, so the headline comes from ``gestures-unseen`` (Apple, Facebook).

    npm install --prefix .cache/emoji openmoji@17.0.0 && pip install cairosvg
    python -m mmdemo bench gestures-openmoji [--write]
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mmdemo.bench.report import Table

PACKAGE = "openmoji@17.0.0"
INSTALL = f"npm install --prefix .cache/emoji {PACKAGE} && pip install cairosvg"
RENDER_PX = 256  # SVG rendered at this size, then resized like the other sets' 64 px PNGs


def svg_folder() -> Path:
    from mmdemo.errors import MMDemoError
    from mmdemo.flows.gestures.emoji import REPO

    root = Path(os.environ.get("MMDEMO_EMOJI_DIR", REPO / ".cache" / "emoji" / "node_modules"))
    folder = root / "openmoji" / "color" / "svg"
    if not folder.is_dir():
        raise MMDemoError(f"the npm package openmoji is not in {root}", fix=INSTALL)
    return folder


def load_openmoji(folder: Path, code: str, tone: str) -> Any | None:
    """The emoji as an RGBA picture (cairosvg renders the SVG), or None where it is absent."""
    from PIL import Image

    try:
        import cairosvg
    except ImportError as exc:
        from mmdemo.errors import MMDemoError

        raise MMDemoError(
            "cairosvg is not installed (OpenMoji ships SVG only)", fix=INSTALL
        ) from exc
    name = f"{code}-{tone}" if tone else code
    path = folder / f"{name.upper()}.svg"
    if not path.is_file():
        return None
    png = cairosvg.svg2png(url=str(path), output_width=RENDER_PX, output_height=RENDER_PX)
    return Image.open(io.BytesIO(png)).convert("RGBA")


def openmoji_samples(quick: bool = False) -> Iterator[Any]:
    """The benchmark's labelled emoji (built-in gestures and no-gesture shapes, 5 skin tones)
    drawn by OpenMoji, on the gesture benchmark's render grid."""
    from mmdemo.bench.emoji_hands import backdrops, renders
    from mmdemo.flows.gestures.emoji import LABELLED, TONES, UNNAMED

    folder, photos = svg_folder(), backdrops()
    codes = [*LABELLED.items(), *((c, "none") for c in UNNAMED)]
    for (code, label), tone in itertools.product(codes, TONES):
        src = load_openmoji(folder, code, tone)
        if src is not None:
            yield from renders(src, label, f"openmoji/{code}-{tone}", photos, quick)


def run(quick: bool = False) -> Table:
    from mmdemo.bench.gestures_unseen import grid_note, score_unseen

    svg_folder()  # refuse with the install command before loading anything
    table = score_unseen(
        "gestures-openmoji",
        "Gestures on OpenMoji hand emoji: a set no choice has seen",
        openmoji_samples(quick),
        {"openmoji": "OpenMoji"},
        quick,
    )
    table.notes.insert(
        0,
        "Pictures: OpenMoji 17.0.0's versions of the gesture benchmark's hand emoji (the same "
        f"code points, 5 skin tones), rendered from SVG at {RENDER_PX} px with cairosvg, then "
        + grid_note(quick),
    )
    return table
