"""Why an image matches a text: an occlusion map.

Each cell of a grid over the crop the model sees is replaced by the mean colour (zero after
normalisation) and the image is embedded again; the map shows how much the text-image cosine
drops. Unlike attention or patch-token maps this measures the model's actual score, at the cost
of grid² extra forward passes (49 for a 7x7 grid, batched).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from mmdemo.errors import BadInputError
from mmdemo.images import ImageLimits, ImageProblem, decode
from mmdemo.retrieval.embed import embed_texts, encode_tensors
from mmdemo.retrieval.types import Explanation

MAX_GRID = 8
# An "inferno"-like ramp (dark purple -> red -> yellow); five anchors are enough for a heat map
# and avoid depending on matplotlib for one colormap.
RAMP = np.array(
    [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float32
)
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def patch_grid(bundle: Any) -> int:
    """The vision transformer's patch grid side (7 for ViT-B-32 at 224 px)."""
    grid = getattr(getattr(bundle.model, "visual", None), "grid_size", None)
    if isinstance(grid, tuple | list):
        return int(grid[0])
    return int(grid) if grid else 7


def _normalisation(preprocess: Any) -> tuple[np.ndarray, np.ndarray]:
    for t in getattr(preprocess, "transforms", ()):
        if type(t).__name__ == "Normalize":
            return np.asarray(t.mean, np.float32), np.asarray(t.std, np.float32)
    return np.asarray(OPENAI_MEAN, np.float32), np.asarray(OPENAI_STD, np.float32)


def colorize(heat: np.ndarray) -> np.ndarray:
    """(h, w) values in 0..1 -> (h, w, 3) uint8 through RAMP."""
    pos = np.clip(heat, 0, 1) * (len(RAMP) - 1)
    low = np.floor(pos).astype(int).clip(0, len(RAMP) - 2)
    frac = (pos - low)[..., None]
    return (RAMP[low] * (1 - frac) + RAMP[low + 1] * frac).astype(np.uint8)


def overlay(view: np.ndarray, drops: np.ndarray, side: int = 384) -> np.ndarray:
    """The view with positive drops as a heat map (cells stay visible as blocks)."""
    from PIL import Image

    big = np.asarray(Image.fromarray(view).resize((side, side), Image.Resampling.BICUBIC))
    top = float(drops.max())
    heat = np.clip(drops / top, 0, 1) if top > 0 else np.zeros_like(drops)
    cells = np.asarray(
        Image.fromarray((heat * 255).astype(np.uint8)).resize(
            (side, side), Image.Resampling.NEAREST
        ),
        dtype=np.float32,
    )
    heat_big = cells / 255.0
    alpha = (0.15 + 0.6 * heat_big)[..., None]
    return (big * (1 - alpha) + colorize(heat_big) * alpha).astype(np.uint8)


def occlusion_map(bundle: Any, image: Any, text: str, grid: int | None = None) -> Explanation:
    """How much each region of ``image`` contributes to its cosine with ``text``."""
    import torch

    start = time.perf_counter()
    text = (text or "").strip()
    if not text:
        raise BadInputError("an explanation needs the text query", fix="type a text query first")
    g = int(grid or min(patch_grid(bundle), MAX_GRID))
    if not 2 <= g <= 16:
        raise BadInputError(f"grid {g} is outside 2..16")
    try:
        pil, _, _ = decode(image, bundle.image_size, ImageLimits())
    except ImageProblem as exc:
        raise exc.of("the image") from None
    x = bundle.preprocess(pil)
    side = x.shape[-1]
    edges = np.linspace(0, side, g + 1).round().astype(int)
    variants = [x]
    for r in range(g):
        for c in range(g):
            v = x.clone()
            v[:, edges[r] : edges[r + 1], edges[c] : edges[c + 1]] = 0.0
            variants.append(v)
    embeddings = np.concatenate(
        [encode_tensors(bundle, variants[i : i + 32]) for i in range(0, len(variants), 32)]
    )
    t = embed_texts(bundle, [text])[0]
    scores = embeddings @ t
    drops = (scores[0] - scores[1:]).reshape(g, g).astype(np.float32)
    mean, std = _normalisation(bundle.preprocess)
    with torch.no_grad():
        pixels = x.permute(1, 2, 0).float().cpu().numpy()
    view = ((pixels * std + mean).clip(0, 1) * 255).astype(np.uint8)
    notes = [
        "Occlusion: each cell is replaced by the mean colour and the image is embedded again; "
        "brighter cells are where hiding the region lowers the match with the text most."
    ]
    if bundle.random_weights or str(bundle.model_id).startswith("tiny:"):
        notes.append("This model has random weights: the map shows the machinery, not meaning.")
    return Explanation(
        text=text,
        score=float(scores[0]),
        drops=drops,
        view=view,
        overlay=overlay(view, drops),
        grid=g,
        seconds=time.perf_counter() - start,
        notes=tuple(notes),
    )
