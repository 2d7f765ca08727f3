"""Fine-tuning studio: does training move the models, and what each method costs.

Every run goes through the app's own training worker (one process per run, so each method's
peak memory is measured in a fresh process) on a scratch data folder that shares the model
builds. Four tables:

1. the tiny VLM on the built-in synthetic set: untrained base and an image-blind baseline
   vs. LoRA (held-out closed accuracy, open recall);
2. two-stage (caption, then VQA) vs. VQA-only on the same total step budget;
3. real weights: LoRA on the embedded SmolLM2-135M lowers held-out loss on a text task;
4. the bake-off: every method on the same data and steps (tiny VLM: score, time, trainable
   parameters; SmolLM2-135M: peak training memory against one inference forward).
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from mmdemo.bench.report import Table

LORA_STEPS = 3000
SEEDS = (0, 1, 2)  # learning on the tiny VLM is a noisy phase change: report every seed
REAL_STEPS = 60
BAKEOFF_STEPS = 1000
MEMORY_STEPS = 8
# the tiny-VLM recipe: LoRA r=16 (alpha 32) on the language model, projector trained in full,
# batch 16, peak lr 3e-3 with cosine decay and no warm-up, float32 on one thread
RECIPE = dict(
    rank=16,
    alpha=32,
    lr=3e-3,
    batch_size=16,
    warmup=0,
    schedule="cosine",
    attach="language+projector",
)
TARGET_CLOSED = 0.90
PLOT = Path(__file__).resolve().parents[2] / "docs" / "finetune-bakeoff.png"


def _mb(n: float) -> str:
    return f"{n / 2**20:.0f} MB"


def _scratch(settings: Any, root: Path) -> Any:
    """Settings whose data folder is ``root``, sharing the model builds of ``settings``."""
    (root / "models").mkdir(parents=True, exist_ok=True)
    for sub in ("tiny", "embedded"):
        src = settings.models_dir / sub
        src.mkdir(parents=True, exist_ok=True)
        if not (root / "models" / sub).exists():
            (root / "models" / sub).symlink_to(src)
    return settings.replace(home=root)


def _train(service: Any, timeout: float = 7200, **knobs: Any) -> dict[str, Any]:
    status = service.wait(service.submit(knobs), timeout=timeout)
    if status["state"] != "done":
        raise RuntimeError(f"{knobs.get('method')}: {status['state']}: {status['error']}")
    return status


def _blind(task: str = "vqa") -> dict[str, float]:
    from mmdemo.finetune.evaluate import blind_baseline
    from mmdemo.finetune.synthetic import synthetic_split

    return blind_baseline(synthetic_split("train", task), synthetic_split("test", task))


PARTS = ("lora", "real", "bakeoff")  # lora: the headline and the two-stage table


def run(quick: bool = False, only: tuple[str, ...] = PARTS) -> list[Table]:
    from mmdemo.config import Settings
    from mmdemo.flows.train import TrainService
    from mmdemo.models.tiny import build_all

    base = Settings.load(profile="tiny", device="cpu")
    build_all(base.models_dir)
    load = os.getloadavg()[0]
    scale = 0.2 if quick else 1.0
    steps = 200 if quick else LORA_STEPS
    seeds = SEEDS[:1] if quick else SEEDS
    with tempfile.TemporaryDirectory() as tmp:
        settings = _scratch(base, Path(tmp))
        tiny = TrainService(settings, threads=1)  # tiny models train fastest on one thread
        tables = []
        if "lora" in only:
            headline, vqa_runs = _headline(tiny, steps, scale, seeds)
            tables += [headline, _two_stage(tiny, steps, scale, vqa_runs, seeds)]
        if "real" in only:
            tables.append(_real_weights(settings, 10 if quick else REAL_STEPS))
        if "bakeoff" in only:
            tables.append(_bakeoff(tiny, settings, 60 if quick else BAKEOFF_STEPS, scale, quick))
    for table in tables:
        table.notes.append(f"Load average when the run started: {load:.2f}.")
    return tables


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r["metrics"].get(key, 0) for r in runs)


def _headline(
    service: Any, steps: int, scale: float, seeds: tuple[int, ...]
) -> tuple[Table, list[dict[str, Any]]]:
    table = Table(
        "finetune-lora",
        "Fine-tuning: LoRA on the tiny VLM, built-in synthetic shapes (held-out test split)",
        ["model", "closed accuracy", "open recall", "overall", "train time"],
    )
    untrained = service.evaluate("base", "builtin")
    blind = _blind()
    runs = [
        _train(
            service,
            method="lora",
            steps=steps,
            scale=scale,
            seed=seed,
            name=f"bench-lora-{seed}",
            **RECIPE,
        )
        for seed in seeds
    ]
    for label, m in (("untrained base", untrained), ("image-blind baseline", blind)):
        table.add(
            label, m.get("closed_accuracy", 0), m.get("open_recall", 0), m.get("overall", 0), "—"
        )
    for seed, run in zip(seeds, runs, strict=True):
        m = run["metrics"]
        table.add(
            f"LoRA r=16, {steps} steps, seed {seed}",
            m["closed_accuracy"],
            m["open_recall"],
            m["overall"],
            f"{run['elapsed_s']:.0f} s",
        )
    closed = _median(runs, "closed_accuracy")
    table.add(
        f"**LoRA, median of {len(runs)} seeds**",
        f"**{closed:.4g}**",
        f"{_median(runs, 'open_recall'):.4g}",
        f"{_median(runs, 'overall'):.4g}",
        "",
    )
    verdict = "met" if closed >= TARGET_CLOSED else "missed"
    table.notes += [
        f"Target: held-out closed accuracy >= {TARGET_CLOSED:.0%} — {verdict} on the median "
        f"of {len(runs)} seeds ({closed:.1%}; {runs[0]['metrics']['count']} test questions, "
        "closed and open).",
        "Why several seeds: on the tiny VLM the colour and count skills appear suddenly and "
        "not at the same step in every run (a seed changes the adapter's initialisation and "
        "the data order); single runs of the same recipe differ by several points.",
        "Image-blind baseline: always the most common training answer to the same question "
        "text (what a model that ignores the image can reach); chance for yes/no is 50%, for "
        "a colour 17%.",
        "LoRA r=16 (alpha 32) on the language model's attention and MLP layers, projector "
        "trained in full (attach=language+projector), batch 16, lr 3e-3 with cosine decay and "
        "no warm-up, float32, 1 thread. The tiny VLM is the real SmolVLM/Idefics3 architecture "
        "with random weights: it has to learn to see the set from scratch; real weights start "
        "far higher.",
    ]
    return table, runs


def _two_stage(
    service: Any, steps: int, scale: float, vqa_runs: list[dict[str, Any]], seeds: tuple[int, ...]
) -> Table:
    table = Table(
        "finetune-two-stage",
        "Fine-tuning: two-stage (captioning, then VQA) vs. VQA only, same total steps",
        ["recipe", "steps (caption + VQA)", "closed accuracy", "open recall", "overall", "seeds"],
    )
    two = [
        _train(
            service,
            method="lora",
            stages="two-stage",
            steps=steps,
            scale=scale,
            seed=seed,
            name=f"bench-two-stage-{seed}",
            **RECIPE,
        )
        for seed in seeds
    ]
    for label, split, runs in (
        ("VQA only (the runs above)", f"0 + {steps}", vqa_runs),
        ("caption, then VQA", f"{steps // 2} + {steps - steps // 2}", two),
    ):
        per_seed = " / ".join(f"{r['metrics']['closed_accuracy']:.3f}" for r in runs)
        table.add(
            label,
            split,
            f"{_median(runs, 'closed_accuracy'):.4g}",
            f"{_median(runs, 'open_recall'):.4g}",
            f"{_median(runs, 'overall'):.4g}",
            f"median of {len(runs)}; closed per seed {per_seed}",
        )
    table.notes.append(
        "Both on the tiny VLM and the built-in set, with the headline's recipe and seeds; the "
        "two-stage recipe spends half the budget on captions of the same training images (the "
        "medical VQA recipe: learn to describe, then to answer)."
    )
    return table


def _real_weights(settings: Any, steps: int) -> Table:
    """LoRA on the embedded SmolLM2-135M (real weights) on the text version of the set."""
    from mmdemo.flows.train import TrainService

    real = settings.replace(profile="cpu", llm="embedded:smollm2-135m-instruct")
    service = TrainService(real, threads=os.cpu_count() or 1)
    table = Table(
        "finetune-real",
        "Fine-tuning real weights: LoRA on the embedded SmolLM2-135M-Instruct (text task)",
        ["model", "held-out loss", "closed accuracy", "open recall", "train time"],
    )
    before = _base_text_scores(real)
    after = _train(service, method="lora", base="llm", steps=steps, scale=0.2, eval_limit=140)
    table.add(
        "base (no training)",
        _fmt(before["val_loss"]),
        before.get("closed_accuracy"),
        before.get("open_recall"),
        "—",
    )
    m = after["metrics"]
    table.add(
        f"LoRA r=8, {steps} steps",
        _fmt(after["val_loss"]),
        m.get("closed_accuracy"),
        m.get("open_recall"),
        f"{after['elapsed_s']:.0f} s",
    )
    table.notes.append(
        'The scenes of the built-in set written out in words ("Scene, from left to right: a '
        'red circle and a blue square. Question: ..."), answers of a few words. Held-out loss '
        "on the validation split's answer tokens; scores on 140 test questions. Both rows "
        "through the same evaluation code. Proof that training moves a real model, not only "
        "random ones."
    )
    return table


def _base_text_scores(settings: Any) -> dict[str, Any]:
    """The untrained SmolLM2's held-out loss and scores, as a training run measures them."""
    from mmdemo.finetune.collate import Collator
    from mmdemo.finetune.evaluate import evaluate
    from mmdemo.finetune.loop import validation_loss
    from mmdemo.finetune.textdata import text_dataset
    from mmdemo.models.backends.llm import load_parts

    model, tokenizer = load_parts(settings.model_id("llm"), settings, "cpu", "float32")
    collator = Collator(tokenizer, with_images=False)
    data = text_dataset(0.2)
    metrics, _ = evaluate(model, collator, data["test"][:140], "cpu")
    return {**metrics, "val_loss": validation_loss(model, collator, data["validation"], "cpu")}


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else str(value)


def _bakeoff(tiny: Any, settings: Any, steps: int, scale: float, quick: bool) -> Table:
    from mmdemo.errors import MMDemoError
    from mmdemo.finetune.methods import METHODS, get_method
    from mmdemo.flows.train import TrainService

    real = settings.replace(profile="cpu", llm="embedded:smollm2-135m-instruct")
    memory = TrainService(real, threads=os.cpu_count() or 1)
    table = Table(
        "finetune-bakeoff",
        "Fine-tuning bake-off: every method, same data and step budget",
        [
            "method",
            "trainable params (tiny VLM)",
            "closed acc.",
            "overall",
            "train time",
            "SmolLM2-135M peak memory",
            "inference forward",
            "peak / inference",
        ],
    )
    dylora_ranks: dict[str, Any] = {}
    points: list[tuple[str, int, float, float]] = []  # method, trainable, overall, peak/infer
    for method in METHODS:
        try:
            get_method(method).check("cpu")
        except MMDemoError as exc:
            table.add(method, "—", "—", "—", "—", "—", "—", f"cannot run here: {exc.message}")
            continue
        knobs = {**RECIPE, "attach": "language", "lr": 0.0}  # each method's default rate
        status = _train(tiny, method=method, steps=steps, scale=scale, **knobs)
        m, info = status["metrics"], status["info"]
        mem = _train(
            memory,
            method=method,
            base="llm",
            steps=2 if quick else MEMORY_STEPS,
            batch_size=8,
            scale=0.2,
            eval_limit=8,
        )
        peak, infer = mem["peak_memory_bytes"], mem["info"]["inference_memory_bytes"]
        table.add(
            method,
            f"{info['trainable']:,}",
            m.get("closed_accuracy"),
            m.get("overall"),
            f"{status['elapsed_s']:.0f} s",
            _mb(peak),
            _mb(infer),
            f"{peak / infer:.2f}x",
        )
        points.append((method, info["trainable"], m.get("overall", 0), peak / infer))
        if method == "dylora":
            dylora_ranks = status.get("rank_scores") or {}
    if points and not quick:
        _plot(points, PLOT)
        table.notes.append(f"Plot: [{PLOT.name}]({PLOT.name}).")
    if dylora_ranks:
        ranks = ", ".join(f"r={r}: {s.get('overall', 0):.3f}" for r, s in dylora_ranks.items())
        table.notes.append(f"DyLoRA, one adapter served at every rank (overall): {ranks}.")
    table.notes += [
        f"Score columns: tiny VLM, built-in set, {steps} steps, batch 16, rank 16, each "
        "method's default learning rate, attach=language (bottleneck adapters cannot take the "
        "projector); same seed and data order for all.",
        "Memory columns: peak resident memory of the training process (sampled every 20 ms) "
        "on the embedded SmolLM2-135M (real weights, text task, batch 8), against the peak of "
        "one no-grad forward of the same batch in the same process; each method in a fresh "
        "process. Both include the Python/torch runtime (~0.5 GB).",
        "full = full fine-tuning with AdamW, the baseline LOMO and MeZO are measured against. "
        "Full-parameter methods are served as a LoRA extracted from their weight change "
        "(truncated SVD, rank 64: exact on the tiny VLM).",
    ]
    return table


def _plot(points: list[tuple[str, int, float, float]], out: Path) -> None:
    """The bake-off at a glance: score against trainable parameters, and memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, trainable, overall, _ratio in points:
        left.scatter(trainable, overall)
        left.annotate(name, (trainable, overall), textcoords="offset points", xytext=(4, 4))
    left.set(xscale="log", xlabel="trainable parameters (tiny VLM)", ylabel="held-out overall")
    left.set_title("Score vs. trainable parameters")
    names = [p[0] for p in points]
    right.barh(names, [p[3] for p in points], color="#4c78a8")
    right.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    right.set(xlabel="peak training memory / one inference forward (SmolLM2-135M)")
    right.set_title("Memory")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
