"""Blind arena: the arena's answers in a shuffled order under positions A, B, ..., with who
answered what kept on the server until the vote (``flows.votes``).

``stream`` runs the comparison (base and up to 3 adapters, one batch as in the open arena)
and yields the answers in the shown order; its last update carries the ``Draft`` (positions,
adapters, their weights' versions, answers) that ``open`` turns into a comparison waiting for
votes. The two are separate calls so the model work may run elsewhere (a ZeroGPU worker
process) while the comparison is opened in the server's own process.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.errors import BadInputError
from mmdemo.flows.arena import MAX_COLUMNS, ArenaService
from mmdemo.flows.chat import BASE_NAME
from mmdemo.flows.generation import GenerationSettings
from mmdemo.flows.votes import POSITIONS, Comparison, Contender, Draft, VoteBook
from mmdemo.models.adapters import WEIGHTS, AdapterInfo


@dataclass(frozen=True)
class BlindUpdate:
    """The answers so far, in the order shown (A, B, ...), with no names."""

    answers: tuple[str, ...]
    mode: str  # how the answers were computed (one batch, one after another)
    total_s: float
    done: bool
    draft: Draft | None = None  # on the last update: who is behind each position


def image_sha256(image: Any) -> str:
    """sha256 of an image file's bytes (a path or bytes); of the pixels for a PIL image;
    "" without an image."""
    if image is None:
        return ""
    if isinstance(image, (str, Path)):
        with open(image, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    if isinstance(image, (bytes, bytearray)):
        return hashlib.sha256(image).hexdigest()
    if hasattr(image, "tobytes"):
        return hashlib.sha256(image.tobytes()).hexdigest()
    raise BadInputError(f"cannot read an image from a {type(image).__name__}")


class BlindArena:
    """Blind comparisons over the app's arena; votes go to ``book``."""

    def __init__(self, arena: ArenaService, book: VoteBook) -> None:
        self.arena = arena
        self.book = book
        self._hashes: dict[tuple[str, int, int], str] = {}  # weights file -> sha256
        self._lock = threading.Lock()

    def board(self) -> str:
        """The served base model: its adapters' votes make one leaderboard."""
        return self.arena.chat.manager.model_id("vlm")

    def choices(self) -> list[str]:
        """What a blind comparison can hold: base and this machine's adapters."""
        return [c for c in self.arena.choices() if c not in self.arena.remotes]

    def stream(
        self,
        image: Any,
        prompt: str,
        adapters: Sequence[str],
        gen: GenerationSettings | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[BlindUpdate]:
        """Answer like the arena, shown in a random order; the last update has the draft
        (none when ``stop`` cut the answers short)."""
        names = list(dict.fromkeys(a or BASE_NAME for a in adapters))
        remote = [n for n in names if n in self.arena.remotes]
        if remote:
            raise BadInputError(
                f"blind votes compare this server's base model and adapters; {', '.join(remote)} "
                "is a remote model",
                fix="leave remote models out of a blind comparison (the open arena shows them)",
            )
        if not 2 <= len(names) <= MAX_COLUMNS:
            raise BadInputError(
                f"a blind comparison holds 2 to {MAX_COLUMNS} different models; "
                f"{len(names)} picked",
                fix="pick base and one to three adapters",
            )
        versions = {n: self.version(self.arena.chat.adapter_info(n)) for n in names}
        digest = image_sha256(image)
        board = self.board()
        stop = stop or threading.Event()
        order = list(range(len(names)))
        secrets.SystemRandom().shuffle(order)  # order[k]: the model shown at position k
        for result in self.arena.stream(image, prompt, names, gen, stop):
            answers = tuple(result.columns[i].text for i in order)
            draft = None
            if result.done and not stop.is_set():  # a stopped comparison takes no vote
                contenders = tuple(
                    Contender(POSITIONS[k], names[i], board, versions[names[i]], answers[k])
                    for k, i in enumerate(order)
                )
                kept = str(image) if isinstance(image, (str, Path)) else ""
                draft = Draft(board, prompt.strip(), digest, contenders, kept)
            yield BlindUpdate(answers, result.mode, result.total_s, result.done, draft)

    def open(self, draft: Draft, owner: str | None = None) -> Comparison:
        """Open a finished comparison for votes (``owner``: the session that ran it)."""
        return self.book.open(draft, owner)

    def version(self, info: AdapterInfo | None) -> dict[str, str]:
        """What identifies an adapter's weights: its ``created`` time from ``mmdemo.json``
        and the sha256 of its safetensors file (hashed once per file state); {} for base."""
        if info is None:
            return {}
        weights = Path(info.path) / WEIGHTS
        st = weights.stat()
        key = (str(weights), st.st_size, st.st_mtime_ns)
        with self._lock:
            digest = self._hashes.get(key)
        if digest is None:
            with open(weights, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            with self._lock:
                self._hashes[key] = digest
        return {"created": info.created, "weights_sha256": digest}
