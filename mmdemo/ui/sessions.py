"""Per-session scratch folders: what our code writes or copies for one user (answer audio,
uploaded adapters and datasets before they are checked) lives in that user's folder, which is
removed when the session ends.

A browser session ends when its tab closes (``demo.unload`` calls ``drop``). API clients never
say goodbye, so folders idle longer than ``max_idle_s`` are swept whenever a folder is made.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

ROOT_NAME = "mmdemo-sessions"  # under the system temp folder, which gradio may serve from


class SessionFolders:
    """``folder(session_hash)`` makes (or returns) a session's folder; ``drop`` removes it."""

    def __init__(self, root: Path | None = None, max_idle_s: float = 3600.0) -> None:
        # one root per process: two apps on one machine never sweep each other's files
        self.root = root or Path(tempfile.gettempdir()) / ROOT_NAME / str(os.getpid())
        self.max_idle_s = max_idle_s
        self._lock = threading.Lock()

    def path(self, session_hash: str | None) -> Path:
        """Where the session's folder is (made or not); sessions without a hash share one."""
        name = re.sub(r"[^A-Za-z0-9_-]", "", session_hash or "") or "no-session"
        return self.root / name[:64]

    def folder(self, session_hash: str | None) -> Path:
        """The session's folder, made if new; touched, so it counts as in use."""
        self.sweep()
        folder = self.path(session_hash)
        with self._lock:
            folder.mkdir(parents=True, exist_ok=True)
            os.utime(folder)
        return folder

    def drop(self, session_hash: str | None) -> None:
        """Remove the session's folder and everything in it."""
        with self._lock:
            shutil.rmtree(self.path(session_hash), ignore_errors=True)

    def sweep(self) -> None:
        """Remove folders of sessions idle for longer than ``max_idle_s``."""
        if not self.root.is_dir():
            return
        cutoff = time.time() - self.max_idle_s
        with self._lock:
            for folder in self.root.iterdir():
                try:
                    if folder.stat().st_mtime < cutoff:
                        shutil.rmtree(folder, ignore_errors=True)
                except OSError:
                    pass

    def close(self) -> None:
        """Remove every folder (the app is shutting down)."""
        with self._lock:
            shutil.rmtree(self.root, ignore_errors=True)
