"""All-or-nothing folder writes and cross-process locks (models/files.py), crashes included."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mmdemo.models.files import (
    aside_path,
    atomic_folder,
    file_lock,
    restore_folder,
    restore_folders,
)

REPO = Path(__file__).resolve().parents[1]


def contents(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def write(target: Path, text: str) -> None:
    with atomic_folder(target) as tmp:
        (tmp / "data.txt").write_text(text)
        (tmp / "more.txt").write_text(text * 2)


def test_a_write_replaces_the_folder_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "adapter"
    write(target, "old")
    write(target, "new")
    assert contents(target) == {"data.txt": "new", "more.txt": "newnew"}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".locks") == ["adapter"]


def test_an_error_while_writing_keeps_the_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "adapter"
    write(target, "old")
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "data.txt").write_text("half")
        raise RuntimeError("disk full")
    assert contents(target) == {"data.txt": "old", "more.txt": "oldold"}
    assert not [p for p in tmp_path.iterdir() if "-new-" in p.name], "the half folder is gone"


CRASH_BETWEEN_RENAMES = r"""
import os, sys
from pathlib import Path
from mmdemo.models import files

target = Path(sys.argv[1])
real = os.rename
def rename(src, dst):
    if Path(dst) == target:  # the new folder is about to take the name: die first
        os._exit(17)
    real(src, dst)
os.rename = rename
with files.atomic_folder(target) as tmp:
    (tmp / "data.txt").write_text("new")
"""


def test_a_crash_between_the_two_renames_loses_nothing(tmp_path: Path) -> None:
    target = tmp_path / "adapter"
    write(target, "old")
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_BETWEEN_RENAMES, str(target)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 17, proc.stderr
    assert not target.exists(), "the crash came after the old folder was renamed aside"
    assert contents(aside_path(target)) == {"data.txt": "old", "more.txt": "oldold"}

    assert restore_folder(target) is True
    assert contents(target) == {"data.txt": "old", "more.txt": "oldold"}
    assert not aside_path(target).exists()
    write(target, "newer")
    assert contents(target) == {"data.txt": "newer", "more.txt": "newernewer"}
    assert not aside_path(target).exists()


def test_the_next_write_or_a_listing_restores_an_interrupted_swap(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write(tmp_path / name, name)
        os.rename(tmp_path / name, aside_path(tmp_path / name))  # as the crash leaves it
    assert sorted(restore_folders(tmp_path)) == ["a", "b"]
    assert contents(tmp_path / "a")["data.txt"] == "a"
    assert contents(tmp_path / "b")["data.txt"] == "b"

    os.rename(tmp_path / "a", aside_path(tmp_path / "a"))
    with atomic_folder(tmp_path / "a") as tmp:
        assert contents(tmp_path / "a")["data.txt"] == "a", "restored before the new write"
        (tmp / "data.txt").write_text("a2")
    assert contents(tmp_path / "a") == {"data.txt": "a2"}


def test_a_failed_second_rename_puts_the_old_folder_back_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "adapter"
    write(target, "old")
    real = os.rename

    def rename(src: object, dst: object) -> None:
        if Path(str(dst)) == target and "-new-" in Path(str(src)).name:
            raise PermissionError(13, "Permission denied", str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(PermissionError):
        write(target, "new")
    assert contents(target) == {"data.txt": "old", "more.txt": "oldold"}
    assert not aside_path(target).exists()
    assert not [p for p in tmp_path.iterdir() if "-new-" in p.name]


HOLD_LOCK = r"""
import sys, time
from pathlib import Path
from mmdemo.models.files import file_lock
lock, go, marker = (Path(a) for a in sys.argv[1:4])
with file_lock(lock):
    print("held", flush=True)
    while not go.exists():  # hold the lock until the other side has waited for it
        time.sleep(0.02)
    marker.write_text("released")
"""


def test_a_lock_held_by_another_process_makes_us_wait(tmp_path: Path) -> None:
    lock, go, marker = tmp_path / "x.lock", tmp_path / "go", tmp_path / "marker"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock), str(go), str(marker)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        waits: list[int] = []

        def waiting() -> None:
            waits.append(1)
            go.touch()

        with file_lock(lock, waiting=waiting, poll=0.05):
            assert marker.read_text() == "released", "we got the lock only after the holder"
        assert waits, "waiting() was called while the other process held the lock"
    finally:
        holder.kill()
        holder.wait()


def test_waiting_may_give_up(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with file_lock(lock):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(30)

    def give_up() -> None:
        raise TimeoutError("stopped waiting")

    try:
        with pytest.raises(TimeoutError), file_lock(lock, waiting=give_up, poll=0.05):
            pass
    finally:
        release.set()
        thread.join(30)
    with file_lock(lock, waiting=give_up, poll=0.05):
        pass  # free again: taken at once, waiting() is never called
