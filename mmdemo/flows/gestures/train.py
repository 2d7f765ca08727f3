"""Train the built-in gesture classifier from the kinematic hand model (offline, seeded).

``python -m mmdemo gestures train`` runs this and rewrites ``assets/models/gestures.safetensors``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mmdemo.flows.gestures.classifier import GestureModel, TrainConfig, train
from mmdemo.flows.gestures.features import features, normalise
from mmdemo.flows.gestures.synth import make_dataset

BUILTIN_WEIGHTS = Path(__file__).resolve().parents[3] / "assets" / "models" / "gestures.safetensors"


def train_builtin(
    out: Path = BUILTIN_WEIGHTS,
    per_class: int = 1500,
    epochs: int = 20,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> GestureModel:
    """Make the synthetic data set, fit the MLP, check it on a fresh synthetic set, save."""
    start = time.perf_counter()
    landmarks, labels = make_dataset(seed, per_class)
    x = features(normalise(landmarks))
    log(
        f"{len(x)} synthetic hands, {len(set(labels))} classes ({time.perf_counter() - start:.0f} s)"
    )
    model = train(x, labels, config=TrainConfig(epochs=epochs, seed=seed))
    held, held_labels = make_dataset(seed + 1, max(100, per_class // 10))
    pred = model.probabilities(features(normalise(held))).argmax(1)
    accuracy = float(
        np.mean([model.classes[p] == t for p, t in zip(pred, held_labels, strict=True)])
    )
    info = {
        "source": "kinematic hand model (mmdemo.flows.gestures.synth), no images",
        "samples": len(x),
        "per_class": per_class,
        "epochs": epochs,
        "seed": seed,
        "synthetic_holdout_accuracy": round(accuracy, 4),
    }
    model = GestureModel(model.classes, model.mean, model.std, model.layers, info)
    model.save(out)
    log(
        f"held-out synthetic accuracy {accuracy:.1%}; saved {out} ({time.perf_counter() - start:.0f} s)"
    )
    return model
