"""The PEFT internals mmdemo relies on (mmdemo/models/peft_compat.py), pinned to the version
they were read from. When this fails after an upgrade, re-read each one in the new PEFT:
``tuners/lora/layer.py`` (``Linear.forward`` calling ``self._mixed_batch_forward`` when
``adapter_names`` is given, its signature, ``VARIANT_KWARG_KEYS``, ``LoraLayer.lora_variant``)
and ``tuners/tuners_utils.py`` (``BaseTunerLayer``, ``BaseTuner.active_adapter`` as set by
``set_adapter``); then run tests/test_row_lora.py and tests/test_dylora_serving.py and set
``READ_FOR``.
"""

from __future__ import annotations

import inspect

import pytest
import torch

from mmdemo.models import peft_compat


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj = torch.nn.Linear(8, 8)
        self.v_proj = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.v_proj(torch.relu(self.q_proj(x)))


@pytest.fixture
def two_adapters():
    """A tiny model with LoRA adapters "one" and "two" that change its output differently."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)

    def config(**extra):
        return LoraConfig(
            r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False, **extra
        )

    model = get_peft_model(Tiny(), config(), adapter_name="one")
    model.add_adapter("two", config())
    return model.eval()


def test_peft_is_the_version_the_internals_were_read_from() -> None:
    import peft

    assert peft.__version__.startswith(peft_compat.READ_FOR + "."), (
        f"PEFT {peft.__version__}: re-check mmdemo/models/peft_compat.py, then set READ_FOR"
    )


def test_the_internals_have_the_shape_we_call(two_adapters) -> None:
    layers = peft_compat.tuner_layers(two_adapters)
    assert len(layers) == 2
    assert all(type(layer) is peft_compat.lora_linear_class() for layer in layers)
    method = getattr(peft_compat.lora_linear_class(), peft_compat.MIXED_BATCH_METHOD)
    params = inspect.signature(method).parameters
    assert list(params)[:2] == ["self", "x"]
    assert params["adapter_names"].kind is inspect.Parameter.KEYWORD_ONLY
    assert all(isinstance(k, str) for k in peft_compat.variant_kwarg_keys())
    assert not peft_compat.uses_variant(layers[0], ["one", "two"])


def test_a_dora_adapter_is_recorded_as_a_variant(two_adapters) -> None:
    from peft import LoraConfig

    two_adapters.add_adapter("dora", LoraConfig(r=2, target_modules=["q_proj"], use_dora=True))
    q_proj = two_adapters.base_model.model.q_proj
    assert peft_compat.uses_variant(q_proj, ["dora"]) and not peft_compat.uses_variant(
        q_proj, ["one"]
    )


def test_mixed_batches_reach_the_method_installed_on_the_instance(two_adapters) -> None:
    x = torch.randn(2, 8, generator=torch.Generator().manual_seed(1))
    names = ["one", "two"]
    with torch.inference_mode():
        expected = two_adapters(x, adapter_names=names)
    layer = two_adapters.base_model.model.q_proj
    calls: list[list[str]] = []

    def recording(x, *args, adapter_names, **kwargs):
        calls.append(list(adapter_names))
        return peft_compat.peft_mixed_batch(layer, x, *args, adapter_names=adapter_names, **kwargs)

    peft_compat.replace_mixed_batch(layer, recording)
    try:
        with torch.inference_mode():
            got = two_adapters(x, adapter_names=names)
    finally:
        peft_compat.restore_mixed_batch(layer)
    assert calls == [names]  # PEFT's forward called the instance's method, with the names
    torch.testing.assert_close(got, expected)  # and PEFT's own method did the work
    with torch.inference_mode():
        two_adapters(x, adapter_names=names)
    assert calls == [names], "restored: PEFT's own method answers again"
    assert not torch.allclose(expected[0], expected[1]), "the adapters really differ"


def test_activating_layers_and_recording_equals_set_adapter(two_adapters) -> None:
    x = torch.randn(1, 8, generator=torch.Generator().manual_seed(2))
    two_adapters.set_adapter("two")
    with torch.inference_mode():
        public = two_adapters(x)
    two_adapters.set_adapter("one")
    for layer in peft_compat.tuner_layers(two_adapters):
        layer.set_adapter(["two"], inference_mode=True)
    peft_compat.record_active(two_adapters, "two")
    assert two_adapters.active_adapter == two_adapters.base_model.active_adapter == "two"
    assert two_adapters.active_adapters == ["two"]
    with torch.inference_mode():
        torch.testing.assert_close(two_adapters(x), public)
