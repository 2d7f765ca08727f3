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
    cuda_chat.engine.batch_window_s, cuda_chat.engine.batch_max_rows = 600.0, 2
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


QUICK_TRAIN = dict(steps=3, batch_size=2, scale=0.02, eval_limit=4, warmup=1)


def test_a_run_that_names_cuda_trains_on_the_gpu(isolated_settings) -> None:
    from mmdemo.finetune.config import TrainConfig
    from mmdemo.flows.train import TrainService

    service = TrainService(isolated_settings.replace(device="cpu"), threads=1)  # the app: CPU
    assert "cuda" in service.devices()
    run_id = service.submit(TrainConfig(name="on-gpu", **QUICK_TRAIN), device="cuda")
    status = service.wait(run_id, timeout=600)
    assert status["state"] == "done", status
    assert status["info"]["device"].startswith("cuda") and status["request"]["device"] == "cuda"
    assert [s for s, _ in status["loss_history"]] == [1, 2, 3]
    assert "on-gpu" in AdapterStore(isolated_settings).names()


def test_the_cli_trains_dylora_on_cuda_and_chat_serves_a_lower_rank(
    isolated_settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmdemo.cli import main

    home = ["--profile", "tiny", "--home", str(isolated_settings.home)]
    knobs = ["--steps", "3", "--batch-size", "2", "--scale", "0.02", "--eval-limit", "4"]
    args = [*home, "train", "--device", "cuda", "--method", "dylora", "--rank", "4", *knobs]
    assert main([*args, "--name", "gpu-dylora"]) == 0
    assert "adapter gpu-dylora" in capsys.readouterr().out
    settings = isolated_settings.replace(device="cuda")
    manager = ModelManager(settings)
    try:
        chat = ChatService(manager, AdapterStore(settings))
        final = list(
            chat.stream(
                ChatSession(),
                "What color is the shape?",
                [RED],
                "gpu-dylora@r=2",
                GenerationSettings(8),
            )
        )[-1]
        assert final.metrics.adapter == "gpu-dylora@r=2"
        assert "gpu-dylora@r=2" in manager.get("vlm").adapters.resident_names()
    finally:
        manager.unload_all()


@pytest.mark.gpu
def test_the_bakeoff_trains_real_weights_on_cuda(tiny_settings) -> None:
    """The bake-off's runner (the sweep and the bake-off share it) on a GPU: a few LoRA steps
    on the embedded SmolLM2 lower its validation loss."""
    from mmdemo.bench.finetune_sweep import Budget, base_validation_loss, train_and_validate

    settings = tiny_settings.replace(
        profile="cpu", device="cuda", llm="embedded:smollm2-135m-instruct"
    )
    trial = train_and_validate(settings, "lora", 0.0, Budget(steps=3, batch_size=4), {}, 0, 16)
    assert trial.val_loss < base_validation_loss(settings, 16)
