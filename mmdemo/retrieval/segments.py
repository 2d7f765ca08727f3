"""In-memory view of an index: immutable segments and a snapshot over them.

A snapshot is never modified: a write produces a new snapshot that reuses the unchanged
segments (and their caches), so searches running on the old one are never disturbed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from mmdemo.retrieval.identity import IndexCorruptError, ModelIdentity
from mmdemo.retrieval.types import Item

FORMAT = 1
META_COLUMNS = ("path", "name", "sha256", "bytes", "width", "height", "mtime", "added")


@dataclass(frozen=True)
class SegmentRef:
    name: str  # file stem: <name>.npy (vectors) and <name>.json (metadata)
    count: int


@dataclass(frozen=True)
class Manifest:
    """The commit point of an index: everything else on disk is reachable from it."""

    name: str
    identity: ModelIdentity
    dtype: str  # storage dtype of the vectors: float16 or float32
    created: float
    updated: float
    generation: int = 0  # +1 per commit
    next_id: int = 0  # ids are never reused
    segments: tuple[SegmentRef, ...] = ()
    removed: tuple[int, ...] = ()  # removed ids still present in some segment file
    compacted: int = 0  # generation of the last segment rewrite (ANN caches before it are stale)
    format: int = FORMAT

    @property
    def count(self) -> int:
        return sum(s.count for s in self.segments) - len(self.removed)

    def evolve(self, **changes: Any) -> Manifest:
        return replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": self.format,
                "name": self.name,
                "model": self.identity.to_json(),
                "dtype": self.dtype,
                "created": self.created,
                "updated": self.updated,
                "generation": self.generation,
                "next_id": self.next_id,
                "segments": [[s.name, s.count] for s in self.segments],
                "removed": list(self.removed),
                "compacted": self.compacted,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str, where: Path) -> Manifest:
        try:
            data = json.loads(text)
            if data.get("format") != FORMAT:
                raise IndexCorruptError(
                    f"{where} has format {data.get('format')!r}; this mmdemo reads format {FORMAT}",
                    fix="rebuild the index with this version of mmdemo",
                )
            return cls(
                name=str(data["name"]),
                identity=ModelIdentity.from_json(data["model"]),
                dtype=str(data["dtype"]),
                created=float(data["created"]),
                updated=float(data["updated"]),
                generation=int(data["generation"]),
                next_id=int(data["next_id"]),
                segments=tuple(SegmentRef(str(n), int(c)) for n, c in data["segments"]),
                removed=tuple(int(i) for i in data["removed"]),
                compacted=int(data.get("compacted", 0)),
            )
        except IndexCorruptError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(
                f"{where} is not a readable index manifest ({type(exc).__name__}: {exc})",
                fix="delete the index folder and build it again",
            ) from None


class Segment:
    """Vectors (memory-mapped from disk), ids and column-wise metadata of one segment."""

    def __init__(self, name: str, ids: np.ndarray, vectors: np.ndarray, meta: Mapping[str, list]):
        self.name = name
        self.ids = ids
        self.vectors = vectors
        self.meta = meta

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def load(cls, directory: Path, ref: SegmentRef, dim: int) -> Segment:
        """Read a segment's files (FileNotFoundError passes through: a writer may have just
        replaced it, and the caller retries with the new manifest)."""
        try:
            vectors = np.load(directory / f"{ref.name}.npy", mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise IndexCorruptError(
                f"segment {ref.name} in {directory} holds no readable vectors ({exc})",
                fix="delete the index folder and build it again",
            ) from None
        try:
            meta = json.loads((directory / f"{ref.name}.json").read_text(encoding="utf-8"))
            ids = np.asarray(meta.pop("id"), dtype=np.int64)
        except (ValueError, KeyError) as exc:
            raise IndexCorruptError(f"segment {ref.name} metadata is damaged: {exc}") from None
        lengths = {len(meta.get(c, ())) for c in META_COLUMNS}
        if vectors.shape != (ref.count, dim) or len(ids) != ref.count or lengths != {ref.count}:
            raise IndexCorruptError(
                f"segment {ref.name} in {directory} does not match its manifest entry",
                fix="delete the index folder and build it again",
            )
        return cls(ref.name, ids, vectors, meta)

    @cached_property
    def dense(self) -> np.ndarray:
        """The vectors as an in-memory float32 array (for exact search of small indexes)."""
        return np.ascontiguousarray(self.vectors, dtype=np.float32)

    @cached_property
    def row_of_sha(self) -> dict[str, int]:
        return {sha: row for row, sha in enumerate(self.meta["sha256"])}

    @cached_property
    def row_of_path(self) -> dict[str, int]:
        return {path: row for row, path in enumerate(self.meta["path"])}

    def item(self, row: int) -> Item:
        m = self.meta
        return Item(
            int(self.ids[row]),
            m["path"][row],
            m["name"][row],
            m["sha256"][row],
            int(m["bytes"][row]),
            int(m["width"][row]),
            int(m["height"][row]),
            float(m["mtime"][row]),
            float(m["added"][row]),
        )


@dataclass(eq=False)
class Snapshot:
    """One committed state of an index."""

    directory: Path
    manifest: Manifest
    segments: tuple[Segment, ...]
    removed: frozenset[int] = field(init=False)

    def __post_init__(self) -> None:
        self.removed = frozenset(self.manifest.removed)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def count(self) -> int:
        return self.manifest.count

    @cached_property
    def removed_ids(self) -> np.ndarray:
        return np.asarray(sorted(self.removed), dtype=np.int64)

    @cached_property
    def dead_rows(self) -> tuple[np.ndarray, ...]:
        """Per segment, the rows whose ids were removed."""
        if not self.removed:
            return tuple(np.zeros(0, dtype=np.int64) for _ in self.segments)
        return tuple(np.flatnonzero(np.isin(s.ids, self.removed_ids)) for s in self.segments)

    @cached_property
    def _lookup(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids = np.concatenate([s.ids for s in self.segments] or [np.zeros(0, np.int64)])
        seg = np.concatenate(
            [np.full(len(s), i, dtype=np.int32) for i, s in enumerate(self.segments)]
            or [np.zeros(0, np.int32)]
        )
        rows = np.concatenate(
            [np.arange(len(s), dtype=np.int64) for s in self.segments] or [np.zeros(0, np.int64)]
        )
        order = np.argsort(ids, kind="stable")
        return ids[order], seg[order], rows[order]

    def locate(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(segment index, row, found) for each id; removed ids count as not found."""
        ids = np.asarray(ids, dtype=np.int64)
        sorted_ids, seg, rows = self._lookup
        pos = np.searchsorted(sorted_ids, ids).clip(0, max(len(sorted_ids) - 1, 0))
        found = (sorted_ids[pos] == ids) if len(sorted_ids) else np.zeros(len(ids), bool)
        if self.removed:
            found &= ~np.isin(ids, self.removed_ids)
        return seg[pos], rows[pos], found

    def is_live(self, item_id: int) -> bool:
        return bool(self.locate(np.asarray([item_id]))[2][0])

    def item(self, item_id: int) -> Item | None:
        seg, row, found = self.locate(np.asarray([item_id]))
        return self.segments[seg[0]].item(int(row[0])) if found[0] else None

    def items(self, ids: Sequence[int]) -> list[Item | None]:
        """The live items of ``ids`` (None for ids that are not live), in order."""
        return [self.item(int(i)) for i in ids]

    def vectors_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(float32 vectors of the live ids among ``ids``, mask of which were live)."""
        seg, rows, found = self.locate(ids)
        out = np.zeros((len(ids), self.manifest.identity.embed_dim), dtype=np.float32)
        for index in np.unique(seg[found]):
            pick = found & (seg == index)
            out[pick] = self.segments[index].vectors[rows[pick]]
        return out, found

    def find_sha(self, sha: str) -> int | None:
        """Id of the live image with this content hash."""
        for s in self.segments:
            row = s.row_of_sha.get(sha)
            if row is not None and int(s.ids[row]) not in self.removed:
                return int(s.ids[row])
        return None

    def find_path(self, path: str) -> Item | None:
        """The live image indexed from this path."""
        for s in self.segments:
            row = s.row_of_path.get(path)
            if row is not None and int(s.ids[row]) not in self.removed:
                return s.item(row)
        return None

    def iter_items(self) -> Iterator[Item]:
        for s in self.segments:
            for row in range(len(s)):
                if int(s.ids[row]) not in self.removed:
                    yield s.item(row)

    def iter_live(
        self, chunk: int = 65_536, min_id: int = -1
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, float32 vectors) of live rows with id > ``min_id``, in bounded chunks."""
        for s, dead in zip(self.segments, self.dead_rows, strict=True):
            keep = s.ids > min_id
            if len(dead):
                keep[dead] = False
            rows = np.flatnonzero(keep)
            for start in range(0, len(rows), chunk):
                part = rows[start : start + chunk]
                yield s.ids[part], np.asarray(s.vectors[part], dtype=np.float32)
