"""The measured real-weights bake-off: every fine-tuning method on the same data, steps and
seeds, written by ``python -m mmdemo bench finetune --write`` to ``docs/finetune-bakeoff.json``
and read here (checked, never trusted as it is) for the Fine-tune tab and ``/bakeoff_results``.

A missing or damaged file is a ``DamagedFileError`` naming the file and the command that
writes it; the rest of the app does not depend on it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mmdemo.errors import DamagedFileError

BAKEOFF_FILE = Path(__file__).resolve().parents[2] / "docs" / "finetune-bakeoff.json"
WRITE_COMMAND = "python -m mmdemo bench finetune --write"
SCORES = ("closed_accuracy", "open_recall", "overall", "val_loss")
# per-method numbers besides the scores (absent ones are None: not measured)
COSTS = ("train_s", "trainable", "total", "peak_above_model_bytes", "tokens_per_s", "lr")


@dataclass(frozen=True)
class BakeoffRow:
    """One method's median over the seeds, or why it was not run (``unavailable``)."""

    method: str
    closed_accuracy: float | None = None
    open_recall: float | None = None
    overall: float | None = None
    val_loss: float | None = None
    train_s: float | None = None
    trainable: int | None = None
    total: int | None = None
    peak_above_model_bytes: int | None = None
    tokens_per_s: float | None = None
    lr: float | None = None
    per_seed_overall: tuple[float, ...] = ()
    note: str = ""
    unavailable: str = ""  # e.g. "needs a CUDA GPU"; empty when the method ran
    gain_share_of_lora: float | None = None  # (overall - base) / (LoRA's - base)


@dataclass(frozen=True)
class Bakeoff:
    """The whole measurement: when, on what model, with which budget, and the rows."""

    measured: str
    title: str
    model: str
    budget: dict[str, Any]
    base: dict[str, float]
    rows: tuple[BakeoffRow, ...] = field(default_factory=tuple)

    def caption(self) -> str:
        """One line: what was measured, when, on which model, with which budget."""
        b = self.budget
        seeds = b.get("seeds") or []
        parts = [
            f"{b['steps']} steps" if "steps" in b else "",
            f"batch {b['batch_size']}" if "batch_size" in b else "",
            f"median of {len(seeds)} seeds" if seeds else "",
        ]
        budget = ", ".join(p for p in parts if p)
        return f"{self.title or 'Bake-off'}: `{self.model}`, measured {self.measured}" + (
            f" · same budget for every method: {budget}" if budget else ""
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain data (the ``/bakeoff_results`` answer): what is not measured is None."""
        return {**asdict(self), "caption": self.caption()}


def load_bakeoff(path: Path = BAKEOFF_FILE) -> Bakeoff:
    """The bake-off in ``path``, checked field by field."""
    path = Path(path)
    if not path.is_file():
        raise DamagedFileError(
            f"no measured bake-off yet ({path.name} is missing)",
            fix=f"run `{WRITE_COMMAND}` to measure it",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return _parse(data)
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:
        raise DamagedFileError(
            f"{path.name} is damaged and cannot be shown ({type(exc).__name__}: {exc})",
            fix=f"run `{WRITE_COMMAND}` to measure it again",
        ) from None


def _parse(data: Any) -> Bakeoff:
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ValueError("it holds no list of rows")
    base = {k: _number(data.get("base", {}).get(k), k) for k in SCORES}
    rows = [_row(r) for r in data["rows"]]
    lora = next((r for r in rows if r.method == "lora" and r.overall is not None), None)
    base_overall = base.get("overall")
    share_of = None
    if lora is not None and base_overall is not None and lora.overall - base_overall > 1e-9:
        share_of = lora.overall - base_overall
    if share_of is not None:
        rows = [
            replace(r, gain_share_of_lora=(r.overall - base_overall) / share_of)
            if r.overall is not None
            else r
            for r in rows
        ]
    budget = data.get("budget") or {}
    if not isinstance(budget, dict):
        raise ValueError("budget is not a mapping")
    return Bakeoff(
        measured=str(data.get("measured") or "an unknown date"),
        title=str(data.get("title") or ""),
        model=str(data.get("model") or "an unnamed model"),
        budget=budget,
        base={k: v for k, v in base.items() if v is not None},
        rows=tuple(rows),
    )


def _row(raw: Any) -> BakeoffRow:
    if not isinstance(raw, dict) or not isinstance(raw.get("method"), str):
        raise ValueError(f"a row without a method: {str(raw)[:60]}")
    if raw.get("unavailable"):
        return BakeoffRow(raw["method"], unavailable=str(raw["unavailable"]))
    values: dict[str, Any] = {k: _number(raw.get(k), k) for k in (*SCORES, *COSTS)}
    for k in ("trainable", "total", "peak_above_model_bytes"):
        values[k] = None if values[k] is None else int(values[k])
    seeds = tuple(_number(v, "per_seed_overall") for v in raw.get("per_seed_overall") or ())
    return BakeoffRow(
        raw["method"],
        **values,
        per_seed_overall=tuple(v for v in seeds if v is not None),
        note=str(raw.get("note") or ""),
    )


def _number(value: Any, name: str) -> float | None:
    """A finite number, None when absent; anything else is damage."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} is {value!r}, not a number")
    return value
