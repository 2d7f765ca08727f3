"""How the Fine-tune tab shows a run (status line with a progress bar, the loss curve's data,
the result, its report) and a bake-off: the measured real-weights one (``flows.bakeoff``) or
a visitor's own runs, as a table and one picture (score against trainable parameters, marker
size and colour the memory a method needs). Pure formatting: data in, text, frames and
figures out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmdemo.flows.bakeoff import Bakeoff
from mmdemo.units import human_bytes, human_count

BAKEOFF_HEADERS = [
    "method",
    "state",
    "trainable params",
    "peak memory",
    "inference memory",
    "train time",
    "closed acc.",
    "open recall",
    "overall",
]


def status_md(status: dict[str, Any] | None) -> str:
    if not status:
        return "No run yet. Pick a method and press **Train**."
    state = status["state"]
    head = f"**{status['id']}** · {status['kind']} · **{state}**"
    if state == "queued":
        return f"{head} · position {status['position']} in the queue"
    parts = [head]
    if status["phase"]:
        parts.append(status["phase"])
    if status["total_steps"]:
        parts.append(f"step {status['step']}/{status['total_steps']}")
    if status["tokens_per_s"]:
        parts.append(f"{status['tokens_per_s']:.0f} tokens/s")
    if status["peak_memory_bytes"]:
        parts.append(f"peak memory {human_bytes(status['peak_memory_bytes'])}")
    if state == "running" and status["eta_s"] is not None:
        parts.append(f"ETA {status['eta_s']:.0f} s")
    parts.append(f"{status['elapsed_s']:.0f} s elapsed")
    text = " · ".join(parts)
    if status["total_steps"]:
        share = status["step"] / max(1, status["total_steps"])
        text += f'\n\n<progress value="{share:.3f}" max="1" style="width:100%"></progress>'
    if state == "error":
        text += f"\n\n**Failed:** {status['error']}" + (
            f"\n\n**Fix:** {status['fix']}" if status["fix"] else ""
        )
    if state == "stopped":
        text += "\n\nStopped: nothing was written to the adapter store."
    return text


def loss_rows(status: dict[str, Any] | None) -> Any:
    import pandas as pd

    history = (status or {}).get("loss_history") or []
    # typed columns even when empty: the plot reads a number axis from the first value it gets
    return pd.DataFrame(history, columns=["step", "loss"]).astype({"step": int, "loss": float})


def result_md(status: dict[str, Any] | None) -> str:
    if not status or status["state"] != "done":
        return ""
    metrics = status["metrics"]
    scores = " · ".join(
        f"{k.replace('_', ' ')} **{v}**" for k, v in metrics.items() if k != "count"
    )
    info = status.get("info") or {}
    lines = [
        f"### Adapter `{status['adapter']}` is ready",
        f"{scores} (on {metrics.get('count', '?')} held-out questions)",
        "",
        f"Trainable parameters {info.get('trainable', 0):,} of {info.get('total', 0):,} · "
        f"data: {info.get('data', '')} · device {info.get('device', '')}"
        + (" · bf16" if info.get("bf16") else ""),
        "",
        "It is in the **Adapter** menu of the Visual chat and Arena tabs now: open the menu "
        "and pick it.",
        *(f"\n_Note: {n}_" for n in status.get("notes") or []),
    ]
    return "\n".join(lines) if status["kind"] == "train" else f"Metrics: {scores}"


def report_text(status: dict[str, Any] | None) -> str:
    """The run's report (Markdown) with its picture links dropped (they are shown apart)."""
    from pathlib import Path

    path = (status or {}).get("report")
    if not path or not Path(path).is_file():
        return ""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.startswith("!["))


def report_images(status: dict[str, Any] | None) -> list[tuple[Any, str]]:
    """The report's pictures as images with their captions. Read here, not passed as paths:
    a run's folder is under MMDEMO_HOME, which Gradio does not serve files from."""
    from pathlib import Path

    from PIL import Image

    path = (status or {}).get("report")
    if not path:
        return []
    folder = Path(path).parent
    names = {"loss.png": "training loss", "scores.png": "held-out scores", "ranks.png": "per rank"}
    items = []
    for name, label in names.items():
        if (folder / name).is_file():
            with Image.open(folder / name) as picture:
                items.append((picture.convert("RGB"), label))
    return items


def bakeoff_rows(statuses: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for s in statuses:
        info, metrics = s.get("info") or {}, s.get("metrics") or {}
        method = (s.get("request") or {}).get("method", "?")
        rows.append(
            [
                method,
                s["state"] if s["state"] != "running" else f"step {s['step']}/{s['total_steps']}",
                f"{info.get('trainable', 0):,}" if info else "",
                human_bytes(s["peak_memory_bytes"]) if s["peak_memory_bytes"] else "",
                human_bytes(info["inference_memory_bytes"])
                if info.get("inference_memory_bytes")
                else "",
                f"{s['elapsed_s']:.0f} s" if s["state"] == "done" else "",
                metrics.get("closed_accuracy", ""),
                metrics.get("open_recall", ""),
                metrics.get("overall", ""),
            ]
        )
    return rows


# -- bake-offs ---------------------------------------------------------------------------

# share of the table's width per column (the headers wrap; the scores stay on one line)
COLUMN_WIDTHS = ["13%", "8%", "8%", "8%", "10%", "13%", "11%", "7%", "7%", "15%"]
MEASURED_HEADERS = [
    "method",
    "closed acc.",
    "open recall",
    "overall",
    "gain over base (% of LoRA's)",
    "trainable params",
    "peak memory above the model",
    "train time",
    "tokens/s",
    "note",
]


@dataclass(frozen=True)
class Point:
    """One method on the picture."""

    method: str
    trainable: int
    overall: float
    memory_bytes: int


def _percent(value: float) -> str:
    """100 %, 12 %, 1.8 %, 0.022 %: two significant digits below 10, whole numbers above."""
    return f"{value:.0f} %" if value >= 10 else f"{value:.2g} %"


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def measured_caption(bakeoff: Bakeoff) -> str:
    return (
        f"**Measured bake-off** — {bakeoff.caption()}. Gain over base is each method's rise in "
        "overall score as a share of LoRA's. In the picture, marker size and colour are the "
        "peak memory a method needs above the model's own weights."
    )


def empty_table() -> Any:
    import pandas as pd

    return pd.DataFrame([], columns=MEASURED_HEADERS)


def measured_table(bakeoff: Bakeoff) -> Any:
    """The measured bake-off as a table: the untrained base first, then each method."""
    import pandas as pd

    base = bakeoff.base
    rows = [
        [
            "base (no training)",
            _score(base.get("closed_accuracy")),
            _score(base.get("open_recall")),
            _score(base.get("overall")),
            "0 %",
            "0",
            "",
            "",
            "",
            "",
        ]
    ]
    for r in bakeoff.rows:
        if r.unavailable:
            rows.append([r.method, "—", "—", "—", "", "", "", "", "", f"not run: {r.unavailable}"])
            continue
        share = "" if not r.total else f" ({_percent(100 * (r.trainable or 0) / r.total)})"
        rows.append(
            [
                r.method,
                _score(r.closed_accuracy),
                _score(r.open_recall),
                _score(r.overall),
                "" if r.gain_share_of_lora is None else f"{100 * r.gain_share_of_lora:.0f} %",
                "" if r.trainable is None else human_count(r.trainable) + share,
                "" if r.peak_above_model_bytes is None else human_bytes(r.peak_above_model_bytes),
                "" if r.train_s is None else f"{r.train_s:.0f} s",
                "" if r.tokens_per_s is None else f"{r.tokens_per_s:.0f}",
                r.note,
            ]
        )
    return pd.DataFrame(rows, columns=MEASURED_HEADERS)


def measured_points(bakeoff: Bakeoff) -> list[Point]:
    return [
        Point(r.method, r.trainable or 0, r.overall, r.peak_above_model_bytes or 0)
        for r in bakeoff.rows
        if not r.unavailable and r.overall is not None
    ]


def visitor_table(statuses: list[dict[str, Any]]) -> Any:
    """A visitor's own bake-off runs (queued, running, finished) as a table."""
    import pandas as pd

    return pd.DataFrame(bakeoff_rows(statuses), columns=BAKEOFF_HEADERS)


def visitor_points(statuses: list[dict[str, Any]]) -> list[Point]:
    return [
        Point(
            (s.get("request") or {}).get("method", "?"),
            int((s.get("info") or {}).get("trainable", 0)),
            float(s["metrics"].get("overall", 0.0)),
            int(s.get("peak_memory_bytes") or 0),
        )
        for s in statuses
        if s["state"] == "done"
    ]


def visitor_caption(statuses: list[dict[str, Any]]) -> str:
    request = (statuses[0].get("request") or {}) if statuses else {}
    done = sum(s["state"] == "done" for s in statuses)
    return (
        f"**Your bake-off**: {len(statuses)} methods, {request.get('steps', '?')} steps each, "
        f"batch {request.get('batch_size', '?')}, seed {request.get('seed', '?')}; "
        f"finished: {done} of {len(statuses)}. Marker size and colour: training peak memory. "
        "Reload the page to see the measured bake-off again."
    )


def figure(points: list[Point], memory_label: str, base_overall: float | None = None) -> Any:
    """Overall score against trainable parameters (log scale); marker size and colour: the
    memory each method needs. None when no method has a score yet."""
    shown = [p for p in points if p.trainable > 0]
    if not shown:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.4), dpi=100)
    ax = fig.add_subplot()
    mb = [p.memory_bytes / 2**20 for p in shown]
    top = max(max(mb), 1.0)
    dots = ax.scatter(
        [p.trainable for p in shown],
        [p.overall for p in shown],
        s=[60 + 540 * m / top for m in mb],
        c=mb,
        cmap="viridis",
        vmin=0,
        alpha=0.85,
        edgecolors="#1e1b4b",
        linewidths=0.6,
        zorder=3,
    )
    for p in shown:
        ax.annotate(
            p.method, (p.trainable, p.overall), xytext=(7, 5), textcoords="offset points", size=9
        )
    if base_overall is not None:
        ax.axhline(base_overall, color="#64748b", linestyle="--", linewidth=1, zorder=1)
        ax.annotate(
            "base, untrained",
            (0.01, base_overall),
            xycoords=("axes fraction", "data"),
            xytext=(0, 4),
            textcoords="offset points",
            size=8,
            color="#475569",
        )
    ax.set_xscale("log")
    ax.margins(x=0.25)
    ax.set_ylim(-0.05, 1.08)  # scores are shares: the whole range, so pictures compare
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel("overall held-out score")
    ax.grid(alpha=0.3, zorder=0)
    fig.colorbar(dots, ax=ax, label=f"{memory_label} (MB)")
    fig.tight_layout()
    return fig


def measured_figure(bakeoff: Bakeoff) -> Any:
    return figure(
        measured_points(bakeoff), "peak memory above the model", bakeoff.base.get("overall")
    )
