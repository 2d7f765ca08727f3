"""The training worker: runs queue and train one at a time in their own process; status,
stop, a killed job and bad requests all end with a clear state and nothing half-written."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from mmdemo.errors import BadInputError
from mmdemo.finetune.config import TrainConfig
from mmdemo.flows.train import TrainService
from mmdemo.models.adapters import AdapterStore

QUICK = dict(steps=3, batch_size=2, scale=0.02, eval_limit=4, warmup=1)
LONG = dict(steps=100_000, batch_size=2, scale=0.02, warmup=1)


def wait_for(service: TrainService, run_id: str, states: tuple[str, ...], timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = service.status(run_id)
        if status["state"] in states and (status["state"] != "running" or status["step"] > 0):
            return status
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} never reached {states}: {service.status(run_id)}")


def test_a_run_trains_in_its_own_process_and_lands_in_the_store(isolated_settings) -> None:
    service = TrainService(isolated_settings, threads=1)
    run_id = service.submit(TrainConfig(name="quick-one", **QUICK))
    status = service.wait(run_id, timeout=600)
    assert status["state"] == "done", status
    assert status["adapter"] == "quick-one"
    assert [s for s, _ in status["loss_history"]] == [1, 2, 3]
    assert status["info"]["trainable"] > 0 and status["peak_memory_bytes"] > 0
    assert Path(status["report"]).is_file() and status["metrics"]["count"] == 4
    assert "quick-one" in AdapterStore(isolated_settings).names()
    metrics = service.evaluate("quick-one", "builtin")
    assert metrics["adapter"] == "quick-one" and metrics["count"] > 0


def test_queue_position_stop_and_the_next_run(isolated_settings) -> None:
    service = TrainService(isolated_settings, threads=1)
    first = service.submit(TrainConfig(name="stopped-one", **LONG))
    second = service.submit(TrainConfig(name="after-stop", **QUICK))
    wait_for(service, first, ("running",))
    queued = service.status(second)
    assert queued["state"] == "queued" and queued["position"] == 1
    service.stop(first)
    stopped = service.wait(first, timeout=120)
    assert stopped["state"] == "stopped"
    assert service.wait(second, timeout=600)["state"] == "done"
    names = AdapterStore(isolated_settings).names()
    assert "after-stop" in names and "stopped-one" not in names
    leftovers = [
        p.name
        for p in isolated_settings.adapters_dir.iterdir()
        if p.name.startswith(".") and p.name != ".locks"  # lock files, kept by design
    ]
    assert leftovers == []


def test_a_killed_job_is_reported_as_such_and_writes_nothing(isolated_settings) -> None:
    service = TrainService(isolated_settings, threads=1)
    run_id = service.submit(TrainConfig(name="killed-one", **LONG))
    wait_for(service, run_id, ("running",))
    os.kill(service._runs[run_id].pid, signal.SIGKILL)
    status = service.wait(run_id, timeout=120)
    assert status["state"] == "error"
    assert "killed" in status["error"] and "memory" in status["error"]
    assert "batch size" in status["fix"]
    assert "killed-one" not in AdapterStore(isolated_settings).names()


def test_a_failing_run_ends_with_the_cause(isolated_settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "nowhere.png", "question": "q", "answer": "a"}\n', encoding="utf-8")
    service = TrainService(isolated_settings, threads=1)
    status = service.wait(service.submit(TrainConfig(dataset=str(bad), **QUICK)), timeout=300)
    assert status["state"] == "error"
    assert "nowhere.png" in status["error"] and status["fix"]


def test_bad_requests_are_refused_before_queueing(isolated_settings) -> None:
    service = TrainService(isolated_settings, threads=1)
    with pytest.raises(BadInputError, match="unknown method"):
        service.submit({"method": "magic"})
    with pytest.raises(BadInputError, match="unknown training setting"):
        service.submit({"method": "lora", "epochs": 3})
    with pytest.raises(BadInputError, match="outside"):
        service.submit({"steps": 0})
    with pytest.raises(BadInputError, match="already exists"):
        service.submit(_existing(isolated_settings))
    with pytest.raises(BadInputError, match="no training run"):
        service.status("nope")
    assert service.runs() == []


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(has_cuda(), reason="the app's 'cuda' setting must be one this box lacks")
def test_the_device_a_run_names_is_the_one_its_job_trains_on(isolated_settings) -> None:
    # an app set to a device this machine lacks: its own runs fail in the job, a run that
    # names the CPU trains there
    service = TrainService(isolated_settings.replace(device="cuda"), threads=1)
    on_cpu = service.wait(service.submit(TrainConfig(**QUICK), device="cpu"), timeout=600)
    assert on_cpu["state"] == "done", on_cpu
    assert on_cpu["info"]["device"] == "cpu" and on_cpu["request"]["device"] == "cpu"
    as_app = service.wait(service.submit(TrainConfig(**QUICK)), timeout=300)
    assert as_app["state"] == "error" and "CUDA" in as_app["error"]


def test_a_device_the_machine_lacks_is_refused_naming_those_it_has(isolated_settings) -> None:
    service = TrainService(isolated_settings, threads=1)
    assert service.devices()[:2] == ["auto", "cpu"]
    if not has_cuda():
        assert "cuda" not in service.devices()
        with pytest.raises(BadInputError, match="no such CUDA GPU") as caught:
            service.submit(TrainConfig(**QUICK), device="cuda")
        assert "pick one of: auto, cpu" in caught.value.fix
    with pytest.raises(BadInputError, match="'tpu' is not a device") as caught:
        service.submit(TrainConfig(**QUICK), device="tpu")
    assert "auto, cpu" in caught.value.fix
    assert service.runs() == []  # refused before anything was queued


def _existing(settings) -> dict:
    folder = settings.adapters_dir / "taken"
    folder.mkdir(parents=True)
    return {"name": "taken"}
