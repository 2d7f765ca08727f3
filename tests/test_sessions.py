"""Per-session scratch folders: what the app writes for a user lives in that user's folder,
which goes when the session ends (the page closes) or, for API clients, when it sits idle."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from mmdemo.ui.sessions import SessionFolders


def test_idle_folders_are_swept_and_busy_ones_kept(tmp_path: Path) -> None:
    folders = SessionFolders(tmp_path / "sessions", max_idle_s=60)
    old, busy = folders.folder("old-session"), folders.folder("busy-session")
    (old / "answer.wav").write_bytes(b"x")
    long_ago = time.time() - 3600
    os.utime(old, (long_ago, long_ago))
    folders.folder("new-session")  # making a folder sweeps the idle ones
    assert not old.exists() and busy.is_dir()


def test_session_names_cannot_leave_the_root(tmp_path: Path) -> None:
    folders = SessionFolders(tmp_path / "sessions")
    for name in ("../../etc", "/abs", "..", "", None):
        assert folders.path(name).parent == folders.root


def test_a_closed_page_takes_its_files_with_it(app: Any, app_url: str) -> None:
    """A session writes a file (the spoken transcript); when its heartbeat connection (the
    open page) closes, Gradio's unload event removes the session's folder."""
    import httpx
    from gradio_client import Client

    session = uuid.uuid4().hex[:11]
    opened, closing = threading.Event(), threading.Event()

    def page() -> None:  # what an open browser tab keeps: the heartbeat stream
        with httpx.stream("GET", f"{app_url}gradio_api/heartbeat/{session}", timeout=60) as r:
            for _ in r.iter_lines():
                opened.set()
                if closing.wait(0.05):
                    break

    tab = threading.Thread(target=page, daemon=True)
    tab.start()
    assert opened.wait(30)
    client = Client(app_url, verbose=False)
    client.session_hash = session  # the API calls belong to the page's session
    spoken = client.predict("HELLO", api_name="/gesture_speak")
    folder = app.context.session_folders().path(session)
    assert folder.is_dir() and any(folder.iterdir()), "the session's file is in its folder"
    assert Path(spoken["audio"]).stat().st_size > 44

    closing.set()  # the page closes
    tab.join(30)
    deadline = time.monotonic() + 60
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not folder.exists(), "the session's folder is removed when the page closes"
