"""Exact nearest neighbours over a snapshot, and the helpers that judge approximate ones.

Exact search is one matrix product per segment (BLAS): well under a millisecond at 10k
vectors, about 0.1 s at 1M on two cores. It is also the ground truth recall is measured against.
"""

from __future__ import annotations

import numpy as np

from mmdemo.retrieval.segments import Snapshot


def topk(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` per row of (m, n) scores, sorted best first."""
    k = min(k, scores.shape[1])
    if k == 0:
        return scores[:, :0], ids[:, :0]
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else None
    if part is None:
        part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    top = np.take_along_axis(scores, part, 1)
    order = np.argsort(-top, axis=1, kind="stable")
    return np.take_along_axis(top, order, 1), np.take_along_axis(
        ids, np.take_along_axis(part, order, 1), 1
    )


def exact_search(
    snapshot: Snapshot, queries: np.ndarray, k: int, keep_dense: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids), each (m, k'), k' = min(k, live): a full scan, one matmul per segment.

    ``keep_dense``: keep each segment's vectors in memory as float32 for the next search (what
    searching wants); False streams them in chunks instead (a one-off scan of a big index,
    such as calibrating its ANN, then costs no lasting memory).
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    m = len(queries)
    best_s = np.full((m, 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((m, 0), dtype=np.int64)

    def merge(scores: np.ndarray, ids: np.ndarray) -> None:
        nonlocal best_s, best_i
        s, i = topk(scores, np.broadcast_to(ids, scores.shape), k)
        best_s, best_i = topk(np.hstack([best_s, s]), np.hstack([best_i, i]), k)

    if keep_dense:
        for seg, dead in zip(snapshot.segments, snapshot.dead_rows, strict=True):
            if not len(seg):
                continue
            scores = queries @ seg.dense.T
            if len(dead):
                scores[:, dead] = -np.inf
            merge(scores, seg.ids)
    else:
        for ids, vectors in snapshot.iter_live():
            merge(queries @ vectors.T, ids)
    live = min(k, snapshot.count)
    return best_s[:, :live], best_i[:, :live]


def sample_vectors(snapshot: Snapshot, size: int) -> np.ndarray:
    """Up to ``size`` live vectors spread evenly over the index (for k-means training and calibration)."""
    step = max(1, snapshot.count // size)
    parts = [vectors[::step] for _, vectors in snapshot.iter_live()]
    return np.ascontiguousarray(np.concatenate(parts)[:size], dtype=np.float32)


def recall_at_k(truth: np.ndarray, found: np.ndarray) -> float:
    """Share of the exact top-k ids that the approximate top-k also found."""
    hits = sum(len(set(t.tolist()) & set(f.tolist())) for t, f in zip(truth, found, strict=True))
    return hits / max(truth.size, 1)
