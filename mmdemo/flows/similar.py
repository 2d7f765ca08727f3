"""Similar cases: indexed images like the one in the chat, fetched by CLIP and given to the VLM
as extra context (retrieval-augmented visual chat, as in case-based medical VQA)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmdemo.errors import BadInputError

SELF_MATCH = 0.9995  # a hit this close is the query image itself, already indexed


@dataclass(frozen=True)
class SimilarCase:
    name: str  # what the user sees
    path: str  # where the image is read from
    score: float  # cosine similarity to the query image
    image: Any  # decoded PIL image for the VLM


@dataclass(frozen=True)
class SimilarRequest:
    """Which index to consult and how many cases to add."""

    index: str
    k: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.k <= 4:
            raise BadInputError(f"similar cases k={self.k} is outside 1..4")


def find_similar(retrieval: Any, request: SimilarRequest, image: Any) -> list[SimilarCase]:
    """Up to ``k`` indexed images most like ``image`` (the image itself excluded)."""
    result = retrieval.similar_images(request.index, image, k=request.k + 1)
    cases = []
    for hit in result.hits:
        if hit.score >= SELF_MATCH:
            continue
        cases.append(
            SimilarCase(
                hit.item.name,
                hit.item.path,
                hit.score,
                retrieval.image_of(request.index, hit.item.id),
            )
        )
    return cases[: request.k]


def context_note(cases: list[SimilarCase], index: str) -> str:
    """The sentence that tells the VLM what the extra images are."""
    listed = "; ".join(f"{c.name} (similarity {c.score:.2f})" for c in cases)
    return (
        f"The last {len(cases)} image(s) are similar cases from the '{index}' collection, "
        f"for reference: {listed}."
    )
