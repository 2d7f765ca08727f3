"""Importing mmdemo and building the UI load no model and open no connection."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    from mmdemo.ui.app import build_app
    app = build_app(Settings(profile="tiny", home=sys.argv[-1]))
    states = [s.state for s in app.manager.status()]
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


# (package folder, modules it must not import at run time): dependencies point
# ui -> flows -> models (DESIGN.md); flows and models never import gradio.
LAYERS = [
    ("mmdemo/ui", ("mmdemo.models",)),
    ("mmdemo/flows", ("gradio", "mmdemo.ui")),
    ("mmdemo/models", ("gradio", "mmdemo.ui", "mmdemo.flows")),
]


def runtime_imports(source: str, path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file that runs at import or call time; imports
    under ``if TYPE_CHECKING:`` are for type checkers only and are left out. ``path`` (inside
    the repository) resolves relative imports."""
    tree = ast.parse(source, str(path))
    package = path.relative_to(REPO).with_suffix("").parts[:-1]
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:  # the else branch does run
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = [*package[: len(package) - node.level + 1]] if node.level else []
            base = ".".join([*parts, *([node.module] if node.module else [])])
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def forbidden_imports(path: Path, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for line, name in runtime_imports(path.read_text(encoding="utf-8"), path)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


@pytest.mark.parametrize(("folder", "forbidden"), LAYERS, ids=[f for f, _ in LAYERS])
def test_dependencies_point_down_only(folder: str, forbidden: tuple[str, ...]) -> None:
    files = sorted((REPO / folder).rglob("*.py"))
    assert len(files) > 3, f"expected the modules of {folder}"
    wrong = [hit for path in files for hit in forbidden_imports(path, forbidden)]
    assert wrong == [], "imports against the layering ui -> flows -> models:\n" + "\n".join(wrong)


def test_the_layering_check_sees_runtime_imports_and_skips_type_only_ones() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import mmdemo.models.manager\n"
        "from ..models import archive\n"
        "if TYPE_CHECKING:\n"
        "    from mmdemo.models.manager import ModelManager\n"
        "else:\n"
        "    from mmdemo.models.adapters import AdapterStore\n"
        "def f():\n"
        "    from mmdemo.models.archive import safe_extract\n"
    )
    names = {name for _, name in runtime_imports(source, REPO / "mmdemo" / "ui" / "probe.py")}
    assert names == {
        "typing.TYPE_CHECKING",
        "mmdemo.models.manager",
        "mmdemo.models.archive",  # the relative import, resolved
        "mmdemo.models.adapters.AdapterStore",  # the else branch runs
        "mmdemo.models.archive.safe_extract",  # an import inside a function runs when called
    }
