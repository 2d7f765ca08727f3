"""Adapters evicted or deleted while the base model was served last: the runtime keeps
answering (PEFT would go on naming the deleted adapter as its active one)."""

from __future__ import annotations

from pathlib import Path

from mmdemo.models.adapters import AdapterStore
from tests.helpers import make_adapter


def test_deleting_the_last_named_adapter_after_a_base_request_keeps_serving(
    manager, isolated_settings, tmp_path: Path
) -> None:
    import torch

    bundle = manager.get("vlm")
    store = AdapterStore(isolated_settings)
    for i, name in enumerate(("first", "second")):
        store.install(make_adapter(bundle.model, tmp_path / name, seed=i, rank=4), name)
    runtime = bundle.adapters
    for name in ("second", "first"):  # "first" is the adapter PEFT names last
        with runtime.pin((store.get(name),)):
            pass
    with runtime.pin((None,)):  # the base model served last
        pass
    assert runtime.drop("first")
    ids = torch.tensor([[1, 2, 3]])
    for info in (None, store.get("second")):
        with runtime.pin((info,)) as pinned, torch.inference_mode():
            # what the arena asks of PEFT's wrapper before encoding an image once
            assert pinned.model.get_base_model() is not None
            out = pinned.model.generate(input_ids=ids, max_new_tokens=2, do_sample=False)
            assert out.shape == (1, 5)
    assert runtime.drop("second")  # the last one: back to the plain model
    assert runtime.peft is None
    with runtime.pin((None,)) as pinned, torch.inference_mode():
        assert pinned.model.generate(input_ids=ids, max_new_tokens=2, do_sample=False).shape == (
            1,
            5,
        )
