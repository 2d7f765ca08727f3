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
