"""Which embedding space an index lives in, and the errors of the index store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmdemo.errors import BadInputError, MMDemoError

# Probe embeddings of two loads of the same weights agree to ~1e-4 across devices and
# precisions; two different models (or two random initialisations) are far below this.
SAME_SPACE_MIN_COSINE = 0.99


class IndexNotFoundError(BadInputError):
    """The named index does not exist."""


class IndexExistsError(BadInputError):
    """An index of that name exists and the caller asked to create it."""


class IndexModelMismatchError(BadInputError):
    """The index was built with another model; mixing embedding spaces is refused."""


class IndexCorruptError(MMDemoError):
    """The index files on disk are damaged (not by us: our writes are atomic)."""


@dataclass(frozen=True)
class ModelIdentity:
    """A model as an index remembers it: its id, weight fingerprint and probe embeddings."""

    model_id: str
    fingerprint: str
    embed_dim: int
    probe: tuple[tuple[float, ...], ...] = ()

    @classmethod
    def of(cls, bundle: Any) -> ModelIdentity:
        from mmdemo.retrieval.embed import probe_vectors

        rows = probe_vectors(bundle)
        return cls(
            bundle.model_id,
            bundle.fingerprint,
            int(bundle.embed_dim),
            tuple(tuple(round(float(v), 6) for v in row) for row in rows),
        )

    def same_space(self, other: ModelIdentity) -> bool:
        """True when embeddings of both models can be compared (same weights, any precision)."""
        if self.embed_dim != other.embed_dim:
            return False
        if self.fingerprint == other.fingerprint:
            return True
        if not self.probe or len(self.probe) != len(other.probe):
            return False
        a, b = np.asarray(self.probe), np.asarray(other.probe)
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
        return bool(cos.min() >= SAME_SPACE_MIN_COSINE)

    def to_json(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "fingerprint": self.fingerprint,
            "embed_dim": self.embed_dim,
            "probe": [list(row) for row in self.probe],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelIdentity:
        return cls(
            str(data["model_id"]),
            str(data["fingerprint"]),
            int(data["embed_dim"]),
            tuple(tuple(float(v) for v in row) for row in data.get("probe", ())),
        )


def mismatch_error(
    index: str, built: ModelIdentity, loaded: ModelIdentity
) -> IndexModelMismatchError:
    return IndexModelMismatchError(
        f"index '{index}' was built with CLIP model '{built.model_id}' ({built.embed_dim}-d, "
        f"fingerprint {built.fingerprint}), but the loaded model is '{loaded.model_id}' "
        f"({loaded.embed_dim}-d, fingerprint {loaded.fingerprint}); their embeddings are not "
        "comparable, so the index refuses them",
        fix=(
            f"switch the clip model back to '{built.model_id}' (System tab, or MMDEMO_CLIP), "
            "or build a new index with the current model"
        ),
    )
