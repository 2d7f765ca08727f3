"""The parts of PEFT that are not its public API but that the serving runtime relies on, kept
in one place. ``tests/test_peft_compat.py`` pins them to the PEFT version they were read from
(``READ_FOR``): on an upgrade, re-check each one there.

- ``peft.tuners.lora.layer.Linear._mixed_batch_forward``: what ``Linear.forward`` calls when
  ``adapter_names=`` is given (mixed-adapter batches). ``models/row_lora.py`` replaces it on a
  layer instance for one batch and calls PEFT's own for what it does not cover.
- ``VARIANT_KWARG_KEYS`` (``peft.tuners.lora.layer``): keyword arguments of LoRA variants
  (aLoRA's offsets) that PEFT's forward passes to the mixed-batch method, as None when unused.
- ``LoraLayer.lora_variant``: the per-adapter variant (DoRA, aLoRA...) of a layer, which the
  stacked products do not reproduce.
- ``peft.tuners.tuners_utils.BaseTunerLayer``: the class of every layer an adapter sits on.
- ``PeftModel.active_adapter`` and ``BaseTuner.active_adapter`` (``peft_model.base_model``):
  the records of the active adapter that ``PeftModel.set_adapter`` sets besides walking every
  module; the runtime calls each cached layer's public ``set_adapter`` instead of the walk and
  then sets the records.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

READ_FOR = "0.21"  # the PEFT version these were read from
MIXED_BATCH_METHOD = "_mixed_batch_forward"


def lora_linear_class() -> type:
    """PEFT's LoRA layer over ``nn.Linear`` (the only kind the stacked products cover)."""
    from peft.tuners.lora.layer import Linear

    return Linear


def variant_kwarg_keys() -> tuple[str, ...]:
    """Keyword arguments a LoRA variant takes in the forward pass (None when unused)."""
    from peft.tuners.lora.layer import VARIANT_KWARG_KEYS

    return tuple(VARIANT_KWARG_KEYS)


def uses_variant(layer: Any, names: Iterable[str]) -> bool:
    """Whether any of ``names`` is a LoRA variant (DoRA, aLoRA...) on ``layer``."""
    variants = getattr(layer, "lora_variant", {})
    return any(n in variants for n in names)


def tuner_layers(model: Any) -> list[Any]:
    """Every module of ``model`` an adapter sits on (PEFT's tuner layers)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


def replace_mixed_batch(layer: Any, forward: Any) -> None:
    """Make ``layer`` (this instance only) answer mixed-adapter batches with ``forward``."""
    setattr(layer, MIXED_BATCH_METHOD, forward)


def restore_mixed_batch(layer: Any) -> None:
    """Give ``layer`` PEFT's own mixed-batch method back (a no-op if it has it)."""
    if MIXED_BATCH_METHOD in vars(layer):
        delattr(layer, MIXED_BATCH_METHOD)


def peft_mixed_batch(
    layer: Any, x: Any, *args: Any, adapter_names: Sequence[str], **kw: Any
) -> Any:
    """PEFT's own mixed-batch forward of ``layer``, whatever is installed on the instance."""
    return getattr(type(layer), MIXED_BATCH_METHOD)(
        layer, x, *args, adapter_names=adapter_names, **kw
    )


def record_active(peft_model: Any, name: str) -> None:
    """Record ``name`` as the active adapter on the model and its tuner, as
    ``PeftModel.set_adapter`` does besides activating it on every layer (callers activate the
    layers themselves)."""
    peft_model.active_adapter = name
    peft_model.base_model.active_adapter = name
