"""Faults: a process killed (SIGKILL) while it writes an adapter or a trained adapter leaves
the store as it was, and the next start is clean; a model that fails to load says why, and
a retry loads it. (An index killed mid-write: tests/test_retrieval_bad_input.py; a killed
training job: tests/test_finetune_service.py; the folder swap: tests/test_files.py.)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mmdemo.config import Settings
from mmdemo.errors import ModelUnavailableError
from mmdemo.models.adapters import AdapterStore
from mmdemo.models.manager import LoadContext, LoadedModel, ModelManager

REPO = Path(__file__).resolve().parents[1]
BUILTIN = REPO / "assets" / "adapters"

# Runs in a child process: install an adapter, dying (SIGKILL) once its files are unpacked
# into the store's staging folder and before it is renamed into place.
INSTALL_THEN_DIE = """
import os, signal, sys
from pathlib import Path
import mmdemo.models.adapters as adapters
from mmdemo.config import Settings

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

adapters._single_subfolder = die  # called once the upload is unpacked
settings = Settings(profile="tiny", home=Path(sys.argv[1]), device="cpu")
adapters.AdapterStore(settings).install(Path(sys.argv[2]), "fresh")
"""

# Runs in a child process: train a tiny adapter, dying (SIGKILL) after its weights are
# saved into the staging folder and before the report and the swap into the store.
TRAIN_THEN_DIE = """
import os, signal, sys
import mmdemo.finetune.report as report
from mmdemo.cli import main

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

report.write_report = die
sys.argv = ["mmdemo", "train", "--steps", "2", "--batch-size", "2", "--scale", "0.02",
            "--eval-limit", "2", "--name", "half-written"]
main()
"""


def run_child(script: str, settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMDEMO_")}
    env.update(MMDEMO_HOME=str(settings.home), MMDEMO_PROFILE="tiny", MMDEMO_DEVICE="cpu")
    return subprocess.run(
        [sys.executable, "-c", script, str(settings.home), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_an_install_killed_mid_write_leaves_the_store_as_it_was(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    store = AdapterStore(isolated_settings)
    store.install(BUILTIN / "pirate", "kept")
    before = store.names()
    archive = Path(shutil.make_archive(str(tmp_path / "fresh"), "zip", BUILTIN / "color-namer"))

    proc = run_child(INSTALL_THEN_DIE, isolated_settings, str(archive))
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    root = store.root
    assert [n for n in hidden(root) if n.startswith(".fresh-")], "it died mid-write"

    after = AdapterStore(isolated_settings)  # the next start
    assert after.names() == before and "fresh" not in after.names()
    assert after.get("kept").path.is_dir()
    assert not [n for n in hidden(root) if n.startswith(".fresh-")], "the debris is swept"
    assert after.install(archive, "fresh").name == "fresh"  # the same name installs cleanly


def test_a_training_run_killed_while_saving_writes_nothing(isolated_settings: Settings) -> None:
    store = AdapterStore(isolated_settings)
    store.install(BUILTIN / "pirate", "kept")
    before = store.names()

    proc = run_child(TRAIN_THEN_DIE, isolated_settings)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    root = store.root
    assert [n for n in hidden(root) if n.startswith(".half-written-new-")], "died mid-save"

    after = AdapterStore(isolated_settings)  # the next start
    assert after.names() == before, "no half-written adapter is listed"
    assert hidden(root) == [] or all(not n.startswith(".half-written") for n in hidden(root))
    assert after.get("kept").path.is_dir()


class Model:
    pass


def test_a_model_that_fails_to_load_says_why_and_a_retry_loads_it(
    tiny_settings: Settings,
) -> None:
    attempts: list[int] = []

    def flaky(ctx: LoadContext) -> LoadedModel:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("model.safetensors: unexpected end of file")
        return LoadedModel(handle=Model(), device=ctx.device, dtype=ctx.dtype, params=1, nbytes=4)

    manager = ModelManager(tiny_settings, loaders={"clip": flaky})
    with pytest.raises(ModelUnavailableError) as err:
        manager.get("clip")
    assert "unexpected end of file" in str(err.value) and err.value.fix
    assert {s.backend: s.state for s in manager.status()}["clip"] == "error"
    assert isinstance(manager.get("clip"), Model)  # the retry loads it
    row = {s.backend: s for s in manager.status()}["clip"]
    assert row.state == "loaded" and row.error == "" and len(attempts) == 2
