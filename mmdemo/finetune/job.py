"""A training or evaluation job in its own process: ``python -m mmdemo train --job RUN_DIR``.

The app's training worker starts one per queued run, so a run that runs out of memory or is
killed never takes the app down, and its memory is returned when it ends. The job reads
``spec.json``, appends events to ``events.jsonl`` and stops when ``STOP`` appears in its folder
(or its parent process is gone).

A job is given what it needs and no secret: ``spec.json`` holds the settings without the
login, the API keys and the remote servers (a job trains and evaluates locally), and the
process gets a minimal environment (``job_environment``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmdemo.config import Settings
from mmdemo.finetune.progress import EventLog, StopSwitch

SPEC = "spec.json"
EVENTS = "events.jsonl"
STOP = "STOP"


# Settings a job never uses that hold secrets or may (a URL can carry user:password@); fields
# declared ``repr=False`` (the house mark of a secret) are left out as well
REMOTE_FIELDS = ("remote_vlm_url", "remote_vlm_key", "remote_vlm_model", "arena_remotes")
LOGIN_FIELDS = ("auth_user", "auth_password")

# The environment a job keeps: what Python, torch, CUDA, the Hub client and the OS need
KEEP_ENV = frozenset(
    {
        *("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM"),
        *("TMPDIR", "TEMP", "TMP", "XDG_CACHE_HOME", "MPLCONFIGDIR", "MALLOC_ARENA_MAX"),
        *("PYTHONPATH", "PYTHONHOME", "PYTHONUTF8", "PYTHONIOENCODING", "VIRTUAL_ENV"),
        *("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "TOKENIZERS_PARALLELISM"),
        *("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"),
        *("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"),
        *("SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "PATHEXT", "USERPROFILE"),
        *("APPDATA", "LOCALAPPDATA", "PROGRAMDATA"),
    }
)
KEEP_ENV_PREFIXES = (
    *("LC_", "CUDA_", "NVIDIA_", "ROCM_", "HIP_", "HSA_", "NCCL_", "CONDA_"),
    *("PYTORCH_", "TORCH_", "TORCHINDUCTOR_", "TRITON_", "ACCELERATE_", "BNB_"),
    *("OMP_", "MKL_", "OPENBLAS_", "KMP_", "GOMP_"),
    *("HF_", "HUGGINGFACE_HUB_", "TRANSFORMERS_"),
)
SECRET_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")
# the Hub token: a job downloads the base model when it is not cached, as the app would
HUB_TOKENS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def job_settings(settings: Settings) -> Settings:
    """``settings`` less what a job has no use for and must not see: the login, the keys,
    the remote servers (any field declared ``repr=False`` is blanked too)."""
    secret = [f.name for f in dataclasses.fields(settings) if not f.repr]
    return settings.replace(**dict.fromkeys((*secret, *REMOTE_FIELDS, *LOGIN_FIELDS), ""))


def settings_dict(settings: Settings) -> dict[str, Any]:
    data = dataclasses.asdict(job_settings(settings))
    data["home"] = str(settings.home)
    return data


def job_environment(environ: Mapping[str, str], settings: Settings) -> dict[str, str]:
    """The environment of a job process: the variables in KEEP_ENV / KEEP_ENV_PREFIXES with no
    secret-looking name, plus the Hub token unless the app is offline (the job may have to
    download the base model). Everything else (MMDEMO_*, provider API keys, cloud
    credentials, the Space's own secrets) stays with the app."""
    offline = settings.offline or environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true")
    env = {}
    for name, value in environ.items():
        upper = name.upper()
        if upper in HUB_TOKENS:
            if not offline:
                env[name] = value
            continue
        kept = name in KEEP_ENV or upper.startswith(KEEP_ENV_PREFIXES)
        if kept and not any(word in upper for word in SECRET_WORDS):
            env[name] = value
    return env


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
    from mmdemo.finetune.events import Done, Stopped, failure_event

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
                spec["adapter"],
                spec["dataset"],
                settings,
                run_dir,
                log,
                stop,
                task=spec.get("task", "vqa"),
            )
            log(Done(adapter=spec["adapter"], metrics=metrics))
        return 0
    except BaseException as exc:  # every failure ends the event log with its cause
        event = failure_event(exc)
        log(event)
        if not isinstance(exc, Exception):
            raise
        return 3 if isinstance(event, Stopped) else 1
