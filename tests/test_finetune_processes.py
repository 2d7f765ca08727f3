"""``accelerate launch -m mmdemo train`` with two processes, as docs/finetune.md promises for
several GPUs, here on the CPU (gloo): the run matches one process with the same global batch,
and exactly one adapter, one run folder and one set of events are written.

accelerate's ``--cpu`` flag starts a single process (its CPU multi-process mode needs mpirun);
its ``--multi_gpu`` launcher is torchrun, which starts the two processes, and ``--device cpu``
keeps their model on the CPU, where the Trainer's process group uses gloo.

Tolerance: both runs see the very same examples in every step (the same seeded shuffle; each
process takes half of each batch) and the Trainer averages the loss over the tokens of the
whole batch, so the two differ only in float32 summation order (measured: ~1e-7 relative on
the losses, ~7e-8 absolute on the weights). A process that trained on its own half without
the other's gradients would move the losses by tenths from step 2 on (one step moves them
by 0.3-0.9 here) and the weights by the learning rate's order (1e-3).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmdemo.config import Settings
from mmdemo.finetune.processes import is_main_process, process_count, process_device
from tests.conftest import REPO, free_port

STEPS = 4
TRAIN = ["--steps", str(STEPS), "--scale", "0.02", "--eval-limit", "2", "--device", "cpu"]


def home_for(tmp: Path, tiny_settings: Settings) -> Path:
    (tmp / "models").mkdir(parents=True)
    (tmp / "models" / "tiny").symlink_to(tiny_settings.models_dir / "tiny")
    return tmp


def launch(launcher: list[str], home: Path, *args: str) -> subprocess.Popen[str]:
    """Start ``mmdemo train`` under ``launcher`` with its own data folder (not waited for)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMDEMO_", "SPACE_"))}
    (home / "tmp").mkdir()  # the helper process's scratch folder goes here, and must go
    env.update(GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1", TMPDIR=str(home / "tmp"))
    cmd = [*launcher, "-m", "mmdemo", "--profile", "tiny", "--home", str(home), "train", *args]
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    try:
        stdout, stderr = proc.communicate(timeout=900)
    finally:
        proc.kill()
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def events(home: Path) -> list[dict]:
    (run_dir,) = (home / "runs").iterdir()  # one run folder, whatever the process count
    lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def weights(adapter: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(adapter / "adapter_model.safetensors")


def test_two_processes_train_like_one_with_the_same_global_batch(
    tmp_path: Path, tiny_settings: Settings
) -> None:
    one = home_for(tmp_path / "one", tiny_settings)
    two = home_for(tmp_path / "two", tiny_settings)
    # both runs at once (their own folders; they share nothing but the machine)
    alone_run = launch([sys.executable], one, *TRAIN, "--batch-size", "4", "--name", "single")
    accelerate = [
        *(sys.executable, "-m", "accelerate.commands.launch"),
        *("--multi_gpu", "--num_processes", "2", "--num_machines", "1"),
        *("--mixed_precision", "no", "--dynamo_backend", "no"),
        *("--main_process_port", str(free_port())),
    ]
    pair_run = launch(accelerate, two, *TRAIN, "--batch-size", "2", "--name", "pair")
    try:
        finish(alone_run)
        done = finish(pair_run)
    finally:
        for proc in (alone_run, pair_run):
            proc.kill()

    # one adapter, saved once, by the main process: no "pair-2", no staging folder left
    assert sorted(p.name for p in (two / "adapters").iterdir() if p.name != ".locks") == ["pair"]
    assert done.stdout.count("adapter pair -> ") == 1
    assert not list((two / "tmp").glob("mmdemo-rank*"))

    single, pair = events(one), events(two)
    (start,) = [e for e in pair if e["type"] == "start"]
    assert start["processes"] == 2 and start["device"] == "cpu"
    assert [e["processes"] for e in single if e["type"] == "start"] == [1]
    assert [e["type"] for e in pair].count("done") == 1
    steps_one = [e for e in single if e["type"] == "step"]
    steps_two = [e for e in pair if e["type"] == "step"]
    assert [e["step"] for e in steps_two] == list(range(1, STEPS + 1))  # each step once
    for a, b in zip(steps_one, steps_two, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4), (a["step"], a["loss"], b["loss"])
        assert b["lr"] == pytest.approx(a["lr"])

    import torch

    alone, together = weights(one / "adapters" / "single"), weights(two / "adapters" / "pair")
    assert alone.keys() == together.keys()
    assert any(t.abs().max() > 1e-3 for t in alone.values())  # training moved the weights
    for key, value in alone.items():
        torch.testing.assert_close(together[key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_the_process_of_a_run_is_read_from_the_launcher() -> None:
    torchrun = {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}
    assert not is_main_process(torchrun) and process_count(torchrun) == 2
    assert process_device("cuda", torchrun) == "cuda:1"  # its own GPU, not every copy on GPU 0
    assert process_device("cpu", torchrun) == "cpu"
    assert process_device("cuda:0", torchrun) == "cuda:0"  # an explicit GPU is kept
    assert is_main_process({"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2"})
    assert is_main_process({}) and process_count({}) == 1 and process_device("cuda", {}) == "cuda"
