"""The How-it-works tab's named endpoints over ``HowItWorks`` (mmdemo.flows.how.service):
plain values in, data out (dicts, lists, file paths), for gradio_client:

``/how_parts()``, ``/how_image_tokens(image)``, ``/how_methods()``,
``/how_method(method, attach, rank)``,
``/how_contrastive(images, captions, shuffle, use_samples, seed)``,
``/how_fewshot(images, labels, folder, shots, episodes, seed, use_samples)``,
``/how_audio_units(audio, units, seed, compare_audio)``.

Files arrive as uploads (``handle_file``), checked by ``upload_path``; pictures go back as
files.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from mmdemo.ui.common import guarded
from mmdemo.ui.context import AppContext
from mmdemo.ui.uploads import upload_path


def _file(path: str) -> dict[str, Any]:
    return FileData(path=path).model_dump()


def register(ctx: AppContext, query: dict[str, Any], audio: dict[str, Any]) -> None:
    """Named endpoints (``query``/``audio``: concurrency settings); all but the method list
    run a model (or load one), so they spend the request budgets."""
    api = ctx.services.how

    def how_parts() -> dict:
        """The loaded VLM's parts: vision encoder, projector, language model; parameters,
        share, dtypes, bytes; resident adapters counted apart."""
        return api.model_parts()

    def how_image_tokens(image: FileData) -> dict:
        """An uploaded image's path into the VLM: resized size, tiles, patches, image tokens
        (counted in the processor's prompt); "picture" is a PNG with the grid drawn."""
        data = api.image_tokens(upload_path(image, "image"))
        data["picture"] = _file(data["picture"])
        return data

    def how_methods() -> list[dict[str, str]]:
        """The fine-tuning methods: name, family (peft | own | full), summary."""
        return api.methods()

    def how_method(method: str, attach: str = "language", rank: int = 8) -> dict:
        """Which modules a method trains on the loaded VLM's architecture, and the trainable
        share (counted on a weightless copy: the served model is not touched)."""
        return api.method_plan(method, attach, rank)

    def how_contrastive(
        images: list[FileData] | None,
        captions: str | list[str] = "",
        shuffle: bool = False,
        use_samples: bool = False,
        seed: int = 0,
    ) -> dict:
        """CLIP's similarity matrix of N images and their N captions (one per line), scaled by
        its temperature; both softmaxes, symmetric InfoNCE loss, top-1 accuracy; "heatmap"
        is a PNG. ``shuffle``: captions paired with the wrong images ("loss_in_order" kept)."""
        paths = [upload_path(f, "each image") for f in images or []]
        data = api.contrastive([p for p in paths if p], captions, shuffle, use_samples, seed)
        data["heatmap"] = _file(data["heatmap"])
        return data

    def how_fewshot(
        images: list[FileData] | None,
        labels: str | list[str] = "",
        folder: str = "",
        shots: str | list[int] = "1, 2, 5",
        episodes: int = 5,
        seed: int = 0,
        use_samples: bool = False,
    ) -> dict:
        """Nearest-centroid accuracy on frozen CLIP embeddings at each shot count beside CLIP
        zero-shot on the same images. Labels: one per image (empty: from the file names); or
        a server folder with a subfolder per class (local mode); or the built-in shapes."""
        paths = [upload_path(f, "each image") for f in images or []]
        files = [p for p in paths if p]
        return api.few_shot(files, labels, folder, shots, episodes, seed, use_samples)

    def how_audio_units(
        audio: FileData, units: int = 50, seed: int = 0, compare_audio: FileData | None = None
    ) -> dict:
        """Speech -> HuBERT-style features -> units against one k-means codebook shared by
        every clip (fitted on LibriVox speech; "codebook" says on what) -> repeats merged;
        units per second. ``compare_audio``: a second clip; "compared" holds its units and
        the normalised unit edit distance (0: the same units). Random encoder weights
        ("random_weights") unless trained ones are in torch hub's cache."""
        other = upload_path(compare_audio, "compare_audio")
        return api.audio_units(upload_path(audio, "audio"), units, seed, other)

    gr.api(guarded(how_methods), api_name="how_methods", queue=False)
    for fn, name in (
        (how_parts, "how_parts"),
        (how_image_tokens, "how_image_tokens"),
        (how_method, "how_method"),
        (how_contrastive, "how_contrastive"),
        (how_fewshot, "how_fewshot"),
    ):
        gr.api(ctx.heavy(guarded(fn)), api_name=name, **query)
    gr.api(ctx.heavy(guarded(how_audio_units)), api_name="how_audio_units", **audio)
