"""Typed results of the retrieval flows (the UI and the CLI format them, tests assert them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Skipped:
    """A file (or folder) that was not indexed, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Progress:
    """One progress tick of a long job (building an index)."""

    done: int
    total: int
    seconds: float  # since the job started

    @property
    def rate(self) -> float:
        """Items per second so far."""
        return self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta(self) -> float:
        """Seconds left at the current rate (0 when unknown)."""
        return (self.total - self.done) / self.rate if self.rate > 0 else 0.0

    def describe(self) -> str:
        return f"{self.done}/{self.total} images · {self.rate:.1f} img/s · ETA {self.eta:.0f} s"


ProgressFn = Callable[[Progress], None]


@dataclass(frozen=True)
class Item:
    """One indexed image."""

    id: int
    path: str  # where the file is read from (uploads: the copy inside the index folder)
    name: str  # what the user sees (the original file name)
    sha256: str
    bytes: int
    width: int
    height: int
    mtime: float  # file modification time when indexed; unchanged files are not re-read
    added: float  # unix time


@dataclass(frozen=True)
class IndexInfo:
    name: str
    count: int  # live images
    model_id: str
    fingerprint: str
    embed_dim: int
    dtype: str
    created: float
    updated: float
    generation: int
    segments: int
    removed_pending: int  # removed rows still physically present (until compaction)
    disk_bytes: int
    search: str  # "exact" or the ANN description

    def describe(self) -> str:
        return (
            f"{self.count} images · model `{self.model_id}` ({self.embed_dim}-d, {self.dtype}) · "
            f"{self.segments} segment(s) · {self.disk_bytes / 2**20:.1f} MB · search: {self.search}"
        )


@dataclass(frozen=True)
class AddReport:
    """What an index build / add did."""

    index: str
    added: int
    duplicates: int  # same content as an indexed image (or as another new file)
    unchanged: int  # same path, size and mtime as an indexed file: not read again
    replaced: int  # same path, new content: the old entry was removed
    skipped: tuple[Skipped, ...]
    ignored: int  # files in folders whose extension is not an image type
    total: int  # images in the index afterwards
    seconds: float
    images_per_second: float  # embedded images per second of wall time

    def describe(self) -> str:
        parts = [f"added {self.added}"]
        for label, n in (
            ("duplicates skipped", self.duplicates),
            ("unchanged", self.unchanged),
            ("replaced", self.replaced),
            ("unreadable skipped", len(self.skipped)),
            ("non-image files ignored", self.ignored),
        ):
            if n:
                parts.append(f"{label} {n}")
        rate = f" ({self.images_per_second:.1f} img/s)" if self.added else ""
        return (
            f"Index **{self.index}**: {', '.join(parts)} in {self.seconds:.1f} s{rate}; "
            f"{self.total} images now."
        )


@dataclass(frozen=True)
class RemoveReport:
    index: str
    removed: int
    not_found: tuple[str, ...]  # ids or paths that were not in the index
    total: int


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float  # cosine similarity of the query and the image embedding
    item: Item


@dataclass(frozen=True)
class SearchResult:
    index: str
    query: str  # what was searched, in words
    hits: tuple[Hit, ...]
    method: str  # "exact" or the ANN description
    searched: int  # live images searched
    seconds: float


@dataclass(frozen=True)
class ZeroShotResult:
    labels: tuple[str, ...]  # sorted by probability, highest first
    probabilities: tuple[float, ...]
    templates: tuple[str, ...]
    seconds: float

    @property
    def top(self) -> str:
        return self.labels[0]


@dataclass(frozen=True)
class Explanation:
    """Occlusion map: how much the text-image score drops when each region is hidden."""

    text: str
    score: float  # text-image cosine similarity of the whole image
    drops: Any  # (grid, grid) float array: score minus score with that cell hidden
    view: Any  # (H, W, 3) uint8: the crop the model actually sees
    overlay: Any  # (H, W, 3) uint8: the view with the drops as a heat map
    grid: int
    seconds: float
    notes: tuple[str, ...] = field(default=())
