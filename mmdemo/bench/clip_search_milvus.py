"""CLIP search in Milvus beside faiss, on the same vectors and queries: latency, recall@10
against the exact scan, and how fast each takes the vectors in.

Milvus is Milvus Lite (embedded, in a temporary .db folder) unless ``MMDEMO_VECTOR_DB`` names a
Milvus server (``milvus://host:port``), which is then measured instead, in collections of its
own (prefix ``mmdemo_bench_*``, dropped afterwards). Both Milvus index types the app offers are
measured: FLAT (exact, Milvus Lite's default) and HNSW (an ANN index, what a server's AUTOINDEX
builds). Synthetic 512-d embeddings as in clip_search.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mmdemo.bench.report import Table
from mmdemo.bench.vectors import synthetic, synthetic_rows, synthetic_store, text_like

QUERIES = 200
INSERT_CHUNK = 10_000
INDEX_TYPES = ("FLAT", "HNSW")


def per_query(searcher: Any, view: Any, queries: np.ndarray) -> tuple[float, np.ndarray]:
    """Median seconds per single query and each query's top-10 ids (-1 where none)."""
    times, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        _, ids, _ = searcher.search(view, q[None], 10)
        times.append(time.perf_counter() - t0)
        row = np.full(10, -1, dtype=np.int64)
        row[: ids.shape[1]] = ids[0][:10]
        found.append(row)
    return float(np.median(times)), np.stack(found)


def milvus_target(root: Path) -> Any:
    """The Milvus measured: the server MMDEMO_VECTOR_DB names, else Milvus Lite under root."""
    from mmdemo.config_checks import vector_db

    target = vector_db(os.environ.get("MMDEMO_VECTOR_DB", ""), root)
    if target.kind == "milvus":
        return target
    return vector_db(f"milvus-lite://{root / 'bench.db'}", root)


def run(quick: bool = False, sizes: tuple[int, ...] | None = None) -> Table:
    from mmdemo.retrieval.exact import recall_at_k
    from mmdemo.retrieval.milvus import MilvusStore
    from mmdemo.retrieval.search import SearchConfig, Searcher

    sizes = sizes or ((10_000,) if quick else (10_000, 100_000))
    kinds = ("clustered",) if quick else ("clustered", "spread")
    root = Path(tempfile.mkdtemp(prefix="mmdemo-bench-milvus-"))
    base = milvus_target(root)
    table = Table(
        "clip-search-milvus",
        f"CLIP search: faiss beside {base.backend} on the same data (single queries, 512-d)",
        [
            "vectors",
            "data",
            "queries",
            "engine",
            "per query",
            "vs faiss exact",
            "recall@10",
            "vectors in",
            "first search",
        ],
    )
    stores: list[MilvusStore] = []
    for index_type in INDEX_TYPES:
        target = replace(base, index_type=index_type, prefix=f"mmdemo_bench_{index_type.lower()}")
        stores.append(MilvusStore(target, root / "files"))
    for n in sizes:
        for kind in kinds:
            vectors = synthetic(n, seed=0, kind=kind)
            queries = {
                "image-like": synthetic(QUERIES, seed=1, kind=kind),
                "text-like": text_like(QUERIES, seed=2, kind=kind),
            }
            name = f"s{n}{kind}"
            t0 = time.perf_counter()
            _, snapshot = synthetic_store(root / "faiss", name, vectors)
            rate = n / (time.perf_counter() - t0)
            exact = Searcher(SearchConfig(ann_threshold=10**12))
            app = Searcher(SearchConfig())
            baseline = {}
            for q, (qkind, qs) in enumerate(queries.items()):
                t_exact, truth = per_query(exact, snapshot, qs)
                baseline[qkind] = (t_exact, truth)
                first = f"{n:,}" if q == 0 else ""
                table.add(
                    first,
                    kind if q == 0 else "",
                    qkind,
                    "faiss store, exact",
                    f"{t_exact * 1000:.2f} ms",
                    "1.0x",
                    "1.000",
                    f"{rate:,.0f}/s" if q == 0 else "",
                    "",
                )
                if n > app.config.ann_threshold:
                    t0 = time.perf_counter()
                    app.prepare(snapshot)
                    built = time.perf_counter() - t0
                    t_app, found = per_query(app, snapshot, qs)
                    table.add(
                        "",
                        "",
                        qkind,
                        f"faiss store, app: {app.method(snapshot)}",
                        f"{t_app * 1000:.2f} ms",
                        _ratio(t_exact, t_app),
                        f"{recall_at_k(truth, found):.3f}",
                        "",
                        f"{built:.1f} s (IVF build)" if built > 0.5 else "",
                    )
            for store in stores:
                identity = snapshot.manifest.identity
                t0 = time.perf_counter()
                store.create(name, identity, "float16", replace=store.exists(name))
                for start in range(0, n, INSERT_CHUNK):
                    part = vectors[start : start + INSERT_CHUNK]
                    store.append(name, part, synthetic_rows(start, len(part)), identity)
                rate = n / (time.perf_counter() - t0)
                view = store.load(name)
                searcher = store.searcher(SearchConfig())
                t0 = time.perf_counter()
                searcher.search(view, queries["image-like"][:1], 10)
                first_search = time.perf_counter() - t0
                for q, (qkind, qs) in enumerate(queries.items()):
                    t_exact, truth = baseline[qkind]
                    t_m, found = per_query(searcher, view, qs)
                    table.add(
                        "",
                        "",
                        qkind,
                        searcher.method(view),
                        f"{t_m * 1000:.2f} ms",
                        _ratio(t_exact, t_m),
                        f"{recall_at_k(truth, found):.3f}",
                        f"{rate:,.0f}/s" if q == 0 else "",
                        f"{first_search:.2f} s" if q == 0 else "",
                    )
                store.delete(name)
            shutil.rmtree(root / "faiss" / name, ignore_errors=True)
    version = _version(stores[0])
    for store in stores:
        with contextlib.suppress(Exception):  # clean-up errors do not spoil a finished table
            for collection in store.client.list_collections():
                if collection.startswith(store.target.prefix):
                    store.client.drop_collection(collection)
        store.close()
    shutil.rmtree(root, ignore_errors=True)
    table.notes += [
        f"{QUERIES} queries per row, one at a time; median latency, measured through each "
        "engine's search call as the app makes it (Milvus: a gRPC round trip, also for the "
        "embedded Milvus Lite, whose server runs in the same process). Recall@10: share of "
        "the faiss exact top 10 that the engine's top 10 contains.",
        "Vectors in: vectors stored per second, in chunks of 10,000 with their metadata "
        "(faiss: one segment file per chunk; Milvus: upserts of 1,000 rows, then the manifest "
        "row). First search: from opening the index to the first answer (Milvus builds its "
        "index on the stored segments).",
        f"Milvus: {base.backend} {version}; FLAT is exact, HNSW searches with "
        "ef = max(64, k). Data and query kinds as in the clip-search table. The 1M case "
        "runs with `--only milvus-1m`.",
        f"Load average at the end: {os.getloadavg()[0]:.1f}.",
    ]
    return table


def _ratio(baseline: float, t: float) -> str:
    r = baseline / t
    return f"{r:.1f}x faster" if r >= 1.05 else "same" if r > 0.95 else f"{1 / r:.1f}x slower"


def _version(store: Any) -> str:
    try:
        return str(store.client.get_server_version())
    except Exception:  # a server without the call: the table still stands
        return ""
