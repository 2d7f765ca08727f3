"""The CUDA paths: dtype, memory reporting and image splitting (skipped without a GPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmdemo.flows.chat import ChatService, ChatSession
from mmdemo.flows.generation import GenerationSettings
from mmdemo.models.adapters import AdapterStore
from mmdemo.models.manager import ModelManager

pytestmark = pytest.mark.gpu
RED = Path(__file__).resolve().parents[1] / "assets" / "images" / "red-circle.png"


@pytest.fixture
def cuda_chat(isolated_settings):
    manager = ModelManager(isolated_settings.replace(device="cuda"))
    yield ChatService(manager, AdapterStore(isolated_settings.replace(device="cuda")))
    manager.unload_all()


def test_auto_dtype_on_a_gpu_is_half_precision() -> None:
    import torch

    from mmdemo.models.device import choose_dtype

    choice = choose_dtype("cuda", "auto", "vlm")
    expected = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    assert choice.dtype == expected and "GPU" in choice.reason


def test_the_vlm_runs_on_the_gpu_and_reports_gpu_memory(cuda_chat: ChatService) -> None:
    import torch

    final = list(
        cuda_chat.stream(
            ChatSession(), "What color is the shape?", [RED], "color-namer", GenerationSettings(12)
        )
    )[-1]
    assert final.text == "The shape is red."
    bundle = cuda_chat.manager.get("vlm")
    assert next(bundle.model.parameters()).device.type == "cuda"
    status = {s.backend: s for s in cuda_chat.manager.status()}["vlm"]
    assert status.device.startswith("cuda") and status.dtype in ("bfloat16", "float16")
    # the answer's peak memory is the GPU's, at least the weights on it
    assert final.metrics.peak_memory_bytes >= torch.cuda.memory_allocated() > 0


def test_image_splitting_is_on_with_a_gpu(cuda_chat: ChatService) -> None:
    from PIL import Image

    bundle = cuda_chat.manager.get("vlm")
    assert bundle.processor.image_processor.do_image_splitting
    details = {s.backend: s for s in cuda_chat.manager.status()}["vlm"].details
    assert details["image_splitting"] is True
    big = Image.new("RGB", (1600, 1200), "red")
    prompt = bundle.processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x"}]}],
        add_generation_prompt=True,
    )
    tiled = bundle.processor(text=[prompt], images=[[big]])["input_ids"][0]
    bundle.processor.image_processor.do_image_splitting = False
    whole = bundle.processor(text=[prompt], images=[[big]])["input_ids"][0]
    bundle.processor.image_processor.do_image_splitting = True
    assert len(tiled) > len(whole), "a big picture is seen as tiles plus the whole"


def test_concurrent_users_batch_on_the_gpu(cuda_chat: ChatService) -> None:
    import threading

    gen = GenerationSettings(12)
    jobs = [("color-namer", "What color is the shape?"), ("pirate", "Describe the image.")]
    solo = [list(cuda_chat.stream(ChatSession(), q, [RED], a, gen))[-1].text for a, q in jobs]
    cuda_chat.batch_window_s, cuda_chat.batch_max_rows = 600.0, 2
    finals: dict[int, object] = {}

    def user(i: int) -> None:
        adapter, question = jobs[i]
        finals[i] = list(cuda_chat.stream(ChatSession(), question, [RED], adapter, gen))[-1]

    threads = [threading.Thread(target=user, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [finals[i].text for i in range(2)] == solo
    assert all(finals[i].metrics.batch_rows == 2 for i in range(2))
