"""Known answers, computed by hand rather than by the code under test: rankings and scores over
constructed vectors, and a stand-in CLIP whose embeddings are plain arithmetic (an image's
mean colour, a text's colour words)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mmdemo.config import Settings
from mmdemo.models.manager import ModelManager
from mmdemo.retrieval import IndexService, Query
from mmdemo.retrieval.exact import exact_search
from mmdemo.retrieval.identity import ModelIdentity
from mmdemo.retrieval.store import IndexStore
from tests.retrieval_helpers import colour_clip_loader, write_colours

COLOURS = {
    "red": (255, 0, 0),
    "yellow": (255, 255, 0),
    "white": (255, 255, 255),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
}
R2, R3 = 1 / math.sqrt(2), 1 / math.sqrt(3)


@pytest.fixture
def service(isolated_settings: Settings, tmp_path: Path) -> IndexService:
    manager = ModelManager(isolated_settings, loaders={"clip": colour_clip_loader})
    service = IndexService(isolated_settings, manager)
    service.build(
        "colours", [write_colours(tmp_path / "c", COLOURS)["red"].parent], dtype="float32"
    )
    return service


def scores(result) -> dict[str, float]:
    return {h.item.name.removesuffix(".png"): h.score for h in result.hits}


def test_exact_search_ranks_constructed_vectors_by_cosine(tmp_path: Path) -> None:
    from mmdemo.bench.vectors import synthetic_rows

    e0, e1 = np.eye(4, dtype=np.float32)[:2]
    vectors = np.stack([e0, e1, (e0 + e1) * R2, -e0, (e0 + 2 * e1) / math.sqrt(5)])
    store = IndexStore(tmp_path)
    identity = ModelIdentity("hand", "hand", 4)
    store.create("v", identity, "float32")
    snap, _ = store.append("v", vectors, synthetic_rows(0, 5), identity)
    query = np.array([[3, 1, 0, 0]], dtype=np.float32) / math.sqrt(10)
    got_scores, ids = exact_search(snap, query, 5)
    # by hand: e0 3/sqrt10 = .949, (e0+e1)/sqrt2 4/sqrt20 = .894, (e0+2e1)/sqrt5 5/sqrt50 =
    # .707, e1 1/sqrt10 = .316, -e0 -.949
    assert ids[0].tolist() == [0, 2, 4, 1, 3]
    assert got_scores[0] == pytest.approx([0.9487, 0.8944, 0.7071, 0.3162, -0.9487], abs=1e-4)


def test_a_text_query_scores_each_colour_as_computed_by_hand(service: IndexService) -> None:
    result = service.search("colours", Query(text="red"), k=5)
    got = scores(result)
    assert [h.item.name for h in result.hits][:3] == ["red.png", "yellow.png", "white.png"]
    assert got["red"] == pytest.approx(1.0, abs=1e-5)
    assert got["yellow"] == pytest.approx(R2, abs=1e-5)
    assert got["white"] == pytest.approx(R3, abs=1e-5)
    assert got["green"] == pytest.approx(0.0, abs=1e-5) and got["blue"] == pytest.approx(
        0.0, abs=1e-5
    )


def test_text_and_image_mix_as_computed_by_hand(service: IndexService, tmp_path: Path) -> None:
    blue = write_colours(tmp_path / "q", {"query": (0, 0, 255)})["query"]
    result = service.search("colours", Query(text="red", image=str(blue), text_weight=0.25), k=5)
    # query = (0.25 * red + 0.75 * blue) / |.| = (0.25, 0, 0.75, 0) / 0.7906
    norm = math.hypot(0.25, 0.75)
    expected = {
        "blue": 0.75 / norm,
        "white": (0.25 + 0.75) / norm * R3,
        "red": 0.25 / norm,
        "yellow": 0.25 / norm * R2,
        "green": 0.0,
    }
    assert [h.item.name.removesuffix(".png") for h in result.hits] == list(expected)
    for name, value in expected.items():
        assert scores(result)[name] == pytest.approx(value, abs=1e-5)
    assert result.query == "'red' + an image (text weight 0.25)"


def test_an_image_finds_its_colour_whatever_its_shade(
    service: IndexService, tmp_path: Path
) -> None:
    dark = write_colours(tmp_path / "q", {"dark-yellow": (100, 100, 0)})["dark-yellow"]
    result = service.search("colours", Query(image=str(dark)), k=2)
    # (1, 1, 0)/sqrt2 against white (1, 1, 1)/sqrt3: 2/sqrt6; against red or green: 1/sqrt2
    assert scores(result) == pytest.approx({"yellow": 1.0, "white": 2 / math.sqrt(6)}, abs=1e-5)


def test_zero_shot_probabilities_as_computed_by_hand(service: IndexService, tmp_path: Path) -> None:
    yellow = write_colours(tmp_path / "q", {"yellow": (255, 255, 0)})["yellow"]
    result = service.classify(str(yellow), "red, green, blue", "a photo of {}.")
    # cosines 1/sqrt2, 1/sqrt2, 0; logits x100; softmax
    logits = np.array([R2, R2, 0.0]) * 100
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    got = dict(zip(result.labels, result.probabilities, strict=True))
    assert got["red"] == pytest.approx(expected[0], abs=1e-6)
    assert got["green"] == pytest.approx(expected[1], abs=1e-6)
    assert got["blue"] == pytest.approx(expected[2], abs=1e-12)
    assert got["red"] == pytest.approx(0.5, abs=1e-6)
