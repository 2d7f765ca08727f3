"""Crash safety: taught gestures are written whole or not at all and a damaged set never
breaks built-in recognition; deletions a crash cut short are swept at start; a finished run
never replaces an adapter that took its name meanwhile; and the files endpoints return are
served when MMDEMO_HOME is outside the temp folder and the working directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmdemo.config import Settings
from mmdemo.errors import AdapterError, DamagedFileError
from mmdemo.flows.gestures.custom import CustomGestures
from mmdemo.models.adapters import AdapterStore
from tests.conftest import REPO, free_port

BUILTIN = REPO / "assets" / "adapters"
GESTURES = REPO / "assets" / "images" / "gestures"
RED = REPO / "assets" / "images" / "red-circle.png"

# normalised example hands of one synthetic class (what teaching from pictures produces)
HANDS = """
import numpy as np
from mmdemo.flows.gestures.features import normalise
from mmdemo.flows.gestures.synth import make_dataset

def hands(label, seed=3):
    lm, names = make_dataset(seed=seed, per_class=8)
    picked = [i for i, n in enumerate(names) if n == label][:6]
    return list(normalise(lm[picked]).astype(np.float32))
"""
namespace: dict[str, Any] = {}
exec(HANDS, namespace)  # the same helper runs in the child process below
hands = namespace["hands"]

# Runs in a child process: teach a second gesture, dying once the new set is written and
# flushed to its temporary file, before the rename that would make it custom.json.
TEACH_THEN_DIE = (
    HANDS
    + """
import os, sys
from pathlib import Path
import mmdemo.models.files as files
from mmdemo.flows.gestures.custom import CustomGestures

def die(src, dst):
    os._exit(17)

custom = CustomGestures(Path(sys.argv[1]))
files.os.replace = die
custom.teach("two", hands("victory"))
"""
)


def test_a_failed_rename_leaves_the_old_set_on_disk_and_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "gestures" / "custom.json"
    custom = CustomGestures(path)
    custom.teach("one", hands("thumbs_up"))
    before = path.read_bytes()

    def refuse(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("mmdemo.models.files.os.replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        custom.teach("two", hands("victory"))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert custom.names == ("one",)  # memory did not move ahead of the disk
    assert CustomGestures(path).names == ("one",)
    assert sorted(p.name for p in path.parent.iterdir()) == ["custom.json"]  # no temp left


def test_a_writer_killed_between_write_and_rename_leaves_the_old_set(tmp_path: Path) -> None:
    path = tmp_path / "gestures" / "custom.json"
    CustomGestures(path).teach("one", hands("thumbs_up"))
    before = path.read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMDEMO_")}
    proc = subprocess.run(
        [sys.executable, "-c", TEACH_THEN_DIE, str(path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 17, proc.stderr[-2000:]
    (partial,) = [p for p in path.parent.iterdir() if p.name != "custom.json"]
    assert [g["name"] for g in json.loads(partial.read_text())["gestures"]] == ["one", "two"]
    assert path.read_bytes() == before  # it died after writing the new set, before the rename
    again = CustomGestures(path)
    assert again.damage is None and again.names == ("one",)


def valid_set() -> str:
    return json.dumps(
        {
            "format": "mmdemo-gestures",
            "version": 1,
            "gestures": [{"name": "one", "examples": np.zeros((5, 21, 3)).tolist()}],
        }
    )


DAMAGES = {
    "truncated": valid_set()[: len(valid_set()) // 2].encode(),
    "not a gesture set": json.dumps({"format": "something-else"}).encode(),
    "gestures not a list": json.dumps({"format": "mmdemo-gestures", "gestures": 7}).encode(),
    "wrong example shape": json.dumps(
        {"format": "mmdemo-gestures", "gestures": [{"name": "one", "examples": [[1, 2]]}]}
    ).encode(),
    "not UTF-8": b"\xff\xfe\x00garbage",
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_set_turns_taught_gestures_off_and_says_why(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "gestures" / "custom.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(DAMAGES[damage])
    custom = CustomGestures(path)  # does not raise
    assert custom.damage is not None
    assert "gestures/custom.json cannot be read" in custom.damage.message
    assert "built-in gestures work" in custom.damage.message
    assert "move it aside" in custom.damage.fix
    assert custom.gestures() == [] and custom.model is None
    # nothing overwrites the damaged file: it may still be repaired
    with pytest.raises(DamagedFileError):
        custom.teach("fresh", hands("victory"))
    with pytest.raises(DamagedFileError):
        custom.import_json(valid_set())
    with pytest.raises(DamagedFileError):
        custom.export_json()
    assert path.read_bytes() == DAMAGES[damage]


def test_built_in_gestures_work_beside_a_damaged_set_and_every_view_says_so(
    tmp_path: Path, shared_manager: Any
) -> None:
    from mmdemo.flows.gestures.service import GestureService
    from mmdemo.ui.tabs.gestures.api import taught_list
    from mmdemo.ui.tabs.gestures.view import taught_note

    path = tmp_path / "home" / "gestures" / "custom.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(DAMAGES["truncated"])
    service = GestureService(shared_manager, tmp_path / "home")
    result = service.analyse_image(GESTURES / "thumbs-up.png")
    assert [h.gesture for h in result.hands] == ["thumbs_up"]
    assert any("taught gestures are off" in n for n in result.notes)
    (entry,) = taught_list(service)  # /gesture_list
    assert "cannot be read" in entry["error"] and "move it aside" in entry["fix"]
    assert taught_note(service.custom, "Deleted x.").startswith("**Taught gestures are off:**")
    # moved aside (what the fix says): taught gestures are back, no restart needed
    path.rename(path.with_name("custom.json.bad"))
    assert service.custom.damage is None and taught_note(service.custom, "ok") == "ok"
    service.custom.teach("fresh", hands("victory"))
    assert [g["name"] for g in taught_list(service)] == ["fresh"]


def test_deletions_a_crash_cut_short_are_swept_when_the_stores_start(
    isolated_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmdemo.retrieval.store import IndexStore

    store = AdapterStore(isolated_settings)
    store.install(BUILTIN / "pirate", "gone")
    store.install(BUILTIN / "color-namer", "kept")
    with monkeypatch.context() as crash:  # the process dies after the rename, before removal
        crash.setattr(shutil, "rmtree", lambda *a, **k: None)
        store.delete("gone")
    root = isolated_settings.adapters_dir
    assert [p.name for p in root.iterdir() if p.name.startswith(".deleting-gone-")]
    indexes = isolated_settings.indexes_dir
    (indexes / ".deleted-cats-1a2b3c4d" / "files").mkdir(parents=True)
    (indexes / ".deleted-cats-1a2b3c4d" / "manifest.json").write_text("{}")

    after = AdapterStore(isolated_settings)  # the next start
    IndexStore(indexes)
    assert [p.name for p in root.iterdir() if p.name.startswith(".deleting-")] == []
    assert [p.name for p in indexes.iterdir() if p.name.startswith(".deleted-")] == []
    assert after.names()[:1] == ["kept"] and "gone" not in after.names()


def test_a_finished_run_keeps_an_adapter_that_took_its_name_meanwhile(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    import torch

    from mmdemo.finetune.config import TrainConfig
    from mmdemo.finetune.events import Event, Phase
    from mmdemo.finetune.progress import EventLog, StopSwitch, read_events
    from mmdemo.finetune.run import RunEnv, train_adapter
    from mmdemo.flows.train_status import Run
    from mmdemo.ui.tabs.train.view import result_md

    store = AdapterStore(isolated_settings)

    def upload_while_evaluating(event: Event) -> None:
        if isinstance(event, Phase) and event.phase == "eval":  # another user uploads one
            store.install(BUILTIN / "pirate", "clash")

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    log = EventLog(run_dir / "events.jsonl", on_event=upload_while_evaluating)
    cfg = TrainConfig(name="clash", steps=2, batch_size=2, scale=0.02, eval_limit=2, warmup=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train_adapter(cfg, RunEnv(isolated_settings, run_dir, log, StopSwitch()))
    finally:
        torch.set_num_threads(threads)

    assert result.adapter == "clash-2" and result.path == isolated_settings.adapters_dir / "clash-2"
    uploaded = store.get("clash")
    assert uploaded.description == read_meta(BUILTIN / "pirate")["description"]  # kept
    weights = "adapter_model.safetensors"
    assert (uploaded.path / weights).read_bytes() == (BUILTIN / "pirate" / weights).read_bytes()
    assert store.get("clash-2").method == "lora"
    assert (result.path / "report.md").read_text().startswith("# clash-2")
    # the run's status and result say so
    run = Run("r1", "train", run_dir, {"name": "clash"})
    for event in read_events(run_dir / "events.jsonl", 0)[0]:
        run.apply(event)
    status = run.as_dict(None)
    assert status["adapter"] == "clash-2"
    assert "'clash' appeared while this run trained" in status["notes"][0]
    assert "saved as 'clash-2'" in result_md(status)


def test_an_upload_never_replaces_an_adapter_that_appeared_while_it_was_unpacked(
    isolated_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmdemo.models.adapters as adapters

    store = AdapterStore(isolated_settings)
    real = adapters._single_subfolder

    def finished_run_lands(staging: Path) -> Path:  # a run installs "race" right now
        shutil.copytree(BUILTIN / "color-namer", store.root / "race")
        return real(staging)

    monkeypatch.setattr(adapters, "_single_subfolder", finished_run_lands)
    with pytest.raises(AdapterError, match="appeared while this one was unpacked"):
        store.install(BUILTIN / "pirate", "race")
    assert store.get("race").description == read_meta(BUILTIN / "color-namer")["description"]


def read_meta(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "mmdemo.json").read_text())


def test_report_pictures_are_shown_as_images_not_server_paths(tmp_path: Path) -> None:
    from PIL import Image

    from mmdemo.ui.tabs.train.view import report_images

    picture = np.zeros((20, 30, 3), dtype=np.uint8)
    picture[:, :10] = (255, 0, 0)
    Image.fromarray(picture).save(tmp_path / "loss.png")
    (tmp_path / "report.md").write_text("# run\n![loss](loss.png)\n")
    ((image, caption),) = report_images({"report": str(tmp_path / "report.md")})
    assert caption == "training loss" and not isinstance(image, (str, Path))
    assert np.array_equal(np.asarray(image), picture)


# -- files served when MMDEMO_HOME is outside the temp folder and the working directory ----


@pytest.fixture(scope="module")
def outside_app(tiny_settings: Settings) -> Iterator[Any]:
    """The app served on 127.0.0.1 with its home under ~/.cache (not temp, not cwd); yields
    its Blocks."""
    from mmdemo.ui.app import build_app

    home = Path.home() / ".cache" / f"mmdemo-outside-{uuid.uuid4().hex[:8]}"
    for served in (Path(tempfile.gettempdir()), Path.cwd()):
        assert not home.resolve().is_relative_to(served.resolve()), "the test needs a home here"
    (home / "models").mkdir(parents=True)
    (home / "models" / "tiny").symlink_to(tiny_settings.models_dir / "tiny")
    try:
        app = build_app(tiny_settings.replace(home=home))
        demo = app.demo
        demo.queue()
        demo.launch(
            prevent_thread_lock=True,
            server_name="127.0.0.1",
            server_port=free_port(),
            quiet=True,
        )
        yield demo
        app.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def download(url: str) -> bytes:
    import httpx

    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, (url, response.text[:300])
    return response.content


def test_named_endpoints_return_files_that_download(outside_app: Any, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    client = Client(outside_app.local_url, verbose=False, download_files=str(tmp_path))
    exported = client.predict(api_name="/gesture_export")
    assert json.loads(Path(exported["file"]).read_text())["format"] == "mmdemo-gestures"
    client.predict("outside", "", [handle_file(str(RED))], api_name="/clip_add")
    hit = client.predict("outside", "red", None, 1, 0.5, None, api_name="/clip_search")["hits"][0]
    explained = client.predict("outside", hit["item_id"], "red", api_name="/clip_explain")
    from PIL import Image

    with Image.open(explained["overlay"]) as overlay:
        assert overlay.size[0] > 0


def call_event(url: str, fn_index: int, data: list[Any], session: str) -> list[Any]:
    """Run a tab's event the way the browser does (queue/join, then the event stream)."""
    import httpx

    with httpx.Client(base_url=url, timeout=120) as http:
        joined = http.post(
            "/gradio_api/queue/join",
            json={"data": data, "fn_index": fn_index, "session_hash": session},
        )
        joined.raise_for_status()
        with http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as s:
            for line in s.iter_lines():
                message = json.loads(line[5:]) if line.startswith("data:") else {}
                if message.get("msg") == "process_completed":
                    assert message["success"], message
                    return message["output"]["data"]
    raise AssertionError("the event never completed")


def test_the_gestures_tab_export_downloads(outside_app: Any) -> None:
    (index,) = [
        i
        for i, fn in outside_app.fns.items()
        if fn.name == "export" and fn.fn.__qualname__.startswith("GestureActions.")
    ]
    (exported,) = call_event(outside_app.local_url, index, [], uuid.uuid4().hex[:10])
    assert json.loads(download(exported["url"]))["format"] == "mmdemo-gestures"
