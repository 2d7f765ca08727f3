"""The How-it-works tab's jobs over the app's shared models: plain values in, dicts out.

The VLM and CLIP are the manager's (the ones chat and CLIP search use); nothing here changes
them. Fine-tuning plans are made on a weightless copy of the VLM's architecture (methods.py).
Files arrive as paths the caller has already checked as uploads; server folders are read
only in local mode.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmdemo.config import Settings
from mmdemo.errors import BadInputError
from mmdemo.finetune.config import ATTACH
from mmdemo.flows.how import samples
from mmdemo.flows.how.codebooks import Codebooks
from mmdemo.flows.limits import require_local
from mmdemo.images import IMAGE_EXTENSIONS, ImageProblem, load_image
from mmdemo.models.manager import ModelManager

MAX_PAIRS = 16  # the contrastive matrix stays readable
MAX_FEWSHOT_IMAGES = 400
MAX_SHOTS = 50
MAX_EPISODES = 50
SHUFFLE_SEED = 0


def parse_lines(value: str | Sequence[str] | None, split_commas: bool) -> list[str]:
    """Items of a list, or of a string split on new lines (and commas when ``split_commas``)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = re.split(r"[,\n]" if split_commas else r"\n", value)
    return [" ".join(str(v).split()) for v in value if str(v).strip()]


def parse_shots(value: str | Sequence[int] | None) -> list[int]:
    """Shot counts such as "1, 2, 5" or [1, 2, 5]; each in 1..MAX_SHOTS."""
    items = parse_lines(value, True) if isinstance(value, str) else list(value or [])
    shots = []
    for item in items:
        try:
            k = int(item)
        except (TypeError, ValueError):
            raise BadInputError(f"shots must be whole numbers, got {item!r}") from None
        if not 1 <= k <= MAX_SHOTS:
            raise BadInputError(f"{k} shots is outside 1..{MAX_SHOTS}")
        shots.append(k)
    return sorted(set(shots)) or [1, 2, 5]


def label_from_name(path: str) -> str:
    """A class label from a file name: ``cat-01.jpg``, ``cat_2.png``, ``cat (3).jpg`` -> cat."""
    stem = Path(path).stem
    label = re.sub(r"[\s_\-.()\[\]]*\d*[\s_\-.()\[\]]*$", "", stem)
    return " ".join((label or stem).replace("_", " ").split())


class HowItWorks:
    """The views of the How-it-works tab over the app's manager (VLM, CLIP)."""

    attach_choices = ATTACH  # where a fine-tuning method may attach (language, ..., all)

    def __init__(self, settings: Settings, manager: ModelManager) -> None:
        self.settings = settings
        self.manager = manager
        # audio units' k-means codebooks, fitted once and shared by every user's clip
        self.codebooks = Codebooks(settings.home / "audio-units")

    # -- anatomy --------------------------------------------------------------------------
    def _vlm(self) -> Any:
        return self.manager.get("vlm")

    def model_parts(self) -> dict[str, Any]:
        """The loaded VLM's parts (vision encoder, projector, language model): parameters,
        dtypes, bytes; adapters resident on it are counted apart."""
        from mmdemo.flows.how.anatomy import anatomy

        bundle = self._vlm()
        loaded = self.manager.get_loaded("vlm")
        # read under the adapter pin: no adapter is being loaded into the model meanwhile
        with bundle.adapters.pin((None,)):
            found = anatomy(bundle.adapters.base, bundle.family)
        return {
            "model_id": bundle.model_id,
            "device": loaded.device,
            "dtype": loaded.dtype,
            "resident_adapters": bundle.adapters.resident_names(),
            **found.to_json(),
        }

    def image_tokens(self, image: str | None) -> dict[str, Any]:
        """How the loaded VLM's processor turns ``image`` into tokens, with a picture of the
        tiles and patches ("picture", a PNG file)."""
        from mmdemo.flows.how.image_tokens import image_tokens
        from mmdemo.flows.how.pictures import grid_png

        if not image:
            raise BadInputError("no image given", fix="upload an image")
        try:
            picture = load_image(image)
        except ImageProblem as exc:
            raise exc.of("the image") from None
        bundle = self._vlm()
        found = image_tokens(bundle.processor, bundle.model.config, picture, bundle.family)
        drawn = grid_png(
            picture, found.resized_size, found.tile_size, found.patch_size, found.merge
        )
        return {"model_id": bundle.model_id, **found.to_json(), "picture": drawn}

    def methods(self) -> list[dict[str, str]]:
        """The studio's fine-tuning methods: name, family (peft | own | full), summary."""
        from mmdemo.finetune.methods import METHODS

        return [{"name": n, "family": m.family, "summary": m.summary} for n, m in METHODS.items()]

    def method_plan(self, method: str, attach: str = "language", rank: int = 8) -> dict[str, Any]:
        """Which modules ``method`` trains on the loaded VLM's architecture and its trainable
        share (made on a weightless copy: the served model is not touched)."""
        from mmdemo.flows.how.methods import prepare_on_meta

        try:
            rank = int(rank)
        except (TypeError, ValueError):
            raise BadInputError(f"rank must be a whole number, got {rank!r}") from None
        bundle = self._vlm()
        _, plan = prepare_on_meta(bundle.model.config, (method or "").strip(), attach, rank)
        return {"model_id": bundle.model_id, **plan.to_json()}

    # -- CLIP -----------------------------------------------------------------------------
    def _clip(self) -> Any:
        return self.manager.get("clip")

    def _embed_images(self, bundle: Any, images: Sequence[Any], names: Sequence[str]) -> Any:
        """L2-normalised CLIP embeddings of ``images`` (paths or PIL images), in batches; an
        unreadable one is refused by ``names``'s entry for it."""
        import numpy as np

        from mmdemo.images import ImageLimits, decode
        from mmdemo.retrieval.embed import encode_tensors

        tensors = []
        for image, name in zip(images, names, strict=True):
            try:
                pil, _, _ = decode(image, bundle.image_size, ImageLimits())
            except ImageProblem as exc:
                raise exc.of(name) from None
            tensors.append(bundle.preprocess(pil))
        batches = [encode_tensors(bundle, tensors[i : i + 32]) for i in range(0, len(tensors), 32)]
        return np.concatenate(batches)

    def contrastive(
        self,
        images: Sequence[str] | None,
        captions: str | Sequence[str] | None,
        shuffle: bool = False,
        use_samples: bool = False,
        seed: int = SHUFFLE_SEED,
    ) -> dict[str, Any]:
        """CLIP's N x N image-caption similarities scaled by its temperature, both softmaxes,
        the symmetric InfoNCE loss and top-1 accuracy; ``shuffle`` pairs each image with
        another's caption (the loss before the shuffle is kept as "loss_in_order")."""
        from mmdemo.flows.how.contrastive import contrast, derangement
        from mmdemo.flows.how.pictures import heatmap_png
        from mmdemo.retrieval.embed import embed_texts

        if use_samples:
            paths, texts = samples.sample_pairs()
            files: list[Any] = [str(p) for p in paths]
        else:
            files, texts = [f for f in images or [] if f], parse_lines(captions, False)
        if len(files) != len(texts):
            raise BadInputError(
                f"{len(files)} images but {len(texts)} captions",
                fix="give one caption per image, one per line, in the images' order",
            )
        if not 2 <= len(files) <= MAX_PAIRS:
            raise BadInputError(
                f"{len(files)} image-caption pairs", fix=f"give 2 to {MAX_PAIRS} pairs"
            )
        names = [Path(f).name for f in files]
        bundle = self._clip()
        image_emb = self._embed_images(bundle, files, names)
        text_emb = embed_texts(bundle, texts)
        scale = float(bundle.model.logit_scale.exp().item())
        in_order = contrast(image_emb, text_emb, scale)
        order = derangement(len(texts), seed) if shuffle else list(range(len(texts)))
        shown = contrast(image_emb, text_emb[order], scale) if shuffle else in_order
        captions_shown = [texts[i] for i in order]
        picture = heatmap_png(
            shown.image_to_text,
            names,
            captions_shown,
            f"P(caption | image), temperature 1/{scale:.1f}, loss {shown.loss:.3f}",
            "softmax over each row",
            stem="contrastive",
        )
        return {
            "model_id": bundle.model_id,
            "random_weights": _random_clip(bundle),
            "images": names,
            "captions": captions_shown,
            "caption_order": order,
            "shuffled": bool(shuffle),
            **shown.to_json(),
            "loss_in_order": in_order.loss,
            "heatmap": picture,
        }

    def few_shot(
        self,
        images: Sequence[str] | None = None,
        labels: str | Sequence[str] | None = None,
        folder: str = "",
        shots: str | Sequence[int] | None = "1, 2, 5",
        episodes: int = 5,
        seed: int = 0,
        use_samples: bool = False,
    ) -> dict[str, Any]:
        """Nearest-centroid accuracy on frozen CLIP embeddings at each shot count, beside CLIP
        zero-shot ("a photo of a {label}") on the same images. Labelled images come from
        uploads (labels one per image, or from the file names), a server folder with one
        subfolder per class (local mode only), or the built-in shapes."""
        from mmdemo.flows.how.fewshot import ZERO_SHOT_PROMPT, few_shot
        from mmdemo.retrieval.embed import embed_texts

        files, names = self._labelled(images, labels, folder, use_samples)
        episodes = int(episodes)
        if not 1 <= episodes <= MAX_EPISODES:
            raise BadInputError(f"{episodes} episodes is outside 1..{MAX_EPISODES}")
        classes = sorted(set(names))
        if len(classes) < 2:
            raise BadInputError(
                f"few-shot needs at least two classes, got {len(classes)}",
                fix="label the images with two or more classes",
            )
        bundle = self._clip()
        shown = [
            f if isinstance(f, str) else f"{label} #{i + 1}"
            for i, (f, label) in enumerate(zip(files, names, strict=True))
        ]
        emb = self._embed_images(bundle, files, [Path(s).name for s in shown])
        prompts = embed_texts(bundle, [ZERO_SHOT_PROMPT.format(c) for c in classes])
        zero = (emb @ prompts.T).argmax(axis=1).tolist()
        result = few_shot(emb, names, parse_shots(shots), episodes, int(seed), zero)
        return {
            "model_id": bundle.model_id,
            "random_weights": _random_clip(bundle),
            "images": len(files),
            **result.to_json(),
        }

    def _labelled(
        self,
        images: Sequence[str] | None,
        labels: str | Sequence[str] | None,
        folder: str,
        use_samples: bool,
    ) -> tuple[list[Any], list[str]]:
        """(images: paths or PIL images, their labels) from one of the three sources."""
        files = [f for f in images or [] if f]
        folder = (folder or "").strip()
        if use_samples:
            return samples.sample_shapes()
        if folder:
            require_local(self.settings, "reading a folder on the server")
            return _folder_classes(Path(folder).expanduser())
        if not files:
            raise BadInputError(
                "no labelled images",
                fix="upload images (labels one per image, or in the file "
                "names like cat-1.jpg), or use the built-in shapes",
            )
        names = parse_lines(labels, True) or [label_from_name(f) for f in files]
        if len(names) != len(files):
            raise BadInputError(
                f"{len(files)} images but {len(names)} labels",
                fix="give one label per image, in upload order (or none: labels from file names)",
            )
        if len(files) > MAX_FEWSHOT_IMAGES:
            raise BadInputError(f"{len(files)} images", fix=f"use at most {MAX_FEWSHOT_IMAGES}")
        return files, names

    # -- audio ----------------------------------------------------------------------------
    def audio_units(
        self, audio: str | None, units: int = 50, seed: int = 0, compare: str | None = None
    ) -> dict[str, Any]:
        """Speech -> HuBERT-style frame features -> units against a k-means codebook shared by
        every clip (fitted once on the LibriVox clips) -> repeats merged, with the rates.
        ``compare``: a second clip, its units and the normalised unit edit distance between the
        two (0: the same units)."""
        from mmdemo.flows.audio import read_audio
        from mmdemo.flows.how import audio_units as au

        if not audio:
            raise BadInputError("no audio given", fix="upload a WAV, FLAC, OGG or MP3 file")
        try:
            k = int(units)
        except (TypeError, ValueError):
            raise BadInputError(f"units must be a whole number, got {units!r}") from None
        if not 2 <= k <= au.MAX_UNITS:
            raise BadInputError(f"K={k} units is outside 2..{au.MAX_UNITS}")
        clips = [read_audio(audio, max_seconds=au.MAX_SECONDS)]
        if compare:
            try:
                clips.append(read_audio(compare, max_seconds=au.MAX_SECONDS))
            except BadInputError as exc:
                raise BadInputError(f"the second clip: {exc.message}", fix=exc.fix) from None
        kind = "tiny" if self.settings.resolved_profile == "tiny" else "hubert-base"
        encoder = au.load_encoder(kind, int(seed))
        layer = min(au.LAYER, encoder.layers)
        frames = [au.clip_frames(encoder, c.samples, layer) for c in clips]
        book = self.codebooks.get(encoder, layer, k, int(seed))
        if book is None:  # no reference speech: the clips' own frames
            these = "this clip" if len(clips) == 1 else "these two clips"
            book = au.fit_codebook(frames, k, int(seed), f"{these} (LibriVox clips not installed)")
        found = [
            au.units_of(encoder, f, c.seconds, layer, book)
            for f, c in zip(frames, clips, strict=True)
        ]
        data = {**found[0].to_json(), "truncated": clips[0].truncated}
        if len(found) == 2:
            data["compared"] = {
                "seconds": found[1].seconds,
                "units": found[1].units,
                "distinct": found[1].distinct,
                "truncated": clips[1].truncated,
                "unit_edit_distance": au.unit_edit_distance(found[0].units, found[1].units),
            }
        return data


def _folder_classes(root: Path) -> tuple[list[Any], list[str]]:
    """Image files of each subfolder of ``root``, labelled by the subfolder's name."""
    if not root.is_dir():
        raise BadInputError(f"{root} is not a folder on this server", fix="give a folder path")
    files, names = [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(sub.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
                files.append(str(path))
                names.append(sub.name)
    if not files:
        raise BadInputError(
            f"no images in the subfolders of {root}",
            fix="put each class's images in a subfolder named after the class",
        )
    if len(files) > MAX_FEWSHOT_IMAGES:
        raise BadInputError(
            f"{len(files)} images in {root}", fix=f"use at most {MAX_FEWSHOT_IMAGES}"
        )
    return files, names


def _random_clip(bundle: Any) -> bool:
    """True when the CLIP weights are random (the tiny build, or an architecture without a
    pretrained tag): its similarities then mean nothing."""
    return bool(getattr(bundle, "random_weights", False)) or str(bundle.model_id).startswith(
        "tiny:"
    )
