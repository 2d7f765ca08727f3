"""Train the built-in gesture classifier, offline and seeded, from two kinds of landmarks:

- the kinematic hand model (``synth.py``): every class, letters included, any view;
- landmarks MediaPipe finds on rendered hand emoji (``emoji_landmarks.py``, shipped as
  ``assets/models/gestures-emoji-landmarks.npz``): how the landmarker really reports drawn
  hands, for the named gestures and for shapes that are none of them.

``python -m mmdemo gestures train`` runs ``train_builtin`` and rewrites
``assets/models/gestures.safetensors``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmdemo.errors import MMDemoError
from mmdemo.flows.gestures.classifier import FitConfig, GestureModel, train
from mmdemo.flows.gestures.emoji_landmarks import EMOJI_LANDMARKS, EmojiLandmarks
from mmdemo.flows.gestures.features import augment, features, normalise
from mmdemo.flows.gestures.synth import make_dataset

BUILTIN_WEIGHTS = Path(__file__).resolve().parents[3] / "assets" / "models" / "gestures.safetensors"


@dataclass(frozen=True)
class DataConfig:
    """What the built-in classifier is trained on."""

    per_class: int = 1500  # synthetic hands per class ("none": 3x)
    emoji_copies: int = 8  # augmented copies of each emoji hand, besides the hand itself
    emoji_tilt: float = 15.0  # their extra in-plane tilt, degrees either way
    seed: int = 0

    def __post_init__(self) -> None:
        if self.per_class < 10 or self.emoji_copies < 0:
            raise ValueError("per_class must be at least 10 and emoji_copies not negative")


@dataclass(frozen=True)
class TrainingSet:
    x: np.ndarray  # (N, FEATURE_SIZE) features
    labels: list[str]
    sources: frozenset[str]  # the emoji images (set/code-tone) whose landmarks are in it


def synthetic_set(config: DataConfig) -> TrainingSet:
    landmarks, labels = make_dataset(config.seed, config.per_class)
    return TrainingSet(features(normalise(landmarks)), labels, frozenset())


def emoji_set(data: EmojiLandmarks, config: DataConfig) -> TrainingSet:
    """Each emoji hand once as found and ``emoji_copies`` times augmented."""
    rng = np.random.default_rng(config.seed + 101)
    pts = data.normalised()
    copies = augment(rng, pts, config.emoji_copies, config.emoji_tilt)
    x = features(np.concatenate([pts, copies]))
    labels = [str(v) for v in (*data.label, *np.repeat(data.label, config.emoji_copies))]
    return TrainingSet(x, labels, frozenset(str(s) for s in data.source))


def combine(*parts: TrainingSet) -> TrainingSet:
    return TrainingSet(
        np.concatenate([p.x for p in parts]),
        [label for p in parts for label in p.labels],
        frozenset().union(*(p.sources for p in parts)),
    )


def fit(data: TrainingSet, epochs: int = 20, seed: int = 0) -> GestureModel:
    return train(data.x, data.labels, config=FitConfig(epochs=epochs, seed=seed))


def emoji_landmarks(
    path: Path = EMOJI_LANDMARKS, extract: bool = False, log: Callable[[str], None] = print
) -> EmojiLandmarks | None:
    """The shipped emoji landmarks; with ``extract`` (or when the file is missing) they are
    made again from the npm emoji packages. None, with a message, when neither is there."""
    if path.is_file() and not extract:
        return EmojiLandmarks.load(path)
    from mmdemo.flows.gestures.emoji import SETS, emoji_root

    try:
        emoji_root(SETS)
    except MMDemoError as exc:
        if extract:
            raise
        log(
            f"no emoji landmarks ({path} is missing) and {exc.message}: training on the "
            f"synthetic hands only. To add them: {exc.fix}"
        )
        return None
    from mmdemo.config import Settings
    from mmdemo.flows.gestures.emoji_landmarks import extract as run_extract
    from mmdemo.models.manager import ModelManager

    log("extracting landmarks from the rendered emoji (about 20 min on two cores)")
    manager = ModelManager(Settings.load(profile="cpu", device="cpu"))
    try:
        data = run_extract(manager.get("hands").detect, log=log)
    finally:
        manager.unload_all()
    log(f"{len(data)} hands in {data.info['pictures']} pictures; saved {data.save(path)}")
    return EmojiLandmarks.load(path)  # as stored (float16), so a later plain train matches


def train_builtin(
    out: Path = BUILTIN_WEIGHTS,
    config: DataConfig | None = None,
    epochs: int = 20,
    emoji: EmojiLandmarks | None = None,
    log: Callable[[str], None] = print,
) -> GestureModel:
    """Synthetic hands (+ ``emoji`` landmarks, if given): fit the MLP, check it on a fresh
    synthetic set, save with a description of its data in the metadata."""
    config = config or DataConfig()
    start = time.perf_counter()
    synthetic = synthetic_set(config)
    parts = [synthetic]
    if emoji is not None:
        parts.append(emoji_set(emoji, config))
    data = combine(*parts)
    log(
        f"{len(synthetic.labels)} synthetic hands"
        + (f" + {len(emoji)} emoji hands x {config.emoji_copies + 1}" if emoji else "")
        + f" ({time.perf_counter() - start:.0f} s)"
    )
    model = fit(data, epochs, config.seed)
    held, held_labels = make_dataset(config.seed + 1, max(100, config.per_class // 10))
    pred = model.probabilities(features(normalise(held))).argmax(1)
    accuracy = float(np.mean(np.array(model.classes)[pred] == np.array(held_labels)))
    info = {
        "source": "kinematic hand model (mmdemo.flows.gestures.synth)"
        + (
            " + MediaPipe landmarks of rendered Twemoji and Noto hand emoji "
            f"({len(emoji)} hands, {emoji.info.get('packages')})"
            if emoji is not None
            else ", no images"
        ),
        "samples": len(data.labels),
        "per_class": config.per_class,
        "emoji_copies": config.emoji_copies if emoji is not None else 0,
        "epochs": epochs,
        "seed": config.seed,
        "synthetic_holdout_accuracy": round(accuracy, 4),
    }
    model = GestureModel(model.classes, model.mean, model.std, model.layers, info)
    model.save(out)
    log(
        f"held-out synthetic accuracy {accuracy:.1%}; saved {out} "
        f"({time.perf_counter() - start:.0f} s)"
    )
    return model
