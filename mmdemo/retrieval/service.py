"""IndexService: build, grow, shrink and search named image indexes with the manager's CLIP.

One object per process (the app puts it in ``Services.index``), shared by the CLIP
tab, the ``index`` CLI and other tabs: the chat tab can fetch similar indexed images as
context, the video tab can rank its key frames by text. Searches never wait for writers: each
write commits a new snapshot and searches keep using the one they started with. Where indexes
live (faiss files, Milvus Lite, a Milvus server) is ``settings.vector_db``; the service only
sees the ``VectorStore`` interface (backend.py).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmdemo.config import Settings
from mmdemo.errors import BadInputError, require_local
from mmdemo.images import ImageProblem, decode, thumbnail
from mmdemo.retrieval import embed as emb
from mmdemo.retrieval.backend import IndexSearch, IndexView, open_store
from mmdemo.retrieval.identity import ModelIdentity, mismatch_error
from mmdemo.retrieval.ingest import ingest, scan_files
from mmdemo.retrieval.query import Query, embed_query
from mmdemo.retrieval.search import SearchConfig
from mmdemo.retrieval.store import StoreConfig, validate_name
from mmdemo.retrieval.types import (
    AddReport,
    Explanation,
    Hit,
    IndexInfo,
    Item,
    ProgressFn,
    RemoveReport,
    SearchResult,
    ZeroShotResult,
)


@dataclass(frozen=True)
class RetrievalConfig:
    """Everything the retrieval flows can be tuned with (defaults suit laptops and servers)."""

    embed: emb.EmbedConfig = field(default_factory=emb.EmbedConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    # images embedded between commits while building: bounds memory, and a crash (or Ctrl-C)
    # loses at most this many; running the same add again resumes where it stopped
    chunk_rows: int = 4096
    # storage precision of new indexes (float16 halves disk and memory; scores move ~1e-3)
    dtype: str = "float16"

    def __post_init__(self) -> None:
        from mmdemo.errors import SettingsError
        from mmdemo.retrieval.store import DTYPES

        if not 1 <= self.chunk_rows <= 1_000_000:
            raise SettingsError(f"chunk_rows={self.chunk_rows} is outside 1..1000000")
        if self.dtype not in DTYPES:
            raise SettingsError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")


@dataclass
class _Open:
    snapshot: IndexView
    version: Hashable | None
    searcher: IndexSearch


class IndexService:
    """Named image indexes under ``settings.indexes_dir``, embedded with ``manager``'s CLIP."""

    def __init__(self, settings: Settings, manager: Any, config: RetrievalConfig | None = None):
        self.settings = settings
        self.manager = manager
        self.config = config or RetrievalConfig()
        self.store = open_store(settings, self.config.store)  # faiss files unless vector_db
        self._open: dict[str, _Open] = {}
        self._lock = threading.Lock()
        self._identity: tuple[Any, ModelIdentity] | None = None
        self._texts: tuple[Any, np.ndarray] | None = None

    # -- model -------------------------------------------------------------------------------

    def bundle(self) -> Any:
        return self.manager.get("clip")

    def identity(self, bundle: Any | None = None) -> ModelIdentity:
        """The loaded model's identity (probe embeddings computed once per loaded model)."""
        bundle = bundle or self.bundle()
        cached = self._identity
        if cached is not None and cached[0]() is bundle:
            return cached[1]
        identity = ModelIdentity.of(bundle)
        self._identity = (weakref.ref(bundle), identity)
        return identity

    def calibration_texts(self, snapshot: IndexView) -> np.ndarray | None:
        """Text embeddings of fixed captions, so an ANN index is calibrated with real text
        queries too; None unless the index's model is loaded (this never loads it)."""
        if not self.manager.is_loaded("clip"):
            return None
        bundle = self.bundle()
        if not snapshot.manifest.identity.same_space(self.identity(bundle)):
            return None
        cached = self._texts
        if cached is not None and cached[0]() is bundle:
            return cached[1]
        vectors = emb.embed_texts(bundle, emb.CALIBRATION_TEXTS)
        self._texts = (weakref.ref(bundle), vectors)
        return vectors

    def _check_model(self, snapshot: IndexView, bundle: Any) -> None:
        identity = self.identity(bundle)
        if not snapshot.manifest.identity.same_space(identity):
            raise mismatch_error(snapshot.name, snapshot.manifest.identity, identity)

    # -- reading -----------------------------------------------------------------------------

    def names(self) -> list[str]:
        return self.store.names()

    def snapshot(self, name: str) -> IndexView:
        """The latest committed state (reloaded when another thread or process committed)."""
        version = self.store.version(name)
        if version is None:
            self.store.read_manifest(name)  # raises IndexNotFoundError with its fix
        entry = self._open.get(name)
        if entry is not None and entry.version == version:
            return entry.snapshot
        with self._lock:
            entry = self._open.get(name)
            if entry is not None and entry.version == version:
                return entry.snapshot
            snapshot = self.store.load(name, entry.snapshot if entry else None)
            searcher = entry.searcher if entry else self._new_searcher()
            self._open[name] = _Open(snapshot, version, searcher)
            return snapshot

    def _new_searcher(self) -> IndexSearch:
        return self.store.searcher(self.config.search, self.calibration_texts)

    def searcher(self, name: str) -> IndexSearch:
        self.snapshot(name)
        return self._open[name].searcher

    def committed(self, name: str, snapshot: IndexView) -> None:
        with self._lock:
            entry = self._open.get(name)
            searcher = entry.searcher if entry else self._new_searcher()
            self._open[name] = _Open(snapshot, self.store.version(name), searcher)

    def info(self, name: str) -> IndexInfo:
        snap = self.snapshot(name)
        m = snap.manifest
        return IndexInfo(
            name=m.name,
            count=snap.count,
            model_id=m.identity.model_id,
            fingerprint=m.identity.fingerprint,
            embed_dim=m.identity.embed_dim,
            dtype=m.dtype,
            created=m.created,
            updated=m.updated,
            generation=m.generation,
            segments=len(m.segments),
            removed_pending=len(m.removed),
            disk_bytes=self.store.disk_bytes(snap),
            search=self.searcher(name).method(snap),
        )

    def items(self, name: str) -> list[Any]:
        return list(self.snapshot(name).iter_items())

    # -- writing -----------------------------------------------------------------------------

    def build(
        self,
        name: str,
        sources: Sequence[str | Path],
        *,
        replace: bool = False,
        copy: bool = False,
        dtype: str | None = None,
        progress: ProgressFn | None = None,
        stats: emb.EmbedStats | None = None,
    ) -> AddReport:
        """A new index from folders and files (``replace`` starts an existing one afresh)."""
        validate_name(name)  # a bad name fails first
        bundle = self.bundle()
        scan = scan_files(sources)  # bad paths fail before anything is created
        self.store.create(name, self.identity(bundle), dtype or self.config.dtype, replace=replace)
        with self._lock:
            self._open.pop(name, None)
        return self._ingest(name, scan, copy, progress, bundle, stats)

    def add(
        self,
        name: str,
        sources: Sequence[str | Path],
        *,
        copy: bool = False,
        create: bool = False,
        progress: ProgressFn | None = None,
        stats: emb.EmbedStats | None = None,
    ) -> AddReport:
        """Add images (files, or folders scanned recursively); with ``create``, make the index
        first if it does not exist. ``copy`` keeps copies of the files (for uploads)."""
        if create and not self.store.exists(name):
            return self.build(name, sources, copy=copy, progress=progress, stats=stats)
        bundle = self.bundle()
        self._check_model(self.snapshot(name), bundle)
        return self._ingest(name, scan_files(sources), copy, progress, bundle, stats)

    def _ingest(
        self,
        name: str,
        scan: Any,
        copy: bool,
        progress: ProgressFn | None,
        bundle: Any,
        stats: emb.EmbedStats | None,
    ) -> AddReport:
        report, latest = ingest(
            self.store,
            name,
            scan,
            start=self.snapshot(name),
            bundle=bundle,
            identity=self.identity(bundle),
            embed=self.config.embed,
            chunk_rows=self.config.chunk_rows,
            copy=copy,
            on_commit=lambda snapshot: self.committed(name, snapshot),
            progress=progress,
            stats=stats,
        )
        self.searcher(name).prepare(latest)
        return report

    def remove(
        self,
        name: str,
        ids: Sequence[int] = (),
        paths: Sequence[str] = (),
        missing: bool = False,
    ) -> RemoveReport:
        """Remove images by id, by path (or file name, for uploads), or all whose file is gone.
        Refused on a hosted server: every visitor shares the indexes."""
        require_local(self.settings, "removing images from a shared index")
        snap = self.snapshot(name)
        wanted = {int(i) for i in ids}
        not_found = [str(i) for i in wanted if not snap.is_live(i)]
        if paths or missing:
            items = list(snap.iter_items())
            for p in paths:
                key = str(Path(p).expanduser().resolve())
                match = [it.id for it in items if it.path in (p, key) or it.name == p]
                wanted.update(match)
                if not match:
                    not_found.append(p)
            if missing:
                wanted.update(it.id for it in items if not Path(it.path).is_file())
        new, gone = self.store.remove(name, sorted(wanted), reuse=snap)
        self.committed(name, new)
        self.searcher(name).prepare(new)
        return RemoveReport(name, len(gone), tuple(not_found), new.count)

    def delete(self, name: str) -> None:
        """Delete an index (refused on a hosted server: every visitor shares the indexes)."""
        require_local(self.settings, "deleting a shared index")
        self.store.delete(name)
        with self._lock:
            self._open.pop(name, None)

    # -- searching ---------------------------------------------------------------------------

    def query_vector(self, snapshot: IndexView, query: Query) -> tuple[np.ndarray, str]:
        """The normalised query embedding and the query in words (see query.py)."""
        if query.item_id is not None:
            return embed_query(snapshot, query, None, self.config.embed.limits)
        bundle = self.bundle()
        self._check_model(snapshot, bundle)
        return embed_query(snapshot, query, bundle, self.config.embed.limits)

    def search(self, name: str, query: Query, k: int = 10, exact: bool = False) -> SearchResult:
        if not 1 <= int(k) <= 1000:
            raise BadInputError(f"k={k} is outside 1..1000")
        if query.item_id is None:
            self.bundle()  # a first model load is not search time
        start = time.perf_counter()
        snap = self.snapshot(name)
        if snap.count == 0:
            raise BadInputError(f"index '{name}' is empty", fix="add images to it first")
        vector, words = self.query_vector(snap, query)
        scores, ids, method = self.searcher(name).search(snap, vector, int(k), exact=exact)
        hits = []
        items = snap.items([int(i) for i in ids[0]])
        for rank, (score, item) in enumerate(zip(scores[0], items, strict=True), 1):
            if item is not None:
                hits.append(Hit(rank, float(score), item))
        return SearchResult(
            name, words, tuple(hits), method, snap.count, time.perf_counter() - start
        )

    # -- services for other tabs ---------------------------------------------------------------

    def similar_images(self, name: str, image: Any, k: int = 4) -> SearchResult:
        """Indexed images most like ``image`` (the chat tab's "similar cases")."""
        return self.search(name, Query(image=image), k)

    def rank_images(self, images: Sequence[Any], text: str) -> list[tuple[int, float]]:
        """(position, score) of in-memory images by similarity to ``text``, best first (the
        video tab ranks its key frames with this; nothing is stored)."""
        if not images:
            return []
        if not text.strip():
            raise BadInputError("nothing to search for", fix="type a text")
        bundle = self.bundle()
        scores = emb.embed_images(bundle, images) @ emb.embed_texts(bundle, [text.strip()])[0]
        order = np.argsort(-scores, kind="stable")
        return [(int(i), float(scores[i])) for i in order]

    def image_of(self, name: str, item_id: int) -> Any:
        """An indexed image, decoded (for explanations and previews)."""
        item = self.snapshot(name).item(int(item_id))
        if item is None:
            raise BadInputError(f"image #{item_id} is not in index '{name}'")
        try:
            image, _, _ = decode(Path(item.path), 0, self.config.embed.limits)
        except ImageProblem as exc:
            raise BadInputError(
                f"{item.path} cannot be read any more: {exc.reason}",
                fix="remove entries whose files are gone",
            ) from None
        return image

    def classify(self, image: Any, labels: Any, templates: Any = None) -> ZeroShotResult:
        """Zero-shot label probabilities for ``image`` (see zeroshot.py)."""
        from mmdemo.retrieval.zeroshot import classify

        return classify(self.bundle(), image, labels, templates)

    def explain(self, name: str, item_id: int, text: str, grid: int | None = None) -> Explanation:
        """Occlusion map of an indexed image for a text query (see explain.py)."""
        from mmdemo.retrieval.explain import occlusion_map

        return occlusion_map(self.bundle(), self.image_of(name, item_id), text, grid)

    def thumbnail(self, item: Item | str, side: int = 256) -> Any:
        """A small copy of an indexed image (an item or its path), or a grey tile saying why
        there is none."""
        from PIL import Image, ImageDraw

        try:
            return thumbnail(getattr(item, "path", item), side, self.config.embed.limits)
        except ImageProblem as exc:
            tile = Image.new("RGB", (side, side), (90, 90, 90))
            ImageDraw.Draw(tile).text((8, side // 2 - 6), exc.reason[:40], fill=(255, 255, 255))
            return tile
