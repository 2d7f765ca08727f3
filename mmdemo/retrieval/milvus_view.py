"""Reading and searching one Milvus-held index (milvus.py holds the store that writes them).

``MilvusView`` is an ``IndexView`` (backend.py) over the live collection, limited to one
commit's ids; ``MilvusSearch`` is its ``IndexSearch``. pymilvus and gRPC errors surface as a
``VectorDbError`` that names MMDEMO_VECTOR_DB.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from mmdemo.errors import MMDemoError
from mmdemo.retrieval.segments import META_COLUMNS, Manifest
from mmdemo.retrieval.types import Item

if TYPE_CHECKING:
    from mmdemo.retrieval.milvus import MilvusStore

BATCH = 1000  # rows per insert, get or window of a scan
OUT = ("item", *META_COLUMNS)
F = TypeVar("F", bound=Callable[..., Any])


class VectorDbError(MMDemoError):
    """The vector database named by MMDEMO_VECTOR_DB cannot be reached or refused a request."""


def translated(method: F) -> F:
    """pymilvus and gRPC errors become a VectorDbError naming MMDEMO_VECTOR_DB."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except MMDemoError:
            raise
        except Exception as exc:
            if not type(exc).__module__.startswith(("pymilvus", "grpc", "milvus_lite")):
                raise
            store = getattr(self, "store", self)
            raise store.failure(getattr(exc, "message", None) or str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def row_item(row: dict[str, Any]) -> Item:
    return Item(
        int(row["item"]),
        str(row["path"]),
        str(row["name"]),
        str(row["sha256"]),
        int(row["bytes"]),
        int(row["width"]),
        int(row["height"]),
        float(row["mtime"]),
        float(row["added"]),
    )


def quoted(text: str) -> str:
    """A string literal for a Milvus filter expression."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class MilvusView:
    """An index as of one commit: reads go to the live collection, limited to that commit's ids
    (``item < next_id``); a later remove is visible at once."""

    def __init__(self, store: MilvusStore, manifest: Manifest, count: int) -> None:
        self.store = store
        self.manifest = manifest
        self.count = count
        self.collection = store.collection(manifest.identity.embed_dim)  # loaded, if released

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def live(self) -> str:
        """The filter of this index's committed rows."""
        return f"index == {quoted(self.name)} and item < {self.manifest.next_id}"

    def _get(self, ids: Sequence[int], fields: Sequence[str]) -> dict[int, dict[str, Any]]:
        wanted = [int(i) for i in ids if 0 <= int(i) < self.manifest.next_id]
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(wanted), BATCH):
            pks = [f"{self.name}/{i}" for i in wanted[start : start + BATCH]]
            for row in self.store.client.get(self.collection, ids=pks, output_fields=list(fields)):
                found[int(row["item"])] = row
        return found

    def _query(self, where: str, fields: Sequence[str], limit: int) -> list[dict[str, Any]]:
        return list(
            self.store.client.query(
                self.collection,
                filter=f"{self.live} and {where}",
                output_fields=list(fields),
                limit=limit,
            )
        )

    @translated
    def items(self, ids: Sequence[int]) -> list[Item | None]:
        rows = self._get(ids, OUT)
        return [row_item(rows[int(i)]) if int(i) in rows else None for i in ids]

    def item(self, item_id: int) -> Item | None:
        return self.items([item_id])[0]

    @translated
    def is_live(self, item_id: int) -> bool:
        return bool(self._get([item_id], ("item",)))

    @translated
    def vectors_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(float32 vectors of the live ids among ``ids``, mask of which were live)."""
        ids = np.asarray(ids, dtype=np.int64)
        rows = self._get(ids.tolist(), ("item", "vector"))
        out = np.zeros((len(ids), self.manifest.identity.embed_dim), dtype=np.float32)
        found = np.array([int(i) in rows for i in ids], dtype=bool)
        for row, i in enumerate(ids):
            if found[row]:
                out[row] = np.asarray(rows[int(i)]["vector"], dtype=np.float32)
        return out, found

    @translated
    def ids_of_shas(self, shas: Sequence[str]) -> dict[str, int]:
        """Content hash -> id of the live images with these hashes."""
        out: dict[str, int] = {}
        unique = sorted(set(shas))
        for start in range(0, len(unique), BATCH):
            part = ", ".join(quoted(s) for s in unique[start : start + BATCH])
            for row in self._query(f"sha256 in [{part}]", ("item", "sha256"), BATCH):
                out[row["sha256"]] = int(row["item"])
        return out

    def find_sha(self, sha: str) -> int | None:
        return self.ids_of_shas([sha]).get(sha)

    @translated
    def find_path(self, path: str) -> Item | None:
        rows = self._query(f"path == {quoted(path)}", OUT, 1)
        return row_item(rows[0]) if rows else None

    def _windows(self, fields: Sequence[str]) -> Iterator[list[dict[str, Any]]]:
        """Live rows in id order, a window of ids at a time (bounded memory)."""
        for low in range(0, self.manifest.next_id, BATCH):
            rows = self._query(f"item >= {low} and item < {low + BATCH}", fields, BATCH)
            yield sorted(rows, key=lambda r: int(r["item"]))

    def iter_items(self) -> Iterator[Item]:
        for rows in self._windows(OUT):
            yield from (row_item(r) for r in rows)

    def iter_live(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, float32 vectors) of live rows, in id order and bounded chunks."""
        for rows in self._windows(("item", "vector")):
            if rows:
                ids = np.asarray([int(r["item"]) for r in rows], dtype=np.int64)
                yield ids, np.asarray([r["vector"] for r in rows], dtype=np.float32)


class MilvusSearch:
    """Search an index through Milvus (inner product of normalised vectors: cosines)."""

    def __init__(self, store: MilvusStore) -> None:
        self.store = store

    def method(self, view: Any = None) -> str:
        kind = "exact" if self.store.exact else "ANN"
        return f"{kind} ({self.store.backend}, {self.store.index_type})"

    def prepare(self, view: Any) -> None:
        """Nothing to do: Milvus keeps its own index in step with every write."""

    @translated
    def search(
        self, view: MilvusView, queries: np.ndarray, k: int, exact: bool = False
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """(scores, ids, method), each (m, k') best first; ``exact`` on an ANN index scans
        the stored vectors instead."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if exact and not self.store.exact:
            return (*_scan(view, queries, k), f"exact (a scan of the {self.store.backend} vectors)")
        params: dict[str, Any] = {"metric_type": "IP"}
        if self.store.index_type.startswith("HNSW"):
            params["params"] = {"ef": max(self.store.target.ef or 64, k)}
        results = self.store.client.search(
            view.collection,
            data=[q for q in queries],
            anns_field="vector",
            limit=int(k),
            filter=view.live,
            search_params=params,
            output_fields=["item"],
        )
        width = max((len(r) for r in results), default=0)
        scores = np.full((len(queries), width), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), width), -1, dtype=np.int64)
        for row, hits in enumerate(results):
            for col, hit in enumerate(hits):
                scores[row, col] = hit["distance"]
                ids[row, col] = int(hit["entity"]["item"])
        return scores, ids, self.method()


def _scan(view: MilvusView, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from mmdemo.retrieval.exact import topk

    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for ids, vectors in view.iter_live():
        scores = queries @ vectors.T
        s, i = topk(scores, np.broadcast_to(ids, scores.shape), k)
        best_s, best_i = topk(np.hstack([best_s, s]), np.hstack([best_i, i]), k)
    return best_s, best_i
