"""Overall progress of a run: steps weighted by their usual cost, an ETA from time spent."""

from __future__ import annotations

import time

from mmdemo.flows.video.types import STEPS, Progress

# usual share of a run's time per step (a cached step weighs nothing)
WEIGHTS = {"open": 0.03, "shots": 0.3, "speech": 0.4, "captions": 0.12, "summary": 0.15}


class Tracker:
    """Overall progress (steps weighted by their usual cost; cached steps weigh nothing) and
    an ETA from the time spent so far."""

    def __init__(self, steps: set[str]) -> None:
        self.weights = {s: WEIGHTS[s] for s in steps}
        self.done = 0.0
        self.start = time.perf_counter()
        self.last = 0.0

    def skip(self, step: str) -> None:
        self.weights.pop(step, None)

    def finish(self, step: str) -> None:
        self.done += self.weights.pop(step, 0.0)

    def progress(
        self, step: str, fraction: float, detail: str, force: bool = False
    ) -> Progress | None:
        now = time.perf_counter()
        if not force and now - self.last < 0.2:
            return None
        self.last = now
        total = self.done + sum(self.weights.values()) or 1.0
        overall = min(1.0, (self.done + self.weights.get(step, 0.0) * fraction) / total)
        elapsed = now - self.start
        eta = elapsed * (1 - overall) / overall if overall > 0.02 and elapsed > 1.0 else None
        index = next(i for i, (name, _) in enumerate(STEPS, 1) if name == step)
        return Progress(step, index, min(1.0, fraction), overall, eta, detail)
