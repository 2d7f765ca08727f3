"""Zero-shot classification and occlusion maps, checked against independent computations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmdemo.errors import BadInputError
from mmdemo.images import ImageLimits, decode
from mmdemo.models.manager import ModelManager
from mmdemo.retrieval.embed import embed_images, embed_texts, encode_tensors
from mmdemo.retrieval.explain import occlusion_map, patch_grid
from mmdemo.retrieval.zeroshot import (
    DEFAULT_TEMPLATES,
    classify,
    parse_labels,
    parse_templates,
)
from tests.retrieval_helpers import write_photos


@pytest.fixture
def bundle(shared_manager: ModelManager):
    return shared_manager.get("clip")


@pytest.fixture
def cat(tmp_path: Path) -> Path:
    return write_photos(tmp_path, ("cat",))["cat"]


def test_probabilities_are_the_softmax_of_the_template_ensemble(bundle, cat: Path) -> None:
    from PIL import Image

    png = cat.with_suffix(".png")  # lossless, so any decoder gives the same pixels
    Image.open(cat).save(png)
    cat = png
    labels = ("cat", "dog", "rocket ship")
    templates = ("a photo of a {}.", "art of the {}.", "a {} in a video game.")
    result = classify(bundle, str(cat), ", ".join(labels), "\n".join(templates))
    assert result.templates == templates
    assert sum(result.probabilities) == pytest.approx(1.0, abs=1e-5)
    assert list(result.probabilities) == sorted(result.probabilities, reverse=True)

    # computed straight through open_clip's model, not through our embedding code
    import torch

    def unit(t: torch.Tensor) -> np.ndarray:
        a = t.detach().float().numpy()
        return a / np.linalg.norm(a, axis=-1, keepdims=True)

    with torch.no_grad():
        pixels = bundle.preprocess(Image.open(cat).convert("RGB"))[None]
        image = unit(bundle.model.encode_image(pixels))[0]
        classes = []
        for label in labels:
            tokens = bundle.tokenizer([t.format(label) for t in templates])
            e = unit(bundle.model.encode_text(tokens)).mean(0)
            classes.append(e / np.linalg.norm(e))
    scale = float(bundle.model.logit_scale.detach().exp())
    logits = scale * np.stack(classes) @ image
    expected = np.exp(logits - logits.max())
    expected /= expected.sum()
    got = dict(zip(result.labels, result.probabilities, strict=True))
    for label, p in zip(labels, expected, strict=True):
        assert got[label] == pytest.approx(float(p), abs=1e-4)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("cat", "at least two labels"),
        ("cat, Cat,  ", "at least two labels"),
        ("", "at least two"),
        ("a, " + "b" * 300, "longer than"),
    ],
)
def test_bad_labels_are_refused(labels: str, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        parse_labels(labels)


@pytest.mark.parametrize(
    "template", ["a photo of a cat", "a {} and a {}", "a {0} photo", "a {} photo {"]
)
def test_bad_templates_are_refused(template: str) -> None:
    with pytest.raises(BadInputError, match="exactly one"):
        parse_templates(template)


def test_labels_and_templates_are_cleaned() -> None:
    assert parse_labels("cat,\n dog ,cat,  hot   dog") == ("cat", "dog", "hot dog")
    assert parse_templates("  \n") == DEFAULT_TEMPLATES
    assert parse_templates(None) == DEFAULT_TEMPLATES


def test_classify_refuses_a_missing_or_broken_image(bundle) -> None:
    with pytest.raises(BadInputError, match="no image"):
        classify(bundle, None, "cat, dog")
    with pytest.raises(BadInputError, match="cannot be used"):
        classify(bundle, b"\x89PNG broken", "cat, dog")


def test_occlusion_map_measures_the_score_drop_of_each_cell(bundle, cat: Path) -> None:
    ex = occlusion_map(bundle, str(cat), "a cat")
    g = patch_grid(bundle)
    assert ex.grid == min(g, 8) and ex.drops.shape == (ex.grid, ex.grid)
    assert ex.overlay.shape == (384, 384, 3) and ex.view.shape[:2] == (bundle.image_size,) * 2
    assert ex.score == pytest.approx(
        float(embed_images(bundle, [str(cat)])[0] @ embed_texts(bundle, ["a cat"])[0]), abs=1e-4
    )
    # recompute the strongest cell by hand: hide it, embed, compare
    r, c = np.unravel_index(int(np.argmax(ex.drops)), ex.drops.shape)
    pixels, _, _ = decode(cat, bundle.image_size, ImageLimits())  # as the flow decodes it
    x = bundle.preprocess(pixels)
    edges = np.linspace(0, x.shape[-1], ex.grid + 1).round().astype(int)
    x[:, edges[r] : edges[r + 1], edges[c] : edges[c + 1]] = 0
    hidden = float(encode_tensors(bundle, [x])[0] @ embed_texts(bundle, ["a cat"])[0])
    assert ex.score - hidden == pytest.approx(float(ex.drops[r, c]), abs=1e-4)
    assert any("random weights" in n for n in ex.notes)


def test_occlusion_needs_a_text(bundle, cat: Path) -> None:
    with pytest.raises(BadInputError, match="needs the text"):
        occlusion_map(bundle, str(cat), "  ")
