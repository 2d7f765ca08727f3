"""Decode the text LLM with OpenVINO on a CPU: every token after the prompt is one step of the
model compiled by OpenVINO, its KV cache kept inside the runtime, behind transformers' own
``generate``.

How: the model's one-token step (token, position, past keys and values -> logits, new keys
and values) is traced with OpenVINO's public converter (``openvino.convert_model``) and the
past/present pairs are made runtime state with the public ``openvino.passes.MakeStateful``.
The prompt is prefilled by the torch model (causal attention over many tokens is already fast
there), its KV cache copied into the state, and each further token is one OpenVINO request.
``generate(custom_generate=...)`` (transformers' public hook for a decoding loop) still builds
the logits processors, stopping criteria and streamer, so the repetition penalty, sampling,
end of turn and Stop behave as on the torch path.

Why not optimum-intel + openvino-genai, the usual route: optimum-intel 2.2 (the exporter whose
IR openvino-genai's pipelines read) pins transformers<5.6 and fails to import with the 5.2x the
app runs. The one transformers detail touched here is filling a ``DynamicCache``'s layers with
given tensors (``keys``/``values`` of ``DynamicLayer``), checked by tests/test_ov_decode.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from mmdemo.errors import MMDemoError

ROUTES = ("auto", "eager", "openvino")


class DecodeUnavailableError(MMDemoError):
    """The OpenVINO decode route cannot serve this model here."""


def openvino_version() -> str | None:
    try:
        import openvino
    except ImportError:
        return None
    return openvino.get_version().split("-")[0]


def supported(model: Any) -> str:
    """Why ``model`` cannot take the OpenVINO route ('' when it can)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    if openvino_version() is None:
        return "OpenVINO is not installed (pip install openvino)"
    if str(getattr(model, "device", "cpu")) != "cpu":
        return "the model is not on the CPU"
    layers = DynamicCache(config=model.config).layers
    if not layers or any(type(layer) is not DynamicLayer for layer in layers):
        return "the model's KV cache is not one plain layer per block (sliding windows?)"
    return ""


class _Step:
    """The model's one-token decoding step over explicit past keys and values."""

    def __init__(self, model: Any) -> None:
        import torch

        class Step(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(
                self, input_ids: Any, position_ids: Any, beam_idx: Any, *past: Any
            ) -> tuple[Any, ...]:
                from transformers import DynamicCache

                cache = DynamicCache(config=model.config)
                for i, layer in enumerate(cache.layers):
                    # filled directly: update() would concatenate onto an empty tensor, which
                    # the tracer records as a constant of the wrong rank. The rows are picked
                    # by beam_idx (always [0] here): with that Gather between the state and the
                    # concatenation, OpenVINO's CPU plugin fuses state, concatenation and
                    # attention into one kernel (its StatefulSDPAFusion pattern)
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


def _step_attention(
    module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any
) -> tuple[Any, None]:
    """Attention for the traced one-token step: no mask (one new token sees every cached
    one), grouped key/value heads repeated by broadcasting as transformers does. Both are the
    shapes OpenVINO's CPU plugin fuses with the cache (a traced mask would be a fixed size)."""
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
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value)
    return out.transpose(1, 2).contiguous(), None


def _register_step_attention() -> None:
    """transformers' public registries for attention and mask functions (same name, same
    functions: registering again changes nothing)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(STEP_ATTENTION, _step_attention)
    AttentionMaskInterface.register(STEP_ATTENTION, lambda *args, **kwargs: None)


def _layer_count(model: Any) -> int:
    """Decoder blocks of a causal LM, or of a VLM's language model."""
    inner = model.model
    return len(getattr(inner, "text_model", getattr(inner, "language_model", inner)).layers)


def _names(layers: int) -> list[str]:
    return [f"{i}.{kind}" for i in range(layers) for kind in ("key", "value")]


def export_step(model: Any) -> Any:
    """The OpenVINO model of one decoding step, KV cache as runtime state. Traced in float32
    (a bfloat16 model is copied up for the trace: its values are exact in float32, and the
    compiled step runs in bfloat16 again by its precision hint)."""
    import copy

    import openvino as ov
    import openvino.passes
    import torch

    if model.dtype != torch.float32:
        model = copy.deepcopy(model).float()

    cfg = model.config.get_text_config(decoder=True)
    layers = _layer_count(model)
    heads = cfg.num_key_value_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    past = [torch.zeros(1, heads, 3, head_dim) for _ in range(2 * layers)]
    example = (
        torch.tensor([[1]]),
        torch.tensor([[3]]),
        torch.tensor([0], dtype=torch.int32),
        *past,
    )
    shapes = [([1, 1], ov.Type.i64), ([1, 1], ov.Type.i64), ([-1], ov.Type.i32)]
    shapes += [([1, heads, -1, head_dim], ov.Type.f32)] * (2 * layers)
    _register_step_attention()
    previous = model.config._attn_implementation
    model.set_attn_implementation(STEP_ATTENTION)
    try:
        with torch.no_grad():
            converted = ov.convert_model(_Step(model).module, example_input=example, input=shapes)
    finally:
        model.set_attn_implementation(previous)
    names = _names(layers)
    for port, name in zip(
        converted.inputs, ["input_ids", "position_ids", "beam_idx", *names], strict=True
    ):
        port.get_tensor().set_names({name if "." not in name else f"past.{name}"})
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


def cache_key(model: Any, source: Path | None) -> str:
    """What the saved step depends on: the model's config and files, the converters and the
    code that traced it."""
    import transformers

    parts = {
        "exporter": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),  # this code
        "config": model.config.to_json_string(use_diff=False),
        "dtype": str(model.dtype),
        "openvino": openvino_version(),
        "transformers": transformers.__version__,
        "files": sorted(
            (p.name, p.stat().st_size, int(p.stat().st_mtime))
            for p in (source.glob("*.safetensors") if source else ())
        ),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def load_step(model: Any, cache_dir: Path, source: Path | None) -> Any:
    """The step model, read from ``cache_dir`` when exported before, else exported and saved
    there (written to a temporary folder and renamed: a crash never leaves half an IR)."""
    import openvino as ov

    folder = cache_dir / cache_key(model, source)
    xml = folder / "step.xml"
    if xml.is_file():
        try:
            return ov.Core().read_model(xml)
        except RuntimeError:
            shutil.rmtree(folder, ignore_errors=True)  # damaged: export again
    converted = export_step(model)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".step-", dir=cache_dir))
    try:
        ov.save_model(converted, tmp / "step.xml", compress_to_fp16=False)
        with contextlib.suppress(OSError):  # another process saved it first
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return converted


class OpenVINODecoder:
    """A compiled step for one loaded model, and the decoding loop ``generate`` calls."""

    def __init__(self, model: Any, cache_dir: Path, source: Path | None = None) -> None:
        import numpy as np
        import openvino as ov
        import torch

        self.model = model
        precision = "bf16" if model.dtype == torch.bfloat16 else "f32"
        config = {
            "INFERENCE_PRECISION_HINT": precision,
            # the cache in the model's own precision (the CPU default compresses it to u8,
            # which changes answers)
            "KV_CACHE_PRECISION": precision,
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),
            "PERFORMANCE_HINT": "LATENCY",
        }
        self.compiled = ov.Core().compile_model(load_step(model, cache_dir, source), "CPU", config)
        self.precision = precision
        self.beam = np.zeros(1, dtype=np.int32)
        self.steps = 0  # OpenVINO steps run, all answers together (the System tab, tests)
        self._lock = threading.Lock()

    def generate_kwargs(self, input_ids: Any) -> dict[str, Any]:
        """What to add to ``generate``: the OpenVINO loop for a one-row prompt (several rows
        stay on the torch loop)."""
        return {"custom_generate": self.decode} if input_ids.shape[0] == 1 else {}

    def decode(
        self,
        model: Any,
        input_ids: Any,
        logits_processor: Any,
        stopping_criteria: Any,
        generation_config: Any,
        synced_gpus: bool = False,
        streamer: Any = None,
        loop_streamer: Any = None,
        **model_kwargs: Any,
    ) -> Any:
        """transformers' greedy/sampling loop with every step after the prompt in OpenVINO
        (``loop_streamer``: generate's streamer, which transformers 5.2x does not pass on to
        a callable loop; flows.generation.run_generation gives it under this name)."""
        import numpy as np
        import openvino as ov
        import torch
        from transformers import DynamicCache

        if input_ids.shape[0] != 1:
            raise DecodeUnavailableError("the OpenVINO decode loop answers one prompt at a time")
        streamer = streamer or loop_streamer
        cache = model_kwargs.get("cache") or model_kwargs.get("past_key_values")
        cache = cache if cache is not None else DynamicCache(config=model.config)
        seen = cache.get_seq_length()
        length = input_ids.shape[1]
        with torch.inference_mode():
            out = model(
                input_ids=input_ids[:, seen:],
                position_ids=torch.arange(seen, length).unsqueeze(0),
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            )
        logits = out.logits[:, -1].to(dtype=torch.float32)
        with self._lock:  # creating requests on one compiled model from several threads
            request = self.compiled.create_infer_request()
        states = {s.name: s for s in request.query_state()}
        for i, layer in enumerate(cache.layers):
            for kind, tensor in (("key", layer.keys), ("value", layer.values)):
                name = f"past.{i}.{kind}present.{i}.{kind}"
                states[name].state = ov.Tensor(tensor.float().contiguous().numpy())
        del out, cache
        position = length
        token_in = np.zeros((1, 1), dtype=np.int64)
        position_in = np.zeros((1, 1), dtype=np.int64)
        feed = {"input_ids": token_in, "position_ids": position_in, "beam_idx": self.beam}
        logits_out = request.get_tensor("logits")
        while True:
            scores = logits_processor(input_ids, logits)
            if generation_config.do_sample:
                probs = torch.softmax(scores, dim=-1)
                token = torch.multinomial(probs, num_samples=1).squeeze(1)
            else:
                token = torch.argmax(scores, dim=-1)
            input_ids = torch.cat([input_ids, token[:, None]], dim=-1)
            finished = bool(stopping_criteria(input_ids, scores).all())
            if streamer is not None:
                streamer.put(token)
            if finished:
                break
            token_in[0, 0], position_in[0, 0] = int(token), position
            request.infer(feed, share_inputs=True)
            logits = torch.from_numpy(logits_out.data.copy())
            position += 1
            self.steps += 1
        if streamer is not None:
            streamer.end()
        return input_ids


def decoder_for(model: Any, route: str, cache_dir: Path, source: Path | None) -> Any:
    """The OpenVINO decoder for ``model`` when ``route`` asks for it (``auto``: where it can
    serve, else None; ``openvino``: or a clear error saying why not; ``eager``: None)."""
    if route not in ROUTES:
        raise DecodeUnavailableError(
            f"decode route {route!r} is not one of {', '.join(ROUTES)}",
            fix="set MMDEMO_DECODE=auto",
        )
    if route == "eager":
        return None
    why = supported(model)
    if why:
        if route == "openvino":
            raise DecodeUnavailableError(
                f"the OpenVINO decode route cannot serve this model: {why}",
                fix="set MMDEMO_DECODE=eager (or auto)",
            )
        return None
    return OpenVINODecoder(model, cache_dir, source)
