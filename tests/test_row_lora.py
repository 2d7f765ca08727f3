"""Mixed-adapter batches through stacked per-row LoRA products give each row what PEFT's own
mixed batch (and the adapter alone) gives it, and PEFT's path comes back afterwards."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from mmdemo.models.lora import BASE
from mmdemo.models.peft_compat import MIXED_BATCH_METHOD, tuner_layers
from mmdemo.models.row_lora import stacked_rows
from mmdemo.models.tiny.vlm import random_model, smolvlm_parts
from tests.helpers import make_adapter


@pytest.fixture(scope="module")
def peft_model(tmp_path_factory: pytest.TempPathFactory):
    from peft import PeftModel

    config, _ = smolvlm_parts()
    model = random_model(config)
    root = tmp_path_factory.mktemp("row-lora")
    # different ranks and seeds: rows must not share an adapter's A/B by accident
    paths = [make_adapter(model, root / f"a{i}", seed=i, rank=r) for i, r in enumerate((4, 8))]
    wrapped = PeftModel.from_pretrained(copy.deepcopy(model), str(paths[0]), adapter_name="a0")
    wrapped.load_adapter(str(paths[1]), adapter_name="a1")
    return wrapped.eval()


def lora_layers(model) -> list:
    return tuner_layers(model)


def logits(model, ids: torch.Tensor, names: list[str]) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=ids, adapter_names=names).logits


def test_each_row_gets_its_own_adapter_as_peft_and_as_alone(peft_model) -> None:
    ids = torch.randint(5, 100, (4, 7), generator=torch.Generator().manual_seed(0))
    names = ["a1", BASE, "a0", "a1"]
    peft_out = logits(peft_model, ids, names)
    layers = lora_layers(peft_model)
    with stacked_rows(layers, names) as covered:
        assert covered == len(layers) > 0
        stacked = logits(peft_model, ids, names)
    torch.testing.assert_close(stacked, peft_out, rtol=1e-4, atol=1e-4)
    # and each row equals that adapter answering alone (the base row: adapters disabled)
    for row, name in enumerate(names):
        one = ids[row : row + 1]
        if name == BASE:
            with peft_model.disable_adapter(), torch.inference_mode():
                alone = peft_model(input_ids=one).logits
        else:
            peft_model.set_adapter(name)
            with torch.inference_mode():
                alone = peft_model(input_ids=one).logits
        torch.testing.assert_close(stacked[row : row + 1], alone, rtol=1e-4, atol=1e-4)
    # the adapters do differ, so a row on the wrong adapter would have failed above
    assert not torch.allclose(peft_out[0], logits(peft_model, ids, ["a0"] * 4)[0], atol=1e-3)


def test_other_batches_keep_peft_path_and_peft_comes_back(peft_model) -> None:
    ids = torch.randint(5, 100, (2, 5), generator=torch.Generator().manual_seed(1))
    layers = lora_layers(peft_model)
    with stacked_rows(layers, ["a0", "a1"]):
        # names other than the stacked ones (here reversed) go through PEFT's own loop
        reversed_rows = logits(peft_model, ids, ["a1", "a0"])
    torch.testing.assert_close(reversed_rows, logits(peft_model, ids, ["a1", "a0"]))
    assert all(MIXED_BATCH_METHOD not in vars(layer) for layer in layers)
    with pytest.raises(RuntimeError), stacked_rows(layers, ["a0", "a1"]):
        raise RuntimeError("generation failed")
    assert all(MIXED_BATCH_METHOD not in vars(layer) for layer in layers)


def test_training_mode_layers_are_left_to_peft(peft_model, tmp_path: Path) -> None:
    layers = lora_layers(peft_model)
    peft_model.train()
    try:
        with stacked_rows(layers, ["a0", "a1"]) as covered:
            assert covered == 0  # dropout would be live: PEFT's path handles it
    finally:
        peft_model.eval()


@pytest.fixture(scope="module")
def varied_model(tmp_path_factory: pytest.TempPathFactory):
    """Three adapters that scale differently: alpha 2r, alpha 3 (not 2r) with rsLoRA, and
    a bias on B (lora_bias)."""
    from peft import PeftModel

    config, _ = smolvlm_parts()
    model = random_model(config)
    root = tmp_path_factory.mktemp("row-lora-varied")
    specs = {
        "plain": dict(rank=4, lora={}),
        "rs": dict(rank=8, lora={"alpha": 3.0, "use_rslora": True}),
        "bias": dict(rank=4, lora={"lora_bias": True}),
    }
    paths = {
        n: make_adapter(model, root / n, seed=i, **spec)
        for i, (n, spec) in enumerate(specs.items())
    }
    wrapped = PeftModel.from_pretrained(copy.deepcopy(model), str(paths["plain"]), "plain")
    for name in ("rs", "bias"):
        wrapped.load_adapter(str(paths[name]), adapter_name=name)
    return wrapped.eval()


def alone(model, ids: torch.Tensor, name: str) -> torch.Tensor:
    if name == BASE:
        with model.disable_adapter(), torch.inference_mode():
            return model(input_ids=ids).logits
    model.set_adapter(name)
    with torch.inference_mode():
        return model(input_ids=ids).logits


def check_rows(model, ids, names, out, tol: float) -> None:
    for row, name in enumerate(names):
        torch.testing.assert_close(
            out[row : row + 1], alone(model, ids[row : row + 1], name), rtol=tol, atol=tol
        )


def test_alphas_rslora_and_lora_bias_each_answer_as_alone_on_the_stacked_path(
    varied_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmdemo.models import row_lora

    calls: list[int] = []
    real_call = row_lora._Stacked.__call__

    def spy(self, x, *args, **kwargs):
        calls.append(id(self.layer))
        return real_call(self, x, *args, **kwargs)

    monkeypatch.setattr(row_lora._Stacked, "__call__", spy)
    ids = torch.randint(5, 100, (4, 6), generator=torch.Generator().manual_seed(2))
    names = ["bias", "rs", BASE, "plain"]
    layers = lora_layers(varied_model)
    with stacked_rows(layers, names) as covered:
        assert covered == len(layers) > 0
        out = logits(varied_model, ids, names)
    assert set(calls) == {id(layer) for layer in layers}, "the stacked path ran on every layer"
    check_rows(varied_model, ids, names, out, 1e-4)
    # the bias matters: without it the bias row would be another answer
    with_bias = alone(varied_model, ids[:1], "bias")
    first_layer = next(layer for layer in layers if "bias" in layer.lora_B)
    saved = first_layer.lora_B["bias"].bias.detach().clone()
    with torch.no_grad():
        first_layer.lora_B["bias"].bias.zero_()
    try:
        assert not torch.allclose(alone(varied_model, ids[:1], "bias"), with_bias, atol=1e-4)
    finally:
        with torch.no_grad():
            first_layer.lora_B["bias"].bias.copy_(saved)


def test_a_stacked_path_that_drops_the_bias_or_the_scaling_is_caught(
    varied_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above fails on a sabotaged implementation (this is the test of the test)."""
    from mmdemo.models import row_lora

    ids = torch.randint(5, 100, (3, 6), generator=torch.Generator().manual_seed(3))
    names = ["bias", "rs", "plain"]
    layers = lora_layers(varied_model)
    real_init = row_lora._Stacked.__init__
    for sabotage in ("bias", "scale"):

        def broken(self, layer, rows, sabotage=sabotage):
            real_init(self, layer, rows)
            if sabotage == "bias":
                self.bias.zero_()
            else:
                self.scale.fill_(1.0)

        monkeypatch.setattr(row_lora._Stacked, "__init__", broken)
        with stacked_rows(layers, names):
            out = logits(varied_model, ids, names)
        with pytest.raises(AssertionError):
            check_rows(varied_model, ids, names, out, 1e-4)
    monkeypatch.setattr(row_lora._Stacked, "__init__", real_init)


def test_bf16_rows_match_each_adapter_alone_and_mixed_dtypes_stay_with_peft(
    varied_model,
) -> None:
    model = copy.deepcopy(varied_model).to(torch.bfloat16)
    ids = torch.randint(5, 100, (3, 6), generator=torch.Generator().manual_seed(4))
    names = ["plain", "bias", "rs"]
    layers = lora_layers(model)
    with stacked_rows(layers, names) as covered:
        assert covered == len(layers)
        out = logits(model, ids, names)
    check_rows(model, ids, names, out, 3e-2)
    # one adapter in float32 beside bf16 ones: those layers keep PEFT's path
    for layer in layers:
        if "rs" in layer.lora_A:
            layer.lora_A["rs"].float()
            layer.lora_B["rs"].float()
    with stacked_rows(layers, names) as covered:
        assert covered == 0
