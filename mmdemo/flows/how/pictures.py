"""Pictures the How-it-works views return as PNG files: a labelled heat map (matplotlib's
object API, no pyplot state, so threads do not share a figure) and an image with the tile
and patch grid drawn on it (PIL)."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SCRATCH = "mmdemo-how"  # under the system temp folder, which Gradio serves
SCRATCH_HOURS = 1.0


def scratch_file(stem: str, suffix: str = ".png") -> Path:
    """A fresh path in the scratch folder (files over an hour old are dropped first)."""
    folder = Path(tempfile.gettempdir()) / SCRATCH
    folder.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - SCRATCH_HOURS * 3600
    for old in folder.glob(f"*{suffix}"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass
    return folder / f"{stem}-{uuid.uuid4().hex[:12]}{suffix}"


def _short(text: str, n: int = 28) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def heatmap_png(
    values: Sequence[Sequence[float]],
    rows: Sequence[str],
    cols: Sequence[str],
    title: str,
    colour_label: str,
    stem: str = "heatmap",
) -> str:
    """A heat map of ``values`` (rows x cols) with each cell's number written in it; the
    diagonal (the matching pairs) is outlined."""
    import numpy as np
    from matplotlib.figure import Figure

    data = np.asarray(values, dtype=np.float32)
    n_rows, n_cols = data.shape
    side = max(3.8, 0.75 * max(n_rows, n_cols) + 2.6)
    fig = Figure(figsize=(side + 1.4, side), dpi=100)
    ax = fig.add_subplot()
    image = ax.imshow(data, cmap="viridis", aspect="equal")
    ax.set_xticks(range(n_cols), [_short(c) for c in cols], rotation=35, ha="right", size=8)
    ax.set_yticks(range(n_rows), [_short(r, 22) for r in rows], size=8)
    ax.set_xlabel("captions")
    ax.set_ylabel("images")
    ax.set_title(title, size=10)
    if n_rows * n_cols <= 144:
        middle = (float(data.max()) + float(data.min())) / 2
        for i in range(n_rows):
            for j in range(n_cols):
                colour = "black" if data[i, j] > middle else "white"
                ax.text(j, i, f"{data[i, j]:.2f}", ha="center", va="center", size=7, color=colour)
    for k in range(min(n_rows, n_cols)):
        ax.add_patch(
            _rectangle((k - 0.5, k - 0.5), 1, 1, fill=False, edgecolor="#f43f5e", linewidth=1.5)
        )
    fig.colorbar(image, ax=ax, label=colour_label, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path = scratch_file(stem)
    fig.savefig(path, format="png")
    return str(path)


def _rectangle(*args: Any, **kwargs: Any) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle(*args, **kwargs)


def grid_png(
    image: Any,
    resized: tuple[int, int],
    tile: tuple[int, int],
    patch: int,
    merge: int,
    stem: str = "tokens",
    max_side: int = 768,
) -> str:
    """``image`` resized as the processor resizes it, with the tile borders (thick, red), the
    groups of patches that become one token (yellow) and the patches (thin, white) drawn."""
    from PIL import ImageDraw

    width, height = resized
    view = image.convert("RGB").resize((width, height))
    # big pictures shrink to ``max_side``; small ones (a tiny model's 64 px tile) grow to 384
    zoom = min(max_side, max(384, width, height)) / max(width, height)
    if zoom != 1.0:
        view = view.resize((max(1, round(width * zoom)), max(1, round(height * zoom))))
    draw = ImageDraw.Draw(view, "RGBA")

    def lines(step: int, colour: tuple[int, ...], thickness: int) -> None:
        if step <= 0 or (width / step) * zoom < 1 or step * zoom < 3:
            return  # too fine to see
        for x in range(0, width + 1, step):
            draw.line([(x * zoom, 0), (x * zoom, height * zoom)], fill=colour, width=thickness)
        for y in range(0, height + 1, step):
            draw.line([(0, y * zoom), (width * zoom, y * zoom)], fill=colour, width=thickness)

    lines(patch, (255, 255, 255, 90), 1)
    lines(patch * merge, (250, 204, 21, 170), 1)
    if tile[0] and tile[1] and (tile[0] < width or tile[1] < height):
        for x in range(0, width + 1, tile[0]):
            draw.line([(x * zoom, 0), (x * zoom, height * zoom)], fill=(244, 63, 94, 255), width=3)
        for y in range(0, height + 1, tile[1]):
            draw.line([(0, y * zoom), (width * zoom, y * zoom)], fill=(244, 63, 94, 255), width=3)
    path = scratch_file(stem)
    view.save(path, format="PNG")
    return str(path)
