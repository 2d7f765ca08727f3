"""The index store and search without a model: segments, merges, compaction, ANN, damage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmdemo.bench.vectors import synthetic, synthetic_store
from mmdemo.bench.vectors import synthetic_rows as rows
from mmdemo.retrieval import search as search_mod
from mmdemo.retrieval.exact import exact_search, recall_at_k
from mmdemo.retrieval.identity import IndexCorruptError, IndexExistsError, ModelIdentity
from mmdemo.retrieval.search import SearchConfig, Searcher
from mmdemo.retrieval.store import IndexStore, StoreConfig

DIM = 32


IDENTITY = ModelIdentity("synthetic", "synthetic", DIM)


def brute_force(vectors: dict[int, np.ndarray], q: np.ndarray, k: int) -> list[int]:
    ids = np.array(sorted(vectors))
    scores = np.stack([vectors[i] for i in ids]) @ q
    return ids[np.argsort(-scores, kind="stable")[:k]].tolist()


def test_many_small_adds_are_merged_and_nothing_is_lost(tmp_path: Path) -> None:
    store = IndexStore(tmp_path, StoreConfig(max_segments=4))
    store.create("s", IDENTITY, "float32")
    data = synthetic(60, DIM, seed=3)
    snap = None
    for start in range(0, 60, 5):
        snap, dropped = store.append(
            "s", data[start : start + 5], rows(start, 5), IDENTITY, reuse=snap
        )
        assert dropped == 0
        assert len(snap.manifest.segments) <= 4
    fresh = IndexStore(tmp_path).load("s")
    assert fresh.count == 60
    vectors, live = fresh.vectors_of(np.arange(60))
    assert live.all() and np.allclose(vectors, data)
    assert {p.name for p in (tmp_path / "s").glob("seg-*")} == {
        f"{r.name}{ext}" for r in fresh.manifest.segments for ext in (".npy", ".json")
    }


def test_removing_most_of_a_segment_compacts_it(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    store.create("s", IDENTITY, "float32")
    data = synthetic(20, DIM, seed=4)
    snap, _ = store.append("s", data, rows(0, 20), IDENTITY)
    snap, gone = store.remove("s", [1, 2, 3], reuse=snap)
    assert gone == [1, 2, 3] and snap.manifest.removed == (1, 2, 3)  # below the ratio: listed
    snap, gone = store.remove("s", [*range(4, 12), 999], reuse=snap)
    assert gone == list(range(4, 12))
    assert snap.manifest.removed == () and snap.count == 9  # rewritten without the dead rows
    assert sum(r.count for r in snap.manifest.segments) == 9
    vectors, live = snap.vectors_of(np.array([0, 12, 19, 5]))
    assert live.tolist() == [True, True, True, False]
    assert np.allclose(vectors[:3], data[[0, 12, 19]])
    q = data[15]
    _, ids = exact_search(snap, q[None], 5)
    keep = {i: data[i] for i in [0, *range(12, 20)]}
    assert ids[0].tolist() == brute_force(keep, q, 5)


def test_duplicates_are_dropped_at_commit(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    store.create("s", IDENTITY)
    data = synthetic(4, DIM, seed=5)
    snap, dropped = store.append("s", data[:2], rows(0, 2), IDENTITY)
    twice = rows(1, 2) + rows(2, 1)  # 1 is indexed; 2 comes twice
    snap, dropped = store.append("s", data[1:4], twice, IDENTITY, reuse=snap)
    assert dropped == 2 and snap.count == 3


def test_create_refuses_an_existing_index_unless_replacing(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    store.create("s", IDENTITY)
    store.append("s", synthetic(3, DIM), rows(0, 3), IDENTITY)
    with pytest.raises(IndexExistsError, match="already exists"):
        store.create("s", IDENTITY)
    snap = store.create("s", IDENTITY, replace=True)
    assert snap.count == 0 and not list((tmp_path / "s").glob("seg-*"))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "manifest.json").write_text("{not json"), "not a readable index manifest"),
        (lambda d: (d / "manifest.json").write_text(json.dumps({"format": 99})), "format 99"),
        (
            lambda d: next(d.glob("seg-*.npy")).write_bytes(b"\x93NUMPY garbage"),
            "no readable vectors",
        ),
        (lambda d: next(d.glob("seg-*.json")).write_text('{"id": [0]}'), "does not match"),
    ],
)
def test_damaged_files_give_a_clear_error(tmp_path: Path, damage, message) -> None:
    store = IndexStore(tmp_path)
    store.create("s", IDENTITY)
    store.append("s", synthetic(3, DIM), rows(0, 3), IDENTITY)
    damage(tmp_path / "s")
    with pytest.raises(IndexCorruptError) as info:
        store.load("s")
    assert message in str(info.value)


def test_ann_search_matches_exact_and_follows_adds_and_removes(tmp_path: Path) -> None:
    data = synthetic(6000, 64, seed=0, topics=64)
    queries = synthetic(50, 64, seed=1, topics=64)
    store, snap = synthetic_store(tmp_path, "big", data)
    config = SearchConfig(ann_threshold=1000, nprobe=16)
    searcher = Searcher(config)
    _, truth, method = searcher.search(snap, queries, 10, exact=True)
    scores, found, method = searcher.search(snap, queries, 10)
    assert method.startswith("ANN") and "IVF" in method
    assert recall_at_k(truth, found) >= 0.9
    exact_scores = np.einsum(
        "qd,qkd->qk", queries, snap.vectors_of(found.ravel())[0].reshape(50, 10, 64)
    )
    assert np.allclose(scores, exact_scores, atol=1e-5), "shown scores are exact cosines"
    assert (tmp_path / "big" / search_mod.ANN_FILE).is_file()

    identity = snap.manifest.identity
    new = synthetic(3, 64, seed=7)
    snap, _ = store.append("big", new, rows(10_000, 3), identity, reuse=snap)
    _, ids, _ = searcher.search(snap, new, 1)
    assert ids[:, 0].tolist() == [6000, 6001, 6002]
    snap, _ = store.remove("big", [6001, int(truth[0, 0])], reuse=snap)
    _, ids, _ = searcher.search(snap, np.vstack([new[1], queries[0]]), 10)
    assert 6001 not in ids[0] and int(truth[0, 0]) not in ids[1]


def test_the_ann_cache_is_reused_by_a_new_process(tmp_path: Path, monkeypatch) -> None:
    data = synthetic(3000, 64, seed=0)
    store, snap = synthetic_store(tmp_path, "big", data)
    config = SearchConfig(ann_threshold=1000)
    Searcher(config).prepare(snap)
    snap, _ = store.append(
        "big", synthetic(2, 64, seed=9), rows(50_000, 2), snap.manifest.identity, reuse=snap
    )

    def no_build(*args, **kwargs):
        raise AssertionError("the cached ANN index should have been loaded and synced")

    monkeypatch.setattr(search_mod.AnnIndex, "build", no_build)
    later = Searcher(config)
    _, ids, _ = later.search(IndexStore(tmp_path).load("big"), synthetic(2, 64, seed=9), 1)
    assert ids[:, 0].tolist() == [3000, 3001]


def test_importing_retrieval_and_its_cli_loads_no_framework() -> None:
    import os
    import subprocess
    import sys

    code = (
        "import sys, mmdemo.retrieval.service, mmdemo.retrieval.zeroshot, "
        "mmdemo.retrieval.explain, mmdemo.cli.index, mmdemo.bench.clip_search;"
        "print(sorted(m for m in ('torch', 'open_clip', 'faiss', 'gradio', 'PIL') if m in sys.modules))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMDEMO_")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def _calibrated(tmp_path: Path, name: str, data: np.ndarray, texts=None, nprobe: int = 2):
    _, snap = synthetic_store(tmp_path, name, data)
    searcher = Searcher(
        SearchConfig(ann_threshold=1000, nprobe=nprobe, min_recall=0.95),
        texts=None if texts is None else (lambda _snapshot: texts),
    )
    searcher.prepare(snap)
    return snap, searcher


def test_calibration_probes_as_many_cells_as_text_like_queries_need(tmp_path: Path) -> None:
    """Image queries find their neighbours in 2-4 cells here; text-like queries (another cone,
    far neighbours) need more. Calibration measures both kinds and picks enough for both."""
    from mmdemo.bench.vectors import text_like

    data = synthetic(20_000, 128, seed=0, topics=64)
    snap, searcher = _calibrated(tmp_path, "cal", data)
    cells, nprobe = searcher.ann.index.nlist, searcher.ann.nprobe(searcher.config)
    assert 2 < nprobe < cells, "raised from 2, and still a real partition (not every cell)"
    assert set(searcher.ann.meta["recall_by_kind"]) == {"image", "off-manifold"}
    assert min(searcher.ann.meta["recall_by_kind"].values()) >= 0.95

    images, texts = synthetic(100, 128, seed=1, topics=64), text_like(100, 128, seed=2, topics=64)
    _, image_truth, _ = searcher.search(snap, images, 10, exact=True)
    _, text_truth, _ = searcher.search(snap, texts, 10, exact=True)
    _, found, _ = searcher.search(snap, images, 10, nprobe=4)
    assert recall_at_k(image_truth, found) >= 0.95, "4 cells are enough for image queries"
    _, found, _ = searcher.search(snap, texts, 10, nprobe=4)
    assert recall_at_k(text_truth, found) < 0.93, "but not for text-like ones"
    _, found, method = searcher.search(snap, texts, 10)
    assert method.startswith("ANN") and f"nprobe {nprobe}," in method
    assert recall_at_k(text_truth, found) >= 0.93, "the calibrated nprobe carries over"


def test_real_text_queries_join_the_calibration(tmp_path: Path) -> None:
    from mmdemo.bench.vectors import text_like

    data = synthetic(20_000, 128, seed=0, topics=512)
    _, without = _calibrated(tmp_path / "a", "cal", data)
    captions = text_like(64, 128, seed=99, topics=512)
    _, with_texts = _calibrated(tmp_path / "b", "cal", data, texts=captions)
    assert "text" in with_texts.ann.meta["recall_by_kind"]
    assert with_texts.ann.meta["recall_by_kind"]["text"] >= 0.95
    assert with_texts.ann.nprobe(with_texts.config) > without.ann.nprobe(without.config)
    assert "text queries" in with_texts.method(IndexStore(tmp_path / "b").load("cal"))


def test_structureless_data_is_searched_exactly_after_calibration(tmp_path: Path) -> None:
    from mmdemo.bench.vectors import uniform

    snap, searcher = _calibrated(tmp_path, "flat", uniform(8000, 256, seed=0))
    queries = uniform(40, 256, seed=1)
    assert searcher.ann.nprobe(searcher.config) >= searcher.ann.index.nlist
    _, truth, _ = searcher.search(snap, queries, 10, exact=True)
    _, found, method = searcher.search(snap, queries, 10)
    assert method.startswith("exact (an ANN index could not reach the recall target")
    assert recall_at_k(truth, found) == 1.0
