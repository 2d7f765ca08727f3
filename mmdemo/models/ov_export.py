"""Trace a causal LM's (or a VLM's language model's) one-token decoding step into an OpenVINO
model with its KV cache as runtime state: the exporter behind models/ov_decode.py.

Run as its own process (``python -m mmdemo.models.ov_export SOURCE OUT --cls CLASS``) by
ov_decode.load_step: OpenVINO's converter sends usage telemetry unless a consent file in the
user's home says no, and sends it from a forked process, which must never fork a server. The
child gets a HOME whose consent file opts out, so nothing is sent and the app never forks.

How: the step (token, position, past keys and values -> logits, new keys and values) is traced
with ``openvino.convert_model``; the past/present pairs are made state with
``openvino.passes.MakeStateful`` and given an initial value; a beam Gather and an unmasked
attention make the CPU plugin fuse state, concatenation and attention into one kernel.

``--rows`` traces the VLM's step: several rows (a mixed-adapter batch), each with its padding
mask (``attention_mask``, 1 for a token a row sees) and, with ``--lora LEAVES``, each row's LoRA
adapter as inputs (``lora.<module>.A``: rows x rank x in, ``lora.<module>.B``: rows x out x rank,
the adapter's scaling folded into B) on the language model's linear layers of those leaf names,
so any adapter (any rank) is served by one traced step, a row of zeros for the base model. The
products run beside the frozen layer as PEFT's forward does: ``base(x) + (x A^T) B^T``. The one
transformers detail touched is filling a ``DynamicCache``'s layers with given tensors
(``keys``/``values`` of ``DynamicLayer``), pinned by tests/test_ov_decode.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


class _Step:
    """The model's one-token decoding step over explicit past keys and values (and, for
    rows, their padding mask and LoRA inputs)."""

    def __init__(self, model: Any, layers: int, traced: _Traced, rows: bool) -> None:
        import torch

        class Step(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(
                self, input_ids: Any, position_ids: Any, beam_idx: Any, *rest: Any
            ) -> tuple[Any, ...]:
                from transformers import DynamicCache

                if rows:  # the rows' padding mask: [rows, 1, 1, cached + 1], True = seen
                    traced.mask = rest[0][:, None, None, :].bool()
                    rest = rest[1:]
                past, traced.lora = rest[: 2 * layers], tuple(rest[2 * layers :])
                cache = DynamicCache(config=model.config)
                for i, layer in enumerate(cache.layers):
                    # filled directly: update() would concatenate onto an empty tensor, which
                    # the tracer records as a constant of the wrong rank. The rows are picked
                    # by beam_idx (always 0..rows-1 here): with that Gather between the state
                    # and the concatenation, OpenVINO's CPU plugin fuses state, concatenation
                    # and attention into one kernel (its StatefulSDPAFusion pattern)
                    layer.keys = past[2 * i].index_select(0, beam_idx)
                    layer.values = past[2 * i + 1].index_select(0, beam_idx)
                    layer.is_initialized, layer.device = True, input_ids.device
                out = self.model(
                    input_ids=input_ids, position_ids=position_ids, cache=cache, use_cache=True
                )
                present = [t for lay in cache.layers for t in (lay.keys, lay.values)]
                return (out.logits[:, -1], *present)

        self.module = Step()


STEP_ATTENTION = "mmdemo_ov_step"


class _Traced:
    """Values of one trace that the patched modules read: the rows' padding mask (None: one
    row sees every cached token) and the rows' LoRA inputs, two per adapted layer."""

    def __init__(self) -> None:
        self.mask: Any = None
        self.lora: tuple[Any, ...] = ()


def _step_attention(
    traced: _Traced,
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    **kwargs: Any,
) -> tuple[Any, None]:
    """Attention for the traced one-token step: the new token sees every cached one a row
    does not mask (boolean mask from the step's own input; no causal part is needed for one
    token), grouped key/value heads repeated by broadcasting as transformers does. Both are
    the shapes OpenVINO's CPU plugin fuses with the cache (transformers' own mask would be
    traced at a fixed size)."""
    import torch

    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        rows, heads, length, dim = key.shape
        key = key[:, :, None].expand(rows, heads, groups, length, dim)
        key = key.reshape(rows, heads * groups, length, dim)
        value = value[:, :, None].expand(rows, heads, groups, length, dim)
        value = value.reshape(rows, heads * groups, length, dim)
    scaling = kwargs.get("scaling")
    default = query.shape[-1] ** -0.5
    if scaling is not None and abs(scaling - default) > 1e-12 * default:
        query = query * (scaling / default)  # an explicit scale input stops the fusion
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=traced.mask)
    return out.transpose(1, 2).contiguous(), None


def _register_step_attention(traced: _Traced) -> None:
    """transformers' public registries for attention and mask functions (this process traces
    one step: the registration is its only use)."""
    import functools

    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(STEP_ATTENTION, functools.partial(_step_attention, traced))
    AttentionMaskInterface.register(STEP_ATTENTION, lambda *args, **kwargs: None)


def language_model(model: Any) -> tuple[str, Any]:
    """(module name prefix, module) of the decoder blocks' model: a VLM's language model, or
    the causal LM's own."""
    inner = model.model
    for part in ("text_model", "language_model"):
        if hasattr(inner, part):
            return f"model.{part}.", getattr(inner, part)
    return "model.", inner


def lora_modules(model: Any, leaves: tuple[str, ...]) -> list[tuple[str, Any]]:
    """(name within ``model``, layer) of the language model's linear layers named ``leaves``,
    the layers a traced step takes LoRA inputs for, in the order of its inputs."""
    import torch

    prefix, lm = language_model(model)
    return [
        (prefix + name, module)
        for name, module in lm.named_modules()
        if name.rsplit(".", 1)[-1] in leaves and isinstance(module, torch.nn.Linear)
    ]


def _with_lora_inputs(model: Any, leaves: tuple[str, ...], traced: _Traced) -> list[str]:
    """Replace the ``leaves`` linear layers of ``model`` by ones adding the traced rows' LoRA
    products; returns their names in input order."""
    import torch

    class RowLoRA(torch.nn.Module):
        def __init__(self, base: Any, index: int) -> None:
            super().__init__()
            self.base, self.index = base, index

        def forward(self, x: Any) -> Any:
            a, b = traced.lora[2 * self.index], traced.lora[2 * self.index + 1]
            return self.base(x) + (x @ a.transpose(1, 2)) @ b.transpose(1, 2)

    names = []
    for index, (name, module) in enumerate(lora_modules(model, leaves)):
        parent, leaf = name.rsplit(".", 1)
        setattr(model.get_submodule(parent), leaf, RowLoRA(module, index))
        names.append(name)
    return names


def _layer_count(model: Any) -> int:
    """Decoder blocks of a causal LM, or of a VLM's language model."""
    return len(language_model(model)[1].layers)


def _names(layers: int) -> list[str]:
    return [f"{i}.{kind}" for i in range(layers) for kind in ("key", "value")]


def export_step(model: Any, rows: bool = False, lora: tuple[str, ...] = ()) -> Any:
    """The OpenVINO model of one decoding step, KV cache as runtime state: one row, or
    (``rows``) several with their padding mask, and (``lora``) LoRA inputs on the language
    model's linear layers of those leaf names. Traced in float32 (a bfloat16 model is copied
    up for the trace: its values are exact in float32, and the compiled step runs in
    bfloat16 again by its precision hint)."""
    import copy

    import openvino as ov
    import openvino.passes
    import torch

    if model.dtype != torch.float32 or lora:  # the LoRA inputs replace layers: on a copy
        model = copy.deepcopy(model).float()

    traced = _Traced()
    cfg = model.config.get_text_config(decoder=True)
    layers = _layer_count(model)
    heads = cfg.num_key_value_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    lora_names = _with_lora_inputs(model, lora, traced) if lora else []
    n = 2 if rows else 1  # example rows
    example: list[Any] = [
        torch.ones(n, 1, dtype=torch.long),
        torch.full((n, 1), 3),
        torch.arange(n, dtype=torch.int32),
    ]
    batch = -1 if rows else 1
    shapes = [([batch, 1], ov.Type.i64), ([batch, 1], ov.Type.i64), ([-1], ov.Type.i32)]
    inputs = ["input_ids", "position_ids", "beam_idx"]
    if rows:
        example.append(torch.ones(n, 4, dtype=torch.long))
        shapes.append(([-1, -1], ov.Type.i64))
        inputs.append("attention_mask")
    example += [torch.zeros(n, heads, 3, head_dim) for _ in range(2 * layers)]
    shapes += [([batch, heads, -1, head_dim], ov.Type.f32)] * (2 * layers)
    names = _names(layers)
    inputs += [f"past.{name}" for name in names]
    for name in lora_names:
        layer = model.get_submodule(name).base
        example += [torch.zeros(n, 2, layer.in_features), torch.zeros(n, layer.out_features, 2)]
        shapes += [([-1, -1, layer.in_features], ov.Type.f32)]
        shapes += [([-1, layer.out_features, -1], ov.Type.f32)]
        inputs += [f"lora.{name}.A", f"lora.{name}.B"]
    _register_step_attention(traced)
    previous = model.config._attn_implementation
    model.set_attn_implementation(STEP_ATTENTION)
    try:
        with torch.no_grad():
            converted = ov.convert_model(
                _Step(model, layers, traced, rows).module,
                example_input=tuple(example),
                input=shapes,
            )
    finally:
        model.set_attn_implementation(previous)
    for port, name in zip(converted.inputs, inputs, strict=True):
        port.get_tensor().set_names({name})
    for port, name in zip(converted.outputs, ["logits", *names], strict=True):
        port.get_tensor().set_names({name if "." not in name else f"present.{name}"})
    manager = openvino.passes.Manager()
    manager.register_pass(
        openvino.passes.MakeStateful({f"past.{n}": f"present.{n}" for n in names})
    )
    manager.run_passes(converted)
    _initialise_states(converted, heads, head_dim)
    return converted


def _initialise_states(model: Any, heads: int, head_dim: int) -> None:
    """Give every state an initial value (no tokens yet: [rows, heads, 0, head_dim] of zeros),
    which the CPU plugin's fused attention-with-cache kernel reads its shape from."""
    import numpy as np
    import openvino.opset13 as ops
    from openvino.utils import replace_node

    ids = next(
        p for p in model.get_parameters() if p.get_output_tensor(0).get_any_name() == "input_ids"
    )
    rows = ops.gather(ops.shape_of(ids), ops.constant(np.array([0])), ops.constant(0))
    shape = ops.concat([rows, ops.constant(np.array([heads, 0, head_dim]))], 0)
    variables = {v.get_info().variable_id: v for v in model.get_variables()}
    for op in model.get_ops():
        if op.get_type_name() == "ReadValue" and op.get_input_size() == 0:
            init = ops.broadcast(ops.constant(np.float32(0)), shape)
            fresh = ops.read_value(init, variables[op.get_variable_id()])
            replace_node(op, fresh)  # moves the Assign's control dependency too
    model.validate_nodes_and_infer_types()


def main(argv: list[str] | None = None) -> int:
    """Load SOURCE in float32 with transformers' CLASS, trace its step (``--rows``, ``--lora``:
    see ``export_step``), save OUT/step.xml."""
    import openvino as ov
    import transformers

    parser = argparse.ArgumentParser(prog="python -m mmdemo.models.ov_export")
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--cls", required=True, help="the transformers model class")
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--rows", action="store_true", help="rows with a padding mask")
    parser.add_argument("--lora", default="", help="comma-separated leaf names with LoRA inputs")
    args = parser.parse_args(argv)
    cls = getattr(transformers, args.cls)
    model = cls.from_pretrained(
        args.source,
        dtype="float32",
        trust_remote_code=args.trust_remote_code,
        use_safetensors=True,
    ).eval()
    leaves = tuple(filter(None, args.lora.split(",")))
    step = export_step(model, rows=args.rows, lora=leaves)
    ov.save_model(step, args.out / "step.xml", compress_to_fp16=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
