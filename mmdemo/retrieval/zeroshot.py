"""Zero-shot classification: an image against the user's labels, prompt templates ensembled.

The class embeddings come from open_clip's own ``build_zero_shot_classifier`` (the mean of the
normalised template embeddings per label, normalised again), as in the CLIP paper.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmdemo.errors import BadInputError
from mmdemo.images import ImageProblem
from mmdemo.retrieval.embed import embed_images
from mmdemo.retrieval.types import ZeroShotResult

# A few of the CLIP paper's ImageNet prompt templates (its notebook's best-performing subset,
# plus the plain "a photo of a {}.").
DEFAULT_TEMPLATES = (
    "a photo of a {}.",
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)
MAX_LABELS = 1000
MAX_LABEL_CHARS = 200


def parse_labels(labels: str | Sequence[str]) -> tuple[str, ...]:
    """Labels from a comma/newline-separated string or a list; stripped, de-duplicated."""
    items = re.split(r"[,\n]", labels) if isinstance(labels, str) else list(labels)
    seen: dict[str, str] = {}
    for raw in items:
        label = " ".join(str(raw).split())
        if label and label.lower() not in seen:
            seen[label.lower()] = label
    out = tuple(seen.values())
    if len(out) < 2:
        raise BadInputError(
            f"zero-shot classification needs at least two labels, got {len(out)}",
            fix="type labels separated by commas, e.g. cat, dog, rocket",
        )
    if len(out) > MAX_LABELS:
        raise BadInputError(f"{len(out)} labels is too many", fix=f"use at most {MAX_LABELS}")
    long = [label for label in out if len(label) > MAX_LABEL_CHARS]
    if long:
        raise BadInputError(
            f"label {long[0][:40]!r}… is longer than {MAX_LABEL_CHARS} characters",
            fix="use short labels; CLIP reads at most 77 tokens per prompt",
        )
    return out


def parse_templates(templates: str | Sequence[str] | None) -> tuple[str, ...]:
    """Templates, one per line, each with exactly one ``{}``; empty means the defaults."""
    if templates is None:
        return DEFAULT_TEMPLATES
    items = templates.splitlines() if isinstance(templates, str) else list(templates)
    out = tuple(dict.fromkeys(t.strip() for t in items if t.strip()))
    if not out:
        return DEFAULT_TEMPLATES
    for t in out:
        if t.count("{}") != 1 or "{" in t.replace("{}", "") or "}" in t.replace("{}", ""):
            raise BadInputError(
                f"template {t!r} must contain exactly one {{}} (where the label goes) and no "
                "other braces",
                fix='write templates like "a photo of a {}."',
            )
    return out


def classify(
    bundle: Any,
    image: Any,
    labels: str | Sequence[str],
    templates: str | Sequence[str] | None = None,
) -> ZeroShotResult:
    """Probabilities of ``labels`` for ``image`` (softmax of the model's scaled cosines)."""
    import torch
    from open_clip.zero_shot_classifier import build_zero_shot_classifier

    start = time.perf_counter()
    names = parse_labels(labels)
    prompts = parse_templates(templates)
    if image is None:
        raise BadInputError("no image to classify", fix="upload an image")
    try:
        features = embed_images(bundle, [image])[0]
    except ImageProblem as exc:
        raise exc.of("the image") from None
    with torch.inference_mode():
        weights = build_zero_shot_classifier(
            bundle.model, bundle.tokenizer, names, prompts, device=bundle.device
        )
        scale = float(bundle.model.logit_scale.exp().clamp(max=100).item())
    weights = weights.float().cpu().numpy()  # (dim, labels)
    logits = scale * (features @ weights)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    order = np.argsort(-probs, kind="stable")
    return ZeroShotResult(
        labels=tuple(names[i] for i in order),
        probabilities=tuple(float(probs[i]) for i in order),
        templates=prompts,
        seconds=time.perf_counter() - start,
    )
