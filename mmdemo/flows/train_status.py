"""One training or evaluation job as the status endpoint reports it: its record, folded from
the job's event log, and why a job that ended without saying so ended."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmdemo.finetune.events import Done, Error, EvalProgress, Event, Phase, Start, Step, Stopped

TERMINAL = ("done", "error", "stopped")


@dataclass
class Run:
    """One queued, running or finished job, as the status endpoint reports it."""

    id: str
    kind: str  # train | eval
    folder: Path
    request: dict[str, Any]
    state: str = "queued"  # queued | running | done | error | stopped
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    phase: str = ""
    step: int = 0
    total_steps: int = 0
    loss_history: list[list[float]] = field(default_factory=list)
    tokens_per_s: float = 0.0
    peak_memory_bytes: int = 0
    eta_s: float | None = None
    adapter: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # the start event (params, device, data)
    val_loss: float | None = None
    rank_scores: dict[str, Any] = field(default_factory=dict)  # DyLoRA: metrics per rank
    error: str = ""
    fix: str = ""
    notes: list[str] = field(default_factory=list)  # e.g. the adapter saved under a new name
    train_seconds: float | None = None  # the training steps alone (no loading, no evaluation)
    returncode: int | None = None
    pid: int | None = None  # the job's process while it runs
    offset: int = 0  # bytes of events.jsonl already read
    owner: str | None = None  # the session that started it (hosted: the only one that sees it)

    def apply(self, event: Event) -> None:
        """Fold one of the job's events into what the status endpoint reports."""
        match event:
            case Phase():
                self.phase = event.message
            case Start():
                self.info = event.fields()
                self.total_steps, self.adapter = event.total_steps, event.adapter
            case Step():
                self.step, self.total_steps = event.step, event.total_steps
                self.loss_history.append([event.step, float(event.loss)])
                self.tokens_per_s, self.eta_s = float(event.tokens_per_s), event.eta_s
                self.peak_memory_bytes = event.peak_memory_bytes
            case EvalProgress():
                self.phase = f"evaluating: {event.done}/{event.of}"
            case Done():
                self.state, self.phase = "done", "finished"
                self.adapter = event.adapter or self.adapter
                self.metrics, self.rank_scores = dict(event.metrics), dict(event.rank_scores)
                self.val_loss = event.val_loss
                self.notes = [str(n) for n in event.notes]
                self.train_seconds = event.train_seconds
                self.peak_memory_bytes = event.peak_memory_bytes or self.peak_memory_bytes
                self.error = self.fix = ""
            case Error() | Stopped():
                self.state = event.kind
                self.phase = "stopped" if isinstance(event, Stopped) else "failed"
                self.error, self.fix = event.message, event.fix or ""

    def as_dict(self, position: int | None) -> dict[str, Any]:
        report = self.folder / "report.md"
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "position": position,
            "phase": self.phase,
            "step": self.step,
            "total_steps": self.total_steps,
            "loss_history": list(self.loss_history),
            "tokens_per_s": round(self.tokens_per_s, 1),
            "peak_memory_bytes": self.peak_memory_bytes,
            "train_seconds": self.train_seconds,
            "eta_s": None if self.eta_s is None else round(float(self.eta_s), 1),
            "adapter": self.adapter if self.state == "done" or self.kind == "eval" else "",
            "metrics": self.metrics,
            "val_loss": self.val_loss,
            "rank_scores": self.rank_scores,
            "info": self.info,
            "error": self.error,
            "fix": self.fix,
            "notes": list(self.notes),
            "report": str(report) if report.is_file() else "",
            "request": self.request,
            "elapsed_s": round((self.finished or time.time()) - (self.started or time.time()), 1),
        }


def death_message(code: int | None, folder: Path) -> tuple[str, str]:
    """Why a job ended without saying so itself (killed, crashed)."""
    if code is not None and code < 0:
        sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else code
        if code == -signal.SIGKILL:
            return (
                f"the training process was killed ({sig}), most likely because the machine ran "
                "out of memory",
                "lower the batch size or rank, or use QLoRA or MeZO",
            )
        return f"the training process ended on signal {sig}", ""
    tail = ""
    log = folder / "log.txt"
    if log.is_file():
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        tail = lines[-1][-300:] if lines else ""
    return (
        f"the training process exited with code {code}" + (f": {tail}" if tail else ""),
        f"see {log}",
    )
