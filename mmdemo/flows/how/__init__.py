"""How it works: small, honest views of what the models do inside (no gradio here).

- ``anatomy``: a VLM's parts (vision encoder, projector, language model) with their
  parameters, dtype and bytes.
- ``image_tokens``: an image -> tiles -> patches -> image tokens, with the processor the VLM
  backend uses.
- ``methods``: which modules a fine-tuning method touches and its trainable share, on a
  parameter-free (meta-device) copy of the loaded VLM's architecture.
- ``contrastive``: CLIP's N x N similarity matrix, softmax both ways, symmetric InfoNCE.
- ``fewshot``: nearest-centroid classification on frozen CLIP embeddings vs zero-shot.
- ``audio_units``: self-supervised speech features -> k-means units (trained HuBERT-Base
  weights when torch hub's cache holds them, else random ones), unit edit distance.
- ``codebooks``: the k-means codebooks, fitted once on LibriVox speech and shared by every clip.
- ``service``: the tab's jobs over the app's manager and CLIP (plain values in, dicts out).
"""

from typing import Any


def plain(value: Any) -> Any:
    """``value`` as JSON would carry it (tuples as lists, at any depth): what a flow returns
    is what an API client receives."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
