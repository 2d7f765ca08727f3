"""The arena's "Compare base models": what each family's model costs to bring in beside the
chat's, measured through the path ``/arena_models`` uses (``ModelManager.extras``, then the
arena's column), and what the memory budget does when a model does not fit.

Per family, at two widths (the tiny build, and a wider random-weight build of the same
architecture so that the weights, not the process's fixed costs, dominate the memory):

- load: the extras load (``manager._load``: config, processor, weights, adapter runtime), and
  the baseline in the same process: ``AutoProcessor`` + ``AutoModelForImageTextToText
  .from_pretrained`` of the same folder in the same dtype (median of several, alternating);
- memory: the estimate made before loading (safetensors headers x dtype x overhead), the
  resident memory the first load actually added, and the loaded weights and buffers;
- the arena column's first-token time and tokens/s (the model already loaded).

Each model is measured in a fresh process (so one model's freed memory does not hide the next
one's). Then one run under a memory budget that forces the least recently used extra model
out: which model went, why, and the time to load it back.
"""

from __future__ import annotations

import gc
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from mmdemo.bench.report import Table, ms
from mmdemo.units import human_bytes

IMAGE = Path(__file__).resolve().parents[2] / "assets" / "images" / "red-circle.png"
QUESTION = "What color is the shape?"
# the wider build: the language model's width x WIDE_FACTOR (head size kept), WIDE_LAYERS layers
WIDE_FACTOR, WIDE_LAYERS = 12, 4
# the budget run: two models loaded, the third does not fit beside them
BUDGET_MODELS = ("qwen2.5-vl", "llava-1.5", "internvl")


def widen(src: Path, dst: Path, factor: int = WIDE_FACTOR, layers: int = WIDE_LAYERS) -> Path:
    """A copy of the tiny build in ``src`` with a wider, deeper language model (random weights,
    same tokenizer, processor and vision tower; the projector follows the new width)."""
    from transformers import AutoConfig

    from mmdemo.models.tiny.vlm import random_model

    config = AutoConfig.from_pretrained(src)
    text = config.get_text_config()
    hidden = text.hidden_size * factor
    text.hidden_size, text.intermediate_size = hidden, text.intermediate_size * factor
    text.num_attention_heads *= factor  # head size (and so the rope sections) unchanged
    text.num_key_value_heads *= factor
    text.num_hidden_layers = layers
    if getattr(text, "layer_types", None):
        text.layer_types = [text.layer_types[0]] * layers
    vision = getattr(config, "vision_config", None)
    if vision is not None and hasattr(vision, "out_hidden_size"):  # Qwen2.5-VL, GLM-4.1V
        vision.out_hidden_size = hidden
    elif config.model_type == "qwen2_vl":  # its merger's output width
        vision.hidden_size = hidden
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors", "tiny.json"))
    random_model(config).save_pretrained(dst)
    return dst


def _settings(home: str) -> Any:
    from mmdemo.config import Settings

    return Settings(profile="tiny", home=Path(home), device="cpu", dtype="bfloat16")


def _arena(manager: Any) -> Any:
    from mmdemo.flows.arena import ArenaService
    from mmdemo.flows.chat import ChatService
    from mmdemo.models.adapters import AdapterStore

    return ArenaService(ChatService(manager, AdapterStore(manager.settings))).models


def _warm_imports() -> None:
    """Import the loading and serving stacks first: a process pays them once, not per model."""
    import peft  # noqa: F401  (the adapter runtime every loaded VLM gets)
    import transformers  # noqa: F401

    import mmdemo.flows.arena
    import mmdemo.models.backends.vlm  # noqa: F401


def _rss() -> int:
    import psutil

    gc.collect()
    return int(psutil.Process().memory_info().rss)


def _column(arena: Any, model_id: str, max_new_tokens: int) -> Any:
    from mmdemo.flows.generation import GenerationSettings

    gen = GenerationSettings(max_new_tokens=max_new_tokens, greedy=True)
    *_, result = arena.stream(str(IMAGE), QUESTION, [model_id], gen)
    return result


def measure(model_id: str, path: str, home: str, repeat: int, max_new_tokens: int) -> dict:
    """One model in this (fresh) process: the extras load, memory, the arena column, and the
    direct ``from_pretrained`` baseline."""
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    from mmdemo.models.families import by_model_type
    from mmdemo.models.manager import ModelManager

    torch.set_num_threads(1)  # the same share of the machine for every row
    _warm_imports()
    family = by_model_type(AutoConfig.from_pretrained(path).model_type)
    getattr(transformers, family.architecture)  # the family's modelling code: imported once
    AutoProcessor.from_pretrained(path)  # and its processor's (both paid by either path)
    manager = ModelManager(_settings(home))
    arena = _arena(manager)
    estimate = manager.extras.estimate(model_id)
    before = _rss()
    with manager.extras.lease(model_id) as extra:
        first_load, nbytes, params = extra.load_seconds, extra.loaded.nbytes, extra.loaded.params
    added = _rss() - before
    _column(arena, model_id, max_new_tokens)  # warm-up: first-call allocations
    columns = [_column(arena, model_id, max_new_tokens).columns[0] for _ in range(repeat)]
    extras_s, direct_s = [], []
    for _ in range(repeat):  # alternating, so drift on a shared machine hits both alike
        manager.extras.unload(model_id)
        with manager.extras.lease(model_id) as extra:
            extras_s.append(extra.load_seconds)
        start = time.perf_counter()
        processor = AutoProcessor.from_pretrained(path)
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.bfloat16).eval()
        direct_s.append(time.perf_counter() - start)
        del model, processor
        gc.collect()
    manager.unload_all()
    return {
        "family": family.title,
        "params": params,
        "estimate": estimate,
        "added": added,
        "nbytes": nbytes,
        "first_load": first_load,
        "load": statistics.median(extras_s),
        "direct": statistics.median(direct_s),
        "ttft": statistics.median(c.ttft_s for c in columns),
        "rate": statistics.median(c.tokens_per_s for c in columns),
        "tokens": columns[-1].tokens,
        "peak": max(c.peak_memory_bytes for c in columns),
        "status": columns[-1].status,
        "error": columns[-1].error,
    }


def budget_run(model_ids: list[str], home: str, max_new_tokens: int) -> list[dict]:
    """Load the first two models as arena columns, then the third under a budget that leaves
    room for it only once one model is gone, then the first again under the same squeeze."""
    from mmdemo.models import memory
    from mmdemo.models.manager import ModelManager

    _warm_imports()
    manager = ModelManager(_settings(home))
    arena, extras = _arena(manager), manager.extras
    steps = []

    def step(model_id: str, squeeze: bool) -> None:
        need = extras.estimate(model_id)
        lru = extras.loaded()[0] if extras.loaded() else ""
        if squeeze:  # free after the margin: half the LRU model's bytes short of the need
            extras.margin_bytes = (
                memory.available_bytes(manager.device) - need + extras.sizes()[lru] // 2
            )
        budget = memory.available_bytes(manager.device) - extras.margin_bytes
        result = _column(arena, model_id, max_new_tokens)
        column = result.columns[0]
        steps.append(
            {
                "model": model_id,
                "budget": budget if squeeze else 0,
                "need": need,
                "unloaded": [(e.model_id, e.nbytes) for e in result.evicted],
                "reason": result.evicted[0].reason if result.evicted else "",
                "load": column.load_s,
                "status": column.status,
                "error": column.error,
                "loaded": extras.loaded(),
            }
        )
        extras.margin_bytes = memory.MARGIN_BYTES

    first, second, third = model_ids
    step(first, squeeze=False)
    step(second, squeeze=False)
    step(third, squeeze=True)
    step(first, squeeze=True)  # back: the least recently used of the two left goes
    manager.unload_all()
    return steps


def _pool() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(1, mp_context=get_context("spawn"), max_tasks_per_child=1)


def run(quick: bool = False) -> list[Table]:
    from mmdemo.models.families import FAMILIES
    from mmdemo.models.tiny import ensure_built

    repeat, tokens = (1, 4) if quick else (5, 16)
    families = [f for f in FAMILIES.values() if f.tiny]
    if quick:
        families = [f for f in families if f.key in BUDGET_MODELS]
    table = Table(
        "arena-models",
        "Arena base models: load time and memory per family (tiny and wider builds, CPU bf16)",
        [
            "family",
            "build",
            "params",
            "estimate",
            "RSS added",
            "estimate / RSS",
            "model memory",
            "load (arena extras)",
            "load (from_pretrained)",
            "extras / direct",
            "first token",
            "tok/s",
        ],
    )
    with tempfile.TemporaryDirectory(prefix="mmdemo-arena-models-") as tmp:
        home = Path(tmp)
        models = home / "models"
        builds: dict[str, dict[str, Path]] = {}
        fixed: list[int] = []  # RSS added beyond the model's own bytes, per row
        for family in families:
            tiny = ensure_built(family.tiny, models)
            wide = widen(tiny, home / "wide" / f"{family.tiny}-wide")
            builds[family.key] = {"tiny": tiny, "wide": wide}
        for family in families:
            for width, path in builds[family.key].items():
                model_id = family.tiny_id if width == "tiny" else str(path)
                with _pool() as pool:
                    row = pool.submit(measure, model_id, str(path), tmp, repeat, tokens).result()
                table.add(*_cells(row, width))
                fixed.append(row["added"] - row["nbytes"])
        picks = [str(builds[k]["wide"]) for k in BUDGET_MODELS if k in builds] or [
            str(b["wide"]) for b in builds.values()
        ][:3]
        lru = None
        if len(picks) == 3:
            with _pool() as pool:
                lru = _lru_table(pool.submit(budget_run, picks, tmp, tokens).result(), home)
    table.notes += [
        f"Wider build: the tiny build's language model {WIDE_FACTOR}x as wide (head size kept) "
        f"with {WIDE_LAYERS} layers, random weights; vision tower, tokenizer and processor "
        "unchanged. The tiny builds' weights are smaller than the process's fixed costs, so "
        "their estimate / RSS says little; the wider builds' says how good the estimate is.",
        "Each model in a fresh process (1 torch thread): the family's modelling and processor "
        "code imported first (either path pays it once). RSS added: resident memory after the "
        "first extras load minus before it. Model memory: the loaded weights and buffers (the "
        "arena column's memory figure).",
        f"RSS added minus model memory: {human_bytes(min(fixed))}-{human_bytes(max(fixed))} "
        "on every build, tiny or wide: what a load costs beside the weights (processor, "
        "tokenizer, adapter runtime). The estimate is the weights x 1.2; at the wide builds' "
        "size the 0.2 happens to equal that fixed cost, so the ratio is near 1; on a multi-GB "
        "model the same 0.2 is mostly headroom for activations and the KV cache, which these "
        "rows do not measure.",
        f"Load: median of {repeat}, the extras load and the baseline (AutoProcessor + "
        "AutoModelForImageTextToText.from_pretrained, same folder, bf16) alternating in the "
        "same process. First token and tok/s: the arena column (the model loaded), median of "
        f"{repeat} greedy answers of at most {tokens} tokens after a warm-up. Random weights: "
        "the speeds compare code paths, not the real models.",
    ]
    return [table, lru] if lru is not None else [table]


def _cells(row: dict, width: str) -> list[str]:
    ratio = row["estimate"] / row["added"] if row["added"] > 0 else 0.0
    answered = row["status"] == "done" and not row["error"]
    return [
        row["family"],
        width,
        f"{row['params'] / 1e6:.1f} M",
        human_bytes(row["estimate"]),
        human_bytes(max(row["added"], 0)),
        f"{ratio:.2f}" if ratio else "n/a",
        human_bytes(row["nbytes"]),
        ms(row["load"]),
        ms(row["direct"]),
        f"{row['load'] / row['direct']:.2f}x",
        ms(row["ttft"]) if answered else f"failed: {row['error'][:80]}",
        f"{row['rate']:.0f} ({row['tokens']} tok)" if answered else "",
    ]


def _lru_table(steps: list[dict], home: Path) -> Table:
    def name(model_id: str) -> str:
        return Path(model_id).name

    table = Table(
        "arena-models-lru",
        "Arena base models under a memory budget: least recently used out, and back",
        ["step", "model", "free for it", "needs (estimate)", "unloaded", "load", "loaded after"],
    )
    for i, s in enumerate(steps, 1):
        unloaded = ", ".join(f"{name(m)} ({human_bytes(b)})" for m, b in s["unloaded"])
        table.add(
            i,
            name(s["model"]),
            human_bytes(s["budget"]) if s["budget"] else "plenty",
            human_bytes(s["need"]),
            unloaded or "-",
            ms(s["load"]) if s["status"] == "done" else f"{s['status']}: {s['error'][:80]}",
            ", ".join(name(m) for m in s["loaded"]),
        )
    reasons = [s["reason"].replace(str(home / "wide") + "/", "") for s in steps if s["reason"]]
    table.notes += [
        "The wider builds (see the table above) as arena columns, one answer each, in one "
        "process. Steps 3 and 4 squeeze the budget (the margin kept for the rest of the app is "
        "raised) so the model fits only once the least recently used extra model is gone.",
        "Load in step 4 is the time to load the unloaded model back (compare its first load "
        "in step 1, which also paid the family's modelling code's first import; the loading "
        "and serving stacks were imported before step 1).",
        *(f"The column said: {r}" for r in reasons),
    ]
    return table
