"""How the Train tab shows a run: status line with a progress bar, the loss curve's data, the
result, and the bake-off table. Pure formatting of the status dicts ``TrainService`` returns."""

from __future__ import annotations

from typing import Any

from mmdemo.flows.system import human_bytes

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
