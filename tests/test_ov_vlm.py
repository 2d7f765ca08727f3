"""The VLM's OpenVINO decode route (models/ov_rows.py) behind the chat: the same greedy answers
as eager torch in float32 for the base model and adapters of different ranks, scalings and
targets, alone and in one mixed-adapter batch; a new adapter is served without tracing again;
Stop ends only that user's row; adapters the step cannot carry decode eagerly; clear refusals.

The tiny SmolVLM build answers nearly everything alike (small weights), so these tests use a
copy with larger random weights whose answers differ per prompt, image and adapter."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

# found without importing it (see tests/test_ov_decode.py)
if importlib.util.find_spec("openvino") is None:
    pytest.skip("OpenVINO is not installed", allow_module_level=True)

from mmdemo.config import Settings
from mmdemo.errors import MMDemoError
from mmdemo.finetune.random_adapter import TEXT_ATTENTION
from mmdemo.flows.chat import ChatService, ChatSession
from mmdemo.flows.generation import GenerationSettings
from mmdemo.models import ov_decode
from mmdemo.models.adapters import AdapterStore
from mmdemo.models.manager import ModelManager
from tests.helpers import chaotic_build, make_adapter, stop_one_of_two, together

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "images"
GREEDY = GenerationSettings(max_new_tokens=12, greedy=True)
QUESTIONS = [
    ("What color is the shape?", ASSETS / "red-circle.png"),
    ("Describe the image.", ASSETS / "cat.jpg"),
]
EVERY_LINEAR = r".*text_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
# name -> (seed, target, rank, LoRA options): ranks, scalings (alpha, rsLoRA) and targets differ
ADAPTERS = {
    "attn-r2": (11, TEXT_ATTENTION, 2, {"alpha": 8}),
    "all-r8": (12, EVERY_LINEAR, 8, {}),
    "mlp-rs4": (13, r".*text_model.*\.(gate_proj|down_proj)", 4, {"use_rslora": True}),
}


@pytest.fixture(scope="module")
def chaotic(tiny_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Tiny settings whose VLM is the tiny SmolVLM with larger random weights, in float32
    (built once into the shared test home, so its traced steps are saved once too), and a
    data folder of its own holding ADAPTERS."""
    import torch
    from transformers import Idefics3ForConditionalGeneration

    def larger(config: Any) -> Any:
        config.text_config.initializer_range = 0.3
        torch.manual_seed(2)
        return Idefics3ForConditionalGeneration(config)

    staging = tmp_path_factory.mktemp("chaotic-vlm")
    folder = chaotic_build(tiny_settings.models_dir, "chaotic-vlm", "smolvlm", larger, staging)
    home = tmp_path_factory.mktemp("ov-vlm-home")
    (home / "models").mkdir()
    for name in ("tiny", "chaotic-vlm", "openvino-steps"):  # shared builds and steps
        (tiny_settings.models_dir / name).mkdir(exist_ok=True)
        (home / "models" / name).symlink_to(tiny_settings.models_dir / name)
    settings = tiny_settings.replace(home=home, vlm=str(folder), dtype="float32")
    model = Idefics3ForConditionalGeneration.from_pretrained(folder)
    store = AdapterStore(settings)
    adapters = tmp_path_factory.mktemp("ov-vlm-adapters")
    for name, (seed, target, rank, lora) in ADAPTERS.items():
        store.install(
            make_adapter(model, adapters / name, seed, target=target, rank=rank, lora=lora), name
        )
    return settings


@pytest.fixture(scope="module")
def services(chaotic: Settings) -> Any:
    """Chat services on the same VLM and adapters in float32: eager torch and OpenVINO."""
    made = []
    for route in ("eager", "openvino"):
        settings = chaotic.replace(decode=route)
        manager = ModelManager(settings)
        made.append(ChatService(manager, AdapterStore(settings)))
    yield made
    for chat in made:
        chat.manager.unload_all()


@pytest.fixture(autouse=True)
def solo_by_default(services) -> Any:
    """Tests that batch users widen the batch window; every test starts and ends with the
    engines' defaults (a lone request waits only the default window)."""
    knobs = [(chat.engine.batch_window_s, chat.engine.batch_max_rows) for chat in services]
    yield
    for chat, (window, rows) in zip(services, knobs, strict=True):
        chat.engine.batch_window_s, chat.engine.batch_max_rows = window, rows


def ask(chat: ChatService, adapter: str, text: str, image: Path, gen: Any = GREEDY) -> Any:
    """The final update of one answer (text and metrics)."""
    return list(chat.stream(ChatSession(), text, [image], adapter, gen))[-1]


def steps(chat: ChatService) -> int:
    return chat.manager.get("vlm").decoder.steps


def batch_of(chat: ChatService, jobs: list[tuple[str, str, Path]], gen: Any) -> list[Any]:
    """Ask ``jobs`` from one thread per user; their batch starts when all of them wait."""
    chat.engine.batch_window_s = 60.0
    chat.engine.batch_max_rows = len(jobs)
    return together(chat, jobs, [gen] * len(jobs))


def test_base_and_each_adapter_answer_as_eager_from_openvino_steps(services) -> None:
    eager, fast = services
    assert fast.manager.get("vlm").decode_route == "openvino (f32)"
    assert eager.manager.get("vlm").decode_route == "eager"
    before = steps(fast)
    answers = {}
    for adapter in ("base", *ADAPTERS):
        for text, image in QUESTIONS:
            want = ask(eager, adapter, text, image).text
            got = ask(fast, adapter, text, image)
            assert got.text == want, f"{adapter} on {image.name}"
            answers[adapter, image.name] = want
    assert len(set(answers.values())) >= 6, "the adapters and questions answer differently"
    assert steps(fast) - before >= 8 * (GREEDY.max_new_tokens // 2)  # the answers came from OV


LONG = (
    "Look closely and describe the image in great detail, naming every colour, shape, object "
    "and texture you can see, where each one is, and what the whole picture might be for."
)


def test_a_mixed_adapter_batch_gives_each_row_its_eager_answer(services) -> None:
    eager, fast = services
    # short and long prompts: the short rows are left-padded by ~30 tokens that their
    # decoding steps must not see
    prompts = [QUESTIONS[0], (LONG, QUESTIONS[1][1])]
    jobs = [(a, *prompts[i % 2]) for i, a in enumerate(["base", *ADAPTERS])]
    gen = GenerationSettings(max_new_tokens=40, greedy=True)
    want = [ask(eager, *job, gen).text for job in jobs]
    assert len(set(want)) == len(jobs), "every row answers differently"
    before = steps(fast)
    got = batch_of(fast, jobs, gen)
    assert [r.metrics.batch_rows for r in got] == [len(jobs)] * len(jobs)
    assert [r.text for r in got] == want
    assert steps(fast) > before


def test_padded_rows_see_only_their_own_tokens(services) -> None:
    """A short prompt's row in a batch with a long one: its logits at every OpenVINO step
    equal eager torch's (the left padding is masked in the step, as in torch)."""
    import torch
    from PIL import Image
    from transformers import LogitsProcessor, LogitsProcessorList

    from mmdemo.flows.batching import collate
    from mmdemo.flows.chat_local import model_inputs

    class Record(LogitsProcessor):
        def __init__(self) -> None:
            self.seen: list[Any] = []

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            self.seen.append(scores.clone())
            return scores

    eager, fast = services
    rows = []
    bundle = fast.manager.get("vlm")
    for text, image in ((QUESTIONS[0][0], QUESTIONS[0][1]), (LONG, QUESTIONS[1][1])):
        content = [{"type": "image"}, {"type": "text", "text": text}]
        with Image.open(image) as picture:
            rows.append(
                model_inputs(
                    bundle, [{"role": "user", "content": content}], [picture.convert("RGB")]
                )
            )
    pad = bundle.tokenizer.pad_token_id
    inputs = collate(rows, pad)
    assert int(inputs["attention_mask"][0].sum()) < inputs["attention_mask"].shape[1] - 20
    logits = []
    for chat, route in ((eager, {}), (fast, {"custom_generate": bundle.decoder.base.decode})):
        record = Record()
        # pinned to the base model: earlier tests left adapters loaded
        with chat.manager.get("vlm").adapters.pin((None,)) as pinned, torch.inference_mode():
            pinned.model.generate(
                **inputs,
                **route,
                max_new_tokens=6,
                do_sample=False,
                pad_token_id=pad,
                logits_processor=LogitsProcessorList([record]),
            )
        logits.append(torch.stack(record.seen))
    assert logits[0].shape == logits[1].shape
    assert torch.allclose(logits[0], logits[1], atol=1e-3), (logits[0] - logits[1]).abs().max()


def test_a_new_adapter_is_served_without_tracing_again(
    services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    eager, fast = services
    text, image = QUESTIONS[0]
    ask(fast, "all-r8", text, image)  # the LoRA step exists from here on

    def no_trace(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a step was traced again")

    monkeypatch.setattr(ov_decode, "export_in_child", no_trace)
    from transformers import Idefics3ForConditionalGeneration

    model = Idefics3ForConditionalGeneration.from_pretrained(fast.manager.settings.vlm)
    path = make_adapter(model, tmp_path / "new", 21, target=EVERY_LINEAR, rank=16)
    fast.store.install(path, "new-r16")  # one store folder: the eager service sees it too
    want = ask(eager, "new-r16", text, image).text
    assert want != ask(eager, "all-r8", text, image).text
    before = steps(fast)
    assert ask(fast, "new-r16", text, image).text == want
    assert steps(fast) > before


def test_stop_ends_only_that_users_row_on_openvino(services) -> None:
    _, fast = services
    long = GenerationSettings(max_new_tokens=40, greedy=True)
    text, image = QUESTIONS[1]
    expected = ask_with(fast, "base", text, image, long)
    before = steps(fast)
    stopped, kept = stop_one_of_two(fast, text, image, "all-r8", "base", long)
    assert stopped.metrics.batch_rows == kept.metrics.batch_rows == 2
    assert stopped.metrics.stopped and stopped.metrics.tokens < long.max_new_tokens
    assert not kept.metrics.stopped and kept.metrics.tokens == 40 and kept.text == expected
    assert steps(fast) - before >= 39  # the kept row's tokens came from OpenVINO steps


def ask_with(chat: ChatService, adapter: str, text: str, image: Path, gen: Any) -> str:
    return list(chat.stream(ChatSession(), text, [image], adapter, gen))[-1].text


def test_adapters_the_step_cannot_carry_decode_eagerly(services, tmp_path: Path) -> None:
    eager, fast = services
    from transformers import Idefics3ForConditionalGeneration

    model = Idefics3ForConditionalGeneration.from_pretrained(fast.manager.settings.vlm)
    biased = make_adapter(model, tmp_path / "b", 31, rank=4, lora={"lora_bias": True})
    fast.store.install(biased, "biased")
    text, image = QUESTIONS[0]
    want = ask(eager, "biased", text, image).text
    assert want != ask(eager, "attn-r2", text, image).text
    before = steps(fast)
    assert ask(fast, "biased", text, image).text == want
    assert steps(fast) == before  # PEFT's bias on B: answered by torch, not dropped


def test_the_route_is_refused_with_the_cause_for_other_families(tiny_settings) -> None:
    settings = tiny_settings.replace(vlm="tiny:qwen2vl", decode="openvino")
    manager = ModelManager(settings)
    with pytest.raises(MMDemoError, match="idefics3") as caught:
        manager.get("vlm")
    assert "MMDEMO_DECODE" in str(caught.value.fix)
    auto = ModelManager(tiny_settings.replace(vlm="tiny:qwen2vl", decode="auto"))
    try:
        assert auto.get("vlm").decode_route == "eager"
    finally:
        auto.unload_all()


def test_a_failed_lora_trace_leaves_adapters_eager_and_the_base_on_openvino(
    services, chaotic: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    eager, _ = services
    real = ov_decode.load_step

    def no_lora_step(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("lora") or (len(args) > 5 and args[5]):
            raise ov_decode.DecodeUnavailableError("tracing the LoRA step failed (test)")
        return real(*args, **kwargs)

    monkeypatch.setattr(ov_decode, "load_step", no_lora_step)
    settings = chaotic.replace(decode="openvino")
    fresh = ChatService(ModelManager(settings), AdapterStore(settings))
    try:
        text, image = QUESTIONS[0]
        before = steps(fresh)
        assert ask(fresh, "base", text, image).text == ask(eager, "base", text, image).text
        assert steps(fresh) > before
        before = steps(fresh)
        want = ask(eager, "attn-r2", text, image).text
        assert ask(fresh, "attn-r2", text, image).text == want  # answered, eagerly
        assert steps(fresh) == before
        assert "LoRA step failed" in fresh.manager.get("vlm").decoder.lora_unavailable
    finally:
        fresh.manager.unload_all()


def test_auto_decodes_eagerly_where_the_step_cannot_be_traced(
    services, chaotic: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    eager, _ = services

    def untraceable(*args: Any, **kwargs: Any) -> Any:
        raise ov_decode.DecodeUnavailableError("tracing the step failed (test)")

    monkeypatch.setattr(ov_decode, "load_step", untraceable)
    settings = chaotic.replace(profile="cpu", decode="auto")  # auto serves OpenVINO here
    chat = ChatService(ModelManager(settings), AdapterStore(settings))
    try:
        assert chat.manager.get("vlm").decode_route == "eager"
        text, image = QUESTIONS[1]
        assert ask(chat, "all-r8", text, image).text == ask(eager, "all-r8", text, image).text
    finally:
        chat.manager.unload_all()
    with pytest.raises(ov_decode.DecodeUnavailableError, match="tracing the step failed"):
        ModelManager(chaotic.replace(decode="openvino")).get("vlm")  # asked for: refused
