"""Startup: import cost of mmdemo (no framework), UI build time (no model), first lazy load."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from mmdemo.bench.report import Table, ms, timeit

REPO = Path(__file__).resolve().parents[2]


def _python(code: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMDEMO_")}
    env["GRADIO_ANALYTICS_ENABLED"] = "False"

    def run() -> None:
        subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, env=env, check=True, capture_output=True
        )

    return timeit(run, repeat=3, warmup=1)


def run(home: Path | None = None) -> Table:
    home = home or Path(tempfile.mkdtemp(prefix="mmdemo-bench-"))
    base = _python("pass")
    table = Table(
        "startup", "Startup and lazy loading", ["step", "wall time", "vs. bare interpreter"]
    )
    table.add("bare `python -c pass` (baseline)", ms(base), "1.0x")
    steps = [
        ("`import mmdemo, mmdemo.ui`", "import mmdemo, mmdemo.ui"),
        ("`import gradio` (for scale)", "import gradio"),
        (
            "build the whole UI, tiny profile (no model loads)",
            f"from mmdemo.config import Settings; from mmdemo.ui import create_ui; "
            f"create_ui(Settings(profile='tiny', home={str(home)!r}))",
        ),
    ]
    for label, code in steps:
        t = _python(code)
        table.add(label, ms(t), f"{t / base:.1f}x")
    from mmdemo.config import Settings
    from mmdemo.models.manager import ModelManager
    from mmdemo.models.tiny import build_all

    settings = Settings(profile="tiny", home=home, device="cpu")
    timings = build_all(settings.models_dir)
    total = sum(timings.values())
    table.add("build all tiny models (first time only)", ms(total) if total else "cached", "")
    manager = ModelManager(settings)
    for backend in ("vlm", "clip", "asr", "tts", "llm"):
        manager.get(backend)
    for s in manager.status():
        if s.state == "loaded":
            table.add(f"first use of `{s.backend}` ({s.model_id})", ms(s.load_seconds), "")
    table.notes.append(
        "Target: `import mmdemo, mmdemo.ui` under 3 s and no model or framework "
        "imported (gradio, torch and transformers load when the UI is built or a "
        "model is first used)."
    )
    return table
