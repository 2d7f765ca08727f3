"""The Fine-tune tab's status poll, called as the Timer calls it (no server): a run that
finishes between two reads must not leave "running" on screen with the timer stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdemo.finetune.events import Done, Start, Step
from mmdemo.flows.train_status import Run
from mmdemo.ui.tabs.train.actions import TrainActions, TrainSession


class FinishingService:
    """A training service whose run moves on each time anyone reads its status: running at
    step 1, then done (as a real job can between two reads)."""

    def __init__(self, folder: Path) -> None:
        self.run = Run("run-1", "train", folder, {}, state="running")
        self.run.apply(Start("mine", "lora", 2, 10, 100, False, "cpu", "builtin", 1 << 20, 1 << 24))
        self.script = [step(1, 2.0), Done(adapter="mine")]
        self.reads = 0

    def status(self, run_id: str, owner: str) -> dict[str, Any]:
        if self.script:
            self.run.apply(self.script.pop(0))
        self.reads += 1
        return self.run.as_dict(None)


def step(n: int, loss: float) -> Step:
    return Step("vqa", n, 2, loss, 1e-4, 100.0, 0.5, 0.5 * (2 - n), 1 << 24)


def timer_active(update: Any) -> bool:
    return bool(update.active)  # the handler returns gr.Timer(active=...)


def test_the_poll_keeps_going_until_it_has_shown_the_finished_run(tmp_path: Path) -> None:
    service = FinishingService(tmp_path)
    act = TrainActions(None, service, lambda: "")  # type: ignore[arg-type]
    st = TrainSession()
    st.run_id = "run-1"
    shown = []
    for _ in range(10):  # the Timer ticks until the handler turns it off
        status, *_, timer = act.poll(st)
        shown.append(status)
        if not timer_active(timer):
            break
    else:
        raise AssertionError(f"the timer never stopped: {shown}")
    assert "**done**" in shown[-1], shown  # the last thing the user sees is the finished run
    assert "**running**" in shown[0]
