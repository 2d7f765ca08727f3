"""The training worker behind the Train tab and the training API: a queue of runs, one at a
time, each in its own process (``python -m mmdemo train --job RUN_DIR``), so training never
blocks chat and a run that runs out of memory never takes the app down.

Status is read from the run's event log; a stop asks the job to end at its next step, then
escalates to terminating it. Finished adapters are in the store the moment the job renames
them into place, so the chat menu lists them at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from mmdemo.config import Settings
from mmdemo.errors import BadInputError, MMDemoError
from mmdemo.finetune.config import TASKS as EVAL_TASKS
from mmdemo.finetune.config import TrainConfig
from mmdemo.finetune.job import EVENTS, STOP, job_environment, write_spec
from mmdemo.finetune.progress import read_events
from mmdemo.flows.bakeoff import BAKEOFF_FILE, Bakeoff, load_bakeoff
from mmdemo.flows.limits import require_local, require_training
from mmdemo.flows.train_status import TERMINAL, Run, death_message
from mmdemo.models.adapters import BUILTIN_DIR, name_taken
from mmdemo.models.device import available_devices, check_device

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
STOP_GRACE_S = 30.0  # then the job is terminated


class TrainService:
    """Queue and run training/evaluation jobs one at a time (one service per app)."""

    def __init__(self, settings: Settings, threads: int | None = None):
        self.settings = settings
        # threads per job: leave a core to the app's own requests when there are several
        self.threads = threads or max(1, (os.cpu_count() or 2) - 1)
        self._runs: dict[str, Run] = {}
        self._queue: deque[str] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._worker: threading.Thread | None = None
        self._proc: subprocess.Popen | None = None
        self.bakeoff_file = BAKEOFF_FILE  # the measured bake-off the tab and API show

    def measured_bakeoff(self) -> Bakeoff:
        """The measured real-weights bake-off (DamagedFileError when missing or damaged)."""
        return load_bakeoff(self.bakeoff_file)

    # submitting ------------------------------------------------------------------------------
    def submit(
        self, config: TrainConfig | dict[str, Any], owner: str | None = None, device: str = "auto"
    ) -> str:
        """Queue a training run for ``owner`` (a session; hosted, only it may read or stop the
        run) on ``device`` (auto: the app's device setting); returns its id. The config and
        the device are checked now, not in the job."""
        cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(dict(config))
        require_training(self.settings)
        settings = self.job_settings(device)
        self._check_hosted(cfg.dataset, cfg.model)
        if cfg.dataset != "builtin" and not Path(cfg.dataset).expanduser().exists():
            raise BadInputError(
                f"dataset {cfg.dataset!r} does not exist",
                fix="give builtin, a JSONL file, or a folder with a JSONL, VQA-RAD or SLAKE copy",
            )
        if cfg.name and name_taken(self.settings.adapters_dir, cfg.name, BUILTIN_DIR):
            raise BadInputError(
                f"an adapter called {cfg.name!r} already exists",
                fix="choose another name or delete that adapter first",
            )
        if cfg.name and any(
            r.request.get("name") == cfg.name and r.state in ("queued", "running")
            for r in self._runs.values()
        ):
            raise BadInputError(f"a queued run already trains an adapter called {cfg.name!r}")
        request = {**cfg.to_dict(), "device": settings.device}
        return self._enqueue("train", request, owner, settings, config=cfg.to_dict())

    @staticmethod
    def checked(request: dict[str, Any]) -> dict[str, Any]:
        """A run's settings (TrainConfig's fields) as plain data, checked now: a wrong value
        is refused with its name and the allowed ones."""
        return TrainConfig.from_dict(dict(request)).to_dict()

    @staticmethod
    def methods() -> list[dict[str, str]]:
        """The training methods: name, family (peft | own | full), summary, objective (sft:
        question/answer data; preference: pairs of a chosen and a rejected answer)."""
        from mmdemo.finetune.methods import METHODS

        return [
            {"name": n, "family": i.family, "summary": i.summary, "objective": i.objective}
            for n, i in METHODS.items()
        ]

    def devices(self) -> list[str]:
        """What a run may be asked to train on: auto, then the devices this machine has."""
        return ["auto", *available_devices()]

    def job_settings(self, device: str = "auto") -> Settings:
        """The settings a job runs with: the app's, on ``device`` when one is named (refused
        with the devices that exist when this machine lacks it)."""
        device = check_device(device)
        return self.settings if device == "auto" else self.settings.replace(device=device)

    def _check_hosted(self, dataset: str, model: str = "") -> None:
        """Hosted: datasets are the built-in one or uploads; the base is the app's VLM."""
        if not self.settings.hosted:
            return
        if model:
            require_local(self.settings, "training on another base model")
        uploads = (self.settings.runs_dir / "uploads").resolve()
        path = Path(dataset or "builtin").expanduser().resolve()
        if dataset not in ("", "builtin") and not path.is_relative_to(uploads):
            require_local(self.settings, "reading a dataset from a server path")

    def submit_eval(
        self,
        adapter: str,
        dataset: str = "builtin",
        owner: str | None = None,
        task: str = "vqa",
    ) -> str:
        """Queue an evaluation of ``adapter`` on ``dataset``'s ``task`` (vqa, caption or
        grounding); returns its run id."""
        if not (adapter or "").strip():
            raise BadInputError("no adapter given", fix="name an adapter, or 'base'")
        if task not in EVAL_TASKS:
            raise BadInputError(f"unknown task {task!r}", fix=f"use one of {', '.join(EVAL_TASKS)}")
        require_training(self.settings)
        self._check_hosted(dataset)
        return self._enqueue(
            "eval",
            {"adapter": adapter, "dataset": dataset, "task": task},
            owner,
            self.settings,
            adapter=adapter.strip(),
            dataset=dataset or "builtin",
            task=task,
        )

    def _enqueue(
        self,
        kind: str,
        request: dict[str, Any],
        owner: str | None,
        settings: Settings,
        **payload: Any,
    ) -> str:
        with self._lock:
            run_id = uuid.uuid4().hex  # not guessable: an id is no key to others' runs
            folder = self.settings.runs_dir / run_id
            write_spec(folder, kind, settings, **payload)
            self._runs[run_id] = Run(run_id, kind, folder, request, owner=owner)
            self._queue.append(run_id)
            self._ensure_worker()
            self._wake.notify_all()
        return run_id

    # reading ---------------------------------------------------------------------------------
    def status(self, run_id: str, owner: str | None = None) -> dict[str, Any]:
        """A run's state, steps, losses and result (hosted: ``owner``'s runs only)."""
        with self._lock:
            return self._describe(self._get(run_id, owner))

    def runs(self) -> list[dict[str, Any]]:
        """Every run, newest first (for the operator: the CLI and tests, no endpoint)."""
        with self._lock:
            return [self._describe(run) for run in reversed(list(self._runs.values()))]

    def _describe(self, run: Run) -> dict[str, Any]:
        self._read(run)
        position = self._queue.index(run.id) + 1 if run.id in self._queue else None
        return run.as_dict(position)

    def wait(
        self, run_id: str, timeout: float | None = None, owner: str | None = None
    ) -> dict[str, Any]:
        """Block until the run ends (or ``timeout`` seconds pass); returns its status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status(run_id, owner)
            if status["state"] in TERMINAL:
                return status
            if deadline is not None and time.monotonic() > deadline:
                return status
            time.sleep(0.2)

    def stop(self, run_id: str, owner: str | None = None) -> dict[str, Any]:
        """Stop a queued run at once, a running one at its next step (hosted: ``owner``'s)."""
        with self._lock:
            run = self._get(run_id, owner)
            if run_id in self._queue:
                self._queue.remove(run_id)
                run.state, run.phase, run.finished = (
                    "stopped",
                    "stopped before it started",
                    time.time(),
                )
            elif run.state == "running":
                (run.folder / STOP).touch()
                run.phase = "stopping…"
        return self.status(run_id, owner)

    def _get(self, run_id: str, owner: str | None = None) -> Run:
        """The run, if this caller may see it: hosted, another session's run is answered
        exactly like an unknown id, so ids cannot be probed."""
        run = self._runs.get(run_id)
        if run is None or (self.settings.hosted and run.owner != owner):
            raise BadInputError(
                f"no training run with id {run_id!r}",
                fix="use an id /train returned to this client (the same session)",
            )
        return run

    def _read(self, run: Run) -> None:
        events, run.offset = read_events(run.folder / EVENTS, run.offset)
        for event in events:
            run.apply(event)

    # the worker ------------------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name="mmdemo-train", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    if not self._wake.wait(timeout=60):
                        self._worker = None
                        return
                run = self._runs[self._queue.popleft()]
                run.state, run.started, run.phase = "running", time.time(), "starting"
            try:
                self._execute(run)
            except Exception as exc:  # a broken launch must not kill the worker
                with self._lock:
                    run.state, run.error = "error", f"{type(exc).__name__}: {exc}"
            with self._lock:
                self._read(run)
                run.finished = time.time()
                if run.state == "running" and (run.folder / STOP).exists():
                    run.state, run.phase = "stopped", "stopped"
                elif run.state == "running":
                    run.state = "error"
                    run.error, run.fix = death_message(run.returncode, run.folder)

    def _execute(self, run: Run) -> None:
        env = job_environment(os.environ, self.settings)  # no key, password or token
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p
        )
        env["MMDEMO_TRAIN_THREADS"] = str(self.threads)
        with open(run.folder / "log.txt", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mmdemo", "train", "--job", str(run.folder)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(PACKAGE_ROOT),
            )
            run.pid = proc.pid
            asked_stop: float | None = None
            while proc.poll() is None:
                time.sleep(0.2)
                if (run.folder / STOP).exists():
                    asked_stop = asked_stop or time.monotonic()
                    if time.monotonic() - asked_stop > STOP_GRACE_S:
                        proc.send_signal(signal.SIGTERM)
                        try:
                            proc.wait(10)
                        except subprocess.TimeoutExpired:
                            proc.kill()
            run.returncode = proc.returncode

    def evaluate(
        self,
        adapter: str,
        dataset: str = "builtin",
        timeout: float = 3600,
        owner: str | None = None,
        task: str = "vqa",
    ) -> dict:
        """Run an evaluation job and wait for its metrics."""
        status = self.wait(self.submit_eval(adapter, dataset, owner, task), timeout, owner)
        if status["state"] != "done":
            raise MMDemoError(
                f"evaluation of {adapter!r} {status['state']}: {status['error'] or 'timed out'}",
                fix=status["fix"] or None,
            )
        return status["metrics"]
