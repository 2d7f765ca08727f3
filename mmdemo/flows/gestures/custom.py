"""Teach a gesture: a few examples -> a small classifier over the taught gestures.

Taught gestures live in one shared set, ``MMDEMO_HOME/gestures/custom.json`` (landmark
examples, never images), written atomically (a crash leaves the old set or the new one). A
set that cannot be read (damaged outside mmdemo) turns taught gestures off with a message
saying why; built-in gestures never depend on it. Training adds augmented copies of each
example (tilt, scale, jitter, mirroring) and built-in synthetic hands as "other", so the
taught classifier answers only for what it was taught. Sets export to and import from that
JSON.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmdemo.errors import BadInputError, DamagedFileError
from mmdemo.flows.gestures.classifier import FitConfig, GestureModel, train_apart
from mmdemo.flows.gestures.features import augment, features
from mmdemo.flows.gestures.motion import MOVING
from mmdemo.flows.gestures.vocabulary import BUILTIN_NAMES, NONE
from mmdemo.models.files import atomic_write, fsync_dir

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
        # why the set on disk cannot be read (None: it can); taught gestures are off then
        self.damage: DamagedFileError | None = None
        self._damaged_stamp: tuple[int, int] | None = None
        try:
            if self.path.is_file():
                text = self.path.read_text(encoding="utf-8")
                self._examples = self._parse(text, self.path.name, {})
                self._model, self._accuracy = self._trained(self._examples)
        except Exception as exc:  # whatever is wrong with the file, built-ins go on
            self._examples = {}
            self._model, self._accuracy = None, {}
            self.damage = DamagedFileError(
                f"the taught-gesture set {self.path.parent.name}/{self.path.name} cannot be read "
                f"({getattr(exc, 'message', exc)}); taught gestures are off, built-in "
                "gestures work as usual",
                fix=f"restore {self.path.name} from a backup or an export, or move it aside "
                "to start a new set",
            )
            self._damaged_stamp = _stamp(self.path)

    @property
    def stale(self) -> bool:
        """The set was damaged and its file has changed since (restored or moved aside)."""
        return self.damage is not None and _stamp(self.path) != self._damaged_stamp

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
            self._writable()
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
            examples = {k: v for k, v in self._examples.items() if k.lower() != name.lower()}
            examples[name] = np.asarray(hands, dtype=np.float32)
            self._commit(examples)
            return self.gestures()

    def delete(self, name: str) -> list[TaughtGesture]:
        with self._lock:
            self._writable()
            if name not in self._examples:
                raise BadInputError(
                    f"no taught gesture is called {name!r}", fix="pick one from the list"
                )
            self._commit({k: v for k, v in self._examples.items() if k != name})
            return self.gestures()

    def export_json(self) -> str:
        with self._lock:
            self._writable()  # an empty export of a damaged set would look like a real one
            return _dump(self._examples)

    def import_json(self, text: str, source: str = "file") -> list[TaughtGesture]:
        """Merge a set exported by ``export_json``; names already taught are replaced."""
        with self._lock:
            self._writable()
            self._commit(self._parse(text, source, self._examples))
            return self.gestures()

    def _writable(self) -> None:
        if self.damage is not None:
            raise self.damage

    def _commit(self, examples: dict[str, np.ndarray]) -> None:
        """Train on ``examples``, save them, then make them the set (a failed save changes
        nothing, on disk or in memory)."""
        model, accuracy = self._trained(examples)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = _dump(examples).encode("utf-8")
        atomic_write(self.path, lambda f: f.write(payload))
        fsync_dir(self.path.parent)
        self._examples, self._model, self._accuracy = examples, model, accuracy

    def _parse(self, text: str, source: str, base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The gestures of an exported set, merged over ``base`` (checked, not yet kept)."""
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
        items = data.get("gestures", [])
        if not isinstance(items, list):
            raise BadInputError(f"{source}: 'gestures' is not a list", fix=fix)
        found: dict[str, np.ndarray] = {}
        for item in items:
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
        merged = {**base, **found}
        if len(merged) > MAX_GESTURES:
            raise BadInputError(
                f"{source} would make {len(merged)} taught gestures",
                fix=f"keep at most {MAX_GESTURES}",
            )
        return merged

    def _trained(
        self, examples: dict[str, np.ndarray]
    ) -> tuple[GestureModel | None, dict[str, float]]:
        """The classifier over ``examples`` and its accuracy on each gesture's examples."""
        if not examples:
            return None, {}
        rng = np.random.default_rng(0)
        parts, labels = [], []
        for name, ex in examples.items():
            parts.append(augment(rng, ex, 60))
            labels += [name] * (len(ex) * 60)
        positives = np.concatenate(parts)
        negatives = self._other_hands(rng)
        # built-in hands that look like a taught example are not counted against it
        pos_feat = features(np.concatenate(list(examples.values())))
        neg_feat = features(negatives)
        d = np.linalg.norm(neg_feat[:, None, :60] - pos_feat[None, :, :60], axis=-1).min(1)
        neg_feat = neg_feat[d > 1.0]
        x = np.concatenate([features(positives), neg_feat])
        y = labels + [OTHER] * len(neg_feat)
        classes = (*examples, OTHER)
        model = train_apart(x, y, classes, FitConfig(hidden=(64,), epochs=12, seed=0))
        accuracy = {}
        for name, ex in examples.items():
            pred = model.probabilities(features(ex)).argmax(1)
            accuracy[name] = float(np.mean([classes[p] == name for p in pred]))
        return model, accuracy

    def _other_hands(self, rng: np.random.Generator) -> np.ndarray:
        if self._negatives is None:
            from mmdemo.flows.gestures.features import normalise
            from mmdemo.flows.gestures.synth import make_dataset

            lm, _ = make_dataset(seed=7, per_class=80, none_factor=3.0)
            self._negatives = normalise(lm).astype(np.float32)
        return self._negatives


def _dump(examples: dict[str, np.ndarray]) -> str:
    gestures = [{"name": n, "examples": np.round(e, 5).tolist()} for n, e in examples.items()]
    return json.dumps({"format": FORMAT, "version": 1, "gestures": gestures})


def _stamp(path: Path) -> tuple[int, int] | None:
    """(modified ns, size) of a file, None when it is not there."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size
