"""A one-page report per run: Markdown with the scores, the setup and pictures (loss curve,
scores by question type, DyLoRA's score per rank), written beside the run's predictions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmdemo.finetune.config import TrainConfig
from mmdemo.units import human_bytes

REPORT_FILES = ("report.md", "loss.png", "scores.png", "ranks.png")


def plot_loss(history: list[tuple[int, float]], path: Path, title: str = "training loss") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    if history:
        steps, losses = zip(*history, strict=True)
        ax.plot(steps, losses, color="#4f46e5", linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_bars(values: dict[str, float], path: Path, title: str, ylabel: str = "score") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.bar(list(values), list(values.values()), color="#0ea5e9")
    ax.set_ylim(0, max(1.0, max(values.values(), default=1.0)))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(
    run_dir: Path, cfg: TrainConfig, result: Any, rows: list[Any], facts: dict[str, Any]
) -> Path:
    """``report.md`` + ``loss.png`` + ``scores.png`` (+ ``ranks.png``) in ``run_dir``."""
    run_dir = Path(run_dir)
    plot_loss(result.loss_history, run_dir / "loss.png", f"{cfg.method}: training loss")
    scores = {k: v for k, v in result.metrics.items() if k != "count"}
    if scores:
        plot_bars(scores, run_dir / "scores.png", "held-out scores")
    lines = [
        f"# {result.adapter}",
        "",
        f"**{cfg.method}** on {result.data} · stages `{cfg.stages}` · attach `{cfg.attach}` · "
        f"{cfg.steps} steps, batch {cfg.batch_size}, lr {cfg.lr or 'method default'}, "
        f"rank {cfg.rank}, seed {cfg.seed}",
        "",
        "| metric | value |",
        "| --- | --- |",
    ]
    lines += [f"| {k} | {v} |" for k, v in result.metrics.items()]
    if result.val_loss is not None:
        lines.append(f"| validation loss | {result.val_loss:.4f} |")
    lines += [
        f"| trainable parameters | {result.trainable:,} of {result.total:,} |",
        f"| peak memory (training) | {human_bytes(result.peak_memory_bytes)} |",
        f"| memory of one inference forward | {human_bytes(result.inference_memory_bytes)} |",
        f"| training time | {result.train_seconds:.1f} s |",
    ]
    lines += [f"| {k} | {v} |" for k, v in facts.items()]
    lines += ["", "![loss](loss.png)", ""]
    if scores:
        lines += ["![scores](scores.png)", ""]
    if result.rank_scores:
        by_rank = {str(r): s.get("overall", 0.0) for r, s in result.rank_scores.items()}
        plot_bars(
            by_rank, run_dir / "ranks.png", "DyLoRA: overall score per served rank", "overall"
        )
        lines += [
            "## Score per rank (one DyLoRA adapter)",
            "",
            "| rank | " + " | ".join(by_rank) + " |",
        ]
        lines += [
            "| --- " * (len(by_rank) + 1) + "|",
            "| overall | " + " | ".join(f"{v:.3f}" for v in by_rank.values()) + " |",
            "",
            "![ranks](ranks.png)",
            "",
        ]
    if result.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in result.notes] + [""]
    wrong = [r for r in rows if r.score < 1.0][:10]
    if wrong:
        lines += [
            "## Some misses",
            "",
            "| question | reference | prediction |",
            "| --- | --- | --- |",
        ]
        lines += [f"| {r.question} | {r.answer} | {r.prediction or '(empty)'} |" for r in wrong]
        lines.append("")
    lines.append("Per-question results: `predictions.jsonl` beside this report.")
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (run_dir / "result.json").write_text(
        json.dumps(
            {
                "adapter": result.adapter,
                "metrics": result.metrics,
                "val_loss": result.val_loss,
                "rank_scores": {str(k): v for k, v in result.rank_scores.items()},
                "trainable": result.trainable,
                "total": result.total,
                "peak_memory_bytes": result.peak_memory_bytes,
                "inference_memory_bytes": result.inference_memory_bytes,
                "train_seconds": result.train_seconds,
                "loss_history": result.loss_history,
                "facts": facts,
                "notes": result.notes,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    return path
