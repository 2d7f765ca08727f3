"""Few-shot classification with a frozen encoder: k labelled images per class give each class a
centroid (the mean of its normalised embeddings); an image goes to the class whose centroid is
the most similar by cosine. Nothing is trained. The rest of the images score it, over several
random picks of the k ("episodes"), beside CLIP's zero-shot guess on the same images.

Written in torch: scikit-learn is not installed (and a nearest centroid is a few lines).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mmdemo.flows.how import plain

DEFAULT_SHOTS = (1, 2, 5)
ZERO_SHOT_PROMPT = "a photo of a {}"


def nearest_centroid(support: Any, support_labels: Any, queries: Any, classes: int) -> Any:
    """Predicted class (0..classes-1) of each query row: the class whose centroid of L2-normalised
    support embeddings has the largest cosine with the query. Every class needs a support row."""
    import torch

    f = torch.nn.functional
    support = f.normalize(torch.as_tensor(support, dtype=torch.float32), dim=-1)
    queries = f.normalize(torch.as_tensor(queries, dtype=torch.float32), dim=-1)
    labels = torch.as_tensor(support_labels, dtype=torch.long)
    counts = torch.bincount(labels, minlength=classes)
    if bool((counts == 0).any()):
        missing = int((counts == 0).nonzero()[0])
        raise ValueError(f"class {missing} has no support example")
    sums = torch.zeros(classes, support.shape[1]).index_add_(0, labels, support)
    centroids = f.normalize(sums / counts[:, None], dim=-1)
    return (queries @ centroids.T).argmax(dim=1)


@dataclass(frozen=True)
class ShotResult:
    shots: int
    episodes: int
    queries: int  # images scored per episode (every image not picked as a shot)
    accuracy: float | None  # mean over episodes; None when a class has too few images
    zero_shot_accuracy: float | None  # CLIP zero-shot on the very same images
    skipped: str = ""  # why there is no score


@dataclass(frozen=True)
class FewShot:
    classes: tuple[str, ...]
    per_class: dict[str, int]
    results: tuple[ShotResult, ...]
    zero_shot_all: float | None  # zero-shot accuracy over every image
    chance: float  # 1 / classes
    prompt: str

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["results"] = [asdict(r) for r in self.results]
        return plain(out)


def episodes_accuracy(
    embeddings: Any,
    labels: Sequence[int],
    classes: int,
    shots: int,
    episodes: int,
    seed: int,
    zero_shot: Any = None,
) -> tuple[float, float | None, int]:
    """(mean few-shot accuracy, mean zero-shot accuracy on the same queries or None, queries per
    episode) over seeded episodes: each picks ``shots`` images per class at random as support
    and scores the rest. Each class needs more than ``shots`` images."""
    import torch

    emb = torch.as_tensor(embeddings, dtype=torch.float32)
    y = torch.as_tensor(list(labels), dtype=torch.long)
    members = [torch.nonzero(y == c).flatten() for c in range(classes)]
    gen = torch.Generator().manual_seed(int(seed))
    few, zero, queries = [], [], 0
    for _ in range(episodes):
        support, rest = [], []
        for idx in members:
            order = idx[torch.randperm(len(idx), generator=gen)]
            support.append(order[:shots])
            rest.append(order[shots:])
        s, q = torch.cat(support), torch.cat(rest)
        predicted = nearest_centroid(emb[s], y[s], emb[q], classes)
        few.append(float((predicted == y[q]).double().mean()))
        if zero_shot is not None:
            zs = torch.as_tensor(zero_shot, dtype=torch.long)
            zero.append(float((zs[q] == y[q]).double().mean()))
        queries = len(q)
    mean_zero = sum(zero) / len(zero) if zero else None
    return sum(few) / len(few), mean_zero, queries


def few_shot(
    embeddings: Any,
    labels: Sequence[str],
    shots: Sequence[int] = DEFAULT_SHOTS,
    episodes: int = 5,
    seed: int = 0,
    zero_shot: Sequence[int] | None = None,
    prompt: str = ZERO_SHOT_PROMPT,
) -> FewShot:
    """Few-shot accuracy at each k of ``shots`` for image ``embeddings`` labelled ``labels``
    (names), beside zero-shot predictions (class indexes, in sorted-name order) if given."""
    classes = tuple(sorted(set(labels)))
    index = {name: i for i, name in enumerate(classes)}
    y = [index[name] for name in labels]
    per_class = {name: sum(1 for label in labels if label == name) for name in classes}
    smallest = min(per_class.values())
    results = []
    for k in sorted(set(int(s) for s in shots)):
        if smallest <= k:
            short = min(per_class, key=per_class.__getitem__)
            results.append(
                ShotResult(
                    k,
                    0,
                    0,
                    None,
                    None,
                    skipped=f"class '{short}' has {smallest} image(s); {k} shot(s) need at least "
                    f"{k + 1} per class (one left to score)",
                )
            )
            continue
        accuracy, zero, queries = episodes_accuracy(
            embeddings, y, len(classes), k, episodes, seed, zero_shot
        )
        results.append(ShotResult(k, episodes, queries, accuracy, zero))
    zero_all = None
    if zero_shot is not None:
        zero_all = sum(1 for p, t in zip(zero_shot, y, strict=True) if p == t) / len(y)
    return FewShot(
        classes=classes,
        per_class=per_class,
        results=tuple(results),
        zero_shot_all=zero_all,
        chance=1 / len(classes),
        prompt=prompt,
    )
