"""Importing mmdemo and building the UI load no model and open no connection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter: count sockets connected and torch modules constructed.
PROBE = r"""
import json, socket, sys
connects = []
_orig = socket.socket.connect
def _connect(self, address):
    connects.append(str(address))
    return _orig(self, address)
socket.socket.connect = _connect
import mmdemo, mmdemo.ui, mmdemo.config, mmdemo.models.manager, mmdemo.cli, mmdemo.flows.system
after_import = sorted(m for m in ("torch", "transformers", "gradio", "open_clip", "peft") if m in sys.modules)
built = 0
if "--build-ui" in sys.argv:
    import torch
    created = []
    _init = torch.nn.Module.__init__
    def _count(self, *a, **k):
        created.append(type(self).__name__)
        _init(self, *a, **k)
    torch.nn.Module.__init__ = _count
    from mmdemo.config import Settings
    from mmdemo.ui import create_ui
    demo = create_ui(Settings(profile="tiny", home=sys.argv[-1]))
    states = [s.state for s in demo.mmdemo_context.manager.status()]
    built = {"modules": created, "states": states}
print(json.dumps({"after_import": after_import, "connects": connects, "built": built}))
"""


def run_probe(*args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMDEMO_")}
    env["GRADIO_ANALYTICS_ENABLED"] = "False"
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_pulls_in_no_framework_and_no_network() -> None:
    result = run_probe()
    assert result["after_import"] == [], "importing mmdemo must not import heavy frameworks"
    assert result["connects"] == []


def test_building_the_ui_instantiates_no_model(tmp_path: Path) -> None:
    result = run_probe("--build-ui", str(tmp_path))
    assert result["built"]["modules"] == [], "no torch module may be created at UI build time"
    assert set(result["built"]["states"]) == {"not loaded"}
    assert result["connects"] == []
