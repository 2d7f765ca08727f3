"""Mixed-adapter batches in two batched matrix products per LoRA layer.

PEFT answers a batch whose rows use different LoRA adapters (``adapter_names=``) by looping
over the adapters in every layer: index the rows, two matmuls, scale, index-add back, about
seven small operations per adapter per layer on every decoding step (4 adapters x 210 layers
of SmolVLM-256M: ~5,900 operations per token, more than the model's own). Punica/S-LoRA
("BGMV") and vLLM's CPU LoRA ops do it per layer in one batched product: each row gathers
its adapter's A and B once per batch, then ``x @ A_row`` and ``h @ B_row`` run for all rows
at once. PEFT has no such path and no library offers one for CPU, so this module provides it
(~6 operations per layer, whatever the number of adapters).

It is installed per layer for the duration of one pinned batch by replacing the layer's
``_mixed_batch_forward`` (the method PEFT's ``forward`` calls when ``adapter_names`` is given)
on that instance, and removed afterwards; callers keep passing ``adapter_names``. (That method
and the other PEFT internals used here are reached through ``models/peft_compat.py``.) The maths
mirrors PEFT's single-adapter forward (``result + B(A(x)) * scaling`` in the adapter's dtype,
then cast back), so a row's output matches the same request answered alone. Layers it does not
cover (DoRA and other variants, merged or training-mode layers, non-Linear layers, rows whose
adapters differ in dtype, a batch whose size is not the number of names) keep PEFT's own path;
``lora_bias`` (a bias on B) is applied, and per-adapter scaling covers alpha and rsLoRA.

Cost: while a batch runs, each covered layer holds its rows' A and B in the adapters' dtype,
``rows x (in + out) x r`` values (30 MB in fp32 for four rows of rank-16 adapters on the
attention projections of SmolVLM-256M's language model; a copy freed when the batch ends).
Batches are capped at ``batch_max_rows``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from mmdemo.models.peft_compat import (
    lora_linear_class,
    peft_mixed_batch,
    replace_mixed_batch,
    restore_mixed_batch,
    uses_variant,
    variant_kwarg_keys,
)


def covers(layer: Any, names: Sequence[str]) -> bool:
    """Whether this layer's mixed batch for ``names`` can run as stacked products."""
    if type(layer) is not lora_linear_class() or layer.training or layer.merged:
        return False
    used = {n for n in names if n in layer.lora_A}
    if uses_variant(layer, used):
        return False
    # one dtype for the stacked copy: rows of different dtypes stay with PEFT, which casts
    # each adapter's input to its own dtype
    return (
        len(
            {layer.lora_A[n].weight.dtype for n in used}
            | {layer.lora_B[n].weight.dtype for n in used}
        )
        <= 1
    )


class _Stacked:
    """One layer's adapters gathered per row: A ``(rows, in, r)``, B ``(rows, r, out)``."""

    def __init__(self, layer: Any, names: Sequence[str]):
        import torch

        self.layer, self.names = layer, list(names)
        used = [n for n in dict.fromkeys(names) if n in layer.lora_A]
        rank = max((layer.r[n] for n in used), default=0)
        dtype = layer.lora_A[used[0]].weight.dtype if used else layer.base_layer.weight.dtype
        device = layer.base_layer.weight.device
        rows = len(names)
        # A and B kept in the layout of PEFT's weights ((r, in), (out, r)) and used transposed,
        # as F.linear uses them: one row's products then run the same BLAS kernel as the
        # adapter alone (a transposed copy rounds differently in decode steps, enough to
        # change answers of an ill-conditioned model)
        a = torch.zeros(rows, rank, layer.in_features, dtype=dtype, device=device)
        b = torch.zeros(rows, layer.out_features, rank, dtype=dtype, device=device)
        self.a, self.b = a.transpose(1, 2), b.transpose(1, 2)
        self.scale = torch.zeros(rows, 1, 1, dtype=dtype, device=device)
        # lora_bias=True: B has a bias, added before the scaling as PEFT's B(A(x)) * s does
        self.bias = torch.zeros(rows, 1, layer.out_features, dtype=dtype, device=device)
        for i, name in enumerate(names):
            if name not in used:  # the base model (or an adapter this layer lacks): adds 0
                continue
            r = layer.r[name]
            a[i, :r] = layer.lora_A[name].weight.detach()
            b[i, :, :r] = layer.lora_B[name].weight.detach()
            self.scale[i] = layer.scaling[name]
            if layer.lora_B[name].bias is not None:
                self.bias[i, 0] = layer.lora_B[name].bias.detach()
        self.active = bool(used)

    def __call__(self, x: Any, *args: Any, adapter_names: Sequence[str], **kwargs: Any) -> Any:
        layer = self.layer
        keys = variant_kwarg_keys()
        variant = any(kwargs.get(k) is not None for k in keys)  # e.g. aLoRA
        if variant or list(adapter_names) != self.names or x.shape[0] != len(self.names):
            return peft_mixed_batch(layer, x, *args, adapter_names=adapter_names, **kwargs)
        for key in keys:  # PEFT passes them (as None); the base layer takes none
            kwargs.pop(key, None)
        result = layer.base_layer(x, *args, **kwargs)
        if not self.active:
            return result
        dtype = result.dtype
        rows = x.reshape(x.shape[0], -1, x.shape[-1]).to(self.a.dtype)  # (rows, tokens, in)
        # dropout is the identity in eval mode (covers() refuses training-mode layers)
        lora = ((rows @ self.a) @ self.b + self.bias) * self.scale
        return (result + lora.reshape(result.shape)).to(dtype)


@contextmanager
def stacked_rows(layers: Sequence[Any], names: Sequence[str]) -> Iterator[int]:
    """While inside, mixed batches for ``names`` run as stacked products on every covered
    layer; yields how many layers are covered. Restores PEFT's method on leaving."""
    done = []
    try:
        for layer in layers:
            if covers(layer, names):
                replace_mixed_batch(layer, _Stacked(layer, names))
                done.append(layer)
        yield len(done)
    finally:
        for layer in done:
            restore_mixed_batch(layer)
