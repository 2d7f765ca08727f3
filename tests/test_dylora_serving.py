"""A DyLoRA adapter served at rank k ("name@r=k") answers exactly as its training saw rank k
(RankMask: ranks above k masked, scaling alpha/k), alone and in a mixed batch beside itself at
other ranks; names that ask for what does not exist are refused with the cause."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from mmdemo.errors import AdapterError
from mmdemo.finetune.methods.dylora import RankMask
from mmdemo.models.adapters import AdapterStore
from mmdemo.models.lora import BASE, AdapterRuntime
from mmdemo.models.tiny.vlm import random_model, smolvlm_parts
from tests.helpers import make_adapter

RANK = 8  # make_adapter: lora_alpha = 2 * rank
SCORES = {"2": {"overall": 0.41, "count": 10}, "8": {"overall": 0.77, "count": 10}}


@pytest.fixture(scope="module")
def model():
    config, _ = smolvlm_parts()
    return random_model(config).eval()


@pytest.fixture(scope="module")
def store(model, tmp_path_factory: pytest.TempPathFactory, tiny_settings) -> AdapterStore:
    home = tmp_path_factory.mktemp("dylora-home")
    store = AdapterStore(tiny_settings.replace(home=home), builtin_dir=None)
    made = tmp_path_factory.mktemp("dylora-made")
    store.install(
        make_adapter(model, made / "dy", seed=3, rank=RANK, method="dylora", rank_scores=SCORES),
        "dy",
    )
    store.install(make_adapter(model, made / "plain", seed=4, rank=RANK), "plain")
    return store


@pytest.fixture(scope="module")
def trained_view(model, store: AdapterStore):
    """The adapter as DyLoRA training runs it: full-rank weights under a RankMask."""
    from peft import PeftModel

    peft_model = PeftModel.from_pretrained(copy.deepcopy(model), str(store.get("dy").path))
    return peft_model.eval(), RankMask(peft_model, RANK, 2.0 * RANK)


IDS = torch.randint(5, 100, (1, 9), generator=torch.Generator().manual_seed(0))


def masked_logits(trained_view, rank: int) -> torch.Tensor:
    peft_model, mask = trained_view
    mask.set(rank)
    try:
        with torch.inference_mode():
            return peft_model(input_ids=IDS).logits
    finally:
        mask.set(RANK)


def test_each_rank_answers_as_training_saw_it(model, store, trained_view) -> None:
    runtime = AdapterRuntime(copy.deepcopy(model), "idefics3", max_resident=8)
    served = {}
    for rank in (1, 2, 5, RANK):
        info = store.get(f"dy@r={rank}")
        with runtime.pin((info,)) as pinned, torch.inference_mode():
            served[rank] = pinned.model(input_ids=IDS).logits
        torch.testing.assert_close(
            served[rank], masked_logits(trained_view, rank), rtol=1e-4, atol=1e-4
        )
    # the ranks really answer differently, so serving the wrong one would have failed above
    assert not torch.allclose(served[1], served[RANK], atol=1e-3)
    assert "dy@r=2" in runtime.resident_names() and "dy" in runtime.resident_names()


def test_ranks_side_by_side_in_one_mixed_batch(model, store, trained_view) -> None:
    runtime = AdapterRuntime(copy.deepcopy(model), "idefics3", max_resident=4)
    infos = (store.get("dy@r=2"), None, store.get("dy"))
    with runtime.pin(infos) as pinned, torch.inference_mode():
        rows = pinned.model(input_ids=IDS.repeat(3, 1), adapter_names=list(pinned.adapters))
    assert pinned.adapters == ("dy@r=2", BASE, "dy")
    torch.testing.assert_close(
        rows.logits[0:1], masked_logits(trained_view, 2), rtol=1e-4, atol=1e-4
    )
    torch.testing.assert_close(
        rows.logits[2:3], masked_logits(trained_view, RANK), rtol=1e-4, atol=1e-4
    )
    with torch.inference_mode():
        base = model(input_ids=IDS).logits
    torch.testing.assert_close(rows.logits[1:2], base, rtol=1e-4, atol=1e-4)


def test_a_rank_carries_its_measured_score_and_label(store) -> None:
    two = store.get("dy@r=2")
    assert two.name == "dy@r=2" and two.serve_rank == 2
    assert two.metrics["overall"] == 0.41 and "dylora at r=2" in two.label()
    assert store.get("dy@r=3").metrics == {}  # training did not measure rank 3: no score
    assert store.get(f"dy@r={RANK}").name == "dy"  # its own rank is the adapter itself


@pytest.mark.parametrize(
    ("name", "cause", "fix"),
    [
        ("plain@r=2", "only DyLoRA adapters serve at a chosen rank", "use 'plain' itself"),
        ("dy@r=9", "has ranks 1 to 8; 9 is outside them", "pick a rank from 1 to 8"),
        ("dy@r=0", "has ranks 1 to 8; 0 is outside them", "pick a rank from 1 to 8"),
        ("dy@r=two", "not a whole number", "dy@r=4"),
        ("nope@r=2", "no adapter called 'nope'", "pick one from the list"),
    ],
)
def test_ranks_that_do_not_exist_are_refused(store, name: str, cause: str, fix: str) -> None:
    with pytest.raises(AdapterError, match=cause) as caught:
        store.get(name)
    assert fix in (caught.value.fix or "")


def test_dropping_an_adapter_drops_its_ranks(model, store) -> None:
    runtime = AdapterRuntime(copy.deepcopy(model), "idefics3", max_resident=4)
    for name in ("dy", "dy@r=2", "dy@r=4", "plain"):
        runtime.load(store.get(name))
    runtime.drop("dy")
    assert runtime.resident_names() == ["plain"]


def test_the_cut_files_are_an_ordinary_lora_of_that_rank(store, tmp_path: Path) -> None:
    from safetensors import safe_open

    from mmdemo.models.dylora import truncate_lora

    out = truncate_lora(store.get("dy").path, 3, tmp_path / "cut")
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 3
    with safe_open(str(out / "adapter_model.safetensors"), framework="pt") as f:
        shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}  # noqa: SIM118
    assert all(s[0] == 3 for k, s in shapes.items() if ".lora_A." in k)
    assert all(s[1] == 3 for k, s in shapes.items() if ".lora_B." in k)
