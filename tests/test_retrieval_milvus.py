"""Image indexes in Milvus (embedded Milvus Lite here): the same answers as the faiss store on
the same vectors, kept across restarts, a clear error for a bad MMDEMO_VECTOR_DB, and the CLIP
tab's handlers working over it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmdemo.bench.vectors import synthetic, synthetic_rows
from mmdemo.config import Settings
from mmdemo.config_checks import vector_db
from mmdemo.errors import MMDemoError, SettingsError
from mmdemo.retrieval.exact import recall_at_k
from mmdemo.retrieval.identity import IndexNotFoundError, ModelIdentity
from mmdemo.retrieval.search import SearchConfig
from mmdemo.retrieval.store import IndexStore
from tests.conftest import free_port
from tests.retrieval_helpers import write_photos

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

DIM = 32
IDENTITY = ModelIdentity("synthetic", "fp-synthetic", DIM)


def lite(tmp_path: Path, file: str = "indexes.db") -> Any:
    from mmdemo.retrieval.milvus import MilvusStore

    return MilvusStore(vector_db(f"milvus-lite://{tmp_path / file}", tmp_path), tmp_path / "idx")


def fill(store: Any, vectors: np.ndarray) -> None:
    """Index "a" gets the first 120 vectors, index "b" the rest (same ids 0.. in each)."""
    store.create("a", IDENTITY, "float16")
    store.create("b", IDENTITY, "float16")
    store.append("a", vectors[:120], synthetic_rows(0, 120), IDENTITY)
    store.append("b", vectors[120:], synthetic_rows(120, len(vectors) - 120), IDENTITY)


def top10(store: Any, name: str, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, ids, _ = store.searcher(SearchConfig()).search(store.load(name), queries, 10)
    return scores, ids


def test_milvus_lite_answers_as_the_faiss_store_does(tmp_path: Path) -> None:
    vectors = synthetic(200, dim=DIM, seed=0)
    queries = synthetic(6, dim=DIM, seed=7)
    milvus, faiss_store = lite(tmp_path), IndexStore(tmp_path / "faiss")
    for store in (milvus, faiss_store):
        fill(store, vectors)
    assert milvus.names() == faiss_store.names() == ["a", "b"]
    assert [milvus.load(n).count for n in "ab"] == [120, 80]

    for name in "ab":  # each index finds only its own images, in the same order
        m_scores, m_ids = top10(milvus, name, queries)
        f_scores, f_ids = top10(faiss_store, name, queries)
        assert m_ids.tolist() == f_ids.tolist()
        np.testing.assert_allclose(m_scores, f_scores, atol=1e-5)
    _, b_ids = top10(milvus, "b", queries)
    names = {i.name for i in milvus.load("b").items(b_ids[0].tolist()) if i}
    assert names <= {f"{i}.jpg" for i in range(120, 200)}, "a search of b found an image of a"

    # the metadata comes back as it went in
    view = milvus.load("a")
    assert view.item(5) == faiss_store.load("a").item(5)
    assert view.item(5).path == "/synthetic/5.jpg" and view.item(500) is None
    assert view.find_sha(f"{7:064x}") == 7 and view.find_sha(f"{150:064x}") is None
    assert view.find_path("/synthetic/9.jpg").id == 9

    # removing the best hit of each query: both stores agree again, and the ids are gone
    _, ids = top10(milvus, "a", queries)
    gone = sorted(set(ids[:, 0].tolist()))
    for store in (milvus, faiss_store):
        _, removed = store.remove("a", [*gone, 9999])
        assert removed == gone
    m_scores, m_ids = top10(milvus, "a", queries)
    f_scores, f_ids = top10(faiss_store, "a", queries)
    assert m_ids.tolist() == f_ids.tolist() and not set(gone) & set(m_ids.ravel().tolist())
    np.testing.assert_allclose(m_scores, f_scores, atol=1e-5)
    assert milvus.load("a").count == faiss_store.load("a").count == 120 - len(gone)
    assert [i.id for i in milvus.load("a").iter_items()] == [
        i.id for i in faiss_store.load("a").iter_items()
    ]

    # adding the same content again is a duplicate in both
    assert milvus.append("a", vectors[:3], synthetic_rows(0, 3), IDENTITY)[1] == 3
    milvus.delete("b")
    assert milvus.names() == ["a"]
    with pytest.raises(IndexNotFoundError, match="no index named 'b'"):
        milvus.load("b")


def test_milvus_lite_keeps_indexes_across_restarts(tmp_path: Path) -> None:
    vectors = synthetic(200, dim=DIM, seed=1)
    queries = synthetic(4, dim=DIM, seed=2)
    first = lite(tmp_path)
    fill(first, vectors)
    first.remove("a", [0, 1])
    before = top10(first, "a", queries)
    first.close()  # stops the embedded server: the next store reads the files afresh

    again = lite(tmp_path)
    assert again.names() == ["a", "b"] and again.load("a").count == 118
    after = top10(again, "a", queries)
    assert after[1].tolist() == before[1].tolist()
    np.testing.assert_allclose(after[0], before[0], atol=1e-6)
    # ids continue where they stopped, never reused
    view, _ = again.append("a", vectors[:1] * -1, synthetic_rows(500, 1), IDENTITY)
    assert view.find_sha(f"{500:064x}") == 120
    again.close()


def test_a_milvus_server_is_reached_by_uri(tmp_path: Path) -> None:
    """milvus://host:port goes through the same code to a server: Milvus Lite's own gRPC
    server, started here on the loopback address and stopped at the end."""
    import socket
    import subprocess
    import sys
    import time

    from mmdemo.retrieval.milvus import MilvusStore

    port = free_port()
    data = str(tmp_path / "srv")
    command = ["-m", "milvus_lite", "server", "--data-dir", data, "--host", "127.0.0.1"]
    server = subprocess.Popen(
        [sys.executable, *command, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):  # up to 30 s for the server to listen
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert server.poll() is None, "the Milvus Lite server exited"
            time.sleep(0.1)
        store = MilvusStore(vector_db(f"milvus://127.0.0.1:{port}", tmp_path), tmp_path)
        assert store.backend == "Milvus" and store.index_type == "AUTOINDEX"
        vectors = synthetic(200, dim=DIM, seed=3)
        fill(store, vectors)
        faiss_store = IndexStore(tmp_path / "faiss")
        fill(faiss_store, vectors)
        queries = synthetic(4, dim=DIM, seed=4)
        _, found, method = store.searcher(SearchConfig()).search(store.load("b"), queries, 10)
        _, truth = top10(faiss_store, "b", queries)
        assert method == "ANN (Milvus, AUTOINDEX)"
        assert recall_at_k(truth, found) >= 0.9
        # exact=True scans the stored vectors: the faiss store's answer exactly
        _, exact, method = store.searcher(SearchConfig()).search(
            store.load("b"), queries, 10, exact=True
        )
        assert exact.tolist() == truth.tolist() and method.startswith("exact")
        store.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize(
    "value",
    ["redis://localhost:6379", "milvus://", "milvus-lite:///tmp/indexes", "milvus://host?x=1"],
)
def test_a_bad_vector_db_setting_names_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="MMDEMO_VECTOR_DB") as caught:
        Settings.load(environ={"MMDEMO_VECTOR_DB": value})
    assert caught.value.fix and "milvus://host:19530" in caught.value.fix


def test_an_unreachable_milvus_server_names_the_variable(tmp_path: Path) -> None:
    from mmdemo.retrieval import IndexService

    port = free_port()  # nothing listens there
    settings = Settings(
        profile="tiny", home=tmp_path, vector_db=f"milvus://user:secret@127.0.0.1:{port}"
    )
    service = IndexService(settings, manager=None)  # connects on first use, not here
    with pytest.raises(MMDemoError, match="MMDEMO_VECTOR_DB") as caught:
        service.names()
    assert "secret" not in str(caught.value) and f"127.0.0.1:{port}" in str(caught.value)


def test_milvus_without_its_packages_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmdemo.errors import MissingDependencyError
    from mmdemo.retrieval import milvus

    monkeypatch.setattr(milvus, "_has", lambda module: module != "milvus_lite")
    with pytest.raises(MissingDependencyError, match="milvus_lite") as caught:
        lite(tmp_path).names()
    assert "pip install" in caught.value.fix and "MMDEMO_VECTOR_DB" in caught.value.fix


def test_the_clip_tab_works_over_milvus_lite(
    tmp_path: Path, isolated_settings: Settings, shared_manager: Any
) -> None:
    """The app's own wiring with MMDEMO_VECTOR_DB set: the tab's handlers index, search,
    search by a hit, explain and remove through it, and rank as the faiss default does."""
    from mmdemo.ui.tabs.clip.actions import ClipActions, ClipSession
    from mmdemo.wiring import create_services

    photos = write_photos(tmp_path / "photos", ("cat", "rocket", "coffee", "astronaut", "horse"))
    files = [str(p) for p in photos.values()]
    coffee = str(photos["coffee"])
    faiss_clip = create_services(isolated_settings, shared_manager).clip
    faiss_clip.add("photos", "", files)
    expected = faiss_clip.search("photos", "", coffee, 3)["hits"]

    settings = isolated_settings.replace(vector_db=f"milvus-lite://{tmp_path / 'tab.db'}")
    services = create_services(settings, shared_manager)
    assert services.index.store.backend == "Milvus Lite"
    tab = ClipActions(services.clip)
    report = services.clip.add("photos", "", files)
    assert (report["added"], report["total"]) == (5, 5)
    (entry,) = services.clip.indexes()
    assert entry["images"] == 5 and entry["model_id"] == "tiny:clip"
    assert entry["search"] == "exact (Milvus Lite, FLAT)"
    dropdown, line = tab.choices(None)
    assert dropdown["value"] == "photos" and "5 images" in line

    session = ClipSession()
    gallery, summary, _, session = tab.search(session, "photos", "", coffee, 0.5, 3)
    hits = list(session.hits)
    assert len(gallery) == 3 and summary.startswith("3 results")
    assert [(h["item_id"], h["name"]) for h in hits] == [
        (h["item_id"], h["name"]) for h in expected
    ]
    assert [h["score"] for h in hits] == pytest.approx([h["score"] for h in expected], abs=1e-5)
    like = services.clip.search("photos", top_k=2, like_item_id=hits[1]["item_id"])
    assert like["hits"][0]["item_id"] == hits[1]["item_id"]
    explained = services.clip.explain("photos", hits[0]["item_id"], "a cup of coffee")
    assert Path(explained["overlay"]).is_file() and explained["name"] == "coffee.jpg"

    tab.remove(session, hits[0]["item_id"])
    again = services.clip.search("photos", "", coffee, 3)
    assert "coffee.jpg" not in [h["name"] for h in again["hits"]]
    assert services.clip.delete("photos", confirm=True)["indexes"] == []
    assert not services.index.store.files_dir("photos").exists(), "upload copies left behind"
