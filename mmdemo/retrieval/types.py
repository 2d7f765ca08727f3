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
class IngestProgress:
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


ProgressFn = Callable[[IngestProgress], None]


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

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "images": self.count,
            "model_id": self.model_id,
            "embed_dim": self.embed_dim,
            "dtype": self.dtype,
            "segments": self.segments,
            "disk_bytes": self.disk_bytes,
            "search": self.search,
            "created": self.created,
            "updated": self.updated,
        }


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

    def merged(self, later: AddReport) -> AddReport:
        """One report for two adds to the same index, one after the other."""
        seconds = self.seconds + later.seconds
        added = self.added + later.added
        return AddReport(
            index=later.index,
            added=added,
            duplicates=self.duplicates + later.duplicates,
            unchanged=self.unchanged + later.unchanged,
            replaced=self.replaced + later.replaced,
            skipped=self.skipped + later.skipped,
            ignored=self.ignored + later.ignored,
            total=later.total,
            seconds=seconds,
            images_per_second=added / seconds if seconds > 0 else 0.0,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "added": self.added,
            "duplicates": self.duplicates,
            "unchanged": self.unchanged,
            "replaced": self.replaced,
            "skipped": [{"file": s.path, "reason": s.reason} for s in self.skipped],
            "ignored": self.ignored,
            "total": self.total,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 2),
        }


@dataclass(frozen=True)
class RemoveReport:
    index: str
    removed: int
    not_found: tuple[str, ...]  # ids or paths that were not in the index
    total: int

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "removed": self.removed,
            "not_found": list(self.not_found),
            "total": self.total,
        }


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

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "query": self.query,
            "hits": [
                {
                    "rank": h.rank,
                    "item_id": h.item.id,
                    "name": h.item.name,
                    "file": h.item.path,  # on the server ("path" would make gradio_client fetch it)
                    "score": round(h.score, 6),
                }
                for h in self.hits
            ],
            "method": self.method,
            "searched": self.searched,
            "seconds": round(self.seconds, 4),
        }


@dataclass(frozen=True)
class ZeroShotResult:
    labels: tuple[str, ...]  # sorted by probability, highest first
    probabilities: tuple[float, ...]
    templates: tuple[str, ...]
    seconds: float

    @property
    def top(self) -> str:
        return self.labels[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "top": self.top,
            "labels": [
                {"label": label, "probability": round(p, 6)}
                for label, p in zip(self.labels, self.probabilities, strict=True)
            ],
            "templates": list(self.templates),
            "seconds": round(self.seconds, 3),
        }


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
