"""Indexes on disk under ``MMDEMO_HOME/indexes/<name>/``, written so a crash loses nothing.

Layout (log-structured, like Lucene's segments):
  manifest.json     the commit point: model identity, segment list, removed ids
  seg-*.npy/.json   immutable segments: L2-normalised vectors and their metadata (columns)
  files/            copies of uploaded images (folders are indexed in place)
  ann.bin           a cached ANN index, derived from the segments (rebuilt when stale)
Writers of an index hold ``indexes/.locks/<name>.lock`` (threads and processes alike; outside
the index folder, so deleting an index can rename its folder away on any OS).

A write first writes complete new segment files, then replaces manifest.json (write to a
temporary file, fsync, ``os.replace``): a crash at any point leaves the old or the new manifest,
each naming only complete files. Files no manifest names are deleted by the next write. Adding
images writes one new segment (cost: the new rows, never a rebuild); removals are recorded in
the manifest and dropped physically when a segment is rewritten (compaction or merge).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmdemo.errors import BadInputError, SettingsError
from mmdemo.models.files import atomic_write, file_lock, fsync_dir, sweep_trash
from mmdemo.retrieval.identity import (
    IndexCorruptError,
    IndexExistsError,
    IndexNotFoundError,
    ModelIdentity,
    mismatch_error,
)
from mmdemo.retrieval.search import SearchConfig, Searcher, TextQueries
from mmdemo.retrieval.segments import (
    META_COLUMNS,
    Manifest,
    Segment,
    SegmentRef,
    Snapshot,
)

MANIFEST = "manifest.json"
LOCKS = ".locks"
FILES = "files"
TRASH = ".deleted-"  # a deleted index's folder, renamed away before its files are removed
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DTYPES = ("float16", "float32")


@dataclass(frozen=True)
class StoreConfig:
    """When segments are rewritten."""

    # with more segments than this after a write, the smallest ones are merged into one
    max_segments: int = 16
    # a segment is rewritten without its removed rows once this share of it is removed
    compact_ratio: float = 0.3

    def __post_init__(self) -> None:
        if self.max_segments < 2 or not 0 < self.compact_ratio <= 1:
            raise SettingsError("max_segments must be >= 2 and compact_ratio in (0, 1]")


def validate_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME_RE.fullmatch(name):
        raise BadInputError(
            f"{name!r} is not a valid index name",
            fix="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


class IndexStore:
    """All indexes under one folder. Thread- and process-safe; holds no loaded data itself.
    The default ``VectorStore`` (backend.py)."""

    backend = "faiss"

    def __init__(self, root: Path, config: StoreConfig | None = None) -> None:
        self.root = Path(root)
        self.config = config or StoreConfig()
        sweep_trash(self.root, TRASH)  # deletions a crash cut short

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if (p / MANIFEST).is_file() and NAME_RE.fullmatch(p.name)
        )

    def directory(self, name: str) -> Path:
        return self.root / validate_name(name)

    def exists(self, name: str) -> bool:
        return (self.directory(name) / MANIFEST).is_file()

    def version(self, name: str) -> tuple[int, int, int] | None:
        """Changes whenever a write commits (cheap: one stat)."""
        try:
            st = (self.directory(name) / MANIFEST).stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def read_manifest(self, name: str) -> Manifest:
        path = self.directory(name) / MANIFEST
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            known = ", ".join(self.names()) or "none yet"
            raise IndexNotFoundError(
                f"there is no index named '{name}' (indexes: {known})",
                fix=f"build it first: `python -m mmdemo index build {name} FOLDER`",
            ) from None
        return Manifest.from_json(text, path)

    def load(self, name: str, reuse: Snapshot | None = None) -> Snapshot:
        """The latest committed snapshot; segments already loaded in ``reuse`` are shared."""
        directory = self.directory(name)
        known = {s.name: s for s in reuse.segments} if reuse is not None else {}
        for attempt in range(5):
            manifest = self.read_manifest(name)
            dim = manifest.identity.embed_dim
            try:
                segments = tuple(
                    known[ref.name]
                    if ref.name in known and len(known[ref.name]) == ref.count
                    else Segment.load(directory, ref, dim)
                    for ref in manifest.segments
                )
            except FileNotFoundError:
                if attempt == 4:
                    raise IndexCorruptError(
                        f"index '{name}' names segment files that do not exist",
                        fix="delete the index folder and build it again",
                    ) from None
                time.sleep(0.05)  # a writer replaced the manifest while we read; read it again
                continue
            return Snapshot(directory, manifest, segments)
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def writer(self, name: str) -> Iterator[Path]:
        """Exclusive write access to an index (blocks other writers, never readers)."""
        directory = self.directory(name)
        with file_lock(self.root / LOCKS / f"{directory.name}.lock"):
            directory.mkdir(parents=True, exist_ok=True)
            yield directory

    def create(
        self, name: str, identity: ModelIdentity, dtype: str = "float16", replace: bool = False
    ) -> Snapshot:
        if dtype not in DTYPES:
            raise BadInputError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        with self.writer(name) as directory:
            generation = 0
            if (directory / MANIFEST).is_file():
                if not replace:
                    raise IndexExistsError(
                        f"an index named '{name}' already exists",
                        fix="add images to it, pick another name, or rebuild it with --replace",
                    )
                generation = self.read_manifest(name).generation + 1
            now = time.time()
            manifest = Manifest(name, identity, dtype, now, now, generation=generation)
            self._commit(directory, manifest)
            if replace:
                shutil.rmtree(directory / FILES, ignore_errors=True)
                (directory / "ann.bin").unlink(missing_ok=True)
        return self.load(name)

    def append(
        self,
        name: str,
        vectors: np.ndarray,
        rows: Sequence[dict[str, Any]],
        identity: ModelIdentity,
        replace_ids: Sequence[int] = (),
        reuse: Snapshot | None = None,
    ) -> tuple[Snapshot, int]:
        """Add rows as one new segment; returns (new snapshot, rows dropped as duplicates).

        Duplicates are checked again here, under the lock, against the latest commit: another
        writer may have added the same content meanwhile.
        """
        if len(vectors) != len(rows):
            raise ValueError("one vector per row")
        with self.writer(name) as directory:
            base = self.load(name, reuse)
            manifest = base.manifest
            if not manifest.identity.same_space(identity):
                raise mismatch_error(name, manifest.identity, identity)
            if vectors.size and vectors.shape[1] != manifest.identity.embed_dim:
                raise ValueError(
                    f"vectors have {vectors.shape[1]} dims, index has {manifest.identity.embed_dim}"
                )
            replaced = {int(i) for i in replace_ids if base.is_live(int(i))}
            keep, seen = [], set()
            for i, row in enumerate(rows):
                existing = base.find_sha(row["sha256"])
                if row["sha256"] in seen or (existing is not None and existing not in replaced):
                    continue
                seen.add(row["sha256"])
                keep.append(i)
            generation = manifest.generation + 1
            refs = list(manifest.segments)
            if keep:
                ids = np.arange(manifest.next_id, manifest.next_id + len(keep), dtype=np.int64)
                ref = SegmentRef(f"seg-{generation:08d}-0", len(keep))
                kept = [rows[i] for i in keep]
                meta = {c: [r[c] for r in kept] for c in META_COLUMNS}
                self._write_segment(directory, ref, ids, vectors[keep], meta, manifest.dtype)
                refs.append(ref)
            manifest = manifest.evolve(
                generation=generation,
                next_id=manifest.next_id + len(keep),
                segments=tuple(refs),
                removed=tuple(sorted(set(manifest.removed) | replaced)),
                updated=time.time(),
            )
            manifest = self._maintain(directory, manifest, base)
            self._commit(directory, manifest)
            snapshot = self.load(name, base)
        return snapshot, len(rows) - len(keep)

    def remove(
        self, name: str, ids: Sequence[int], reuse: Snapshot | None = None
    ) -> tuple[Snapshot, list[int]]:
        """Remove images by id; returns (new snapshot, the ids that were live and are gone)."""
        with self.writer(name) as directory:
            base = self.load(name, reuse)
            gone = sorted({int(i) for i in ids if base.is_live(int(i))})
            if not gone:
                return base, []
            items = [base.item(i) for i in gone]
            manifest = base.manifest.evolve(
                generation=base.manifest.generation + 1,
                removed=tuple(sorted(set(base.manifest.removed) | set(gone))),
                updated=time.time(),
            )
            manifest = self._maintain(directory, manifest, base)
            self._commit(directory, manifest)
            files = (directory / FILES).resolve()
            for item in items:  # copies of uploads go with their entry
                if item is not None and Path(item.path).resolve().parent == files:
                    Path(item.path).unlink(missing_ok=True)
            snapshot = self.load(name, base)
        return snapshot, gone

    def delete(self, name: str) -> None:
        if not self.exists(name):
            self.read_manifest(name)  # raises the not-found error with its fix
        with self.writer(name) as directory:
            trash = self.root / f"{TRASH}{directory.name}-{uuid.uuid4().hex[:8]}"
            directory.rename(trash)  # atomic: the index vanishes at once, then files go
        shutil.rmtree(trash, ignore_errors=True)

    def files_dir(self, name: str) -> Path:
        return self.directory(name) / FILES

    def disk_bytes(self, snapshot: Snapshot) -> int:
        """Bytes of the index folder (segments, ANN cache, copies of uploads)."""
        total = 0
        for root, _, files in os.walk(snapshot.directory):
            for f in files:
                with contextlib.suppress(OSError):  # a writer may delete files meanwhile
                    total += (Path(root) / f).stat().st_size
        return total

    def searcher(self, config: SearchConfig, texts: TextQueries | None = None) -> Searcher:
        """Exact search up to a size, a calibrated faiss IVF beyond (search.py)."""
        return Searcher(config, texts)

    def _write_segment(
        self,
        directory: Path,
        ref: SegmentRef,
        ids: np.ndarray,
        vectors: np.ndarray,
        meta: dict[str, list],
        dtype: str,
    ) -> None:
        array = np.ascontiguousarray(vectors, dtype=np.dtype(dtype))
        atomic_write(directory / f"{ref.name}.npy", lambda f: np.save(f, array, allow_pickle=False))
        payload = json.dumps({"id": [int(i) for i in ids], **meta}).encode()
        atomic_write(directory / f"{ref.name}.json", lambda f: f.write(payload))

    def _maintain(self, directory: Path, manifest: Manifest, base: Snapshot) -> Manifest:
        """Rewrite segments that are mostly removed rows, and merge small ones past the limit."""
        removed = set(manifest.removed)
        by_name = {s.name: s for s in base.segments}
        refs = list(manifest.segments)

        def dead(ref: SegmentRef) -> int:
            seg = by_name.get(ref.name)
            return int(np.isin(seg.ids, list(removed)).sum()) if seg is not None and removed else 0

        rewrite = [
            r for r in refs if r.name in by_name and dead(r) > self.config.compact_ratio * r.count
        ]
        if len(refs) > self.config.max_segments:
            small = sorted((r for r in refs if r.name in by_name), key=lambda r: r.count)
            rewrite += small[: len(refs) - self.config.max_segments // 2]
        rewrite = list(dict.fromkeys(rewrite))
        if not rewrite:
            return manifest
        segs = [by_name[r.name] for r in rewrite]
        keep = [~np.isin(s.ids, list(removed)) for s in segs]
        ids = np.concatenate([s.ids[k] for s, k in zip(segs, keep, strict=True)])
        vectors = np.concatenate(
            [np.asarray(s.vectors[k]) for s, k in zip(segs, keep, strict=True)]
        )
        meta = {
            c: [
                v
                for s, k in zip(segs, keep, strict=True)
                for v, ok in zip(s.meta[c], k, strict=True)
                if ok
            ]
            for c in META_COLUMNS
        }
        order = np.argsort(ids)
        meta = {c: [col[i] for i in order] for c, col in meta.items()}
        names = {r.name for r in rewrite}
        refs = [r for r in refs if r.name not in names]
        if len(ids):
            ref = SegmentRef(f"seg-{manifest.generation:08d}-1", len(ids))
            self._write_segment(directory, ref, ids[order], vectors[order], meta, manifest.dtype)
            refs.append(ref)
        dropped = {int(i) for s in segs for i in s.ids}
        return manifest.evolve(
            segments=tuple(refs),
            removed=tuple(sorted(removed - dropped)),
            compacted=manifest.generation,
        )

    def _commit(self, directory: Path, manifest: Manifest) -> None:
        """Replace the manifest (the commit point), then delete files it no longer names."""
        payload = manifest.to_json().encode()
        atomic_write(directory / MANIFEST, lambda f: f.write(payload))
        fsync_dir(directory)
        named = {f"{r.name}{ext}" for r in manifest.segments for ext in (".npy", ".json")}
        for path in directory.iterdir():
            stale_segment = path.name.startswith("seg-") and path.name not in named
            if stale_segment or path.name.startswith(".tmp-"):
                with contextlib.suppress(OSError):  # still mapped by a reader (Windows): next time
                    path.unlink(missing_ok=True)
