"""VLM families: for each family with a tiny build, the build's time, its first-token time and
decode speed in bf16 on the CPU, and which of the app's capabilities work on it. Every cell is
measured by running the app's own path on the tiny build, never typed:

- loads: the manager loads it as the family's transformers class;
- chat: a greedy answer about an image, streamed;
- arena: base and an adapter answer in one mixed-adapter batch, each column equal to its solo
  answer;
- trains: a LoRA trained 2 steps (the Fine-tune tab's run, in this process) lands in the store;
- hot-swap: that adapter is loaded onto the running VLM, its answer differs from base, and
  base answers as before afterwards;
- mixed batch: three concurrent requests (two adapters, with and without an image, different
  lengths) run as one left-padded batch, each row equal to its solo answer. Families the app
  keeps serial (models/families.py says why) get the same padded batch run directly, and the
  cell says what it gave.

The baseline is SmolVLM, the app's default family, measured in the same run.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from mmdemo.bench.report import Table, ms

IMAGE = Path(__file__).resolve().parents[2] / "assets" / "images" / "red-circle.png"
QUESTION = "What color is the shape?"
BASELINE = "smolvlm"


def _yes(ok: bool, why: str = "") -> str:
    return "yes" if ok else f"no ({why})" if why else "no"


def _answer(chat: Any, adapter: str, gen: Any, text: str = QUESTION, images=(IMAGE,)) -> Any:
    from mmdemo.flows.chat import ChatSession

    return list(chat.stream(ChatSession(), text, list(images), adapter, gen))[-1]


def _speed(chat: Any, gen: Any, repeat: int) -> tuple[float, float, int]:
    """(median first-token seconds, median decode tokens/s, tokens of the last answer)."""
    _answer(chat, "base", gen)  # warm-up: first-call allocations, lazy imports
    runs = [_answer(chat, "base", gen).metrics for _ in range(repeat)]
    ttft = statistics.median(m.ttft_s for m in runs)
    return ttft, statistics.median(m.tokens_per_s for m in runs), runs[-1].tokens


def _train(settings: Any, run_dir: Path) -> tuple[bool, str]:
    from mmdemo.finetune.config import TrainConfig
    from mmdemo.finetune.events import Step
    from mmdemo.finetune.progress import EventLog, StopSwitch
    from mmdemo.finetune.run import RunEnv, train_adapter

    cfg = TrainConfig(
        name="two-steps",
        model=settings.vlm,
        steps=2,
        batch_size=2,
        scale=0.02,
        lr=0.2,
        warmup=0,
        score_test=False,
    )
    log = EventLog(run_dir / "events.jsonl")
    start = time.perf_counter()
    train_adapter(cfg, RunEnv(settings, run_dir, log, StopSwitch()))
    steps = [e for e in log.events if isinstance(e, Step)]
    ok = len(steps) == 2 and all(s.loss == s.loss for s in steps)
    return ok, f"{time.perf_counter() - start:.1f} s"


def _hot_swap(chat: Any, gen: Any) -> str:
    """The trained adapter served on the running VLM: its first answer's switch time, and
    whether its greedy answer differs from base as tokens (a tiny build's answer may be all
    newlines or end at once, which reads as empty text either way)."""
    import torch

    from mmdemo.flows.chat_local import model_inputs

    tuned = _answer(chat, "two-steps", gen)
    if tuned.metrics.adapter != "two-steps":
        return "no (adapter not served)"
    bundle = chat.manager.get("vlm")
    content = [{"type": "image"}, {"type": "text", "text": QUESTION}]
    images = chat.prepare_images([IMAGE])
    inputs = model_inputs(bundle, [{"role": "user", "content": content}], images)

    def tokens(adapter: str) -> list[int]:
        with bundle.adapters.pin((chat.adapter_info(adapter),)) as pinned, torch.inference_mode():
            out = pinned.model.generate(**inputs, **gen.generate_kwargs())
        return out[0, inputs["input_ids"].shape[1] :].tolist()

    base = tokens("base")
    if tokens("two-steps") == base:
        return "no (same answer as base)"
    if tokens("base") != base:
        return "no (base changed after)"
    return f"yes ({ms(tuned.metrics.switch_s)} switch)"


def _arena(chat: Any, gen: Any) -> str:
    from mmdemo.flows.arena import ArenaService

    final = list(ArenaService(chat).stream(IMAGE, QUESTION, ["base", "two-steps"], gen))[-1]
    solo = [_answer(chat, "base", gen).text, _answer(chat, "two-steps", gen).text]
    if not final.mode.startswith("one mixed-adapter batch"):
        return f"no ({final.mode})"
    return _yes([c.text for c in final.columns] == solo, "columns differ from solo answers")


def _requests(chat: Any, bundle: Any, gen: Any) -> list[tuple[Any, str, str, list]]:
    from mmdemo.flows.batching import BatchRequest
    from mmdemo.flows.chat_local import model_inputs
    from mmdemo.flows.generation import eos_token_ids

    images = chat.prepare_images([IMAGE])
    asks = [
        ("two-steps", QUESTION, images),
        ("base", "Describe the picture in detail, please.", images),
        ("two-steps", "Hello!", []),
    ]
    eos = eos_token_ids(bundle.model, bundle.tokenizer)
    out = []
    for adapter, text, imgs in asks:
        content = [{"type": "image"}] * len(imgs) + [{"type": "text", "text": text}]
        inputs = model_inputs(bundle, [{"role": "user", "content": content}], imgs)
        info = chat.adapter_info(adapter)
        out.append(
            (BatchRequest.make(inputs, info, gen, threading.Event(), eos), adapter, text, imgs)
        )
    return out


def _mixed_batch(chat: Any, family: Any, gen: Any) -> str:
    """The app's batching path where the family allows it; else the same padded batch run
    directly, to say what it would give."""
    import torch

    from mmdemo.flows.batching import BATCH_FAMILIES, Batcher, collate
    from mmdemo.flows.chat import ChatSession

    bundle = chat.manager.get("vlm")
    asks = _requests(chat, bundle, gen)
    solo = [
        list(chat.stream(ChatSession(), text, imgs, adapter, gen))[-1].text
        for _, adapter, text, imgs in asks
    ]

    def text(tokens: Any) -> str:
        return bundle.tokenizer.decode(tokens, skip_special_tokens=True).strip()

    if bundle.family in BATCH_FAMILIES:
        batcher = Batcher(bundle, window_s=60.0, max_rows=len(asks))  # starts once all wait
        for request, *_ in asks:
            batcher.submit(request)
        for request, *_ in asks:
            list(request.updates(0.0))
        if any(r.error is not None or r.rows != len(asks) for r, *_ in asks):
            return "no (not one batch)"
        same = [text(r.row.tokens) for r, *_ in asks] == solo
        return _yes(same, "rows differ from solo answers") + f", {len(asks)} rows"
    batch = collate([r.inputs for r, *_ in asks], bundle.tokenizer.pad_token_id)
    if batch is None:
        return "serial (inputs cannot be padded together)"
    runtime = bundle.adapters
    with runtime.pin(tuple(r.info for r, *_ in asks)) as pinned, torch.inference_mode():
        out = pinned.model.generate(
            **batch,
            **gen.generate_kwargs(),
            adapter_names=list(pinned.adapters),
            pad_token_id=bundle.tokenizer.pad_token_id,
        )
    length = batch["input_ids"].shape[1]
    same = [text(row[length:]) for row in out] == solo
    return f"serial in the app; padded batch {'matches' if same else 'differs from'} solo here"


def _family_row(
    family: Any, home: Path, gen: Any, repeat: int
) -> tuple[list[str], tuple[float, float] | None]:
    """The row's cells, with (first-token seconds, decode tokens/s) where it chatted."""
    from mmdemo.config import Settings
    from mmdemo.flows.chat import ChatService
    from mmdemo.models.manager import ModelManager
    from mmdemo.models.tiny import ensure_built

    ensure_built(family.tiny, home / "models", force=True)  # first: the family's imports
    start = time.perf_counter()
    ensure_built(family.tiny, home / "models", force=True)
    built = time.perf_counter() - start
    settings = Settings(
        profile="tiny", home=home, device="cpu", dtype="bfloat16", vlm=family.tiny_id
    )
    manager = ModelManager(settings)
    cells = [family.title, family.architecture, ms(built)]
    speed = None
    try:
        bundle = manager.get("vlm")
        loads = bundle.family in family.model_types
        cells.append(_yes(loads, bundle.family))
        chat = ChatService.standalone(manager)
        ttft, rate, tokens = _speed(chat, gen, repeat)
        speed = (ttft, rate)
        cells += ["", "", _yes(tokens > 0, "no tokens")]  # speeds: filled in beside the baseline
        trained, took = _train(settings, home / "runs" / family.key)
        swapped = _hot_swap(chat, gen)  # first use of the adapter: its load is the switch
        cells += [_arena(chat, gen), f"{_yes(trained)} ({took})", swapped]
        cells.append(_mixed_batch(chat, family, gen))
    except Exception as exc:  # a failing family is a row that says so
        cells.append(f"error: {type(exc).__name__}: {str(exc)[:120]}")
    finally:
        manager.unload_all()
    return cells + [""] * (11 - len(cells)), speed


def _warm_imports() -> None:
    """Import the training and serving stacks first, so the first family's cells do not pay
    for them."""
    import peft  # noqa: F401
    import transformers

    from mmdemo.finetune import loop  # noqa: F401

    transformers.Trainer  # noqa: B018  (a lazy import)


def run(quick: bool = False) -> Table:
    from mmdemo.flows.generation import GenerationSettings
    from mmdemo.models.families import FAMILIES

    gen = GenerationSettings(max_new_tokens=8 if quick else 32, greedy=True)
    repeat = 1 if quick else 5
    table = Table(
        "families",
        "VLM families: tiny builds on the CPU (bf16), what works",
        [
            "family",
            "class",
            "tiny build",
            "loads",
            "first token",
            "decode tok/s",
            "chat",
            "arena",
            "trains (2 steps)",
            "hot-swap",
            "mixed batch",
        ],
    )
    _warm_imports()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="mmdemo-families-") as tmp:
        for family in FAMILIES.values():
            if family.tiny:  # each family in its own data folder (its own adapter store)
                rows[family.key] = _family_row(family, Path(tmp) / family.key, gen, repeat)
    base = rows.get(BASELINE, (None, None))[1]
    for cells, speed in rows.values():
        if speed is not None:
            ttft, rate = speed
            cells[4] = ms(ttft) + (f" ({ttft / base[0]:.2f}x)" if base else "")
            cells[5] = f"{rate:.0f}" + (f" ({rate / base[1]:.2f}x)" if base else "")
        table.rows.append(cells)
    refused = [f.title for f in FAMILIES.values() if not f.tiny]
    table.notes += [
        f"Greedy answers of {gen.max_new_tokens} new tokens at most about one image "
        f"({IMAGE.name}); first token and decode speed: median of {repeat} after a warm-up, "
        "bf16 weights on the CPU. The tiny builds are the real architectures at tiny widths "
        "(random weights): the speeds compare the code paths, not the real models.",
        "Ratios are against SmolVLM (the app's default family), measured in the same run.",
        "Tiny build: a forced rebuild after a first one (the family's imports paid); trains: "
        "the whole in-process run (loading the base, 2 steps, saving the adapter).",
        "Hot-swap: the adapter trained in the row's own run is loaded onto the running VLM; "
        "its switch time is that first request's adapter load.",
        f"Not built here: {', '.join(refused)} (gpu profile only, remote code behind "
        "MMDEMO_TRUST_REMOTE_CODE; refused otherwise)."
        if refused
        else "",
    ]
    table.notes = [n for n in table.notes if n]
    return table
