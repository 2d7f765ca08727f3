"""The built-in classifier's training data: the shipped emoji landmarks, extracting them from
rendered emoji, the synthetic-only fallback, and the benchmark's held-out folds. Nothing here
needs npm or the network; the one test that compares with the npm emoji skips without them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmdemo.errors import MMDemoError

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def shipped() -> Any:
    from mmdemo.flows.gestures.emoji_landmarks import EMOJI_LANDMARKS, EmojiLandmarks

    return EmojiLandmarks.load(EMOJI_LANDMARKS)


@pytest.fixture(scope="module")
def landmarker(tmp_path_factory: pytest.TempPathFactory, tiny_settings: Any) -> Any:
    from mmdemo.models.manager import ModelManager

    manager = ModelManager(tiny_settings)
    yield manager.get("hands")
    manager.unload_all()


def test_the_shipped_emoji_landmarks_are_small_labelled_and_traceable(shipped: Any) -> None:
    from mmdemo.flows.gestures.emoji import LABELLED, SETS
    from mmdemo.flows.gestures.emoji_landmarks import EMOJI_LANDMARKS
    from mmdemo.flows.gestures.vocabulary import BUILTIN_NAMES

    assert EMOJI_LANDMARKS.stat().st_size < 3_000_000
    assert set(shipped.set) == set(SETS)
    assert set(shipped.label) <= {*BUILTIN_NAMES, "none"}
    assert set(LABELLED.values()) <= set(shipped.label)  # every emoji gesture has examples
    assert shipped.landmarks.shape == (len(shipped), 21, 3)
    assert np.isfinite(shipped.landmarks).all() and (shipped.size > 0).all()
    assert shipped.info["pictures"] > len(shipped) and len(shipped.info["packages"]) == 3
    pts = shipped.normalised()
    assert np.allclose(pts[:, 0], 0) and np.abs(pts).max() < 10  # wrist origin, palm units


def test_the_shipped_classifier_says_what_it_was_trained_on() -> None:
    from mmdemo.flows.gestures.classifier import GestureModel
    from mmdemo.flows.gestures.train import BUILTIN_WEIGHTS
    from mmdemo.flows.gestures.vocabulary import BUILTIN_NAMES

    model = GestureModel.load(BUILTIN_WEIGHTS)
    assert set(model.classes) == {*BUILTIN_NAMES, "none"}
    assert "emoji" in model.info["source"] and model.info["emoji_copies"] > 0


def fake_packages(root: Path) -> Path:
    """A node_modules folder holding one Noto emoji: the Vulcan salute in tests/data."""
    folder = root / "emoji-datasource-google" / "img" / "google" / "64"
    folder.mkdir(parents=True)
    shutil.copy(DATA / "vulcan-noto-64.png", folder / "1f596-1f3fd.png")
    return root


def test_extract_keeps_the_landmarks_found_on_rendered_emoji_with_their_source(
    landmarker: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmdemo.flows.gestures.emoji_landmarks import EmojiLandmarks, extract

    monkeypatch.setenv("MMDEMO_EMOJI_DIR", str(fake_packages(tmp_path / "node_modules")))
    data = extract(landmarker.detect, sets=("google",), variants=8, log=lambda _: None)
    assert data.info["pictures"] == 8 and 1 <= len(data) <= 8
    assert set(data.source) == {"google/1f596-1f3fd"} and set(data.label) == {"none"}
    again = EmojiLandmarks.load(data.save(tmp_path / "landmarks.npz"))
    assert np.abs(again.landmarks - data.landmarks).max() < 2e-3  # stored as float16
    assert list(again.source) == list(data.source) and again.info == data.info


def test_without_the_emoji_packages_training_falls_back_to_synthetic_and_says_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmdemo.flows.gestures.train import emoji_landmarks

    monkeypatch.setenv("MMDEMO_EMOJI_DIR", str(tmp_path / "empty"))
    said: list[str] = []
    assert emoji_landmarks(tmp_path / "missing.npz", log=said.append) is None
    assert "synthetic hands only" in said[0] and "npm install --prefix .cache/emoji" in said[0]
    with pytest.raises(MMDemoError) as err:  # asked to extract: refused with the command
        emoji_landmarks(tmp_path / "missing.npz", extract=True)
    assert "@lobehub/fluent-emoji-3d" in err.value.fix


def test_a_classifier_trains_on_synthetic_and_emoji_hands(shipped: Any, tmp_path: Path) -> None:
    from mmdemo.flows.gestures.classifier import GestureModel
    from mmdemo.flows.gestures.train import DataConfig, train_builtin

    few = shipped.where(np.arange(len(shipped)) % 20 == 0)
    config = DataConfig(per_class=20, emoji_copies=2)
    model = train_builtin(tmp_path / "g.safetensors", config, 1, few, log=lambda _: None)
    assert model.info["samples"] > 3 * len(few)  # synthetic + each emoji hand 3 times
    loaded = GestureModel.load(tmp_path / "g.safetensors")
    assert loaded.classes == model.classes and "emoji" in loaded.info["source"]
    answers = loaded.predict(np.zeros((2, loaded.mean.shape[0]), np.float32), threshold=1.01)
    assert answers == ["none", "none"]  # nothing reaches a threshold above 1


def test_a_held_out_fold_refuses_pictures_whose_emoji_it_trained_on() -> None:
    from mmdemo.bench.gestures_holdout import Scored, _fold
    from mmdemo.flows.gestures.train import TrainingSet

    scored = Scored(
        np.zeros((2, 88), np.float32),
        np.array(["fist", "fist"]),
        np.array(["google/270a-1f3fb", "twitter/270a-1f3fb"]),
    )
    seen = TrainingSet(np.zeros((1, 88), np.float32), ["fist"], frozenset({"google/270a-1f3fb"}))
    out = np.full(2, "", dtype=object)
    with pytest.raises(RuntimeError, match="seen in training"):
        _fold(scored, np.array([True, False]), seen, 1, 0, 0.5, out)


def test_the_shipped_landmarks_are_what_the_npm_emoji_give_now(
    shipped: Any, landmarker: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reproducibility: one emoji extracted again from the npm package gives the same rows."""
    from mmdemo.flows.gestures.emoji import emoji_root
    from mmdemo.flows.gestures.emoji_landmarks import extract

    try:
        real = emoji_root(("twitter",))
    except MMDemoError as exc:
        pytest.skip(f"needs the npm emoji packages: {exc.fix}")
    folder = tmp_path / "emoji-datasource-twitter" / "img" / "twitter" / "64"
    folder.mkdir(parents=True)
    name = "1f44d-1f3fd.png"
    shutil.copy(real / "emoji-datasource-twitter" / "img" / "twitter" / "64" / name, folder)
    monkeypatch.setenv("MMDEMO_EMOJI_DIR", str(tmp_path))
    variants = shipped.info["variants"]
    fresh = extract(landmarker.detect, ("twitter",), variants, shipped.info["seed"], print)
    mine = shipped.where(shipped.source == "twitter/1f44d-1f3fd")
    assert len(fresh) == len(mine) > 0
    assert np.abs(fresh.landmarks - mine.landmarks).max() < 2e-3


def test_fitting_leaves_the_process_thread_count_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch's thread count is process-wide (threads started meanwhile keep the value for
    life): a user's gesture teaching must not change it under other users' generations."""
    import torch

    from mmdemo.flows.gestures.classifier import FitConfig, train, train_apart
    from mmdemo.flows.gestures.features import FEATURE_SIZE

    changed: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", changed.append)
    x = np.random.default_rng(0).normal(size=(40, FEATURE_SIZE)).astype(np.float32)
    x[20:] += 3.0  # two separable classes
    labels = ["a"] * 20 + ["b"] * 20
    config = FitConfig(hidden=(8,), epochs=20)
    model = train(x, labels, config=config)
    assert model.classes == ("a", "b") and changed == []
    # taught gestures fit in a one-thread child: the same model, this process untouched
    apart = train_apart(x, labels, config=config)
    assert changed == [], "the server's thread count was not touched"
    assert apart.classes == model.classes
    assert (apart.probabilities(x).argmax(1) == np.array([0] * 20 + [1] * 20)).mean() > 0.9


def test_the_unseen_set_bench_shows_every_emoji_and_tone_of_apple_and_facebook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench gestures-unseen draws the benchmark's code points in its 5 skin tones from the
    Apple and Facebook packages, each on the same grid, with the right label."""
    from mmdemo.bench.gestures_unseen import unseen_samples

    codes = {"270b": "open_palm", "1f44d": "thumbs_up", "1f596": "none"}
    tones = ("1f3fb", "1f3fc", "1f3fd", "1f3fe", "1f3ff")
    for set_name in ("apple", "facebook"):
        folder = tmp_path / f"emoji-datasource-{set_name}" / "img" / set_name / "64"
        folder.mkdir(parents=True)
        for code in codes:
            for tone in tones:  # the Vulcan salute drawn under every name: labels come by name
                shutil.copy(DATA / "vulcan-noto-64.png", folder / f"{code}-{tone}.png")
    monkeypatch.setenv("MMDEMO_EMOJI_DIR", str(tmp_path))
    seen: dict[str, set] = {}
    for sample in unseen_samples(quick=True):
        assert sample.image.size == (640, 480)
        seen.setdefault(sample.source, set()).add((sample.label, sample.variant))
    want = {f"{s}/{c}-{t}" for s in ("apple", "facebook") for c in codes for t in tones}
    assert set(seen) == want
    variants = {v for labelled in seen.values() for _, v in labelled}
    for source, labelled in seen.items():
        assert {label for label, _ in labelled} == {codes[source.split("/")[1][:-6]]}
        assert {v for _, v in labelled} == variants  # one grid for every emoji


def test_the_unseen_set_bench_without_its_packages_says_how_to_install_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    from mmdemo.cli.bench import BENCHES

    monkeypatch.setenv("MMDEMO_EMOJI_DIR", str(tmp_path / "empty"))
    with pytest.raises(MMDemoError) as err:  # refused before any model is loaded
        importlib.import_module(BENCHES["gestures-unseen"]).run(quick=True)
    assert "emoji-datasource-apple@16.0.0" in err.value.fix
    assert "emoji-datasource-facebook@16.0.0" in err.value.fix
