"""Choose each fine-tuning method's hyperparameters on the validation split (never the test
split): ``python -m mmdemo bench finetune-sweep [--write]``.

For every method the sweep trains the embedded SmolLM2-135M-Instruct (real weights) on the
built-in text task with each value it tries, at the bake-off's budget (``BUDGET``, seed 0),
and measures the loss on the validation split's answer tokens. The value with the lowest loss
becomes the method's default: ``--write`` rewrites the generated block of
``mmdemo/finetune/defaults.py`` and the table in docs/benchmarks.md, which lists every value
tried. Two knobs are tried after the learning rate, at the best rate: LOMO's gradient-norm
clip and MeZO's perturbation size. Each run starts from a fresh copy of the weights (read once).
"""

from __future__ import annotations

import copy
import gc
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.bench.report import Table

DEFAULTS_FILE = Path(__file__).resolve().parents[1] / "finetune" / "defaults.py"
VALIDATION_EXAMPLES = 64  # of the validation split (answer-token loss)
EXTEND = 2  # extra rates tried past the grid's edge when the best is there

# learning rates tried per method (AdaLomo needs CUDA: kept as it is where it cannot run)
GRID: dict[str, tuple[float, ...]] = {
    "lora": (3e-4, 1e-3, 3e-3),
    "dora": (3e-4, 1e-3, 3e-3),
    "qlora": (3e-4, 1e-3, 3e-3),
    "ia3": (3e-3, 1e-2, 3e-2),
    "lora-fa": (1e-3, 3e-3, 1e-2),
    "dylora": (3e-4, 1e-3, 3e-3),
    "bottleneck": (3e-4, 3e-3, 1e-2),
    "lomo": (1e-3, 1e-2, 3e-2),
    "mezo": (1e-5, 1e-4, 1e-3),
    "full": (1e-5, 3e-5, 1e-4),
}
LOMO_CLIPS = (1.0,)  # tried at LOMO's best rate (0: no clip, the first try)
MEZO_EPS = (1e-2,)  # tried at MeZO's best rate (1e-3, the paper's, is the first try)


@dataclass(frozen=True)
class Budget:
    """The bake-off's training budget (the sweep tunes for the budget it will be scored at)."""

    steps: int = 30
    mezo_steps: int = 150  # MeZO: forward passes only, so more, cheaper steps
    batch_size: int = 8
    rank: int = 8


BUDGET = Budget()


@dataclass
class Trial:
    method: str
    lr: float
    knobs: dict[str, float]
    val_loss: float
    seconds: float


def train_and_validate(
    settings: Any,
    method: str,
    lr: float,
    budget: Budget,
    knobs: dict[str, float],
    seed: int = 0,
    validation: int = VALIDATION_EXAMPLES,
    loaded: tuple[Any, Any] | None = None,
) -> Trial:
    """One short run in this process; the validation split's answer-token loss after it
    (``lr`` 0: the method's default). ``loaded``: a (model, tokenizer) loaded once, copied
    for each run instead of read again (not for QLoRA, whose base loads in 4 bits)."""
    from transformers import set_seed

    from mmdemo.finetune.collate import Collator
    from mmdemo.finetune.config import TrainConfig
    from mmdemo.finetune.inputs import load_base
    from mmdemo.finetune.loop import validation_loss
    from mmdemo.finetune.methods import get_method
    from mmdemo.finetune.precision import use_bf16
    from mmdemo.finetune.progress import MemorySampler, StepMeter, StopSwitch
    from mmdemo.finetune.stage import Stage, StageEnv
    from mmdemo.finetune.targets import find_targets
    from mmdemo.finetune.textdata import text_dataset

    steps = budget.mezo_steps if method == "mezo" else budget.steps
    cfg = TrainConfig(
        method=method,
        base="llm",
        steps=steps,
        batch_size=budget.batch_size,
        rank=budget.rank,
        lr=lr,
        seed=seed,
        mezo_eps=knobs.get("mezo_eps", 0.0),
        extra={k: v for k, v in knobs.items() if k != "mezo_eps"},
    )
    data = text_dataset()
    chosen = get_method(method)
    set_seed(seed)
    started = time.perf_counter()
    device = _device(settings)
    if loaded is not None and not chosen.load_kwargs(device):
        model, tokenizer = copy.deepcopy(loaded[0]), loaded[1]
    else:
        model, tokenizer, _, _ = load_base(cfg, settings, device, chosen.load_kwargs(device))
    collator = Collator(tokenizer, with_images=False)
    with tempfile.TemporaryDirectory(prefix="mmdemo-sweep-") as tmp:
        work = Path(tmp)
        plan = chosen.prepare(model, cfg, find_targets(model, cfg.attach), work)
        bf16 = use_bf16(cfg.bf16, device, plan.total)
        lr = lr or chosen.lr_for(plan.total)
        stage = Stage("vqa", data["train"], steps, lr)
        meter = StepMeter(lambda event: None, steps, MemorySampler(device))
        env = StageEnv(collator, cfg, device, bf16, meter, StopSwitch(), work)
        chosen.run_stage(plan, stage, env)
        loss = validation_loss(plan.model, collator, data["validation"], device, validation, bf16)
    seconds = time.perf_counter() - started
    del model, plan
    gc.collect()
    return Trial(method, lr, dict(knobs), float(loss or 0.0), seconds)


def base_validation_loss(settings: Any, validation: int = VALIDATION_EXAMPLES) -> float:
    """The untrained model's validation loss (every method must get below it)."""
    from mmdemo.finetune.collate import Collator
    from mmdemo.finetune.loop import validation_loss
    from mmdemo.finetune.precision import use_bf16
    from mmdemo.finetune.textdata import text_dataset
    from mmdemo.models.backends.llm import load_parts

    device = _device(settings)
    model, tokenizer = load_parts(settings.model_id("llm"), settings, device, "float32")
    data = text_dataset()
    # scored like every trial: the same examples, under bf16 autocast where the runs train so
    bf16 = use_bf16("auto", device, sum(p.numel() for p in model.parameters()))
    loss = validation_loss(
        model,
        Collator(tokenizer, with_images=False),
        data["validation"],
        device,
        limit=validation,
        bf16=bf16,
    )
    return float(loss or 0.0)


def sweep_method(
    settings: Any, method: str, budget: Budget, loaded: tuple[Any, Any] | None = None
) -> list[Trial]:
    """Every value tried for ``method``, in order (rates first, then the extra knob);
    ``loaded``: the base model read once, copied for each run."""
    base_knobs: dict[str, float] = {}
    if method == "lomo":
        base_knobs = {"lomo_clip": 0.0}
    if method == "mezo":
        base_knobs = {"mezo_eps": 1e-3}
    rates = sorted(GRID[method])
    trials = [
        train_and_validate(settings, method, lr, budget, base_knobs, loaded=loaded) for lr in rates
    ]
    # a best rate at the edge of the grid: go one more step (x3) that way, at most twice
    for _ in range(EXTEND):
        best = min(trials, key=lambda t: t.val_loss)
        tried = sorted(t.lr for t in trials)
        if best.lr == tried[-1]:
            nxt = best.lr * 3
        elif best.lr == tried[0]:
            nxt = best.lr / 3
        else:
            break
        trials.append(train_and_validate(settings, method, nxt, budget, base_knobs, loaded=loaded))
    best = min(trials, key=lambda t: t.val_loss)
    extra = {"lomo": ("lomo_clip", LOMO_CLIPS), "mezo": ("mezo_eps", MEZO_EPS)}.get(method)
    if extra is not None:
        knob, values = extra
        for value in values:
            trials.append(
                train_and_validate(settings, method, best.lr, budget, {knob: value}, loaded=loaded)
            )
    return trials


def _device(settings: Any) -> str:
    from mmdemo.models.device import pick_device

    return pick_device(settings.device)


def run(quick: bool = False, only: tuple[str, ...] = (), device: str = "cpu") -> Table:
    from mmdemo.config import Settings

    settings = Settings.load(profile="cpu", device=device, llm="embedded:smollm2-135m-instruct")
    budget = Budget(steps=4, mezo_steps=8) if quick else BUDGET
    methods = [m for m in GRID if not only or m in only]
    load = os.getloadavg()[0]
    base = base_validation_loss(settings)
    table = Table(
        "finetune-sweep",
        "Fine-tuning sweep: each method's defaults chosen on the validation split",
        ["method", "values tried (validation loss)", "chosen", "validation loss", "base"],
    )
    from mmdemo.finetune.config import TrainConfig
    from mmdemo.finetune.inputs import load_base

    model, tokenizer, _, _ = load_base(TrainConfig(base="llm"), settings, _device(settings), {})
    chosen: dict[str, Trial] = {}
    for method in methods:
        trials = sweep_method(settings, method, budget, (model, tokenizer))
        best = min(trials, key=lambda t: t.val_loss)
        chosen[method] = best
        tried = "; ".join(f"{_describe(t)}: {t.val_loss:.3f}" for t in trials)
        table.add(method, tried, _describe(best), f"{best.val_loss:.3f}", f"{base:.3f}")
    table.notes += [
        f"Device: {_device(settings)}. "
        f"SmolLM2-135M-Instruct (embedded, real weights), built-in text task, seed 0, batch "
        f"{budget.batch_size}, rank/width {budget.rank}, {budget.steps} steps "
        f"(MeZO {budget.mezo_steps}), cosine decay, no warm-up; validation loss on "
        f"{VALIDATION_EXAMPLES} validation questions' answer tokens (the test split is not "
        "read). The chosen values are each method's defaults (mmdemo/finetune/defaults.py).",
        "LOMO's clip and MeZO's perturbation size are tried after the rate, at the best rate; "
        "when the best rate is at the grid's edge, up to two more (x3 or /3) are tried.",
        f"Load average when the run started: {load:.2f}.",
    ]
    table.chosen = chosen  # type: ignore[attr-defined]  (for write_defaults)
    return table


def _describe(trial: Trial) -> str:
    parts = [f"lr {trial.lr:g}"]
    parts += [f"{k.replace('_', ' ')} {v:g}" for k, v in trial.knobs.items()]
    return ", ".join(parts)


def write_defaults(table: Table, path: Path = DEFAULTS_FILE) -> Path:
    """Rewrite the sweep's block of the defaults table with the chosen values (methods the
    sweep did not run keep their rows)."""
    text = path.read_text(encoding="utf-8")
    start, end = "# bench:finetune-sweep\n", "# /bench:finetune-sweep\n"
    head, rest = text.split(start)
    block, tail = rest.split(end)
    rows = dict(re.findall(r'^        "([a-z0-9-]+)": (Defaults\(.*\)),$', block, re.M))
    stamp = time.strftime("%Y-%m-%d")
    for method, trial in getattr(table, "chosen", {}).items():
        args = [f"lr={trial.lr:g}"]
        if "mezo_eps" in trial.knobs:
            args.append(f"mezo_eps={trial.knobs['mezo_eps']:g}")
        if "lomo_clip" in trial.knobs:
            args.append(f"lomo_clip={trial.knobs['lomo_clip']:g}")
        args.append(f'source="sweep {stamp}"')
        rows[method] = f"Defaults({', '.join(args)})"
    body = "".join(f'        "{m}": {d},\n' for m, d in rows.items())
    new = f"PRETRAINED = MappingProxyType(\n    {{\n{body}    }}\n)\n"
    path.write_text(head + start + new + end + tail, encoding="utf-8")
    return path


def write_extra(tables: list[Table]) -> str:
    """``bench --write``: the defaults table in the code too."""
    return str(write_defaults(tables[0]))
