"""What a training or evaluation job reports, as typed events.

The job emits these; ``progress.EventLog`` writes each as one JSON object per line
(``{"type": ..., "time": ..., **fields}``), which is how they cross from the job's process to
the app; ``progress.read_events`` turns the lines back into these classes, and the training
service (``flows/train.py``) folds them into a run's status. Plain data only: every field is
JSON as it stands.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mmdemo.errors import MMDemoError, TrainingStopped, is_out_of_memory


@dataclass(frozen=True)
class Event:
    """One thing a job reports; ``kind`` is its ``"type"`` on the wire."""

    kind: ClassVar[str] = ""

    def fields(self) -> dict[str, Any]:
        """The event's data, without its kind."""
        return dataclasses.asdict(self)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, **self.fields()}

    def describe(self) -> str:
        """One readable line (the CLI prints these)."""
        return f"{self.kind}: " + ", ".join(f"{k}={v}" for k, v in self.fields().items())


@dataclass(frozen=True)
class Phase(Event):
    """The job moved on to reading data, loading the model, a training stage, evaluating."""

    kind: ClassVar[str] = "phase"
    phase: str  # data | load | <stage name> | eval
    message: str


@dataclass(frozen=True)
class Start(Event):
    """Training begins: what trains, how much, where (the status endpoint's ``info``)."""

    kind: ClassVar[str] = "start"
    adapter: str
    method: str
    total_steps: int
    trainable: int
    total: int
    bf16: bool
    device: str
    data: str  # where the examples came from
    inference_memory_bytes: int  # one no-grad forward pass on a training-size batch
    model_memory_bytes: int  # the process with the base model loaded
    processes: int = 1  # processes training together (accelerate launch / torchrun)


@dataclass(frozen=True)
class Step(Event):
    """One optimizer step."""

    kind: ClassVar[str] = "step"
    stage: str
    step: int  # counted over all stages, from 1
    total_steps: int
    loss: float
    lr: float | None
    tokens_per_s: float
    seconds_per_step: float
    eta_s: float
    peak_memory_bytes: int

    def describe(self) -> str:
        return (
            f"[{self.stage}] step {self.step}/{self.total_steps} "
            f"loss {self.loss:.4f} · {self.tokens_per_s:.0f} tok/s · ETA {self.eta_s:.0f} s"
        )


@dataclass(frozen=True)
class EvalProgress(Event):
    kind: ClassVar[str] = "eval_progress"
    done: int
    of: int


@dataclass(frozen=True)
class Done(Event):
    """The job finished: a training run's adapter and scores, or an evaluation's metrics."""

    kind: ClassVar[str] = "done"
    adapter: str
    requested_name: str = ""  # a run saved as name-2 when its name was taken meanwhile
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    val_loss: float | None = None
    rank_scores: dict[str, dict[str, float]] = field(default_factory=dict)  # DyLoRA
    train_seconds: float | None = None  # the training steps alone
    peak_memory_bytes: int = 0


@dataclass(frozen=True)
class Error(Event):
    """The job failed: the cause and, where known, the fix."""

    kind: ClassVar[str] = "error"
    message: str
    fix: str | None = None

    def describe(self) -> str:
        return f"error: {self.message}"


@dataclass(frozen=True)
class Stopped(Event):
    """The user stopped the job; nothing was written to the store."""

    kind: ClassVar[str] = "stopped"
    message: str
    fix: str | None = None


KINDS: dict[str, type[Event]] = {
    cls.kind: cls for cls in (Phase, Start, Step, EvalProgress, Done, Error, Stopped)
}


def event_from_dict(data: dict[str, Any]) -> Event | None:
    """The event a JSON object stands for (keys it does not know, such as ``time``, are left
    out); None for a kind this version does not know."""
    cls = KINDS.get(str(data.get("type")))
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def failure_event(exc: BaseException) -> Error | Stopped:
    """The event a failed run ends with: the cause and, where known, the fix."""
    if isinstance(exc, TrainingStopped):
        return Stopped(exc.message, exc.fix)
    if isinstance(exc, MMDemoError):
        return Error(exc.message, exc.fix)
    if is_out_of_memory(exc) or isinstance(exc, MemoryError):
        return Error(
            "the device ran out of memory while training",
            "lower the batch size or rank, use QLoRA or MeZO, or attach to fewer parts",
        )
    return Error(f"{type(exc).__name__}: {exc}", None)
