"""Teach a gesture: a few examples -> a small classifier over the taught gestures.

Taught gestures live in one shared set, ``MMDEMO_HOME/gestures/custom.json`` (landmark
examples, never images), written atomically. Training adds augmented copies of each example
(tilt, scale, jitter, mirroring) and built-in synthetic hands as "other", so the taught
classifier answers only for what it was taught. Sets export to and import from that JSON.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmdemo.errors import BadInputError
from mmdemo.flows.gestures.classifier import GestureModel, TrainConfig, train
from mmdemo.flows.gestures.features import augment, features
from mmdemo.flows.gestures.motion import MOVING
from mmdemo.flows.gestures.vocabulary import BUILTIN_NAMES, NONE

FORMAT = "mmdemo-gestures"
MIN_EXAMPLES, MAX_EXAMPLES = 5, 20
MAX_GESTURES = 50
OTHER = "other"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _'-]{0,39}$")


@dataclass(frozen=True)
class TaughtGesture:
    name: str
    examples: int
    train_accuracy: float  # on the un-augmented examples


def check_name(name: str, existing: tuple[str, ...], replace: bool = False) -> str:
    name = " ".join(str(name or "").split())
    if not name:
        raise BadInputError("the gesture has no name", fix="type a name, e.g. hello")
    if not NAME_RE.match(name):
        raise BadInputError(
            f"the name {name!r} has characters that cannot be used",
            fix="use up to 40 letters, digits, spaces, - or _",
        )
    taken = {n.lower() for n in (*BUILTIN_NAMES, *MOVING, NONE, OTHER)}
    if name.lower() in taken:
        raise BadInputError(
            f"{name!r} is the name of a built-in gesture",
            fix="pick another name (built-in ones are recognised already)",
        )
    if not replace and name.lower() in {n.lower() for n in existing}:
        raise BadInputError(
            f"a taught gesture is already called {name!r}",
            fix="pick another name, or tick 'replace' to teach it again",
        )
    return name


class CustomGestures:
    """The shared set of taught gestures and its classifier (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._examples: dict[str, np.ndarray] = {}  # name -> (K, 21, 3) normalised hands
        self._accuracy: dict[str, float] = {}
        self._model: GestureModel | None = None
        self._negatives: np.ndarray | None = None
        if self.path.is_file():
            self._read(self.path.read_text(encoding="utf-8"), self.path.name, merge=False)
            self._fit()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._examples)

    @property
    def model(self) -> GestureModel | None:
        return self._model

    def gestures(self) -> list[TaughtGesture]:
        return [
            TaughtGesture(n, len(e), self._accuracy.get(n, 0.0)) for n, e in self._examples.items()
        ]

    def teach(
        self, name: str, hands: list[np.ndarray], replace: bool = False
    ) -> list[TaughtGesture]:
        """Add gesture ``name`` from normalised example hands and retrain."""
        with self._lock:
            name = check_name(name, self.names, replace)
            if len(hands) < MIN_EXAMPLES:
                raise BadInputError(
                    f"{name!r} has {len(hands)} usable example(s); at least {MIN_EXAMPLES} "
                    "are needed to learn a gesture",
                    fix=f"add examples until {MIN_EXAMPLES}-{MAX_EXAMPLES} show the hand clearly",
                )
            if len(hands) > MAX_EXAMPLES:
                raise BadInputError(
                    f"{len(hands)} examples of {name!r}; at most {MAX_EXAMPLES} are used",
                    fix=f"keep the {MAX_EXAMPLES} clearest",
                )
            if name not in self._examples and len(self._examples) >= MAX_GESTURES:
                raise BadInputError(
                    f"the set already has {MAX_GESTURES} taught gestures",
                    fix="delete one first",
                )
            self._examples = {k: v for k, v in self._examples.items() if k.lower() != name.lower()}
            self._examples[name] = np.asarray(hands, dtype=np.float32)
            self._fit()
            self._save()
            return self.gestures()

    def delete(self, name: str) -> list[TaughtGesture]:
        with self._lock:
            if name not in self._examples:
                raise BadInputError(
                    f"no taught gesture is called {name!r}", fix="pick one from the list"
                )
            del self._examples[name]
            self._fit()
            self._save()
            return self.gestures()

    def export_json(self) -> str:
        with self._lock:
            return self._dump()

    def import_json(self, text: str, source: str = "file") -> list[TaughtGesture]:
        """Merge a set exported by ``export_json``; names already taught are replaced."""
        with self._lock:
            self._read(text, source, merge=True)
            self._fit()
            self._save()
            return self.gestures()

    def _read(self, text: str, source: str, merge: bool) -> None:
        fix = (
            "export the set again with mmdemo (Gestures tab or `python -m mmdemo gestures export`)"
        )
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadInputError(
                f"{source} is not a gesture set (not JSON: {exc})", fix=fix
            ) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BadInputError(f"{source} is not an mmdemo gesture set", fix=fix)
        found: dict[str, np.ndarray] = {}
        for item in data.get("gestures", []):
            try:
                name = check_name(item["name"], (), replace=True)
                ex = np.asarray(item["examples"], dtype=np.float32)
            except (KeyError, TypeError, ValueError) as exc:
                raise BadInputError(
                    f"{source} has a broken gesture entry ({exc})", fix=fix
                ) from None
            if (
                ex.ndim != 3
                or ex.shape[1:] != (21, 3)
                or not MIN_EXAMPLES <= len(ex) <= MAX_EXAMPLES
            ):
                raise BadInputError(
                    f"{source}: gesture {name!r} has examples of shape {ex.shape}", fix=fix
                )
            found[name] = ex
        merged = {**self._examples, **found} if merge else found
        if len(merged) > MAX_GESTURES:
            raise BadInputError(
                f"{source} would make {len(merged)} taught gestures",
                fix=f"keep at most {MAX_GESTURES}",
            )
        self._examples = merged

    def _fit(self) -> None:
        if not self._examples:
            self._model, self._accuracy = None, {}
            return
        rng = np.random.default_rng(0)
        parts, labels = [], []
        for name, ex in self._examples.items():
            parts.append(augment(rng, ex, 60))
            labels += [name] * (len(ex) * 60)
        positives = np.concatenate(parts)
        negatives = self._other_hands(rng)
        # built-in hands that look like a taught example are not counted against it
        pos_feat = features(np.concatenate([e for e in self._examples.values()]))
        neg_feat = features(negatives)
        d = np.linalg.norm(neg_feat[:, None, :60] - pos_feat[None, :, :60], axis=-1).min(1)
        neg_feat = neg_feat[d > 1.0]
        x = np.concatenate([features(positives), neg_feat])
        y = labels + [OTHER] * len(neg_feat)
        classes = (*self._examples, OTHER)
        self._model = train(x, y, classes, TrainConfig(hidden=(64,), epochs=12, seed=0))
        self._accuracy = {}
        for name, ex in self._examples.items():
            pred = self._model.probabilities(features(ex)).argmax(1)
            self._accuracy[name] = float(np.mean([classes[p] == name for p in pred]))

    def _other_hands(self, rng: np.random.Generator) -> np.ndarray:
        if self._negatives is None:
            from mmdemo.flows.gestures.features import normalise
            from mmdemo.flows.gestures.synth import make_dataset

            lm, _ = make_dataset(seed=7, per_class=80, none_factor=3.0)
            self._negatives = normalise(lm).astype(np.float32)
        return self._negatives

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".partial")
        tmp.write_text(self._dump(), encoding="utf-8")
        tmp.replace(self.path)

    def _dump(self) -> str:
        gestures = [
            {"name": n, "examples": np.round(e, 5).tolist()} for n, e in self._examples.items()
        ]
        return json.dumps({"format": FORMAT, "version": 1, "gestures": gestures})
