"""Every training method on the tiny VLM: it trains, writes an adapter the chat runtime serves,
and the served adapter behaves like the trained model (exported LoRAs, DyLoRA ranks,
bottleneck adapters). Few steps each: these check wiring, not learning (the benchmark does)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from mmdemo.finetune.config import TrainConfig
from mmdemo.finetune.events import Done, Event, Start, Step
from mmdemo.finetune.methods import METHODS
from mmdemo.finetune.progress import EventLog, StopSwitch
from mmdemo.finetune.run import RunEnv, train_adapter
from mmdemo.finetune.synthetic import synthetic_split
from mmdemo.models.adapters import AdapterStore, read_adapter
from mmdemo.models.lora import AdapterRuntime

# tiny models train fastest on one thread (the fixture is in conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


def run(settings, tmp_path: Path, **knobs: Any) -> tuple[Any, EventLog]:
    base = dict(steps=3, batch_size=2, scale=0.02, eval_limit=4, warmup=1)
    cfg = TrainConfig(**{**base, **knobs})
    log = EventLog(tmp_path / "events.jsonl")
    env = RunEnv(settings, tmp_path, log, StopSwitch(), adapters_dir=tmp_path / "store")
    return train_adapter(cfg, env), log


def logits(model: Any, bundle_inputs: dict[str, Any]) -> Any:
    import torch

    with torch.no_grad():
        return model(**bundle_inputs).logits


@pytest.fixture(scope="module")
def fresh_vlm(tiny_settings) -> Any:
    """A VLM loaded like the app loads it, plus one input batch (copied per use)."""
    from mmdemo.finetune.collate import Collator
    from mmdemo.models.backends.vlm import load_parts

    model, processor, family, _ = load_parts("tiny:smolvlm", tiny_settings, "cpu", "float32")
    collator = Collator(processor, with_images=True)
    batch = collator.prompts(synthetic_split("test", scenes=1)[:2])
    return model, family, batch


@pytest.mark.parametrize("method", list(METHODS))
def test_method_trains_and_its_adapter_is_served_by_the_chat_runtime(
    method: str, tiny_settings, tmp_path: Path, fresh_vlm: Any
) -> None:
    from mmdemo.errors import MethodUnavailableError
    from mmdemo.finetune.methods import get_method

    try:
        get_method(method).check("cpu")
    except MethodUnavailableError as exc:  # a clear refusal before anything loads
        assert exc.fix
        with pytest.raises(MethodUnavailableError):
            run(tiny_settings, tmp_path, method=method)
        assert not (tmp_path / "store").exists()
        return
    result, log = run(tiny_settings, tmp_path, method=method)
    assert isinstance(log.events[-1], Done)
    assert sum(isinstance(e, Step) for e in log.events) == 3
    start = next(e for e in log.events if isinstance(e, Start))
    assert 0 < start.trainable < start.total or METHODS[method].family == "full"
    info = read_adapter(result.path)
    assert info.method == method and info.base_model_type == "idefics3"
    # DPO trains on the built-in preference pairs (open answers) and scores its preference
    scored = (
        "preference_accuracy" if METHODS[method].objective == "preference" else "closed_accuracy"
    )
    assert set(result.metrics) >= {scored, "overall", "count"}
    assert (result.path / "report.md").is_file() and (result.path / "loss.png").is_file()
    model, family, batch = fresh_vlm
    base = copy.deepcopy(model)
    runtime = AdapterRuntime(base, family)
    before = logits(base, batch)
    with runtime.pin((info,)) as pinned:
        served = logits(pinned.model, batch)
    with runtime.pin((None,)) as pinned:
        again = logits(pinned.model, batch)
    assert not served.allclose(before, atol=1e-6), f"{method}: the adapter changes nothing"
    assert again.allclose(before, atol=1e-5), f"{method}: base answers changed after unpinning"


def test_lora_fa_trains_b_only_and_fewer_parameters_than_lora(tiny_settings, tmp_path) -> None:
    lora, log_lora = run(tiny_settings, tmp_path / "lora", method="lora")
    fa, log_fa = run(tiny_settings, tmp_path / "fa", method="lora-fa")
    trainable = {
        name: next(e for e in log.events if isinstance(e, Start)).trainable
        for name, log in (("lora", log_lora), ("fa", log_fa))
    }
    assert trainable["fa"] < trainable["lora"]
    from safetensors.torch import load_file

    a_lora = load_file(str(lora.path / "adapter_model.safetensors"))
    a_fa = load_file(str(fa.path / "adapter_model.safetensors"))
    key = next(k for k in a_fa if ".lora_A." in k)
    # same seed, same initial A: LoRA moved it, LoRA-FA kept it frozen
    assert not a_lora[key].equal(a_fa[key])
    assert any(v.abs().sum() > 0 for k, v in a_fa.items() if ".lora_B." in k)
    # and A is where it started: one step or three, LoRA-FA's A is the same, while B moved
    one, _ = run(tiny_settings, tmp_path / "fa1", method="lora-fa", steps=1)
    a_one = load_file(str(one.path / "adapter_model.safetensors"))
    for name in a_fa:
        if ".lora_A." in name:
            assert a_fa[name].equal(a_one[name]), f"LoRA-FA changed {name}"
    assert any(not a_fa[k].equal(a_one[k]) for k in a_fa if ".lora_B." in k)


def test_same_seed_gives_the_same_loss_curve(tiny_settings, tmp_path: Path) -> None:
    curves = []
    for i, seed in enumerate((0, 0, 1)):
        _, log = run(tiny_settings, tmp_path / str(i), method="lora", steps=5, seed=seed)
        curves.append([e.loss for e in log.events if isinstance(e, Step)])
    assert curves[0] == curves[1]
    assert curves[0] != curves[2]


def test_two_stage_runs_captioning_then_vqa_on_one_adapter(tiny_settings, tmp_path) -> None:
    result, log = run(tiny_settings, tmp_path, method="lora", stages="two-stage", steps=4)
    stages = [e.stage for e in log.events if isinstance(e, Step)]
    assert stages == ["caption", "caption", "vqa", "vqa"]
    meta = read_adapter(result.path)
    assert meta.method == "lora"
    assert "caption" in result.data and "vqa" in result.data


def test_two_stage_lomo_keeps_its_clip_in_the_second_stage(
    tiny_settings, tmp_path, monkeypatch
) -> None:
    """Each stage trains with the clipped LOMO from the defaults table at that stage's rate
    (the Trainer's own LOMO, which it would build for a later stage, has no clip)."""
    from lomo_optim import Lomo

    made: list[tuple[float, float]] = []
    real_init = Lomo.__init__

    def recording_init(self, model, lr=1e-3, clip_grad_norm=None, **kw):  # type: ignore[no-untyped-def]
        made.append((lr, clip_grad_norm))
        real_init(self, model, lr=lr, clip_grad_norm=clip_grad_norm, **kw)

    monkeypatch.setattr(Lomo, "__init__", recording_init)
    run(
        tiny_settings,
        tmp_path,
        method="lomo",
        stages="two-stage",
        steps=4,
        lr=0.01,
        extra={"lomo_clip": 0.5},
    )
    assert len(made) == 2, f"one LOMO per stage expected, made: {made}"
    assert [clip for _, clip in made] == [0.5, 0.5]


def test_stopping_mid_run_leaves_nothing_in_the_store(tiny_settings, tmp_path: Path) -> None:
    from mmdemo.errors import TrainingStopped

    stop = StopSwitch()

    class StopAfterTwo(EventLog):
        def __call__(self, event: Event) -> None:
            super().__call__(event)
            if isinstance(event, Step) and event.step == 2:
                stop.event.set()

    cfg = TrainConfig(steps=50, batch_size=2, scale=0.02, name="never")
    env = RunEnv(tiny_settings, tmp_path, StopAfterTwo(), stop, adapters_dir=tmp_path / "store")
    with pytest.raises(TrainingStopped):
        train_adapter(cfg, env)
    store = tmp_path / "store"
    assert not store.exists() or not any(store.iterdir())


def test_exported_full_parameter_change_reproduces_the_trained_weights(
    fresh_vlm: Any, tmp_path: Path
) -> None:
    """LOMO/MeZO train whole weights; the LoRA they are served as (SVD of the change, full
    rank here) gives the trained model's outputs on a fresh base."""
    import torch

    from mmdemo.finetune.methods.full import INITIAL, export_lora, trainable_weights
    from mmdemo.finetune.targets import find_targets
    from mmdemo.models.adapters import write_metadata

    model, family, batch = fresh_vlm
    trained = copy.deepcopy(model)
    weights = trainable_weights(trained, find_targets(trained, "language"))
    from safetensors.torch import save_file

    save_file({n: w.detach().clone() for n, w in weights.items()}, str(tmp_path / INITIAL))
    torch.manual_seed(0)
    with torch.no_grad():
        for w in weights.values():
            w.add_(torch.randn_like(w) * 0.05)
    error = export_lora(weights, tmp_path / INITIAL, tmp_path / "adapter", max_rank=64)
    assert error < 1e-5
    write_metadata(tmp_path / "adapter", {"base_model_type": family, "method": "mezo"})
    runtime = AdapterRuntime(copy.deepcopy(model), family)
    with runtime.pin((read_adapter(tmp_path / "adapter"),)) as pinned:
        served = logits(pinned.model, batch)
    assert served.allclose(logits(trained, batch), atol=1e-4)
    # a lower export rank is an approximation, and says how good
    assert export_lora(weights, tmp_path / INITIAL, tmp_path / "low", max_rank=2) > 0.1


def test_dylora_truncated_adapter_equals_the_rank_masked_model(fresh_vlm, tmp_path) -> None:
    from peft import LoraConfig, get_peft_model

    from mmdemo.finetune.methods.dylora import RankMask
    from mmdemo.finetune.targets import find_targets
    from mmdemo.models.adapters import write_metadata
    from mmdemo.models.dylora import truncate_lora

    model, family, batch = fresh_vlm
    config = LoraConfig(
        r=8,
        lora_alpha=16,
        target_modules=find_targets(model, "language").lora,
        init_lora_weights=False,
    )
    peft_model = get_peft_model(copy.deepcopy(model), config)
    mask = RankMask(peft_model, 8, 16)
    outputs = {}
    for rank in (2, 8):
        mask.set(rank)
        outputs[rank] = logits(peft_model, batch)
    assert not outputs[2].allclose(outputs[8], atol=1e-5)
    mask.set(8)
    peft_model.save_pretrained(str(tmp_path / "full"))
    truncate_lora(tmp_path / "full", 2, tmp_path / "r2")
    for folder in ("full", "r2"):
        write_metadata(tmp_path / folder, {"base_model_type": family, "method": "dylora"})
    for rank, folder in ((2, "r2"), (8, "full")):
        runtime = AdapterRuntime(copy.deepcopy(model), family)
        with runtime.pin((read_adapter(tmp_path / folder),)) as pinned:
            assert logits(pinned.model, batch).allclose(outputs[rank], atol=1e-4)


def test_bottleneck_adapter_round_trips_and_is_refused_on_another_model(
    fresh_vlm, tmp_path, tiny_settings
) -> None:
    import torch

    from mmdemo.errors import AdapterError
    from mmdemo.finetune.targets import find_targets
    from mmdemo.models.adapters import write_metadata
    from mmdemo.models.bottleneck import BottleneckConfig, BottleneckSet, hidden_size_of

    model, family, batch = fresh_vlm
    trained = copy.deepcopy(model)
    targets = find_targets(trained, "language")
    for placement in ("series", "parallel"):
        config = BottleneckConfig(targets.mlp_blocks, hidden_size_of(trained), 16, placement)
        adapters = BottleneckSet(trained)
        with torch.no_grad():
            for p in adapters.add(placement, config):
                p.add_(torch.randn_like(p) * 0.1)
        adapters.activate(placement)
        expected = logits(trained, batch)
        adapters.activate(None)
        folder = tmp_path / placement
        adapters.save(placement, folder)
        write_metadata(folder, {"base_model_type": family, "method": "bottleneck"})
        runtime = AdapterRuntime(copy.deepcopy(model), family)
        with runtime.pin((read_adapter(folder),)) as pinned:
            assert logits(pinned.model, batch).allclose(expected, atol=1e-5)
        with runtime.pin((None,)) as pinned:
            assert logits(pinned.model, batch).allclose(logits(model, batch), atol=1e-5)
    # the Qwen2-VL tiny build has other module names: refused with a clear reason
    from mmdemo.models.backends.vlm import load_parts

    qwen, *_ = load_parts("tiny:qwen2vl", tiny_settings, "cpu", "float32")
    info = read_adapter(tmp_path / "series")
    runtime = AdapterRuntime(qwen, "idefics3")
    with pytest.raises(AdapterError, match="sits on"), runtime.pin((info,)):
        pass


def test_qlora_loads_the_base_in_4_bit(tiny_settings) -> None:
    pytest.importorskip("bitsandbytes")
    from mmdemo.finetune.methods import get_method
    from mmdemo.models.backends.vlm import load_parts

    method = get_method("qlora")
    method.check("cpu")
    model, *_ = load_parts(
        "tiny:smolvlm", tiny_settings, "cpu", "float32", **method.load_kwargs("cpu")
    )
    kinds = {type(m).__name__ for n, m in model.named_modules() if "text_model" in n}
    assert "Linear4bit" in kinds
    vision = {type(m).__name__ for n, m in model.named_modules() if "vision_model" in n}
    assert "Linear4bit" not in vision


def test_methods_the_hardware_cannot_run_say_why() -> None:
    from mmdemo.errors import MethodUnavailableError
    from mmdemo.finetune.methods import get_method

    with pytest.raises(MethodUnavailableError, match="no 4-bit kernels for the mps device"):
        get_method("qlora").check("mps")


def test_too_long_answers_are_dropped_and_all_too_long_is_an_error(
    tiny_settings, tmp_path: Path
) -> None:
    from mmdemo.errors import BadInputError

    with pytest.raises(BadInputError, match="longer than max_length=16"):
        run(tiny_settings, tmp_path, method="lora", max_length=16)
    store = AdapterStore(tiny_settings.replace(home=tmp_path / "home"), builtin_dir=None)
    assert store.list() == []


def test_lora_training_lowers_the_held_out_loss(tiny_settings, tmp_path, fresh_vlm) -> None:
    """Training moves the model: the validation loss after 40 steps is well below the base's."""
    from mmdemo.finetune.collate import Collator
    from mmdemo.finetune.loop import validation_loss
    from mmdemo.models.backends.vlm import load_parts

    result, _ = run(tiny_settings, tmp_path, method="lora", steps=40, batch_size=8, scale=0.05)
    model, processor, _, _ = load_parts("tiny:smolvlm", tiny_settings, "cpu", "float32")
    validation = synthetic_split("validation", scenes=2)
    base_loss = validation_loss(model, Collator(processor, True), validation, "cpu")
    assert result.val_loss is not None and result.val_loss < base_loss - 0.3
