"""Mixed-adapter batches through stacked per-row LoRA products give each row what PEFT's own
mixed batch (and the adapter alone) gives it, and PEFT's path comes back afterwards."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from mmdemo.models.lora import BASE
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
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


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
    assert all("_mixed_batch_forward" not in vars(layer) for layer in layers)
    with pytest.raises(RuntimeError), stacked_rows(layers, ["a0", "a1"]):
        raise RuntimeError("generation failed")
    assert all("_mixed_batch_forward" not in vars(layer) for layer in layers)


def test_training_mode_layers_are_left_to_peft(peft_model, tmp_path: Path) -> None:
    layers = lora_layers(peft_model)
    peft_model.train()
    try:
        with stacked_rows(layers, ["a0", "a1"]) as covered:
            assert covered == 0  # dropout would be live: PEFT's path handles it
    finally:
        peft_model.eval()
