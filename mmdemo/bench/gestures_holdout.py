"""Held-out scoring for the gesture benchmark: classifiers trained here, in the same run,
each scored only on pictures whose source emoji (set + code point + skin tone) it never saw.

- *synthetic only*: the kinematic hand model alone (the baseline; it saw no emoji);
- *cross-set*: synthetic + the Twemoji landmarks, scored on the Noto pictures, and synthetic
  + the Noto landmarks, scored on the Twemoji pictures;
- *unseen set* (the headline): the same two folds with the Fluent 3D landmarks added to the
  training data, as the shipped classifier has them: the benchmark set it is scored on is the
  one emoji set it never saw;

A leave-one-skin-tone-out scheme is not run: it would score the same drawing in another
colour, a weaker test than another artist's drawing, for five more trainings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mmdemo.flows.gestures.emoji import BENCH_SETS, TITLES
from mmdemo.flows.gestures.emoji_landmarks import EmojiLandmarks
from mmdemo.flows.gestures.train import (
    DataConfig,
    TrainingSet,
    combine,
    emoji_set,
    fit,
    synthetic_set,
)


@dataclass
class Scored:
    """The benchmark pictures where a hand was found: its features and where it came from."""

    x: np.ndarray  # (M, FEATURE_SIZE) features of the largest hand
    label: np.ndarray  # (M,) the emoji's class
    source: np.ndarray  # (M,) set/code-tone

    @property
    def set(self) -> np.ndarray:
        return np.array([s.split("/")[0] for s in self.source])


def _fold(
    scored: Scored,
    test: np.ndarray,
    data: TrainingSet,
    epochs: int,
    seed: int,
    threshold: float,
    out: np.ndarray,
) -> None:
    """Train on ``data``, answer for the ``test`` rows; refuse any source overlap."""
    leaked = data.sources & {str(s) for s in scored.source[test]}
    if leaked:
        raise RuntimeError(f"held-out pictures of emoji seen in training: {sorted(leaked)[:5]}")
    model = fit(data, epochs, seed)
    out[test] = model.predict(scored.x[test], threshold)


def held_out(
    scored: Scored,
    emoji: EmojiLandmarks,
    config: DataConfig,
    epochs: int,
    threshold: float,
    log: Callable[[str], None] = print,
) -> dict[str, np.ndarray]:
    """Answers for every scored picture from each scheme: "synthetic", "cross-set" and
    "unseen-set"."""
    synthetic = synthetic_set(config)
    n = len(scored.label)
    answers = {k: np.full(n, "", dtype=object) for k in ("synthetic", "cross-set", "unseen-set")}

    def run(name: str, test: np.ndarray, keep: np.ndarray | None, what: str) -> None:
        log(f"training on synthetic{what}")
        data = (
            synthetic if keep is None else combine(synthetic, emoji_set(emoji.where(keep), config))
        )
        _fold(scored, test, data, epochs, config.seed, threshold, answers[name])

    run("synthetic", np.ones(n, dtype=bool), None, " hands only")
    extra = emoji.set == "fluent"
    for trained, tested in (BENCH_SETS, BENCH_SETS[::-1]):
        test = scored.set == tested
        what = f" + {TITLES[trained]}, scoring {TITLES[tested]}"
        run("cross-set", test, emoji.set == trained, what)
        run("unseen-set", test, (emoji.set == trained) | extra, what.replace(",", " + Fluent,"))
    for name, answer in answers.items():
        if (answer == "").any():
            raise RuntimeError(f"{name}: {(answer == '').sum()} pictures were not scored")
    return answers
