"""Image indexes end to end with the tiny CLIP and real photos: search, add, remove, restart."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmdemo.config import Settings
from mmdemo.errors import BadInputError
from mmdemo.models.manager import ModelManager
from mmdemo.retrieval import IndexService, Query, RetrievalConfig
from mmdemo.retrieval.embed import EmbedConfig, embed_images, embed_texts
from mmdemo.retrieval.identity import IndexNotFoundError
from tests.retrieval_helpers import PHOTOS, write_photos


@pytest.fixture
def photos(tmp_path: Path) -> dict[str, Path]:
    return write_photos(tmp_path / "photos")


@pytest.fixture
def service(isolated_settings: Settings, shared_manager: ModelManager) -> IndexService:
    return IndexService(isolated_settings, shared_manager)


def names(result) -> list[str]:
    return [h.item.name for h in result.hits]


def test_each_photo_finds_itself_first(service: IndexService, photos: dict[str, Path]) -> None:
    report = service.build("photos", [photos["cat"].parent])
    assert report.added == len(PHOTOS) and not report.skipped and report.total == len(PHOTOS)
    for path in photos.values():
        result = service.search("photos", Query(image=str(path)), k=3)
        assert result.hits[0].item.name == path.name
        assert result.hits[0].score == pytest.approx(1.0, abs=2e-3)  # float16 storage
        assert [h.score for h in result.hits] == sorted(
            (h.score for h in result.hits), reverse=True
        )
        assert result.method == "exact"


def test_text_search_ranks_all_images_by_cosine(
    service: IndexService, photos: dict[str, Path]
) -> None:
    service.build("photos", [photos["cat"].parent])
    result = service.search("photos", Query(text="a cat"), k=50)
    assert len(result.hits) == len(PHOTOS)
    bundle = service.bundle()
    text = embed_texts(bundle, ["a cat"])[0]
    expected = {p.name: float(embed_images(bundle, [str(p)])[0] @ text) for p in photos.values()}
    assert names(result) == sorted(expected, key=expected.get, reverse=True)
    for hit in result.hits:
        assert hit.score == pytest.approx(expected[hit.item.name], abs=2e-3)


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_text_and_image_combine_by_weight(
    service: IndexService, photos: dict[str, Path], weight: float
) -> None:
    service.build("photos", [photos["cat"].parent])
    bundle = service.bundle()
    t = embed_texts(bundle, ["a rocket at night"])[0]
    i = embed_images(bundle, [str(photos["horse"])])[0]
    q = weight * t + (1 - weight) * i
    q /= np.linalg.norm(q)
    query = Query(text="a rocket at night", image=str(photos["horse"]), text_weight=weight)
    result = service.search("photos", query, k=len(PHOTOS))
    expected = {p.name: float(embed_images(bundle, [str(p)])[0] @ q) for p in photos.values()}
    assert names(result) == sorted(expected, key=expected.get, reverse=True)


def test_searching_by_an_indexed_image_needs_no_model(
    isolated_settings: Settings, photos: dict[str, Path], shared_manager: ModelManager
) -> None:
    IndexService(isolated_settings, shared_manager).build("photos", [photos["cat"].parent])
    fresh = ModelManager(isolated_settings)
    service = IndexService(isolated_settings, fresh)
    rocket = next(it for it in service.items("photos") if it.name == "rocket.jpg")
    result = service.search("photos", Query(item_id=rocket.id), k=2)
    assert result.hits[0].item.id == rocket.id and not fresh.is_loaded("clip")


def test_duplicates_are_skipped(service: IndexService, photos: dict[str, Path]) -> None:
    folder = photos["cat"].parent
    shutil.copy(photos["cat"], folder / "cat-copy.jpg")
    shutil.copy(photos["coffee"], folder / "zz-coffee-again.jpg")
    report = service.build("photos", [folder, photos["rocket"]])
    assert report.added == len(PHOTOS)
    assert report.duplicates == 2  # the copies; rocket named twice is one file
    indexed = [it.name for it in service.items("photos")]
    assert len(indexed) == len(PHOTOS)
    assert len({"cat.jpg", "cat-copy.jpg"} & set(indexed)) == 1  # the first in folder order
    assert "coffee.jpg" in indexed and "zz-coffee-again.jpg" not in indexed


def test_add_embeds_only_new_images_and_keeps_old_segments(
    service: IndexService, photos: dict[str, Path], tmp_path: Path
) -> None:
    first = ("cat", "coffee", "rocket")
    folder = photos["cat"].parent
    later = tmp_path / "later"
    later.mkdir()
    for name in set(PHOTOS) - set(first):
        photos[name].rename(later / photos[name].name)
    service.build("photos", [folder])
    index_dir = service.store.directory("photos")
    before = {p.name: p.stat().st_mtime_ns for p in index_dir.glob("seg-*")}
    for p in later.iterdir():
        p.rename(folder / p.name)
    report = service.add("photos", [folder])
    assert (report.added, report.unchanged, report.duplicates) == (len(PHOTOS) - 3, 3, 0)
    after = {p.name: p.stat().st_mtime_ns for p in index_dir.glob("seg-*")}
    assert all(after[name] == mtime for name, mtime in before.items()), "old segments rewritten"
    assert report.total == len(PHOTOS)


def test_add_remove_and_restart_keep_the_index_consistent(
    isolated_settings: Settings, shared_manager: ModelManager, photos: dict[str, Path]
) -> None:
    service = IndexService(isolated_settings, shared_manager)
    service.build("photos", [photos["cat"], photos["coffee"], photos["rocket"]])
    service.add("photos", [photos["horse"], photos["camera"]])
    items = {it.name: it for it in service.items("photos")}
    report = service.remove("photos", ids=[items["coffee.jpg"].id], paths=[str(photos["horse"])])
    assert report.removed == 2 and report.total == 3 and not report.not_found
    before = [
        (h.item.id, round(h.score, 4)) for h in service.search("photos", Query(text="x"), k=5).hits
    ]

    restarted = IndexService(isolated_settings, ModelManager(isolated_settings))
    assert {it.name for it in restarted.items("photos")} == {"cat.jpg", "rocket.jpg", "camera.png"}
    after = [
        (h.item.id, round(h.score, 4))
        for h in restarted.search("photos", Query(text="x"), k=5).hits
    ]
    assert after == before
    hit = restarted.search("photos", Query(image=str(photos["camera"])), k=1).hits[0]
    assert hit.item.name == "camera.png"
    again = restarted.add("photos", [photos["coffee"]])  # removed content can come back
    assert again.added == 1 and again.total == 4


def test_changed_file_replaces_its_entry(service: IndexService, photos: dict[str, Path]) -> None:
    service.build("photos", [photos["cat"], photos["coffee"]])
    old_id = next(it.id for it in service.items("photos") if it.name == "cat.jpg")
    shutil.copy(photos["rocket"], photos["cat"])  # same path, new content (and mtime)
    os.utime(photos["cat"], (1, 1))
    report = service.add("photos", [photos["cat"]])
    assert (report.added, report.replaced, report.total) == (1, 1, 2)
    hit = service.search("photos", Query(image=str(photos["rocket"])), k=1).hits[0]
    assert hit.item.name == "cat.jpg" and hit.item.id != old_id


def test_uploads_are_copied_into_the_index(service: IndexService, photos: dict[str, Path]) -> None:
    service.add("up", [photos["cat"], photos["rocket"]], copy=True, create=True)
    photos["cat"].unlink()  # the upload's temporary file goes away
    cat = next(it for it in service.items("up") if it.name == "cat.jpg")
    assert Path(cat.path).is_file() and Path(cat.path).parent == service.store.files_dir("up")
    assert service.image_of("up", cat.id).size == (451, 300)
    service.remove("up", ids=[cat.id])
    assert not Path(cat.path).exists(), "the copy goes with its entry"


def test_missing_files_can_be_pruned(service: IndexService, photos: dict[str, Path]) -> None:
    service.build("photos", [photos["cat"].parent])
    photos["horse"].unlink()
    with pytest.raises(BadInputError, match="cannot be read any more"):
        horse = next(it for it in service.items("photos") if it.name == "horse.png")
        service.image_of("photos", horse.id)
    report = service.remove("photos", missing=True)
    assert report.removed == 1 and report.total == len(PHOTOS) - 1


def test_several_named_indexes_are_independent(
    service: IndexService, photos: dict[str, Path]
) -> None:
    service.build("a", [photos["cat"]])
    service.build("b", [photos["rocket"], photos["coffee"]])
    assert service.names() == ["a", "b"]
    assert [service.info(n).count for n in ("a", "b")] == [1, 2]
    service.delete("a")
    assert service.names() == ["b"]
    with pytest.raises(IndexNotFoundError, match="no index named 'a'"):
        service.search("a", Query(text="x"))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (Query(), "nothing to search for"),
        (Query(text="x" * 5000), "5000 characters"),
        (Query(text="x", image="x", text_weight=1.5), "outside 0..1"),
        (Query(item_id=999), "not in index"),
        (Query(image=b"not an image"), "query image cannot be used"),
    ],
)
def test_bad_queries_get_clear_messages(
    service: IndexService, photos: dict[str, Path], query: Query, message: str
) -> None:
    service.build("photos", [photos["cat"]])
    with pytest.raises(BadInputError, match=message):
        service.search("photos", query)


def test_builds_commit_in_chunks_and_resume(
    isolated_settings: Settings, shared_manager: ModelManager, photos: dict[str, Path]
) -> None:
    config = RetrievalConfig(chunk_rows=2, embed=EmbedConfig(batch_size=2, workers=2))
    service = IndexService(isolated_settings, shared_manager, config)
    ticks = []
    report = service.build("photos", [photos["cat"].parent], progress=ticks.append)
    assert report.added == len(PHOTOS)
    assert ticks[-1].done == ticks[-1].total == len(PHOTOS) and ticks[-1].rate > 0
    assert service.info("photos").generation >= len(PHOTOS) // 2  # one commit per chunk
    report = service.add("photos", [photos["cat"].parent])
    assert report.added == 0 and report.unchanged == len(PHOTOS)


def test_services_for_other_tabs(service: IndexService, photos: dict[str, Path]) -> None:
    """Chat: similar indexed images as context. Video: key frames ranked by a text."""
    from PIL import Image

    from tests.retrieval_helpers import photo_array

    service.build("cases", [photos["cat"].parent], dtype="float32")
    frame = Image.fromarray(photo_array("rocket"))
    similar = service.similar_images("cases", frame, k=2)
    assert similar.hits[0].item.name == "rocket.jpg"
    assert similar.hits[0].score == pytest.approx(1.0, abs=1e-3)  # JPEG vs raw pixels

    frames = [photo_array(n) for n in ("coffee", "horse", "astronaut")]
    ranked = service.rank_images(frames, "a horse")
    bundle = service.bundle()
    expected = embed_images(bundle, frames) @ embed_texts(bundle, ["a horse"])[0]
    assert [i for i, _ in ranked] == list(np.argsort(-expected, kind="stable"))
    assert service.rank_images([], "x") == []
    with pytest.raises(BadInputError, match="nothing to search for"):
        service.rank_images(frames, " ")


@pytest.mark.slow
def test_real_clip_ranks_the_cat_photo_first_for_a_cat(tmp_path: Path) -> None:
    """Needs the cpu profile's CLIP weights in the Hugging Face cache (not on CI machines)."""
    from mmdemo.models.sources import availability

    settings = Settings(profile="cpu", home=tmp_path / "home", device="cpu", offline=True)
    ok, note = availability("clip", settings.model_id("clip"), settings)
    if not ok:
        pytest.skip(f"real CLIP weights are not here: {note}")
    photos = write_photos(tmp_path / "p")
    manager = ModelManager(settings)
    try:
        service = IndexService(settings, manager)
        service.build("real", [tmp_path / "p"])
        assert names(service.search("real", Query(text="a cat"), k=1)) == ["cat.jpg"]
        assert names(service.search("real", Query(text="a rocket launch"), k=1)) == ["rocket.jpg"]
        assert service.classify(str(photos["cat"]), "cat, rocket, cup of coffee").top == "cat"
    finally:
        manager.unload_all()


def test_ann_calibration_uses_captions_only_from_the_index_model_already_loaded(
    isolated_settings: Settings, shared_manager: ModelManager, photos: dict[str, Path]
) -> None:
    from mmdemo.retrieval.embed import CALIBRATION_TEXTS

    service = IndexService(isolated_settings, shared_manager)
    service.build("photos", [photos["cat"]])
    snap = service.snapshot("photos")
    texts = service.calibration_texts(snap)
    assert texts.shape == (len(CALIBRATION_TEXTS), snap.manifest.identity.embed_dim)
    assert np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)

    cold = IndexService(isolated_settings, ModelManager(isolated_settings))
    assert cold.calibration_texts(snap) is None and not cold.manager.is_loaded("clip")

    from tests.retrieval_helpers import colour_clip_loader

    other = ModelManager(isolated_settings, loaders={"clip": colour_clip_loader})
    other.get("clip")
    assert IndexService(isolated_settings, other).calibration_texts(snap) is None
