"""Nearest-neighbour search over a snapshot: exact for small indexes, faiss IVF past a size.

Exact search is one matrix product per segment (BLAS), which at 10k vectors takes well under a
millisecond. Past ``ann_threshold`` live vectors a faiss inverted-file index with 8-bit scalar
quantisation (IVF-SQ8) proposes candidates and the stored vectors rescore them exactly, so the
scores the user sees are exact cosines; ``recall_at_k`` measures what the ANN misses.
"""

from __future__ import annotations

import json
import math
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmdemo.retrieval.segments import Snapshot
from mmdemo.retrieval.store import atomic_write

ANN_FILE = "ann.bin"
# share of ANN entries that may be stale (compacted away) before the ANN is rebuilt
STALE_SHARE = 0.1


@dataclass(frozen=True)
class SearchConfig:
    """When and how the approximate index is used."""

    # live vectors past which search uses the ANN index instead of an exact scan
    ann_threshold: int = 50_000
    # IVF cells probed per query (more: higher recall, slower)
    nprobe: int = 24
    # ANN candidates rescored exactly per requested result
    rescore_factor: int = 4
    # vectors used to train the IVF centroids (k-means), at most (and 50 per cell)
    train_size: int = 65_536
    # k-means iterations when training the cells (faiss's default of 25 buys little recall)
    kmeans_iterations: int = 10
    # retrain the centroids when the index has grown this much since they were trained
    retrain_growth: float = 4.0
    # write the ANN cache to disk when this share of it changed since it was last written
    save_every: float = 0.05
    # recall@10 against exact search that a freshly built ANN must reach on sample queries;
    # nprobe is raised (up to every cell) until it does
    min_recall: float = 0.95
    # sample queries used to measure that recall
    calibration_queries: int = 64

    def __post_init__(self) -> None:
        from mmdemo.errors import SettingsError

        for name, low, high in (
            ("ann_threshold", 0, 10**12),
            ("nprobe", 1, 4096),
            ("rescore_factor", 1, 100),
            ("train_size", 1000, 10**8),
            ("kmeans_iterations", 1, 100),
        ):
            if not low <= getattr(self, name) <= high:
                raise SettingsError(f"{name}={getattr(self, name)} is outside {low}..{high}")
        if not 0 < self.min_recall <= 1 or self.calibration_queries < 2:
            raise SettingsError("min_recall must be in (0, 1] and calibration_queries >= 2")
        if self.retrain_growth < 1 or not 0 < self.save_every <= 1:
            raise SettingsError("retrain_growth must be >= 1 and save_every in (0, 1]")

    def nlist(self, n: int) -> int:
        """IVF cells for ``n`` vectors: about sqrt(n) (1,000 at 1M: building costs one pass of
        n x nlist dot products), at most n/39 (faiss wants 39 training points per cell)."""
        return int(max(1, min(4096, math.sqrt(max(n, 1)), n / 39)))


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


def exact_search(snapshot: Snapshot, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids), each (m, k'), k' = min(k, live): a full scan, one matmul per segment."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    m = len(queries)
    best_s = np.full((m, 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((m, 0), dtype=np.int64)
    for seg, dead in zip(snapshot.segments, snapshot.dead_rows, strict=True):
        if not len(seg):
            continue
        scores = queries @ seg.dense.T
        if len(dead):
            scores[:, dead] = -np.inf
        s, i = topk(scores, np.broadcast_to(seg.ids, scores.shape), k)
        best_s, best_i = topk(np.hstack([best_s, s]), np.hstack([best_i, i]), k)
    live = min(k, snapshot.count)
    return best_s[:, :live], best_i[:, :live]


class AnnIndex:
    """A faiss IVF-SQ8 index over a snapshot's vectors, kept in step with later snapshots."""

    def __init__(self, index: Any, meta: dict[str, Any]) -> None:
        self.index = index
        self.meta = meta  # created, generation, max_id, trained_on, changed (since saved)
        self.lock = threading.Lock()  # faiss indexes must not be searched while they change

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def nprobe(self, config: SearchConfig) -> int:
        """The configured nprobe, or the higher one calibration found necessary."""
        return max(config.nprobe, int(self.meta.get("nprobe", 0)))

    def describe(self, config: SearchConfig) -> str:
        recall = self.meta.get("recall")
        measured = f", recall@10 {recall:.2f} on sample queries" if recall is not None else ""
        return (
            f"ANN (faiss IVF{self.index.nlist},SQ8, nprobe {self.nprobe(config)}, "
            f"exact rescoring{measured})"
        )

    def calibrate(self, snapshot: Snapshot, config: SearchConfig, rescore: Any) -> None:
        """Measure recall@10 against exact search on sample queries near the data (perturbed
        and blended indexed vectors) and raise nprobe until it reaches ``min_recall``."""
        rng = np.random.default_rng(0)
        sample = _sample(snapshot, 4 * config.calibration_queries)
        if len(sample) < 2:
            return
        half = config.calibration_queries // 2
        near = sample[rng.integers(0, len(sample), half)]
        near = near + rng.normal(0, 0.5 / np.sqrt(sample.shape[1]), near.shape)
        blend = sample[rng.integers(0, len(sample), (half, 4))].mean(axis=1)
        queries = np.concatenate([near, blend]).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True) + 1e-12
        _, truth = exact_search(snapshot, queries, 10)
        nprobe, recall = config.nprobe, 0.0
        while True:
            _, found = rescore(queries, 10, nprobe)
            recall = recall_at_k(truth, found)
            if recall >= config.min_recall or nprobe >= self.index.nlist:
                break
            nprobe = min(self.index.nlist, nprobe * 2)
        self.meta["nprobe"], self.meta["recall"] = nprobe, round(recall, 3)

    @classmethod
    def build(cls, snapshot: Snapshot, config: SearchConfig) -> AnnIndex:
        import faiss

        dim = snapshot.manifest.identity.embed_dim
        nlist = config.nlist(snapshot.count)
        index = faiss.index_factory(dim, f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
        faiss.extract_index_ivf(index).cp.niter = config.kmeans_iterations
        index.train(_sample(snapshot, min(config.train_size, 50 * nlist)))
        meta = {
            "created": snapshot.manifest.created,
            "trained_on": snapshot.count,
            "max_id": -1,
            "changed": 0,
        }
        ann = cls(index, meta)
        ann.sync(snapshot, config)
        return ann

    def sync(self, snapshot: Snapshot, config: SearchConfig) -> bool:
        """Add rows newer than the index and drop removed ones. False when a rebuild is due.

        Ids whose rows a compaction dropped may linger in the index; search ignores them (the
        snapshot no longer knows them), and past ``STALE_SHARE`` of the index it is rebuilt.
        """
        if snapshot.count > config.retrain_growth * max(self.meta["trained_on"], 1):
            return False
        changed = 0
        with self.lock:
            for ids, vectors in snapshot.iter_live(min_id=self.meta["max_id"]):
                self.index.add_with_ids(vectors, ids)
                changed += len(ids)
            if len(snapshot.removed_ids):
                changed += int(self.index.remove_ids(snapshot.removed_ids))
            self.meta["max_id"] = max(self.meta["max_id"], snapshot.manifest.next_id - 1)
            self.meta["generation"] = snapshot.manifest.generation
            self.meta["changed"] += changed
        return self.ntotal - snapshot.count <= STALE_SHARE * max(self.ntotal, 1)

    def search(self, queries: np.ndarray, n: int, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            self.index.nprobe = nprobe
            return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), n)

    def save(self, directory: Path) -> None:
        """One file (header + faiss bytes) written atomically, so the pair cannot disagree."""
        import faiss

        with self.lock:
            blob = faiss.serialize_index(self.index)
            self.meta["changed"] = 0
            header = json.dumps(self.meta).encode()

        def write(handle: Any) -> None:
            handle.write(struct.pack("<I", len(header)))
            handle.write(header)
            handle.write(blob.tobytes())

        atomic_write(directory / ANN_FILE, write)

    @classmethod
    def load(cls, directory: Path) -> AnnIndex | None:
        """The cached index, or None when there is none or it cannot be read."""
        import faiss

        path = directory / ANN_FILE
        try:
            data = path.read_bytes()
            (size,) = struct.unpack("<I", data[:4])
            meta = json.loads(data[4 : 4 + size])
            index = faiss.deserialize_index(np.frombuffer(data[4 + size :], dtype=np.uint8))
        except (OSError, ValueError, struct.error, RuntimeError):
            return None
        return cls(index, meta)


def _sample(snapshot: Snapshot, size: int) -> np.ndarray:
    """Up to ``size`` live vectors spread evenly over the index (for k-means training)."""
    step = max(1, snapshot.count // size)
    parts = [vectors[::step] for _, vectors in snapshot.iter_live()]
    return np.ascontiguousarray(np.concatenate(parts)[:size], dtype=np.float32)


class Searcher:
    """Search one index: picks exact or ANN by size, keeps the ANN cache current and saved."""

    def __init__(self, config: SearchConfig | None = None) -> None:
        self.config = config or SearchConfig()
        self.ann: AnnIndex | None = None
        self._lock = threading.Lock()

    def method(self, snapshot: Snapshot) -> str:
        if self.ann is not None and snapshot.count > self.config.ann_threshold:
            return self.ann.describe(self.config)
        return "exact" if snapshot.count <= self.config.ann_threshold else "ANN (not built yet)"

    def prepare(self, snapshot: Snapshot) -> None:
        """Bring the ANN index in step with ``snapshot`` (loading, syncing or building it)."""
        if snapshot.count <= self.config.ann_threshold:
            return
        current = self.ann
        if (
            current is not None
            and current.meta.get("generation", -1) >= snapshot.manifest.generation
        ):
            return  # in step, or this is an older snapshot (the common case: every search)
        with self._lock:
            ann = self.ann or AnnIndex.load(snapshot.directory)
            if ann is not None and ann.meta.get("created") != snapshot.manifest.created:
                ann = None  # left from an index of the same name that was replaced
            if ann is None or not ann.sync(snapshot, self.config):
                ann = AnnIndex.build(snapshot, self.config)
                ann.calibrate(
                    snapshot,
                    self.config,
                    lambda q, k, nprobe: self._ann_search(ann, snapshot, q, k, nprobe),
                )
                ann.meta["changed"] = ann.ntotal
            self.ann = ann
            if ann.meta["changed"] > self.config.save_every * max(ann.ntotal, 1):
                ann.save(snapshot.directory)

    def search(
        self, snapshot: Snapshot, queries: np.ndarray, k: int, exact: bool = False
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """(scores, ids, method) for (m, d) normalised queries."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if exact or snapshot.count <= self.config.ann_threshold:
            return (*exact_search(snapshot, queries, k), "exact")
        self.prepare(snapshot)
        assert self.ann is not None
        if self.ann.nprobe(self.config) >= self.ann.index.nlist:  # no partition pays off here
            return (
                *exact_search(snapshot, queries, k),
                "exact (an ANN index could not reach the recall target on this data)",
            )
        s, i = self._ann_search(self.ann, snapshot, queries, k, self.ann.nprobe(self.config))
        return s, i, self.ann.describe(self.config)

    def _ann_search(
        self, ann: AnnIndex, snapshot: Snapshot, queries: np.ndarray, k: int, nprobe: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """ANN candidates, rescored exactly against the snapshot's vectors."""
        n = max(k * self.config.rescore_factor, k + 16)
        _, cand = ann.search(queries, n, nprobe)
        scores = np.full(cand.shape, -np.inf, dtype=np.float32)
        for row in range(len(queries)):
            vectors, live = snapshot.vectors_of(np.maximum(cand[row], 0))
            live &= cand[row] >= 0  # -1: fewer candidates than asked; also ids not in snapshot
            scores[row] = np.where(live, vectors @ queries[row], -np.inf)
        s, i = topk(scores, cand, k)
        keep = np.isfinite(s).all(0)  # drop columns no query could fill
        return s[:, keep], i[:, keep]


def recall_at_k(truth: np.ndarray, found: np.ndarray) -> float:
    """Share of the exact top-k ids that the approximate top-k also found."""
    hits = sum(len(set(t.tolist()) & set(f.tolist())) for t, f in zip(truth, found, strict=True))
    return hits / max(truth.size, 1)
