"""The VLM's decode route on OpenVINO: every answer's tokens after the prompt come from a
compiled step over rows (one answer, or a mixed-adapter batch), each row with its own LoRA
adapter handed to the step as inputs, so adapters hot-swap and mix in one batch without
tracing again (as S-LoRA / Punica / vLLM serve many adapters on one base; OpenVINO GenAI's
run-time LoRA does the same with its adapters as inputs).

Two steps per model, traced once and kept on disk (models/ov_export.py): the base step for
batches without adapters, and, from the first adapter asked for, the LoRA step with
``lora.<module>.A`` / ``.B`` inputs on the language model's adapted linear layers (the
family's LoRA targets). The base step is the cheaper one: a LoRA step costs two small products
per layer per token even where a row's adapter is zeros.

The prompt (images included) is prefilled by the torch model through PEFT, as before, so
mixed batches prefill as the eager path does. A batch whose adapters the step cannot carry
(DoRA and other variants, a bias on B, adapters on the language model's other modules or on
the output head, merged layers) decodes eagerly, as before.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmdemo.models.lora import BASE
from mmdemo.models.ov_decode import DecodeUnavailableError, OpenVINODecoder
from mmdemo.models.ov_export import language_model, lora_modules
from mmdemo.models.peft_compat import lora_linear_class, uses_variant

# model_type values whose decode step was checked against eager answers (base, single
# adapters, mixed batches): Idefics3 (SmolVLM). The others decode eagerly.
FAMILIES = ("idefics3",)


class RowDecoders:
    """The loaded VLM's OpenVINO steps (base, and LoRA once an adapter is asked for) and what
    a pinned request or batch hands ``generate`` to decode on them."""

    def __init__(
        self,
        model: Any,
        cache_dir: Path,
        source: Path | None,
        leaves: tuple[str, ...],
        trust_remote_code: bool = False,
    ) -> None:
        self.base = OpenVINODecoder(model, cache_dir, source, trust_remote_code, rows=True)
        self.precision = self.base.precision
        self.targets = [name for name, _ in lora_modules(model, leaves)]
        self._lora: OpenVINODecoder | None = None
        self.lora_unavailable = ""  # why adapters decode eagerly (their step failed to trace)
        self._build = functools.partial(
            OpenVINODecoder, model, cache_dir, source, trust_remote_code, True, leaves
        )
        self._lock = threading.Lock()

    @property
    def steps(self) -> int:
        """OpenVINO steps run on both steps (tests, the System tab)."""
        return self.base.steps + (self._lora.steps if self._lora is not None else 0)

    @property
    def lora_step(self) -> OpenVINODecoder | None:
        """The LoRA step, traced (or read back) and compiled on first use; None (and why in
        ``lora_unavailable``, logged once) when it could not be: adapters then decode
        eagerly, the base model stays on OpenVINO."""
        with self._lock:
            if self._lora is None and not self.lora_unavailable:
                try:
                    self._lora = self._build()
                except DecodeUnavailableError as exc:
                    self.lora_unavailable = str(exc)
                    logging.getLogger("mmdemo.models").warning("adapters decode eagerly: %s", exc)
            return self._lora

    def generate_kwargs(self, peft: Any, names: Sequence[str]) -> dict[str, Any]:
        """What to add to ``generate`` for rows answering with ``names`` (BASE: no adapter)
        on the PEFT model ``peft`` (None: no adapter loaded): the OpenVINO loop, or nothing
        (eager) where the step cannot carry these adapters."""
        used = [n for n in dict.fromkeys(names) if n != BASE]
        if not used or peft is None:
            return {"custom_generate": self.base.decode}
        rows = adapter_rows(peft, names, self.targets)
        if rows is None:
            return {}
        step = self.lora_step
        if step is None:
            return {}
        feed = {name: as_ov_tensor(t, step.precision) for name, t in rows.items()}
        return {"custom_generate": functools.partial(step.decode, lora=feed)}


def _adapted(module: Any, used: set[str]) -> set[str]:
    """Which of ``used`` adapters act on this module (PEFT tuner layers and modules-to-save
    wrappers name theirs in public dicts)."""
    found: set[str] = set()
    for attr in (*getattr(module, "adapter_layer_names", ()), "modules_to_save"):
        held = getattr(module, attr, None)
        if hasattr(held, "keys"):
            found |= used & set(held.keys())
    return found


def adapter_rows(peft: Any, names: Sequence[str], targets: Sequence[str]) -> dict[str, Any] | None:
    """The LoRA step's inputs for rows answering with ``names``: per target layer A
    ``(rows, rank, in)`` and B ``(rows, out, rank)`` (float32, the adapter's scaling folded
    into B, zeros for a row without that adapter, ranks padded with zeros to the largest);
    None when an adapter acts on the language model or output head where the step has no
    input, or in a way it cannot carry."""
    import torch

    used = {n for n in names if n != BASE}
    if any(getattr(peft.peft_config.get(n), "peft_type", None) != "LORA" for n in used):
        return None  # IA3, LoHa, ...: not LoRA products
    inner = peft.base_model.model
    prefix, _ = language_model(inner)
    wanted = set(targets)
    layers: dict[str, Any] = {}
    for name, module in inner.named_modules():
        decoding = name.startswith(prefix) or name.split(".")[0] == "lm_head"
        if not decoding or not _adapted(module, used):
            continue  # the vision tower and connector act in the prefill only
        if name in wanted and type(module) is lora_linear_class():
            mine = used & set(module.lora_A.keys())
            if module.merged or uses_variant(module, mine):
                return None
            if any(module.lora_B[n].bias is not None for n in mine):
                return None
            layers[name] = module
        elif not any(name.startswith(t + ".") for t in wanted):  # not inside a target
            return None
    rank = max((layer.r[n] for layer in layers.values() for n in used if n in layer.r), default=1)
    feed = {}
    for name in targets:
        layer = layers.get(name)
        base = inner.get_submodule(name)
        base = getattr(base, "base_layer", base)
        a = torch.zeros(len(names), rank, base.in_features)
        b = torch.zeros(len(names), base.out_features, rank)
        for row, adapter in enumerate(names):
            if layer is None or adapter not in layer.lora_A:
                continue
            r = layer.r[adapter]
            a[row, :r] = layer.lora_A[adapter].weight.detach().float()
            b[row, :, :r] = layer.lora_B[adapter].weight.detach().float() * layer.scaling[adapter]
        feed[f"lora.{name}.A"], feed[f"lora.{name}.B"] = a, b
    return feed


def as_ov_tensor(tensor: Any, precision: str) -> Any:
    """An OpenVINO tensor holding a copy of ``tensor`` in the step's precision (bf16 bits
    copied as they are: numpy has no bfloat16)."""
    import numpy as np
    import openvino as ov
    import torch

    if precision != "bf16":
        return ov.Tensor(np.ascontiguousarray(tensor.float().numpy()))
    out = ov.Tensor(ov.Type.bf16, list(tensor.shape))
    bits = tensor.to(torch.bfloat16).contiguous().view(torch.int16).numpy()
    out.data.view(np.int16)[...] = bits
    return out
