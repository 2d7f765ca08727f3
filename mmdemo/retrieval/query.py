"""What a search looks for, and its embedding: text, an image, both (weighted), or an indexed
image by id (which needs no model: its stored vector is the query)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmdemo.errors import BadInputError
from mmdemo.images import ImageLimits, ImageProblem
from mmdemo.retrieval import embed as emb
from mmdemo.retrieval.backend import IndexView

MAX_QUERY_CHARS = 2000


@dataclass(frozen=True)
class Query:
    """What to search for: text, an image, both (weighted), or an indexed image by id."""

    text: str = ""
    image: Any = None  # PIL image, numpy array, path or bytes
    item_id: int | None = None
    text_weight: float = 0.5  # with both text and image: weight of the text embedding


def embed_query(
    snapshot: IndexView, query: Query, bundle: Any, limits: ImageLimits | None = None
) -> tuple[np.ndarray, str]:
    """(normalised query vector, the query in words). ``bundle``: the index's CLIP model
    (unused for a query by ``item_id``)."""
    text = (query.text or "").strip()
    if len(text) > MAX_QUERY_CHARS:
        raise BadInputError(
            f"the query text is {len(text)} characters long",
            fix=f"use at most {MAX_QUERY_CHARS} (CLIP reads only the first 77 tokens)",
        )
    if query.item_id is not None:
        vectors, live = snapshot.vectors_of(np.asarray([query.item_id]))
        if not live[0]:
            raise BadInputError(
                f"image #{query.item_id} is not in index '{snapshot.name}' (any more)",
                fix="search again and pick a current result",
            )
        item = snapshot.item(query.item_id)
        return vectors[0], f"image like {item.name if item else query.item_id}"
    if not text and query.image is None:
        raise BadInputError("nothing to search for", fix="type a text, give an image, or both")
    if not 0.0 <= query.text_weight <= 1.0:
        raise BadInputError(f"text weight {query.text_weight} is outside 0..1")
    parts, words = [], []
    if text:
        parts.append(
            (
                query.text_weight if query.image is not None else 1.0,
                emb.embed_texts(bundle, [text])[0],
            )
        )
        words.append(repr(text))
    if query.image is not None:
        try:
            image_vec = emb.embed_images(bundle, [query.image], limits)[0]
        except ImageProblem as exc:
            raise exc.of("the query image") from None
        parts.append((1.0 - query.text_weight if text else 1.0, image_vec))
        words.append("an image")
    vector = sum(w * v for w, v in parts)
    norm = float(np.linalg.norm(vector))
    if norm < 1e-6:
        raise BadInputError("text and image cancel out at this weight", fix="change the weight")
    joined = " + ".join(words)
    if len(parts) == 2:
        joined += f" (text weight {query.text_weight:.2f})"
    return (vector / norm).astype(np.float32), joined
