"""Adding files to an index: plan what is new, embed it, commit it in bounded chunks.

Unchanged files (same path, size and mtime) are not read again; duplicates (same content hash)
are not decoded or embedded; every other file is read once (hashed and decoded from the same
bytes). Rows are committed every ``chunk_rows`` images, so memory stays bounded and an
interrupted build resumes where it stopped when run again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmdemo.errors import BadInputError
from mmdemo.images import decode, read_file
from mmdemo.models.files import atomic_write
from mmdemo.retrieval import embed as emb
from mmdemo.retrieval.backend import IndexView, VectorStore
from mmdemo.retrieval.identity import ModelIdentity
from mmdemo.retrieval.scan import Scan, scan_sources, sha256
from mmdemo.retrieval.types import AddReport, IngestProgress, ProgressFn, Skipped


@dataclass(frozen=True)
class Job:
    path: Path
    key: str  # the path stored in the index
    copy: bool  # keep a copy inside the index (uploads live in temporary folders)
    replaces: int | None  # id of the entry this file replaces (same path, new content)


@dataclass
class _Pending:
    """Embedded rows waiting for the next commit, and the running totals."""

    latest: IndexView
    vectors: list[np.ndarray] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    replaces: list[int] = field(default_factory=list)
    added: int = 0
    duplicates: int = 0
    replaced: int = 0


def scan_files(sources: Sequence[str | Path]) -> Scan:
    """Scan sources; a scan that finds nothing at all is an error with a fix."""
    scan = scan_sources(sources)
    if not scan.files and not scan.skipped:
        shown = ", ".join(str(s) for s in sources[:3])
        other = f" ({scan.ignored} files of other types ignored)" if scan.ignored else ""
        raise BadInputError(
            f"no image files found in {shown}{other}",
            fix="point at a folder with .jpg, .png, .webp, .bmp, .gif or .tif files",
        )
    return scan


def plan(snapshot: IndexView, scan: Scan, copy: bool) -> tuple[list[Job], int]:
    """(files to read, number of unchanged files skipped without reading)."""
    jobs, unchanged = [], 0
    for path in scan.files:
        key = str(path) if copy else str(path.resolve())
        old = None if copy else snapshot.find_path(key)
        if old is not None:
            try:
                st = path.stat()
                if st.st_size == old.bytes and st.st_mtime == old.mtime:
                    unchanged += 1
                    continue
            except OSError:
                pass  # the worker reports why it cannot be read
        jobs.append(Job(path, key, copy, old.id if old else None))
    return jobs, unchanged


def ingest(
    store: VectorStore,
    name: str,
    scan: Scan,
    *,
    start: IndexView,
    bundle: Any,
    identity: ModelIdentity,
    embed: emb.EmbedConfig,
    chunk_rows: int,
    copy: bool = False,
    on_commit: Callable[[IndexView], None] | None = None,
    progress: ProgressFn | None = None,
    stats: emb.EmbedStats | None = None,
) -> tuple[AddReport, IndexView]:
    """Embed the new files of ``scan`` and commit them to index ``name`` (whose latest state is
    ``start``) every ``chunk_rows`` images; ``on_commit`` hears of each new snapshot.
    Returns the report and the last snapshot."""
    began = time.perf_counter()
    pending = _Pending(start)
    jobs, unchanged = plan(pending.latest, scan, copy)
    files_dir = store.files_dir(name)
    limits = embed.limits

    def prepare(job: Job) -> emb.Prepared[Job]:
        data, st = read_file(job.path, limits)
        digest = sha256(data)
        existing = pending.latest.find_sha(digest)
        if existing is not None and existing != job.replaces:
            raise emb.Reject("duplicate", f"same content as indexed image #{existing}")
        image, width, height = decode(data, bundle.image_size, limits)
        tensor = bundle.preprocess(image)
        stored = job.key
        if job.copy:
            files_dir.mkdir(parents=True, exist_ok=True)
            target = files_dir / f"{digest}{job.path.suffix.lower()}"
            if not target.exists():
                atomic_write(target, lambda f: f.write(data))
            stored = str(target)
        info = {
            "path": stored,
            "name": job.path.name,
            "sha256": digest,
            "bytes": int(st.st_size),
            "width": width,
            "height": height,
            "mtime": float(st.st_mtime),
            "added": time.time(),
        }
        return emb.Prepared(job, tensor, info)

    def commit() -> None:
        if not pending.rows:
            return
        base = pending.latest
        # which replaced entries were live before this commit (asked now: a Milvus view
        # reads the live collection, not a frozen copy)
        was_live = [i for i in set(pending.replaces) if base.is_live(i)]
        new, dropped = store.append(
            name,
            np.concatenate(pending.vectors),
            pending.rows,
            identity,
            replace_ids=pending.replaces,
            reuse=base,
        )
        pending.duplicates += dropped
        pending.added += len(pending.rows) - dropped
        pending.replaced += sum(1 for i in was_live if not new.is_live(i))
        pending.latest = new
        if on_commit is not None:
            on_commit(new)
        pending.vectors.clear()
        pending.rows.clear()
        pending.replaces.clear()

    skipped = list(scan.skipped)
    done = 0
    for batch in emb.stream(bundle, jobs, prepare, embed, stats):
        for r in batch.rejected:
            if r.kind == "duplicate":
                pending.duplicates += 1
            else:
                skipped.append(Skipped(str(r.job.path), r.reason))
        if batch.items:
            pending.vectors.append(batch.vectors)
            pending.rows.extend(p.info for p in batch.items)
            pending.replaces.extend(
                p.job.replaces for p in batch.items if p.job.replaces is not None
            )
        done += len(batch.items) + len(batch.rejected)
        if len(pending.rows) >= chunk_rows:
            commit()
        if progress is not None:
            progress(IngestProgress(done, len(jobs), time.perf_counter() - began))
    commit()
    seconds = time.perf_counter() - began
    report = AddReport(
        index=name,
        added=pending.added,
        duplicates=pending.duplicates,
        unchanged=unchanged,
        replaced=pending.replaced,
        skipped=tuple(skipped),
        ignored=scan.ignored,
        total=pending.latest.count,
        seconds=seconds,
        images_per_second=pending.added / seconds if seconds > 0 else 0.0,
    )
    return report, pending.latest
