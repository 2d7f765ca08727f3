"""Stage 4: key-frame captions from the VLM, a batch of frames per forward pass.

The VLM is the shared one: each batch pins the base model (no adapter) like any chat request.
When the VLM is unavailable, or writes nothing readable for a frame, CLIP labels stand in and
the result says so.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmdemo.errors import MMDemoError, is_out_of_memory
from mmdemo.flows.generation import stopping_on
from mmdemo.flows.video.text import first_sentence, usable
from mmdemo.flows.video.types import check

PROMPT = "Describe this video frame in one short sentence."


@dataclass
class CaptionResult:
    captions: list[str]
    sources: list[str]  # per frame: "vlm", "clip" or ""
    notes: list[str] = field(default_factory=list)
    vlm_ok: bool = False  # the VLM loaded and ran (else the result is not worth caching)


def vlm_batch(bundle: Any, paths: Sequence[str], max_new_tokens: int, stop: Any) -> list[str]:
    """One forward pass over a few key frames (left-padded prompts); raw decoded texts."""
    import torch
    from PIL import Image

    processor = bundle.processor
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    images = []
    for path in paths:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    inputs = processor(
        text=[prompt] * len(images),
        images=[[image] for image in images],
        return_tensors="pt",
        padding=True,
        padding_side="left",
    )
    inputs = {k: v.to(bundle.device) if hasattr(v, "to") else v for k, v in inputs.items()}
    tokenizer = bundle.tokenizer
    with bundle.adapters.pin((None,)) as pinned, torch.inference_mode():
        out = pinned.model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            repetition_penalty=1.2,
            stopping_criteria=stopping_on(stop),
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )
    new = out[:, inputs["input_ids"].shape[1] :]
    return tokenizer.batch_decode(new, skip_special_tokens=True)


def caption_stage(
    paths: Sequence[str],
    get_vlm: Any,
    clip_labels: Sequence[str] | None,
    batch: int = 4,
    max_new_tokens: int = 32,
    stop: threading.Event | None = None,
) -> Generator[tuple[float, str], None, CaptionResult]:
    """Captions for key frames; yields (fraction, detail). ``clip_labels`` (one per frame, or
    None without CLIP) fill in where the VLM cannot."""
    stop = stop or threading.Event()
    n = len(paths)
    captions, sources = [""] * n, [""] * n
    notes: list[str] = []
    bundle = None
    try:
        bundle = get_vlm()
    except MMDemoError as exc:
        notes.append(f"the VLM is unavailable, so key frames are not captioned by it: {exc}")
    failed = 0
    broke = False
    if bundle is not None:
        for i in range(0, n, batch):
            check(stop)
            try:
                texts = vlm_batch(bundle, paths[i : i + batch], max_new_tokens, stop)
            except MMDemoError as exc:
                notes.append(f"the VLM failed on key frames from #{i + 1}: {exc}")
                broke = True
                break
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                notes.append("the device ran out of memory while captioning; rest uncaptioned")
                broke = True
                break
            check(stop)
            for j, text in enumerate(texts):
                caption = first_sentence(text.strip())
                if usable(caption, min_words=3):
                    captions[i + j], sources[i + j] = caption, "vlm"
                else:
                    failed += 1
            done = min(n, i + batch)
            yield done / n, f"{done} of {n} key frames"
    missing = [i for i in range(n) if not captions[i]]
    if missing and clip_labels:
        for i in missing:
            captions[i], sources[i] = clip_labels[i], "clip"
    if bundle is not None and failed:
        stand_in = "CLIP labels stand in" if clip_labels else "they have no caption"
        notes.append(f"the VLM wrote nothing readable for {failed} of {n} key frames; {stand_in}")
    elif bundle is None and missing:
        notes.append(
            "key frames are described by CLIP labels"
            if clip_labels
            else "key frames have no captions"
        )
    return CaptionResult(captions, sources, notes, bundle is not None and not broke)
