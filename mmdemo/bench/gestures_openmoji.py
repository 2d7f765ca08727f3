"""Gestures on a hand-emoji set that no choice has seen: OpenMoji.

The synthetic hand model, the shipped classifier's training data (Twemoji, Noto, Fluent 3D)
and the gesture benchmark's pictures were all shaped while looking at the same emoji sets, so
their held-out figures are held out from training, not from every design choice. OpenMoji
(npm ``openmoji``, CC-BY-SA 4.0; SVG only) was never looked at while the app was built: its
hand emoji, rendered on the gesture benchmark's own grid (sizes, tilts, backgrounds), give the
headline no decision was fitted to. Scored: the shipped classifier (``shipped``) against the
synthetic-only classifier trained in the same run (the baseline), both on the pictures where
the landmarker found a hand.

    npm install --prefix .cache/emoji openmoji@17.0.0 && pip install cairosvg
    python -m mmdemo bench gestures-openmoji [--write]
"""

from __future__ import annotations

import io
import itertools
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

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
    from mmdemo.bench.gestures import _landmarks
    from mmdemo.config import Settings
    from mmdemo.flows.gestures.emoji import LABELLED
    from mmdemo.flows.gestures.service import GestureService
    from mmdemo.flows.gestures.train import DataConfig, fit, synthetic_set
    from mmdemo.flows.gestures.vocabulary import STATIC_GESTURES
    from mmdemo.models.manager import ModelManager

    load_before = os.getloadavg()[0]
    settings = Settings.load(profile="cpu", device="cpu")
    manager = ModelManager(settings)
    service = GestureService(manager, settings.home / "bench-gestures")  # no taught gestures
    start = time.perf_counter()
    scored, total, shipped = _landmarks(service, openmoji_samples(quick))
    landmark_s = time.perf_counter() - start
    config = DataConfig(per_class=400 if quick else 1500)
    epochs = 10 if quick else 20
    baseline = np.array(
        fit(synthetic_set(config), epochs, config.seed).predict(scored.x, service.threshold),
        dtype=object,
    )
    answers = {"baseline": baseline, "shipped": shipped}
    truth = scored.label
    labels = [c for c in STATIC_GESTURES if c in set(LABELLED.values())]
    letters = sorted(set(LABELLED.values()) - set(STATIC_GESTURES))
    table = Table(
        "gestures-openmoji",
        "Gestures on OpenMoji hand emoji: a set no choice has seen",
        ["case", "hands found / pictures", "synthetic only (baseline)",
         "**shipped classifier**"],
    )  # fmt: skip

    def accuracy(mask: np.ndarray) -> list[str]:
        if not mask.any():
            return ["n/a", "n/a"]
        return [f"{np.mean(answers[k][mask] == truth[mask]):.1%}" for k in answers]

    for label in labels + letters:
        mask = truth == label
        name = label.replace("_", " ") + (" (letter)" if label in letters else "")
        table.add(name, f"{mask.sum()} / {total[label]}", *accuracy(mask))
    named = np.isin(truth, labels)
    table.add(
        "**built-in gestures, all**",
        f"{named.sum()} / {sum(total[c] for c in labels)}",
        *(f"**{a}**" for a in accuracy(named)),
    )
    none = truth == "none"
    table.add(
        "shapes that are no built-in gesture (answer should be none)",
        f"{none.sum()} / {total['none']}",
        *(a + " answered none" for a in accuracy(none)),
    )
    wrong = Counter(
        f"{t} -> {a}" for t, a in zip(truth[named], shipped[named], strict=True) if t != a
    )
    table.notes += [
        f"{sum(total.values())} pictures: OpenMoji 17.0.0's versions of the gesture "
        "benchmark's hand emoji (the same code points, 5 skin tones), rendered from SVG at "
        f"{RENDER_PX} px with cairosvg, then drawn on the gesture benchmark's grid "
        + ("(--quick)." if quick else "(128 and 200 px, -20..20° tilts, four backgrounds)."),
        "Why this set: the synthetic hand model, the emoji training landmarks (Twemoji, Noto, "
        "Fluent 3D) and the classifier's configuration were all shaped while looking at the "
        "other sets, so their held-out scores are held out from training only. Nothing was "
        "chosen after looking at OpenMoji; this table was run once, as it stands.",
        f"Baseline: a classifier trained in this run on the synthetic hand model alone "
        f"({config.per_class} hands per class, {epochs} epochs). Shipped: "
        "`assets/models/gestures.safetensors`. Only pictures where the landmarker finds a hand "
        "are scored; confidence threshold 0.5; 'none' is wrong for a named gesture.",
        "Most common mistakes of the shipped classifier: "
        + (", ".join(f"{k} ({n})" for k, n in wrong.most_common(5)) or "none"),
        f"Landmarks of {sum(total.values())} pictures in {landmark_s:.0f} s. Load average "
        f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end.",
    ]
    manager.unload_all()
    return table
