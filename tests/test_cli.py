"""`python -m mmdemo`: models list / build-tiny / status, and errors as exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmdemo.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_models_list_marks_the_active_profile(
    tiny_settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--profile", "tiny", "--home", str(tiny_settings.home), "models", "list"]) == 0
    out = capsys.readouterr().out
    assert "active profile: tiny" in out
    assert "* tiny  tiny:smolvlm" in out
    assert "HuggingFaceTB/SmolVLM-256M-Instruct" in out


def test_build_tiny_reports_cached_builds(
    tiny_settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--home", str(tiny_settings.home), "models", "build-tiny", "clip", "vits"]) == 0
    out = capsys.readouterr().out
    assert "tiny:clip" in out and "cached" in out
    assert main(["--home", str(tiny_settings.home), "models", "build-tiny", "nonsense"]) == 2


def test_status_loads_on_request_and_reports_json(
    tiny_settings, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--profile", "tiny", "--home", str(tiny_settings.home), "models", "status"]
    assert main([*args, "clip", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["backend"] == "clip" and row["available"] and "state" not in row
    assert main([*args, "clip", "--load", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["state"] == "loaded" and row["bytes"] > 0 and row["device"] == "cpu"


def test_bad_settings_exit_with_a_message(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mmdemo", "models", "list"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "MMDEMO_PORT": "nope", "HOME": str(tmp_path)},
        timeout=120,
    )
    assert proc.returncode == 2
    assert "MMDEMO_PORT='nope' is not an integer" in proc.stderr


def test_adapters_list_add_delete(
    tiny_settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmdemo.models.adapters import BUILTIN_DIR

    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / "tiny").symlink_to(tiny_settings.models_dir / "tiny")
    base = ["--profile", "tiny", "--home", str(home), "adapters"]
    assert main([*base, "list", "--json"]) == 0
    names = {a["name"] for a in json.loads(capsys.readouterr().out)}
    assert {"color-namer", "pirate"} <= names
    assert main([*base, "add", str(BUILTIN_DIR / "pirate"), "--name", "pirate-copy"]) == 0
    assert "added pirate-copy" in capsys.readouterr().out
    assert main([*base, "delete", "pirate"]) == 2
    assert "cannot be deleted" in capsys.readouterr().err
    assert main([*base, "delete", "pirate-copy"]) == 0


def test_demo_adapters_can_be_rebuilt(
    tmp_path: Path, tiny_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmdemo.finetune.demo_adapters as demo

    monkeypatch.setenv("MMDEMO_HOME", str(tiny_settings.home))
    results = demo.build_demo_adapters(tmp_path, steps=4, eval_size=4, log=lambda *_: None)
    assert set(results) == {"color-namer", "pirate"}
    from mmdemo.models.adapters import read_adapter

    for name, scored in (("color-namer", "closed_accuracy"), ("pirate", "open_recall")):
        meta = json.loads((tmp_path / name / "mmdemo.json").read_text())
        assert meta["base_model_type"] == "idefics3" and meta["steps"] == 4
        assert meta["metrics"]["count"] == 4 and scored in meta["metrics"]
        assert read_adapter(tmp_path / name).method == "lora"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.name != ".locks"]
