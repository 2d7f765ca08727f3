"""Precision: the dtype ``auto`` picks (bf16 on CPUs with native bf16, for the VLM and the
text LLM), that bf16 answers like fp32, and that adapters trained in fp32 load on a bf16 base."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmdemo.config import Settings
from mmdemo.flows.chat import ChatService, ChatSession, ChatTurn, build_messages, model_inputs
from mmdemo.flows.generation import GenerationSettings
from mmdemo.images import load_image
from mmdemo.models import device
from mmdemo.models.adapters import AdapterStore
from mmdemo.models.manager import ModelManager
from tests.helpers import make_bottleneck

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "images"
GREEDY = GenerationSettings(max_new_tokens=12, greedy=True)


@pytest.mark.parametrize(
    ("flags", "backend", "preference", "expected"),
    [
        (("avx512_bf16", "amx_bf16"), "vlm", "auto", "bfloat16"),
        (("avx512_bf16",), "llm", "auto", "bfloat16"),
        (("avx512_bf16",), "clip", "auto", "float32"),  # index embeddings stay fp32
        (("avx512_bf16",), "asr", "auto", "float32"),
        ((), "vlm", "auto", "float32"),  # emulated bf16 would be slower than fp32
        ((), "llm", "auto", "float32"),
        ((), "vlm", "bfloat16", "bfloat16"),  # an explicit setting wins
        (("amx_bf16",), "vlm", "float32", "float32"),
    ],
)
def test_auto_dtype_on_a_cpu(monkeypatch, flags, backend, preference, expected) -> None:
    monkeypatch.setattr(device, "cpu_bf16_flags", lambda: flags)
    choice = device.choose_dtype("cpu", preference, backend)
    assert choice.dtype == expected and choice.reason
    if preference == "auto" and backend in ("vlm", "llm"):
        assert ("has native bf16" in choice.reason) == bool(flags)


def test_the_system_status_says_which_dtype_and_why(tiny_settings, monkeypatch) -> None:
    monkeypatch.setattr(device, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    manager = ModelManager(tiny_settings)
    try:
        manager.get("vlm")
        manager.get("clip")
        rows = {s.backend: s for s in manager.status()}
        assert rows["vlm"].dtype == "bfloat16" and "avx512_bf16" in rows["vlm"].dtype_reason
        assert next(manager.get("vlm").model.parameters()).dtype == torch.bfloat16
        assert rows["clip"].dtype == "float32"
    finally:
        manager.unload_all()


def _logits(settings: Settings, dtype: str) -> torch.Tensor:
    manager = ModelManager(settings.replace(dtype=dtype))
    bundle = manager.get("vlm")
    turn = ChatTurn(
        "What color is the shape?", [load_image(ASSETS / "red-circle.png", 2048, 2**30)], []
    )
    inputs = model_inputs(bundle, *build_messages([turn]))
    with torch.inference_mode():
        out = bundle.model(**inputs).logits[0].float()
    manager.unload_all()
    return out


def test_bf16_logits_stay_close_to_fp32(tiny_settings) -> None:
    """bf16 keeps 8 significant bits (unit roundoff 2^-9 = 0.2%); through the tiny VLM's few
    layers the logits drift by a few such steps (0.2% of their range when measured). Allowing
    2% of the range is ten times that, and far below what changes an answer's meaning."""
    fp32, bf16 = _logits(tiny_settings, "float32"), _logits(tiny_settings, "bfloat16")
    spread = float(fp32.max() - fp32.min())
    assert float((fp32 - bf16).abs().max()) <= 0.02 * spread
    assert torch.nn.functional.cosine_similarity(fp32, bf16, dim=-1).min() >= 0.999
    assert (fp32.argmax(-1) == bf16.argmax(-1)).float().mean() >= 0.9


@pytest.mark.parametrize(
    ("adapter", "question", "image"),
    [
        ("color-namer", "What color is the shape?", "red-circle.png"),
        ("color-namer", "What color is the shape?", "blue-square.png"),
        ("pirate", "Describe the image.", "red-circle.png"),
        ("pirate", "What is this?", "blue-square.png"),
    ],
)
def test_demo_adapters_answer_the_same_in_bf16(isolated_settings, adapter, question, image) -> None:
    answers = {}
    for dtype in ("float32", "bfloat16"):  # adapters were trained (and saved) in fp32
        settings = isolated_settings.replace(dtype=dtype)
        manager = ModelManager(settings)
        chat = ChatService(manager, AdapterStore(settings))
        session = ChatSession()
        answers[dtype] = list(chat.stream(session, question, [ASSETS / image], adapter, GREEDY))
        manager.unload_all()
    assert answers["bfloat16"][-1].text == answers["float32"][-1].text
    if adapter == "color-namer":
        assert answers["bfloat16"][-1].text == f"The shape is {image.split('-')[0]}."


def test_a_fp32_bottleneck_adapter_runs_on_a_bf16_base(isolated_settings, tmp_path) -> None:
    results = {}
    for dtype in ("float32", "bfloat16"):
        settings = isolated_settings.replace(dtype=dtype)
        manager = ModelManager(settings)
        chat = ChatService(manager, AdapterStore(settings))
        if dtype == "float32":  # one store on disk, shared by both bases
            folder = make_bottleneck(manager.get("vlm").model, tmp_path / "neck", seed=1)
            chat.store.install(folder, "neck")
        bundle = manager.get("vlm")
        turn = ChatTurn("What is this?", [load_image(ASSETS / "red-circle.png", 2048, 2**30)], [])
        inputs = model_inputs(bundle, *build_messages([turn]))
        with bundle.adapters.pin((chat.store.get("neck"),)) as pinned, torch.inference_mode():
            results[dtype] = pinned.model(**inputs).logits[0].float()
        with bundle.adapters.pin((None,)) as pinned, torch.inference_mode():
            results[dtype + "-base"] = pinned.model(**inputs).logits[0].float()
        manager.unload_all()
    spread = float(results["float32"].max() - results["float32"].min())
    change = (results["float32"] - results["float32-base"]).abs().max()
    assert change > 0.05 * spread, "the adapter changes the answer"
    assert (results["bfloat16"] - results["float32"]).abs().max() <= 0.02 * spread
