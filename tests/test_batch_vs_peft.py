"""A mixed-adapter batch gives every row, token for token, the greedy answer plain PEFT gives
for that row's adapter alone (``PeftModel.set_adapter`` + ``generate``), with strongly scaled
random adapters (alpha/r = 16, as the chat benchmark uses) and prompts of different lengths
(left padding), through prefill and decode steps.

The model runs in float64: with random adapters scaled this strongly the float32 forward is
ill-conditioned (SmolVLM-256M-shaped: float32 and float64 logits of the same model differ by
~10 on a scale of ~20), so float32 rounding differences between two correct paths (a batched
product against PEFT's per-layer one) can flip a greedy token. In float64 they cannot, and any
real difference (an adapter on the wrong row, a wrong scale, a layer left out, padding or
cache trouble) still shows."""

from __future__ import annotations

import copy
import threading
from pathlib import Path

import pytest
import torch
from PIL import Image

from mmdemo.flows.batching import Batcher, BatchRequest
from mmdemo.flows.chat_local import model_inputs
from mmdemo.flows.generation import GenerationSettings
from mmdemo.models.adapters import AdapterStore
from mmdemo.models.backends.vlm import VLMBundle
from mmdemo.models.tiny.vlm import random_model, smolvlm_parts
from tests.helpers import make_adapter

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "images"
RANK = 8
TOKENS = 12
JOBS = (  # one user per adapter: different images and prompt lengths
    ("cat.jpg", "What animal is this?"),
    ("red-circle.png", "What color is the shape? Answer in one word please."),
    ("blue-square.png", "Describe the image."),
    ("cat.jpg", "Is there anything unusual in this picture, and where is it?"),
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tiny_settings):
    from peft import PeftModel

    config, processor = smolvlm_parts()
    model = random_model(config).to(torch.float64)
    root = tmp_path_factory.mktemp("batch-vs-peft")
    paths = [
        make_adapter(model, root / f"user{i}", seed=100 + i, rank=RANK, lora={"alpha": 16 * RANK})
        for i in range(len(JOBS))
    ]
    reference = PeftModel.from_pretrained(copy.deepcopy(model), str(paths[0]), "user0")
    for i, path in enumerate(paths[1:], 1):
        reference.load_adapter(str(path), adapter_name=f"user{i}")
    reference.eval()
    store = AdapterStore(tiny_settings.replace(home=root / "home"), builtin_dir=None)
    infos = [store.install(p, f"user{i}") for i, p in enumerate(paths)]
    bundle = VLMBundle(model, processor, "idefics3", "tiny-smolvlm", "cpu", "float64")
    return reference, bundle, infos


def inputs_for(bundle: VLMBundle, image: str, question: str) -> dict:
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}
    ]
    return model_inputs(bundle, messages, [Image.open(ASSETS / image).convert("RGB")])


def peft_answer(reference, inputs: dict, adapter: str, eos: set[int]) -> list[int]:
    """Plain PEFT's greedy answer (up to its end-of-sequence token)."""
    reference.set_adapter(adapter)
    with torch.inference_mode():
        out = reference.generate(**inputs, max_new_tokens=TOKENS, do_sample=False, pad_token_id=0)
    answer = out[0, inputs["input_ids"].shape[1] :].tolist()
    ends = [i for i, t in enumerate(answer) if t in eos]
    return answer[: ends[0]] if ends else answer


def test_each_batched_row_answers_as_plain_peft_with_its_adapter(setup) -> None:
    reference, bundle, infos = setup
    eos = {int(reference.generation_config.eos_token_id)}
    gen = GenerationSettings(max_new_tokens=TOKENS, greedy=True)
    inputs = [inputs_for(bundle, image, question) for image, question in JOBS]
    assert len({i["input_ids"].shape[1] for i in inputs}) > 1, "rows need left padding"
    batcher = Batcher(bundle, window_s=30.0, max_rows=len(JOBS))  # starts once all four wait
    requests = [
        BatchRequest.make(x, info, gen, threading.Event(), eos)
        for x, info in zip(inputs, infos, strict=True)
    ]
    for request in requests:
        batcher.submit(request)
    for request in requests:
        for _ in request.updates(0.0):
            pass
        assert request.error is None
    assert [r.rows for r in requests] == [len(JOBS)] * len(JOBS), "one batch of four"
    expected = [
        peft_answer(reference, x, info.name, eos) for x, info in zip(inputs, infos, strict=True)
    ]
    assert len({tuple(e) for e in expected}) == len(JOBS), "the adapters answer differently"
    assert all(len(e) >= 4 for e in expected), "answers long enough to cover decode steps"
    for i, (request, want) in enumerate(zip(requests, expected, strict=True)):
        assert request.row.tokens == want, f"row {i} ({infos[i].name}) differs from PEFT's answer"
