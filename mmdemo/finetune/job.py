"""A training or evaluation job in its own process: ``python -m mmdemo train --job RUN_DIR``.

The app's training worker starts one per queued run, so a run that runs out of memory or is
killed never takes the app down, and its memory is returned when it ends. The job reads
``spec.json``, appends events to ``events.jsonl`` and stops when ``STOP`` appears in its folder
(or its parent process is gone).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from mmdemo.config import Settings
from mmdemo.finetune.progress import EventLog, StopSwitch

SPEC = "spec.json"
EVENTS = "events.jsonl"
STOP = "STOP"


def settings_dict(settings: Settings) -> dict[str, Any]:
    data = dataclasses.asdict(settings)
    data["home"] = str(settings.home)
    return data


def write_spec(run_dir: Path, kind: str, settings: Settings, **payload: Any) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = {"kind": kind, "settings": settings_dict(settings), **payload}
    (run_dir / SPEC).write_text(json.dumps(spec, indent=2), encoding="utf-8")


class ParentWatch(StopSwitch):
    """Also stops when the process that started the job has gone (the app was closed)."""

    def __init__(self, file: Path):
        super().__init__(file=file)
        self.parent = os.getppid()

    def is_set(self) -> bool:
        return super().is_set() or os.getppid() != self.parent


def run_job(run_dir: Path, echo: bool = False) -> int:
    """Run the job described in ``run_dir/spec.json``; 0 done, 1 failed, 3 stopped."""
    from mmdemo.finetune.run import failure_event

    run_dir = Path(run_dir)
    log = EventLog(run_dir / EVENTS, echo=print if echo else None)
    try:
        spec = json.loads((run_dir / SPEC).read_text(encoding="utf-8"))
        settings = Settings(**spec["settings"])
        threads = os.environ.get("MMDEMO_TRAIN_THREADS")
        if threads:
            import torch

            torch.set_num_threads(max(1, int(threads)))
        stop = ParentWatch(run_dir / STOP)
        if spec["kind"] == "train":
            from mmdemo.finetune.config import TrainConfig
            from mmdemo.finetune.run import RunEnv, train_adapter

            cfg = TrainConfig.from_dict(spec["config"])
            train_adapter(cfg, RunEnv(settings, run_dir, log, stop))
        else:
            from mmdemo.finetune.assess import evaluate_adapter

            metrics = evaluate_adapter(
                spec["adapter"], spec["dataset"], settings, run_dir, log, stop
            )
            log({"type": "done", "adapter": spec["adapter"], "metrics": metrics})
        return 0
    except BaseException as exc:  # every failure ends the event log with its cause
        event = failure_event(exc)
        log(event)
        if not isinstance(exc, Exception):
            raise
        return 3 if event["type"] == "stopped" else 1
