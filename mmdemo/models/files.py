"""File and folder writes that are all-or-nothing, and locks across processes (any OS, filelock).

``atomic_folder`` builds the new folder under a temporary name beside the target, then swaps
it in with two renames: the old folder is renamed aside, then the new one takes its name.
Between the two renames the target is briefly absent; a crash right there leaves the old
folder aside, and ``restore_folder`` (which every later ``atomic_folder`` on the same target
runs first) puts it back. So a reader finds the old folder or the complete new one, never
half of one. A crashed write's unfinished ``.NAME-new-PID-*`` folder stays behind, hidden;
its name carries the writer's process id, so ``sweep_staging`` (run by the adapter store when
it lists) removes it once that process is gone, and never another writer's work in progress.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def file_lock(
    path: Path, waiting: Callable[[], None] | None = None, poll: float = 0.2
) -> Iterator[None]:
    """An exclusive lock across processes and threads, held for the ``with`` block.

    Without ``waiting`` this blocks until the lock is free; with it, ``waiting()`` is called
    every ``poll`` seconds while another holder has it (it may raise to give up waiting).
    """
    from filelock import FileLock, Timeout

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))  # a new lock object per use: separate holders exclude each other
    if waiting is None:
        lock.acquire()
    else:
        while True:
            try:
                lock.acquire(timeout=poll)
                break
            except Timeout:
                waiting()
    try:
        yield
    finally:
        lock.release()


def aside_path(target: Path) -> Path:
    """Where the old folder waits while a new one takes its name."""
    return target.with_name(f".{target.name}.replaced")


LOCKS = ".locks"  # lock files stay after use (deleting one another process waits on is racy)


def _swap_lock(target: Path) -> Path:
    folder = target.parent / LOCKS
    folder.mkdir(exist_ok=True)
    return folder / f"{target.name}.swap.lock"


def restore_folder(target: Path) -> bool:
    """Finish a swap a crash interrupted: if ``target`` is missing and its old folder waits
    aside, put it back (True). A leftover aside copy beside a present target is deleted."""
    target = Path(target)
    aside = aside_path(target)
    if not aside.exists():
        return False
    with file_lock(_swap_lock(target)):
        if not aside.exists():
            return False
        if target.exists():
            shutil.rmtree(aside, ignore_errors=True)  # the swap finished; cleanup did not
            return False
        os.rename(aside, target)
        return True


def restore_folders(parent: Path) -> list[str]:
    """``restore_folder`` for every interrupted swap under ``parent``; the names restored."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    names = [
        p.name[1 : -len(".replaced")]
        for p in parent.iterdir()
        if p.name.startswith(".") and p.name.endswith(".replaced")
    ]
    return [n for n in names if n and restore_folder(parent / n)]


# ".NAME-new-PID-XXXXXXXX": mkdtemp's random suffix has no "-"
STAGING_RE = re.compile(r"^\..+-new-(\d+)-[^-]+$")


def staging_dir(parent: Path, name: str) -> Path:
    """A new hidden folder in ``parent`` to build ``name`` in, named with our process id."""
    return Path(tempfile.mkdtemp(prefix=f".{name}-new-{os.getpid()}-", dir=parent))


def sweep_staging(parent: Path) -> list[str]:
    """Remove staging folders whose writer process no longer runs (a crash's debris);
    returns their names."""
    import psutil

    if not Path(parent).is_dir():
        return []
    swept = []
    for path in Path(parent).iterdir():
        match = STAGING_RE.match(path.name)
        if match and path.is_dir() and not psutil.pid_exists(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            swept.append(path.name)
    return swept


def sweep_trash(parent: Path, prefix: str) -> list[str]:
    """Remove the folders named ``prefix``* in ``parent``: what a deletion that renames a
    folder away, then removes it, leaves when the process dies in between; the names removed.
    (Two processes sweeping the same one at once is harmless.)"""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    swept = []
    for path in parent.iterdir():
        if path.name.startswith(prefix) and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            swept.append(path.name)
    return swept


@contextlib.contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces ``target``, on error it is
    removed and ``target`` is untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    restore_folder(target)
    tmp = staging_dir(target.parent, target.name)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap_in(tmp, target)


def _swap_in(new: Path, target: Path) -> None:
    """Rename ``target`` aside, rename ``new`` to ``target``, delete the old one."""
    aside = aside_path(target)
    with file_lock(_swap_lock(target)):
        if aside.exists():  # left by a crash after a swap (with target present) or before it
            if target.exists():
                shutil.rmtree(aside, ignore_errors=True)
            else:
                os.rename(aside, target)
        had_old = target.exists()
        try:
            if had_old:
                os.rename(target, aside)
            os.rename(new, target)
        except BaseException:
            if had_old and aside.exists() and not target.exists():
                os.rename(aside, target)
            shutil.rmtree(new, ignore_errors=True)
            raise
        if had_old:
            shutil.rmtree(aside, ignore_errors=True)


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write a file completely under a temporary name in its folder, fsync it, then rename it
    into place: a crash at any point leaves the old file or the new one, never half of one."""
    tmp = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync_dir(directory: Path) -> None:
    """Make the renames in ``directory`` durable (they live in the folder's own entry)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
