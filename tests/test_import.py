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
    built = {"modules": created, "states": states, "analytics": app.demo.analytics_enabled}
print(json.dumps({"after_import": after_import, "connects": connects, "built": built}))
"""


def run_probe(*args: str) -> dict:
    # GRADIO_ANALYTICS_ENABLED left unset: the app itself must turn Gradio's telemetry off
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MMDEMO_") and k != "GRADIO_ANALYTICS_ENABLED"
    }
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
    assert result["built"]["analytics"] is False, "no telemetry whatever the environment says"
    assert result["connects"] == []


# (package folder, modules it must not import at run time): dependencies point
# ui -> flows -> models (DESIGN.md), with retrieval and finetune beside flows over models and
# serve (the /v1 routes) over flows; grounding (box parsing and drawing) is a leaf that flows
# and finetune share; only ui imports gradio, only ui and serve fastapi.
# ``mmdemo.wiring`` makes the services from every layer: only the app shell calls it.
MODEL_LAYERS = ("mmdemo.models", "mmdemo.finetune", "mmdemo.retrieval")
NEVER_BELOW_UI = ("gradio", "mmdemo.ui", "mmdemo.wiring", "mmdemo.cli", "mmdemo.bench")
LAYERS = [
    (
        "mmdemo/ui",
        (*MODEL_LAYERS, "mmdemo.cli", "mmdemo.bench", "mmdemo.wiring", "mmdemo.serve"),
    ),
    ("mmdemo/flows", (*NEVER_BELOW_UI, "fastapi", "mmdemo.serve")),
    ("mmdemo/serve", (*NEVER_BELOW_UI, "mmdemo.models", "mmdemo.finetune", "mmdemo.retrieval")),
    (
        "mmdemo/retrieval",
        (*NEVER_BELOW_UI, "fastapi", "mmdemo.serve", "mmdemo.flows", "mmdemo.finetune"),
    ),
    (
        "mmdemo/finetune",
        (*NEVER_BELOW_UI, "fastapi", "mmdemo.serve", "mmdemo.flows", "mmdemo.retrieval"),
    ),
    (
        "mmdemo/grounding",
        (
            *NEVER_BELOW_UI,
            *MODEL_LAYERS,
            "fastapi",
            "mmdemo.serve",
            "mmdemo.flows",
        ),
    ),
    (
        "mmdemo/models",
        (
            *NEVER_BELOW_UI,
            "fastapi",
            "mmdemo.serve",
            "mmdemo.flows",
            "mmdemo.finetune",
            "mmdemo.retrieval",
        ),
    ),
]
# where a name the UI or /v1 imports may not be defined, however it was reached (a flows
# module that imports ModelManager does not make ModelManager a flows name): MODEL_LAYERS.
# The UI's own files that may start the app: build the services (mmdemo.wiring) and the
# server's memory trimming (mmdemo.serve.memory); no other UI module imports either
APP_SHELL = {"mmdemo/ui/app.py": ("mmdemo.wiring", "mmdemo.serve")}


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
    wrong = []
    for path in files:
        allowed = APP_SHELL.get(str(path.relative_to(REPO)), ())
        wrong += forbidden_imports(path, tuple(f for f in forbidden if f not in allowed))
    assert wrong == [], "imports against the layering ui -> flows -> models:\n" + "\n".join(wrong)


def defined_in(name: str) -> str:
    """The module that defines what an import of ``name`` binds: a module's own name, or
    the ``__module__`` of a class or function (a re-export names where it came from)."""
    import importlib

    try:
        return importlib.import_module(name).__name__
    except ImportError:
        pass
    module, _, attr = name.rpartition(".")
    value = getattr(importlib.import_module(module), attr)
    return getattr(value, "__module__", None) or module


def reexported_model_names(path: Path) -> list[str]:
    return [
        f"{path.relative_to(REPO)}:{line} imports {name}, defined in {origin}"
        for line, name in runtime_imports(path.read_text(encoding="utf-8"), path)
        if name.startswith("mmdemo.")
        for origin in [defined_in(name)]
        if any(origin == m or origin.startswith(m + ".") for m in MODEL_LAYERS)
    ]


@pytest.mark.parametrize("folder", ["mmdemo/ui", "mmdemo/serve"])
def test_no_model_layer_name_reaches_the_ui_through_a_reexport(folder: str) -> None:
    files = sorted((REPO / folder).rglob("*.py"))
    wrong = [hit for path in files for hit in reexported_model_names(path)]
    assert wrong == [], "model-layer names reached through another module:\n" + "\n".join(wrong)


def test_the_reexport_check_sees_a_name_a_flows_module_merely_imports() -> None:
    probe = REPO / "mmdemo" / "ui" / "probe.py"  # resolved as if it were a UI module; not written
    source = (
        "from mmdemo.flows.system import ModelManager\n"  # flows/system.py imports it
        "from mmdemo.flows.system import SystemService, system_report\n"
        "from mmdemo.flows import system\n"
    )
    names = [name for _, name in runtime_imports(source, probe)]
    assert [defined_in(n) for n in names] == [
        "mmdemo.models.manager",
        "mmdemo.flows.system",
        "mmdemo.flows.system",
        "mmdemo.flows.system",
    ]


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
