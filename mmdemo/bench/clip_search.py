"""CLIP search: query latency and recall@10 of exact vs ANN search at 10k, 100k and 1M vectors.

Synthetic 512-d embeddings (no real CLIP weights are reachable offline). ``synthetic`` draws
them with the structure image collections have: a shared direction (CLIP embeddings sit in a
narrow cone), topics grouped into super-topics, continuous variation and noise. Uniform random
vectors, which no index can partition, are measured as the worst case. The baseline of each
size is the exact scan in the same run.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from mmdemo.bench.report import Table

DIM = 512
QUERIES = 200


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def synthetic(n: int, dim: int = DIM, seed: int = 0, topics: int = 4096) -> np.ndarray:
    """(n, dim) float32 unit vectors; the same topic layout for every seed (queries share it)."""
    layout = np.random.default_rng(1234)
    mean = _unit(layout.standard_normal(dim))
    supers = _unit(layout.standard_normal((64, dim)))
    topic_dirs = _unit(
        0.7 * supers[layout.integers(0, 64, topics)]
        + 0.7 * _unit(layout.standard_normal((topics, dim)))
    )
    basis = np.linalg.qr(layout.standard_normal((dim, 16)))[0]
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        topic = rng.integers(0, topics, m)
        z = rng.standard_normal((m, 16)) / 4.0
        noise = rng.standard_normal((m, dim)) / np.sqrt(dim)
        x = 0.7 * mean + 0.6 * topic_dirs[topic] + 0.5 * z @ basis.T + 0.5 * noise
        out[start : start + m] = _unit(x)
    return out


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


def per_query(searcher, snapshot, queries: np.ndarray) -> tuple[float, list[np.ndarray]]:
    """Median seconds per single query (as a user sends them) and each query's result ids."""
    searcher.search(snapshot, queries[:1], 10)
    times, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        _, ids, _ = searcher.search(snapshot, q[None], 10)
        times.append(time.perf_counter() - t0)
        found.append(ids[0])
    return float(np.median(times)), found


def run(quick: bool = False) -> Table:
    from mmdemo.retrieval.search import ANN_FILE, SearchConfig, Searcher, recall_at_k

    sizes = (10_000, 100_000) if quick else (10_000, 100_000, 1_000_000)
    cases = [(n, "clustered") for n in sizes] + [(100_000, "uniform (worst case)")]
    table = Table(
        "clip-search",
        "CLIP search: query latency and recall@10 (single queries, 512-d, float16 storage)",
        ["vectors", "data", "search", "per query", "vs exact", "recall@10", "ANN build"],
    )
    root = Path(tempfile.mkdtemp(prefix="mmdemo-bench-search-"))
    for n, kind in cases:
        make = synthetic if kind == "clustered" else uniform
        vectors, queries = make(n, seed=0), make(QUERIES, seed=1)
        _, snapshot = synthetic_store(root, f"s{n}{kind[0]}", vectors)
        del vectors
        exact = Searcher(SearchConfig(ann_threshold=10**9))
        t_exact, truth = per_query(exact, snapshot, queries)
        top, _, _ = exact.search(snapshot, queries, 10)
        mean = sum(v.sum(0) for _, v in snapshot.iter_live()) / snapshot.count
        data = f"{kind}: cos to all {float((queries @ mean).mean()):.2f}, 10th NN {top[:, 9].mean():.2f}"
        table.add(
            f"{n:,}",
            data,
            "exact (matrix product)",
            f"{t_exact * 1000:.2f} ms",
            "1.0x",
            "1.000",
            "",
        )
        if n < 100_000:
            continue
        default = SearchConfig().nprobe
        for nprobe in (16, default, 32) if kind == "clustered" else (default,):
            config = SearchConfig(ann_threshold=0, nprobe=nprobe)
            ann = Searcher(config)
            cached = (snapshot.directory / ANN_FILE).is_file()
            t0 = time.perf_counter()
            ann.prepare(snapshot)
            build = time.perf_counter() - t0
            t_ann, found = per_query(ann, snapshot, queries)
            recall = recall_at_k(np.stack(truth), np.stack(found))
            table.add(
                f"{n:,}",
                kind,
                f"IVF{ann.ann.index.nlist},SQ8 nprobe {nprobe}"
                + (" (default)" if nprobe == default else "")
                + (
                    f" raised to {ann.ann.nprobe(config)} by calibration"
                    if ann.ann.nprobe(config) != nprobe
                    else ""
                )
                + (
                    " = every cell, so search falls back to exact"
                    if ann.ann.nprobe(config) >= ann.ann.index.nlist
                    else " + exact rescoring"
                ),
                f"{t_ann * 1000:.2f} ms",
                f"{t_exact / t_ann:.1f}x faster",
                f"{recall:.3f}",
                f"loaded from disk {build:.1f} s" if cached else f"{build:.1f} s",
            )
    table.notes += [
        f"{QUERIES} queries per row, one at a time; median latency. Recall@10: share of the exact "
        "top 10 that the ANN top 10 contains.",
        "Data column: the mean cosine of a query with the whole collection and with its 10th "
        "nearest neighbour. Clustered data (`mmdemo/bench/clip_search.py:synthetic`) has "
        "neighbourhoods, as image collections do; uniform random vectors have none, so no "
        "partition (IVF) finds their neighbours cheaply: calibration notices and search "
        "stays exact there.",
        "Targets: exact at 10k under 2 ms; under 10 ms per query at 1M with recall@10 >= 0.95. "
        "The app uses exact search up to 50k vectors and IVF past that (nprobe 24 by default); "
        "the ANN index is cached in the index folder and kept in step on add/remove. When it is "
        "built, its recall@10 is measured against exact search on 64 sample queries near the "
        "data, and nprobe is raised until that recall reaches 0.95 (uniform data: up to every "
        "cell; when that is every cell, search falls back to exact).",
        f"BLAS threads: {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}.",
    ]
    return table
