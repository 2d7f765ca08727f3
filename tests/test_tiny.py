"""Tiny builds: each is the real architecture, saved and loaded through the normal loaders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmdemo.models.manager import ModelManager
from mmdemo.models.tiny import MARKER, TINY_MODELS, ensure_built, is_built


def test_every_tiny_model_is_built_and_marked(shared_manager: ModelManager) -> None:
    models_dir = shared_manager.settings.models_dir
    for name in TINY_MODELS:
        assert is_built(models_dir, name), name
        files = {p.name for p in (models_dir / "tiny" / name).iterdir()}
        assert any(f.endswith(".safetensors") for f in files), (name, files)
        assert not any(f.endswith((".bin", ".pt", ".pth")) for f in files)


@pytest.mark.parametrize(
    ("model_id", "family"), [("tiny:smolvlm", "idefics3"), ("tiny:qwen2vl", "qwen2_vl")]
)
def test_tiny_vlms_answer_about_an_image(tiny_settings, model_id: str, family: str) -> None:
    manager = ModelManager(tiny_settings.replace(vlm=model_id))
    vlm = manager.get("vlm")
    assert vlm.family == family
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}
    ]
    prompt = vlm.processor.apply_chat_template(messages, add_generation_prompt=True)
    rng = np.random.default_rng(0)
    logits = []
    for _ in range(2):  # two different pictures
        image = Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8))
        inputs = vlm.processor(text=prompt, images=[image], return_tensors="pt")
        with torch.inference_mode():
            logits.append(vlm.model(**inputs).logits[0, -1].float())
        out = vlm.model.generate(**inputs, max_new_tokens=5, min_new_tokens=5, do_sample=False)
        assert torch.equal(out[:, : inputs["input_ids"].shape[1]], inputs["input_ids"])
        assert out.shape[1] == inputs["input_ids"].shape[1] + 5
    assert not torch.allclose(logits[0], logits[1]), "the answer depends on the picture"
    manager.unload_all()


def test_tiny_llm_follows_its_chat_template(shared_manager: ModelManager) -> None:
    llm = shared_manager.get("llm")
    ids = llm.tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    text = llm.tokenizer.decode(ids["input_ids"][0])
    assert text.endswith("<|im_start|>assistant\n")
    other = llm.tokenizer.apply_chat_template(
        [{"role": "user", "content": "goodbye, see you"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.inference_mode():
        a = llm.model(**ids).logits[0, -1].float()
        b = llm.model(**other).logits[0, -1].float()
    assert not torch.allclose(a, b), "the answer depends on the question"


def test_tiny_clip_embeds_text_and_images_in_one_space(shared_manager: ModelManager) -> None:
    clip = shared_manager.get("clip")
    image = clip.preprocess(Image.new("RGB", (100, 80), "red")).unsqueeze(0)
    with torch.no_grad():
        img = clip.model.encode_image(image)
        txt = clip.model.encode_text(clip.tokenizer(["a red square", "a cat"]))
    assert img.shape == (1, clip.embed_dim) and txt.shape == (2, clip.embed_dim)
    assert len(clip.fingerprint) == 16


def test_tiny_whisper_transcribes_to_plain_text(shared_manager: ModelManager) -> None:
    asr = shared_manager.get("asr")
    tone = np.sin(np.arange(16000) / 16000 * 2 * np.pi * 300).astype(np.float32) * 0.3
    first, again = asr.transcribe(tone), asr.transcribe(tone)
    assert first.text == again.text, "greedy decoding is repeatable"
    assert "<|" not in first.text, "special tokens are not part of the transcript"
    assert first.seconds > 0


def test_tiny_vits_speaks(shared_manager: ModelManager) -> None:
    tts = shared_manager.get("tts")
    speech = tts.synthesize("hello world")
    assert speech.sample_rate == 16000
    assert speech.audio.dtype == np.float32 and speech.audio.ndim == 1 and speech.audio.size > 1000


def test_stale_build_is_rebuilt(tmp_path: Path) -> None:
    target = ensure_built("clip", tmp_path)
    marker = target / MARKER
    marker.write_text(json.dumps({"name": "clip", "version": -1}))
    assert not is_built(tmp_path, "clip")
    ensure_built("clip", tmp_path)
    assert is_built(tmp_path, "clip")
    assert not list(target.parent.glob(".clip-*")), "temporary build folders are cleaned up"
