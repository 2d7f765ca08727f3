"""Synthetic CLIP-like embeddings for the search benchmarks and tests (no real CLIP weights are
reachable offline).

Image embeddings share a direction (CLIP embeddings sit in a narrow cone), belong to topics
grouped into super-topics, vary continuously within a topic and carry noise:

- ``clustered``: 4,096 topics, 16 directions of variation, tight topics (a query's 10th nearest
  neighbour at cosine 0.6-0.7);
- ``spread``: 16,384 broader topics, 64 directions of variation, more noise: neighbourhoods
  run into each other (10th neighbour near 0.55), as in a varied photo collection.

Text-like queries model CLIP's modality gap: a text embedding shares its topic's content with
the images but sits in another cone, so its nearest images are far (cosine about 0.3) and its
mean cosine with the collection is about 0.1. Uniform random vectors, which no index can
partition, are the worst case.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

DIM = 512
KINDS = {
    # kind: (topics, directions of variation, weights of mean, topic, variation, noise)
    "clustered": (4096, 16, (0.7, 0.6, 0.5, 0.5)),
    "spread": (16384, 64, (0.7, 0.45, 0.55, 0.6)),
}
TEXT_GAP = 0.9  # weight of the text cone's direction in a text-like query


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _layout(dim: int, kind: str, topics: int | None) -> dict[str, Any]:
    """The fixed geometry of a kind (the same for every seed, so queries share it)."""
    n_topics, n_dirs, weights = KINDS[kind]
    n_topics = topics or n_topics
    n_dirs = min(n_dirs, max(1, dim // 4))
    rng = np.random.default_rng(1234)
    mean = _unit(rng.standard_normal(dim))
    supers = _unit(rng.standard_normal((64, dim)))
    topic_dirs = _unit(
        0.7 * supers[rng.integers(0, 64, n_topics)]
        + 0.7 * _unit(rng.standard_normal((n_topics, dim)))
    )
    basis = np.linalg.qr(rng.standard_normal((dim, n_dirs)))[0]
    text_mean = _unit(0.2 * mean + _unit(rng.standard_normal(dim)))
    return {
        "mean": mean,
        "topics": topic_dirs,
        "basis": basis,
        "weights": weights,
        "text_mean": text_mean,
    }


def synthetic(
    n: int, dim: int = DIM, seed: int = 0, topics: int | None = None, kind: str = "clustered"
) -> np.ndarray:
    """(n, dim) float32 unit vectors shaped like CLIP image embeddings of a collection."""
    lay = _layout(dim, kind, topics)
    w_mean, w_topic, w_var, w_noise = lay["weights"]
    n_dirs = lay["basis"].shape[1]
    scale = 0.25 if kind == "clustered" else 1 / np.sqrt(n_dirs)
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        topic = rng.integers(0, len(lay["topics"]), m)
        z = rng.standard_normal((m, n_dirs)) * scale
        noise = rng.standard_normal((m, dim)) / np.sqrt(dim)
        x = (
            w_mean * lay["mean"]
            + w_topic * lay["topics"][topic]
            + w_var * z @ lay["basis"].T
            + w_noise * noise
        )
        out[start : start + m] = _unit(x)
    return out


def text_like(
    n: int, dim: int = DIM, seed: int = 0, topics: int | None = None, kind: str = "clustered"
) -> np.ndarray:
    """(n, dim) queries shaped like CLIP text embeddings of captions of ``kind``'s topics."""
    lay = _layout(dim, kind, topics)
    n_dirs = lay["basis"].shape[1]
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, len(lay["topics"]), n)
    z = rng.standard_normal((n, n_dirs)) / np.sqrt(n_dirs)
    content = 0.6 * lay["topics"][topic] + 0.5 * z @ lay["basis"].T
    noise = rng.standard_normal((n, dim)) / np.sqrt(dim)
    q = TEXT_GAP * lay["text_mean"] + 0.5 * _unit(content) + 0.6 * noise
    return _unit(q).astype(np.float32)


def uniform(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    return _unit(np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32))


def synthetic_rows(start: int, n: int) -> list[dict[str, Any]]:
    """Made-up image metadata for rows ``start .. start+n-1`` (vectors without files)."""
    return [
        {
            "path": f"/synthetic/{i}.jpg",
            "name": f"{i}.jpg",
            "sha256": f"{i:064x}",
            "bytes": 1,
            "width": 1,
            "height": 1,
            "mtime": 0.0,
            "added": 0.0,
        }
        for i in range(start, start + n)
    ]


def synthetic_store(
    root: Path, name: str, vectors: np.ndarray, identity: Any = None, chunk: int = 250_000
) -> tuple[Any, Any]:
    """An index of ``vectors`` written through the real store (rows carry made-up metadata);
    returns (store, snapshot). ``identity``: the model it claims (default: "synthetic")."""
    from mmdemo.retrieval.identity import ModelIdentity
    from mmdemo.retrieval.store import IndexStore

    store = IndexStore(root)
    identity = identity or ModelIdentity("synthetic", "synthetic", vectors.shape[1])
    snapshot = store.create(name, identity, "float16")
    for start in range(0, len(vectors), chunk):
        part = vectors[start : start + chunk]
        rows = synthetic_rows(start, len(part))
        snapshot, _ = store.append(name, part, rows, identity, reuse=snapshot)
    return store, snapshot
