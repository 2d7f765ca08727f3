"""Blind arena votes: the comparisons waiting for a vote, and the vote log on disk.

A blind comparison is opened on the server with its columns shuffled and named by position
(A, B, ...); the client gets only an unguessable comparison id and the answers. A vote names
that id and a position (or ``tie``, or ``bad`` when every answer is bad), so a client cannot
say which adapters it voted on: the server looks them up. Each session votes once per
comparison; on a hosted server only the session that opened a comparison may vote on it.

Votes are appended to ``MMDEMO_HOME/votes/votes.jsonl``, one JSON object a line, under a
file lock and fsynced; a torn last line (a crash mid-append) is skipped when read and never
glued to the next vote. Open comparisons live in memory: a restart forgets them (their votes
stay). In local mode the voted image is kept too, once per content, as
``votes/images/<sha256><suffix>`` (the vote's ``image_file``), so that the votes can become
training data (``flows/votes_export.py``); a hosted server keeps no visitor's pictures.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mmdemo.errors import BadInputError
from mmdemo.models.files import LOCKS, file_lock, fsync_dir

FORMAT = "mmdemo-vote"
VERSION = 1
VOTES_FILE = "votes.jsonl"
IMAGES = "images"  # the voted images, under the votes folder
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
TIE, BAD = "tie", "bad"  # every pair of answers tied; every answer bad (counted as a tie)
POSITIONS = "ABCDEFGH"
KEEP_OPEN_S = 6 * 3600.0  # how long a comparison waits for its votes
MAX_OPEN = 10_000  # comparisons kept waiting; the oldest go first beyond this
ID_RE = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Contender:
    """One column of a blind comparison, as the server keeps it."""

    position: str  # "A", "B", ...: what the voter sees
    adapter: str  # "base" or an adapter's name ("name@r=k": a DyLoRA adapter at rank k)
    model: str  # the base model that answered (the leaderboard's board)
    version: dict[str, str]  # what identifies the adapter's weights (created, weights_sha256)
    answer: str


@dataclass(frozen=True)
class Draft:
    """A finished blind comparison, before it is opened for votes."""

    board: str  # the served base model: each base model has its own leaderboard
    prompt: str
    image_sha256: str  # of the image file's bytes ("" without an image)
    contenders: tuple[Contender, ...]  # in position order
    image_path: str = ""  # the image file on this server (kept with the vote, local mode)

    @property
    def positions(self) -> tuple[str, ...]:
        return tuple(c.position for c in self.contenders)


@dataclass
class Comparison:
    """A comparison waiting for votes: only the server knows who is behind each position."""

    id: str
    draft: Draft
    owner: str  # the session that opened it
    opened: float  # clock time
    voters: set[str] = field(default_factory=set)  # sessions that voted on it


def parse_winner(winner: Any, positions: Sequence[str]) -> str:
    """``winner`` as ``A``.., ``tie`` or ``bad``; anything else is refused naming the choices."""
    text = str(winner if winner is not None else "").strip()
    low = text.lower().replace("_", " ")
    if low == TIE:
        return TIE
    if low in (BAD, "both bad", "all bad"):
        return BAD
    if text.upper() in positions:
        return text.upper()
    raise BadInputError(
        f"winner {text[:20]!r} is not one of {', '.join(positions)}, {TIE} or {BAD}",
        fix=f"send the position of the better answer, '{TIE}', or '{BAD}' when all are bad",
    )


class VoteLog:
    """The append-only vote file; reads are cached until the file changes."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / VOTES_FILE
        self._lock_path = Path(folder) / LOCKS / "votes.lock"
        self._cache: tuple[tuple[int, ...], list[dict], int] | None = None

    def append(self, record: dict[str, Any]) -> None:
        """Add one vote as one line, durably, also with other processes appending."""
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        with file_lock(self._lock_path):
            new = not self.path.exists()
            with open(self.path, "a+b") as handle:
                size = handle.seek(0, os.SEEK_END)
                if size:
                    handle.seek(size - 1)
                    if handle.read(1) != b"\n":  # a crash tore the last line: end it first
                        data = b"\n" + data
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if new:
                fsync_dir(self.path.parent)

    def read(self) -> tuple[tuple[int, ...], list[dict], int]:
        """The file's state (changes with every write), the votes in the order cast, and how
        many lines were skipped (torn or foreign)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return (), [], 0
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        cached = self._cache
        if cached is not None and cached[0] == key:
            return cached
        votes, skipped = [], 0
        with open(self.path, "rb") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    skipped += 1
                    continue
                if is_vote(record):
                    votes.append(record)
                else:
                    skipped += 1
        self._cache = (key, votes, skipped)
        return self._cache


def is_vote(record: Any) -> bool:
    """A record the leaderboard can count: a board, a winner among its columns' positions."""
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return False
    columns = record.get("columns")
    if not isinstance(columns, list) or len(columns) < 2:
        return False
    if not all(isinstance(c, dict) and c.get("position") and c.get("adapter") for c in columns):
        return False
    positions = [c["position"] for c in columns]
    names = [c["adapter"] for c in columns]
    winner = record.get("winner")
    return (
        isinstance(record.get("board"), str)
        and len(set(positions)) == len(positions)
        and len(set(names)) == len(names)
        and (winner in (TIE, BAD) or winner in positions)
    )


class VoteBook:
    """Open blind comparisons (in memory) and the votes cast on them (on disk)."""

    def __init__(
        self,
        folder: Path,
        hosted: bool = False,
        keep_open_s: float = KEEP_OPEN_S,
        max_open: int = MAX_OPEN,
        clock: Callable[[], float] = time.monotonic,
        keep_images: bool | None = None,
    ) -> None:
        self.log = VoteLog(folder)
        self.folder = Path(folder)
        self.hosted = hosted
        self.keep_images = not hosted if keep_images is None else keep_images
        self.keep_open_s = keep_open_s
        self.max_open = max_open
        self.clock = clock
        self._open: dict[str, Comparison] = {}
        self._lock = threading.Lock()
        self._boards: dict[tuple, dict[str, Any]] = {}  # leaderboards by (log state, options)

    def open(self, draft: Draft, owner: str | None = None) -> Comparison:
        """Keep ``draft`` waiting for votes under a new random id (``owner``: its session)."""
        if len(draft.contenders) < 2:
            raise BadInputError("a blind comparison needs at least two different answers")
        comparison = Comparison(secrets.token_hex(16), draft, owner or "", self.clock())
        with self._lock:
            self._forget_old()
            self._open[comparison.id] = comparison
        return comparison

    def vote(self, comparison_id: Any, winner: Any, session: str | None = None) -> dict[str, Any]:
        """Record ``session``'s vote on an open comparison; the record written (who was who
        is revealed in it). A forged or expired id, a second vote and a bad winner are refused."""
        cid = str(comparison_id if comparison_id is not None else "").strip().lower()
        voter = session or ""
        with self._lock:
            self._forget_old()
            comparison = self._open.get(cid) if ID_RE.match(cid) else None
            if comparison is None or (self.hosted and comparison.owner != voter):
                raise BadInputError(
                    f"no open comparison with id {str(comparison_id)[:40]!r}: it was not "
                    "handed out by this server (or to this session), or it expired (kept "
                    f"{self.keep_open_s / 3600:g} h, forgotten on restart)",
                    fix="run a blind comparison (/arena_blind) and vote with the "
                    "comparison_id it returns",
                )
            picked = parse_winner(winner, comparison.draft.positions)
            if voter in comparison.voters:
                raise BadInputError(
                    f"this session already voted on comparison {cid}",
                    fix="each session votes once per comparison; run a new comparison",
                )
            record = vote_record(comparison, picked, hosted=self.hosted)
            if self.keep_images:
                record["image_file"] = keep_image(self.folder, comparison.draft)
            self.log.append(record)
            comparison.voters.add(voter)
        return record

    def votes(self) -> list[dict]:
        """Every vote on disk, in the order cast."""
        return self.log.read()[1]

    def leaderboard(self, board: str = "", by_version: bool = False) -> dict[str, Any]:
        """The Bradley–Terry leaderboards (``board``: only that base model's), computed once
        per state of the vote file."""
        from mmdemo.flows.leaderboard import leaderboards

        state, votes, skipped = self.log.read()
        key = (state, by_version)
        with self._lock:
            result = self._boards.get(key)
        if result is None:
            result = leaderboards(votes, by_version=by_version)
            result["skipped_lines"] = skipped
            with self._lock:
                self._boards = {key: result}  # only the newest state is worth keeping
        if not board:
            return result
        return {**result, "boards": [b for b in result["boards"] if b["base_model"] == board]}

    def _forget_old(self) -> None:
        cutoff = self.clock() - self.keep_open_s
        for cid in [c for c, comp in self._open.items() if comp.opened < cutoff]:
            del self._open[cid]
        while len(self._open) >= self.max_open:
            del self._open[next(iter(self._open))]


def vote_record(comparison: Comparison, winner: str, hosted: bool) -> dict[str, Any]:
    """The line written for one vote (no session id: votes are anonymous)."""
    draft = comparison.draft
    by_position = {c.position: c for c in draft.contenders}
    return {
        "format": FORMAT,
        "version": VERSION,
        "vote": uuid.uuid4().hex,
        "comparison": comparison.id,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "board": draft.board,
        "prompt": draft.prompt,
        "image_sha256": draft.image_sha256,
        "winner": winner,
        "winner_adapter": by_position[winner].adapter if winner in by_position else None,
        "hosted": hosted,
        "columns": [asdict(c) for c in draft.contenders],
    }


def keep_image(folder: Path, draft: Draft) -> str:
    """Copy the comparison's image into ``folder/images`` under its sha256 (once per content);
    its path relative to ``folder``, or "" when there is none or it changed since."""
    if not draft.image_path or not draft.image_sha256:
        return ""
    source = Path(draft.image_path)
    suffix = source.suffix.lower() if source.suffix.lower() in IMAGE_SUFFIXES else ".png"
    name = f"{draft.image_sha256}{suffix}"
    target = folder / IMAGES / name
    if target.is_file():
        return f"{IMAGES}/{name}"
    try:
        data = source.read_bytes()
    except OSError:  # the upload was cleaned away meanwhile: the vote stands without it
        return ""
    if hashlib.sha256(data).hexdigest() != draft.image_sha256:
        return ""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{name}.{uuid.uuid4().hex}.tmp")
    with open(staging, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staging, target)
    fsync_dir(target.parent)
    return f"{IMAGES}/{name}"
