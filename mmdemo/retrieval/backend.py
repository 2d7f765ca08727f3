"""The one interface behind which image indexes live, and the choice of engine.

``IndexService`` talks to a ``VectorStore`` and the ``IndexView``s it returns, never to faiss or
Milvus by name. Two engines implement it:

- ``IndexStore`` (store.py + search.py): segments on disk under ``MMDEMO_HOME/indexes``, exact
  search up to a size and a calibrated faiss IVF beyond. The default.
- ``MilvusStore`` (milvus.py): a Milvus collection, embedded (Milvus Lite, a local ``.db``
  folder) or on a server or cluster, chosen by ``MMDEMO_VECTOR_DB`` (see docs/vector-store.md).

``open_store`` picks one, once, at wiring time.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from mmdemo.config_checks import vector_db

if TYPE_CHECKING:
    from mmdemo.config import Settings
    from mmdemo.retrieval.identity import ModelIdentity
    from mmdemo.retrieval.search import SearchConfig
    from mmdemo.retrieval.segments import Manifest
    from mmdemo.retrieval.store import StoreConfig
    from mmdemo.retrieval.types import Item


class IndexView(Protocol):
    """One committed state of an index, as searches and writers read it. A faiss view is an
    immutable snapshot; a Milvus view reads the live collection, hiding rows past its commit."""

    @property
    def name(self) -> str: ...
    @property
    def count(self) -> int: ...  # live images
    @property
    def manifest(self) -> Manifest: ...  # model identity, dtype, times, generation, next id

    def item(self, item_id: int) -> Item | None: ...
    def items(self, ids: Sequence[int]) -> list[Item | None]: ...
    def is_live(self, item_id: int) -> bool: ...
    def vectors_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
    def find_sha(self, sha: str) -> int | None: ...
    def find_path(self, path: str) -> Item | None: ...
    def iter_items(self) -> Iterator[Item]: ...


class IndexSearch(Protocol):
    """Nearest neighbours in one index (one per index and process; it may keep caches)."""

    def method(self, view: Any) -> str: ...
    def prepare(self, view: Any) -> None: ...
    def search(
        self, view: Any, queries: np.ndarray, k: int, exact: bool = False
    ) -> tuple[np.ndarray, np.ndarray, str]: ...


# (view) -> text embeddings of fixed captions to calibrate an ANN index with, or None
TextQueries = Callable[[Any], "np.ndarray | None"]


class VectorStore(Protocol):
    """Named indexes: create, add (ids and metadata), remove, delete, read, search."""

    backend: str  # "faiss", "Milvus Lite" or "Milvus": the engine, as users see it

    def names(self) -> list[str]: ...
    def exists(self, name: str) -> bool: ...
    def version(self, name: str) -> Hashable | None: ...  # changes whenever a write commits
    def read_manifest(self, name: str) -> Manifest: ...  # IndexNotFoundError with its fix
    def load(self, name: str, reuse: Any = None) -> IndexView: ...
    def create(
        self, name: str, identity: ModelIdentity, dtype: str = "float16", replace: bool = False
    ) -> IndexView: ...
    def append(
        self,
        name: str,
        vectors: np.ndarray,
        rows: Sequence[dict[str, Any]],
        identity: ModelIdentity,
        replace_ids: Sequence[int] = (),
        reuse: Any = None,
    ) -> tuple[IndexView, int]: ...
    def remove(
        self, name: str, ids: Sequence[int], reuse: Any = None
    ) -> tuple[IndexView, list[int]]: ...
    def delete(self, name: str) -> None: ...
    def files_dir(self, name: str) -> Path: ...  # copies of uploaded images
    def disk_bytes(self, view: Any) -> int: ...
    def searcher(self, config: SearchConfig, texts: TextQueries | None = None) -> IndexSearch: ...


def open_store(settings: Settings, config: StoreConfig | None = None) -> VectorStore:
    """The store ``settings.vector_db`` names (faiss files by default). Opens no connection:
    Milvus is reached on first use."""
    target = vector_db(settings.vector_db, settings.indexes_dir)
    if target.kind == "faiss":
        from mmdemo.retrieval.store import IndexStore

        return IndexStore(settings.indexes_dir, config)
    from mmdemo.retrieval.milvus import MilvusStore

    return MilvusStore(target, settings.indexes_dir)
