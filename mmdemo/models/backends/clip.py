"""CLIP backend through open_clip: ``ARCH/TAG``, ``ARCH`` (random weights), ``hf-hub:org/repo``,
a local open_clip folder (``open_clip_config.json`` + weights), ``ARCH@/path/ckpt.safetensors``
(a user's fine-tuned checkpoint), or ``tiny:clip``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.models.device import module_footprint
from mmdemo.models.hub import resolve_model_dir, resolve_repo, unavailable
from mmdemo.models.manager import LoadContext, LoadedModel

CLIP_FILES = ("open_clip_config.json", "*.safetensors", "*.json", "*.txt", "*.model")


@dataclass
class ClipBundle:
    model: Any
    preprocess: Any  # PIL image -> tensor (the eval transform)
    tokenizer: Any  # list[str] -> token tensor
    model_id: str
    embed_dim: int
    image_size: int
    device: str
    fingerprint: str  # identifies the embedding space (indexes refuse to mix spaces)
    random_weights: bool = False


def weights_fingerprint(model: Any) -> str:
    """Hash of the projection weights: equal for equal weights, different otherwise."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if "proj" in name or name.endswith("positional_embedding"):
            h.update(name.encode())
            h.update(tensor.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _open_clip_args(ctx: LoadContext) -> tuple[str, str | None, bool]:
    """(model name for open_clip, pretrained argument, random weights?)."""
    import open_clip

    mid = ctx.model_id
    if mid.startswith("tiny:") or Path(mid).expanduser().is_dir():
        return f"local-dir:{resolve_model_dir(mid, ctx.backend, ctx.settings)}", None, False
    if mid.startswith("hf-hub:"):
        folder = resolve_repo(mid.removeprefix("hf-hub:"), ctx.backend, ctx.settings, CLIP_FILES)
        return f"local-dir:{folder}", None, False
    if "@" in mid:
        arch, _, ckpt = mid.partition("@")
        if not Path(ckpt).expanduser().is_file():
            raise unavailable(ctx.backend, mid, ctx.settings, f"checkpoint file {ckpt} not found")
        return arch, str(Path(ckpt).expanduser()), False
    arch, _, tag = mid.partition("/")
    if arch not in open_clip.list_models():
        raise unavailable(
            ctx.backend,
            mid,
            ctx.settings,
            f"open_clip has no architecture {arch!r} (see open_clip.list_models())",
        )
    if not tag:
        return arch, None, True
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        tags = [t for a, t in open_clip.list_pretrained() if a == arch]
        raise unavailable(
            ctx.backend,
            mid,
            ctx.settings,
            f"open_clip knows no tag {tag!r} for {arch} (known: {', '.join(tags)})",
        )
    if not cfg.get("hf_hub"):
        raise unavailable(ctx.backend, mid, ctx.settings, "this tag is not hosted on the Hub")
    repo = cfg["hf_hub"].rstrip("/")
    folder = resolve_repo(repo, ctx.backend, ctx.settings, CLIP_FILES, model_id=mid)
    weights = sorted(folder.glob("open_clip*.safetensors")) or sorted(folder.glob("*.safetensors"))
    if not weights:
        raise unavailable(ctx.backend, mid, ctx.settings, f"no safetensors weights in {repo}")
    return arch, str(weights[0]), False


def load(ctx: LoadContext) -> LoadedModel:
    import open_clip
    import torch

    name, pretrained, random_weights = _open_clip_args(ctx)
    model, _, preprocess = open_clip.create_model_and_transforms(
        name,
        pretrained=pretrained,
        device=ctx.device,
        precision="fp32"
        if ctx.dtype == "float32"
        else ("bf16" if ctx.dtype == "bfloat16" else "fp16"),
    )
    model.eval()
    tokenizer = open_clip.get_tokenizer(name)
    with torch.no_grad():
        embed_dim = int(model.encode_text(tokenizer(["x"]).to(ctx.device)).shape[-1])
    size = getattr(model.visual, "image_size", 224)
    image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
    params, nbytes = module_footprint(model)
    bundle = ClipBundle(
        model,
        preprocess,
        tokenizer,
        ctx.model_id,
        embed_dim,
        image_size,
        ctx.device,
        weights_fingerprint(model),
        random_weights,
    )
    return LoadedModel(
        handle=bundle,
        device=ctx.device,
        dtype=ctx.dtype,
        params=params,
        nbytes=nbytes,
        describe=lambda: {
            "embed_dim": embed_dim,
            "image_size": image_size,
            "random_weights": random_weights,
        },
    )
