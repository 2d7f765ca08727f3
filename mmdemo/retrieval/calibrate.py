"""How many IVF cells a query must probe: measured on sample queries, not guessed.

When an ANN index is built, sample queries are searched exactly and through the ANN index, and
nprobe is raised until recall@10 reaches the target for every kind of query:

- ``image``: indexed vectors, perturbed or blended (search by an image, "more like this");
- ``off-manifold``: CLIP's text embeddings sit in another cone than its image embeddings (the
  modality gap), so a text query's nearest images are far from it (cosine about 0.3 rather
  than 0.6-0.9 between images) and spread over more cells. These are made from the data alone:
  the centre of a neighbourhood, minus the collection's mean, pulled toward a direction
  outside the collection's cone, plus noise;
- ``text``: real text embeddings of fixed captions, from the index's own model, when the
  caller has them (the app does whenever the model is loaded).

A query kind that needs more cells than another sets nprobe for all: the target holds for the
hardest kind measured.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mmdemo.retrieval.exact import exact_search, recall_at_k, sample_vectors
from mmdemo.retrieval.segments import Snapshot

# off-manifold queries: weights of the neighbourhood's direction, the collection's mean
# direction, the outside direction and per-query noise (text-to-image cosines near 0.3, about
# 0.1 on average over the collection, as CLIP text queries have against photos)
OFF_MANIFOLD_MIX = (0.45, 0.2, 0.8, 0.7)


def _unit(a: np.ndarray) -> np.ndarray:
    return a / (np.linalg.norm(a, axis=-1, keepdims=True) + 1e-12)


def sample_queries(
    snapshot: Snapshot, n: int, texts: np.ndarray | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Calibration queries by kind: ``n`` image-like, ``n`` off-manifold, and ``texts``."""
    rng = np.random.default_rng(seed)
    sample = sample_vectors(snapshot, 4 * n)
    if len(sample) < 2:
        return {}
    dim = sample.shape[1]
    half = max(1, n // 2)
    near = sample[rng.integers(0, len(sample), half)]
    near = near + rng.normal(0, 0.5 / np.sqrt(dim), near.shape)
    blend = sample[rng.integers(0, len(sample), (n - half, 4))].mean(axis=1)
    queries = {"image": _unit(np.concatenate([near, blend])).astype(np.float32)}

    mean = sample.mean(axis=0)
    mean_dir = _unit(mean)
    seeds = sample[rng.integers(0, len(sample), n)]
    _, neighbours = exact_search(snapshot, seeds, 10, keep_dense=False)
    centres = np.stack([snapshot.vectors_of(row)[0].mean(axis=0) for row in neighbours])
    outside = rng.standard_normal(dim)
    outside = _unit(outside - (outside @ mean_dir) * mean_dir)
    noise = _unit(rng.standard_normal((n, dim)))
    a, b, c, d = OFF_MANIFOLD_MIX
    queries["off-manifold"] = _unit(
        a * _unit(centres - mean) + b * mean_dir + c * outside + d * noise
    ).astype(np.float32)
    if texts is not None and len(texts) and texts.shape[1] == dim:
        queries["text"] = _unit(np.asarray(texts, dtype=np.float32))
    return queries


def calibrate(
    snapshot: Snapshot,
    queries: dict[str, np.ndarray],
    ann_top10: Callable[[np.ndarray, int], np.ndarray],
    start: int,
    cells: int,
    min_recall: float,
) -> tuple[int, dict[str, float]]:
    """(nprobe, recall@10 by query kind at that nprobe): the smallest nprobe on the way from
    ``start`` (x1.5 a step, up to every cell) whose recall reaches ``min_recall`` for every
    kind. ``ann_top10(queries, nprobe)`` gives the ANN's top 10 ids."""
    truth = {
        kind: exact_search(snapshot, q, 10, keep_dense=False)[1] for kind, q in queries.items()
    }
    nprobe = min(start, cells)
    while True:
        recalls = {
            kind: recall_at_k(truth[kind], ann_top10(q, nprobe)) for kind, q in queries.items()
        }
        if not recalls or min(recalls.values()) >= min_recall or nprobe >= cells:
            return nprobe, recalls
        nprobe = min(cells, max(nprobe + 1, round(nprobe * 1.5)))
