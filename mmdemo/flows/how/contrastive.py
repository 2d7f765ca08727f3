"""Contrastive learning as CLIP does it: N images and their N captions make an N x N matrix of
cosine similarities, scaled by the learned temperature (``logit_scale.exp()``); a softmax along
each row asks "which caption is this image's?", along each column "which image is this
caption's?", and the training loss is the mean of the two cross-entropies with the diagonal
as the answer (symmetric InfoNCE, Radford et al. 2021, Figure 3's pseudocode).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mmdemo.flows.how import plain


@dataclass(frozen=True)
class Contrast:
    scale: float  # logit_scale.exp(): 1 / temperature
    cosine: list[list[float]]  # N x N, image i against caption j
    logits: list[list[float]]  # scale * cosine
    image_to_text: list[list[float]]  # softmax of each row: P(caption j | image i)
    text_to_image: list[list[float]]  # softmax of each column, transposed: P(image i | caption j)
    loss_image_to_text: float  # mean cross-entropy of the rows against the diagonal
    loss_text_to_image: float
    loss: float  # their mean: what CLIP minimises
    accuracy_image_to_text: float  # rows whose largest entry is the diagonal
    accuracy_text_to_image: float
    chance_loss: float  # log N: the loss of a model that cannot tell the pairs apart

    def to_json(self) -> dict[str, Any]:
        return plain(asdict(self))


def info_nce(logits: Any) -> dict[str, Any]:
    """Symmetric InfoNCE of an N x N logit matrix whose diagonal holds the true pairs:
    losses, both softmaxes and top-1 accuracies (ties count as misses)."""
    import torch

    logits = torch.as_tensor(logits, dtype=torch.float64)
    n = logits.shape[0]
    if logits.ndim != 2 or logits.shape[1] != n or n < 1:
        raise ValueError(f"a square matrix is needed, got shape {tuple(logits.shape)}")
    target = torch.arange(n)
    f = torch.nn.functional
    loss_i2t = f.cross_entropy(logits, target)
    loss_t2i = f.cross_entropy(logits.T, target)
    diag = logits.diagonal()
    # a row is right when its diagonal beats every other entry strictly
    off = logits + torch.diag(torch.full((n,), float("-inf"), dtype=logits.dtype))
    rows_right = diag > off.max(dim=1).values if n > 1 else torch.ones(1, dtype=torch.bool)
    cols_right = diag > off.max(dim=0).values if n > 1 else torch.ones(1, dtype=torch.bool)
    return {
        "image_to_text": logits.softmax(dim=1),
        "text_to_image": logits.T.softmax(dim=1),
        "loss_image_to_text": float(loss_i2t),
        "loss_text_to_image": float(loss_t2i),
        "loss": float((loss_i2t + loss_t2i) / 2),
        "accuracy_image_to_text": float(rows_right.double().mean()),
        "accuracy_text_to_image": float(cols_right.double().mean()),
    }


def contrast(image_embeddings: Any, text_embeddings: Any, scale: float) -> Contrast:
    """The whole picture for paired embeddings (row i of each is a pair; normalised here)."""
    import math

    import torch

    images = torch.nn.functional.normalize(torch.as_tensor(image_embeddings).double(), dim=-1)
    texts = torch.nn.functional.normalize(torch.as_tensor(text_embeddings).double(), dim=-1)
    if images.shape != texts.shape:
        raise ValueError(f"{images.shape[0]} images but {texts.shape[0]} captions")
    cosine = images @ texts.T
    logits = scale * cosine
    out = info_nce(logits)

    def rows(t: Any) -> list[list[float]]:
        return [[round(float(v), 6) for v in row] for row in t]

    return Contrast(
        scale=float(scale),
        cosine=rows(cosine),
        logits=rows(logits),
        image_to_text=rows(out["image_to_text"]),
        text_to_image=rows(out["text_to_image"]),
        loss_image_to_text=out["loss_image_to_text"],
        loss_text_to_image=out["loss_text_to_image"],
        loss=out["loss"],
        accuracy_image_to_text=out["accuracy_image_to_text"],
        accuracy_text_to_image=out["accuracy_text_to_image"],
        chance_loss=math.log(images.shape[0]),
    )


def derangement(n: int, seed: int) -> list[int]:
    """A seeded shuffle of ``range(n)`` that moves every item (n >= 2): every caption lands
    beside an image that is not its own."""
    import torch

    if n < 2:
        return list(range(n))
    gen = torch.Generator().manual_seed(int(seed))
    while True:
        order = torch.randperm(n, generator=gen).tolist()
        if all(i != j for i, j in enumerate(order)):
            return order
