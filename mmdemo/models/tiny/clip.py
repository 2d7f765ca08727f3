"""Tiny random-weight open_clip model, saved as an open_clip ``local-dir:`` folder."""

from __future__ import annotations

import json
from pathlib import Path

# A ViT/text transformer pair of width 32; the text side keeps CLIP's real BPE vocabulary,
# which ships inside open_clip (no download).
TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
OPENAI_PREPROCESS = {
    "mean": [0.48145466, 0.4578275, 0.40821073],
    "std": [0.26862954, 0.26130258, 0.27577711],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}


def build_clip(out: Path) -> None:
    import torch
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = CLIP(**TINY_CLIP_CFG)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "open_clip_model.safetensors"))
    config = {"model_cfg": TINY_CLIP_CFG, "preprocess_cfg": OPENAI_PREPROCESS}
    (out / "open_clip_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
