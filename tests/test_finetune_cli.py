"""`python -m mmdemo train` and `eval` run the same code as the Train tab."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmdemo.cli import main
from mmdemo.finetune.methods import METHODS


def test_train_then_eval_from_the_command_line(
    isolated_settings, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--profile", "tiny", "--home", str(isolated_settings.home)]
    assert main([*base, "train", "--list-methods"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in METHODS)
    args = ["--steps", "3", "--batch-size", "2", "--scale", "0.02", "--eval-limit", "4"]
    assert main([*base, "train", *args, "--name", "cli-one", "--method", "ia3"]) == 0
    out = capsys.readouterr().out
    assert "adapter cli-one" in out and "report:" in out
    assert (isolated_settings.adapters_dir / "cli-one" / "report.md").is_file()
    assert main([*base, "eval", "cli-one", "--limit", "5", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["adapter"] == "cli-one" and metrics["count"] == 5
    assert main([*base, "train", *args, "--name", "cli-one"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*base, "eval", "no-such-adapter"]) == 2
    assert "no adapter called" in capsys.readouterr().err


def test_bad_training_requests_exit_with_the_reason(
    isolated_settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--profile", "tiny", "--home", str(isolated_settings.home), "train"]
    assert main([*base, "--method", "magic"]) == 2
    assert "unknown method 'magic'" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    assert main([*base, "--data", str(empty), "--steps", "2"]) == 2
    assert "no usable vqa examples" in capsys.readouterr().err


def test_a_device_the_machine_lacks_is_refused_before_any_weights_load(
    isolated_settings, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    base = ["--profile", "tiny", "--home", str(isolated_settings.home), "train", "--steps", "2"]
    assert main([*base, "--device", "tpu"]) == 2
    assert "'tpu' is not a device" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([*base, "--device", "cuda"]) == 2
        err = capsys.readouterr().err
        assert "no such CUDA GPU" in err and "pick one of: auto, cpu" in err
    assert not isolated_settings.runs_dir.exists() or not any(isolated_settings.runs_dir.iterdir())
