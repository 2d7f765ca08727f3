"""Nearest-neighbour search over a snapshot: exact for small indexes, faiss IVF past a size.

Exact search (exact.py) is one matrix product per segment. Past ``ann_threshold`` live vectors
a faiss inverted-file index with 8-bit scalar quantisation (IVF-SQ8) proposes candidates and
the stored vectors rescore them exactly, so the scores the user sees are exact cosines. How
many cells a query probes is calibrated when the index is built (calibrate.py).
"""

from __future__ import annotations

import json
import math
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmdemo.models.files import atomic_write
from mmdemo.retrieval.calibrate import calibrate, sample_queries
from mmdemo.retrieval.exact import exact_search, sample_vectors, topk
from mmdemo.retrieval.segments import Snapshot

# (snapshot) -> text embeddings of fixed captions for calibration, or None when unavailable
TextQueries = Callable[[Snapshot], "np.ndarray | None"]

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
    # recall@10 against exact search that a freshly built ANN must reach on sample queries of
    # every kind (image-like, off-manifold, text); nprobe is raised (up to every cell) until
    # it does
    min_recall: float = 0.95
    # sample queries of each kind used to measure that recall
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
        kinds = ", ".join(self.meta.get("recall_by_kind", {})) or "sample"
        measured = f", recall@10 {recall:.2f} on {kinds} queries" if recall is not None else ""
        return (
            f"ANN (faiss IVF{self.index.nlist},SQ8, nprobe {self.nprobe(config)}, "
            f"exact rescoring{measured})"
        )

    def calibrate(
        self,
        snapshot: Snapshot,
        config: SearchConfig,
        rescore: Any,
        texts: np.ndarray | None = None,
    ) -> None:
        """Raise nprobe until recall@10 reaches ``min_recall`` on every kind of sample query
        (see calibrate.py); ``rescore(queries, k, nprobe)`` is the search to measure."""
        queries = sample_queries(snapshot, config.calibration_queries, texts)
        nprobe, recalls = calibrate(
            snapshot,
            queries,
            lambda q, nprobe: rescore(q, 10, nprobe)[1],
            config.nprobe,
            int(self.index.nlist),
            config.min_recall,
        )
        self.meta["nprobe"] = nprobe
        self.meta["recall"] = round(min(recalls.values()), 3) if recalls else None
        self.meta["recall_by_kind"] = {kind: round(r, 3) for kind, r in recalls.items()}

    @classmethod
    def build(cls, snapshot: Snapshot, config: SearchConfig) -> AnnIndex:
        import faiss

        dim = snapshot.manifest.identity.embed_dim
        nlist = config.nlist(snapshot.count)
        index = faiss.index_factory(dim, f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
        faiss.extract_index_ivf(index).cp.niter = config.kmeans_iterations
        index.train(sample_vectors(snapshot, min(config.train_size, 50 * nlist)))
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


class Searcher:
    """Search one index: picks exact or ANN by size, keeps the ANN cache current and saved."""

    def __init__(
        self, config: SearchConfig | None = None, texts: TextQueries | None = None
    ) -> None:
        self.config = config or SearchConfig()
        self.texts = texts  # real text queries to calibrate with, when there are any
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
                    self.texts(snapshot) if self.texts is not None else None,
                )
                ann.meta["changed"] = ann.ntotal
            self.ann = ann
            if ann.meta["changed"] > self.config.save_every * max(ann.ntotal, 1):
                ann.save(snapshot.directory)

    def search(
        self,
        snapshot: Snapshot,
        queries: np.ndarray,
        k: int,
        exact: bool = False,
        nprobe: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """(scores, ids, method) for (m, d) normalised queries. ``nprobe`` overrides the
        calibrated number of cells probed (benchmarks sweep it)."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if exact or snapshot.count <= self.config.ann_threshold:
            return (*exact_search(snapshot, queries, k), "exact")
        self.prepare(snapshot)
        assert self.ann is not None
        if nprobe is not None:
            s, i = self._ann_search(self.ann, snapshot, queries, k, int(nprobe))
            return s, i, f"ANN (faiss IVF{self.ann.index.nlist},SQ8, nprobe {nprobe})"
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
