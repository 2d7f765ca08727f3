"""Per-file cache: ``MMDEMO_HOME/video/<sha256>/<stage>/``, one folder per stage.

A stage folder is written all at once (``atomic_folder``) with a ``stage.json`` holding the
stage's key (pipeline version, settings, model ids, inputs); a stage is reused only when its
key matches. So a second run on the same file recomputes nothing, a cancelled or failed run
keeps the stages it finished, and a crash never leaves half a stage.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

from mmdemo.errors import BadInputError
from mmdemo.flows.video.types import VideoResult, check
from mmdemo.models.files import atomic_folder, file_lock

STAGE_FILE = "stage.json"
RESULT_FILE = "result.json"
ID_PATTERN = re.compile(r"^[0-9a-f]{64}$")
HASH_BLOCK = 4 * 2**20


def sha256_blocks(path: Path, stop: threading.Event | None = None) -> Generator[float, None, str]:
    """Hex SHA-256 of a file read in 4 MB blocks; yields the fraction read after each block
    (and checks ``stop``), returns the digest."""
    digest = hashlib.sha256()
    size = max(1, path.stat().st_size)
    done = 0
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
            done += len(block)
            check(stop)
            yield done / size
    return digest.hexdigest()


def file_sha256(path: Path, stop: threading.Event | None = None) -> str:
    blocks = sha256_blocks(path, stop)
    while True:
        try:
            next(blocks)
        except StopIteration as done:
            return done.value


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers; anything else JSON does not know as text."""
    return value.item() if hasattr(value, "item") else str(value)


def stable_hash(value: Any) -> str:
    """A short hash of JSON-able data (a stage's inputs in its key)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class VideoCache:
    """The cache folder of one video (by content hash)."""

    def __init__(self, root: Path, video_id: str) -> None:
        if not ID_PATTERN.match(video_id):
            raise BadInputError(
                f"{video_id!r} is not a video id",
                fix="use the 64-character video_id that /video_summary returned",
            )
        self.video_id = video_id
        self.folder = Path(root) / video_id

    def stage_dir(self, stage: str) -> Path:
        return self.folder / stage

    def load(self, stage: str, key: dict[str, Any]) -> dict[str, Any] | None:
        """The stage's saved data if it was made with this exact key, else None."""
        try:
            saved = json.loads((self.stage_dir(stage) / STAGE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if saved.get("key") != json.loads(json.dumps(key, default=_plain)):
            return None
        return saved.get("data")

    @contextlib.contextmanager
    def write(self, stage: str, key: dict[str, Any]) -> Iterator[tuple[Path, dict[str, Any]]]:
        """Yield (temporary folder, data dict); fill both. On success the folder replaces the
        stage atomically with ``data`` saved under ``key``; on error nothing changes."""
        data: dict[str, Any] = {}
        with atomic_folder(self.stage_dir(stage)) as tmp:
            yield tmp, data
            record = {"key": key, "data": data, "saved": time.time()}
            (tmp / STAGE_FILE).write_text(json.dumps(record, default=_plain), encoding="utf-8")

    def save_result(self, result: VideoResult) -> None:
        """The assembled result (what ``/video_ask`` by id reads), replaced atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".result-", dir=self.folder)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(result.to_record(), handle)
        os.replace(tmp, self.folder / RESULT_FILE)

    def load_result(self) -> VideoResult | None:
        try:
            data = json.loads((self.folder / RESULT_FILE).read_text(encoding="utf-8"))
            return VideoResult.from_record(data)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @contextlib.contextmanager
    def lock(
        self, stop: threading.Event | None = None, waiting: Callable[[], None] | None = None
    ) -> Iterator[None]:
        """One run per file at a time (across threads and processes); a second run of the
        same file waits (calling ``waiting`` now and then), then finds the stages cached."""
        self.folder.mkdir(parents=True, exist_ok=True)

        def wait() -> None:
            check(stop)
            if waiting is not None:
                waiting()

        with file_lock(self.folder / ".lock", waiting=wait):
            yield
