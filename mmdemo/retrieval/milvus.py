"""Image indexes in Milvus: embedded Milvus Lite (a local ``.db`` folder) or a server/cluster.

The same ``VectorStore`` as the faiss store (backend.py), picked by ``MMDEMO_VECTOR_DB``; the
same pymilvus ``MilvusClient`` calls reach Milvus Lite and a cluster alike. Layout:

  <prefix>_indexes       one row per index: its manifest (model identity, dtype, next id, count)
                         as JSON, and a placeholder 2-d vector (Milvus wants one per collection)
  <prefix>_images_<dim>  one row per image of every index of that width: pk "<index>/<id>",
                         index (the partition key: searches filter by it), item id, the metadata
                         columns of the faiss store, and the L2-normalised vector (inner product)

The manifest row is the commit point, as manifest.json is for the faiss store: rows are written
first, then the manifest; every read filters ``item < next_id``, so rows a crash left behind
an old manifest stay invisible and are overwritten by the next add (upserts by pk). Vectors are
rounded through the index's dtype (float16 by default) before they are stored as float32, so
scores equal the faiss store's. Writers of one index are serialised within a process; a Milvus
server takes writers of one index from one process at a time (Milvus has no transactions).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmdemo.config_checks import VectorDb
from mmdemo.errors import MissingDependencyError
from mmdemo.retrieval.identity import (
    IndexExistsError,
    IndexNotFoundError,
    ModelIdentity,
    mismatch_error,
)
from mmdemo.retrieval.milvus_view import (
    BATCH,
    MilvusSearch,
    MilvusView,
    VectorDbError,
    quoted,
    translated,
)
from mmdemo.retrieval.search import SearchConfig
from mmdemo.retrieval.segments import META_COLUMNS, Manifest
from mmdemo.retrieval.store import DTYPES, FILES, validate_name

INSTALL = 'pip install "pymilvus>=3,<4" "milvus-lite>=3.2"'
CONNECT_TIMEOUT = 10.0  # seconds to reach a server before the error names MMDEMO_VECTOR_DB
EXACT_INDEXES = ("FLAT", "BRUTE_FORCE")

__all__ = ["MilvusSearch", "MilvusStore", "MilvusView", "VectorDbError"]


class MilvusStore:
    """Named image indexes in one Milvus database. Connects on first use, not when made."""

    def __init__(self, target: VectorDb, indexes_dir: Path) -> None:
        self.target = target
        self.backend = target.backend
        # copies of uploaded images: <indexes>/.milvus/<prefix>/<name>/files (apart from the
        # faiss store's folders, so an index of the same name in both never shares files)
        self.root = Path(indexes_dir) / ".milvus" / target.prefix
        self.index_type = target.index_type or (
            "FLAT" if target.kind == "milvus-lite" else "AUTOINDEX"
        )
        self.meta = f"{target.prefix}_indexes"
        self._client: Any = None
        self._lock = threading.Lock()
        self._writers: dict[str, threading.Lock] = {}
        self._collections: set[str] = set()

    # -- connection and collections ----------------------------------------------------------

    def failure(self, reason: str) -> VectorDbError:
        return VectorDbError(
            f"{self.backend} at MMDEMO_VECTOR_DB={self.target.shown!r} failed: {reason}",
            fix="start that Milvus (or free its .db folder from another process), point "
            "MMDEMO_VECTOR_DB at a running one, or unset it to keep indexes in faiss files",
        )

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self) -> Any:
        lite = self.target.kind == "milvus-lite"
        missing = [p for p in ("pymilvus", *(("milvus_lite",) if lite else ())) if not _has(p)]
        if missing:
            raise MissingDependencyError(
                f"MMDEMO_VECTOR_DB={self.target.shown!r} needs {' and '.join(missing)}, "
                "which is not installed",
                fix=f"{INSTALL}, or unset MMDEMO_VECTOR_DB to keep indexes in faiss files",
            )
        from pymilvus import MilvusClient

        if lite:
            Path(self.target.uri).parent.mkdir(parents=True, exist_ok=True)
        try:
            client = MilvusClient(
                uri=self.target.uri, token=self.target.token, timeout=CONNECT_TIMEOUT
            )
            if not client.has_collection(self.meta):
                schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
                schema.add_field("name", _types().VARCHAR, is_primary=True, max_length=64)
                schema.add_field("manifest", _types().VARCHAR, max_length=65_535)
                schema.add_field("placeholder", _types().FLOAT_VECTOR, dim=2)
                params = client.prepare_index_params()
                params.add_index(field_name="placeholder", index_type="FLAT", metric_type="L2")
                client.create_collection(
                    self.meta, schema=schema, index_params=params, consistency_level="Strong"
                )
            else:
                _loaded(client, self.meta)
        except Exception as exc:
            raise self.failure(getattr(exc, "message", None) or str(exc)) from exc
        return client

    def close(self) -> None:
        """Drop the connection; for Milvus Lite also stop its in-process server, which frees
        the .db folder for another process (Milvus Lite's own server manager: the one place
        this module touches milvus_lite directly)."""
        with self._lock:
            client, self._client = self._client, None
            self._collections.clear()
        if client is None:
            return
        client.close()
        if self.target.kind == "milvus-lite":
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(self.target.uri)

    def collection(self, dim: int) -> str:
        """The images collection for ``dim``-d vectors (made on first use)."""
        name = f"{self.target.prefix}_images_{int(dim)}"
        if name in self._collections:
            return name
        client = self.client
        if not client.has_collection(name):
            from pymilvus import MilvusClient

            t = _types()
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("pk", t.VARCHAR, is_primary=True, max_length=96)
            schema.add_field("index", t.VARCHAR, max_length=64, is_partition_key=True)
            schema.add_field("item", t.INT64)
            for column, kind in (("path", t.VARCHAR), ("name", t.VARCHAR), ("sha256", t.VARCHAR)):
                schema.add_field(column, kind, max_length=4096 if column != "sha256" else 64)
            for column in ("bytes", "width", "height"):
                schema.add_field(column, t.INT64)
            for column in ("mtime", "added"):
                schema.add_field(column, t.DOUBLE)
            schema.add_field("vector", t.FLOAT_VECTOR, dim=int(dim))
            params = client.prepare_index_params()
            params.add_index(field_name="vector", index_type=self.index_type, metric_type="IP")
            for column in ("sha256", "path"):  # duplicate and unchanged-file checks
                params.add_index(field_name=column, index_type="INVERTED")
            client.create_collection(
                name, schema=schema, index_params=params, consistency_level="Strong"
            )
        else:
            _loaded(client, name)
        self._collections.add(name)
        return name

    @contextlib.contextmanager
    def writer(self, name: str) -> Iterator[None]:
        """One writer per index in this process."""
        with self._lock:
            lock = self._writers.setdefault(name, threading.Lock())
        with lock:
            yield

    # -- manifests ---------------------------------------------------------------------------

    def _read(self, name: str) -> tuple[Manifest, int] | None:
        rows = self.client.get(self.meta, ids=[validate_name(name)], output_fields=["manifest"])
        if not rows:
            return None
        data = json.loads(rows[0]["manifest"])
        where = Path(f"{self.target.shown}#{name}")
        return Manifest.from_json(json.dumps(data["manifest"]), where), int(data["count"])

    def _commit(self, manifest: Manifest, count: int) -> MilvusView:
        if self.target.kind == "milvus-lite":
            # Milvus Lite searches its in-memory rows in Python: 10x slower than sealed
            # segments with their index (a server seals and indexes segments by itself)
            self.client.flush(self.collection(manifest.identity.embed_dim))
        payload = json.dumps({"manifest": json.loads(manifest.to_json()), "count": count})
        row = {"name": manifest.name, "manifest": payload, "placeholder": [0.0, 0.0]}
        self.client.upsert(self.meta, [row])
        return MilvusView(self, manifest, count)

    @translated
    def names(self) -> list[str]:
        rows = self.client.query(
            self.meta, filter='name != ""', output_fields=["name"], limit=16_000
        )
        return sorted(r["name"] for r in rows)

    @translated
    def exists(self, name: str) -> bool:
        return self._read(name) is not None

    @translated
    def version(self, name: str) -> tuple[float, int] | None:
        found = self._read(name)
        return None if found is None else (found[0].created, found[0].generation)

    @translated
    def read_manifest(self, name: str) -> Manifest:
        return self._require(name)[0]

    def _require(self, name: str) -> tuple[Manifest, int]:
        found = self._read(name)
        if found is None:
            known = ", ".join(self.names()) or "none yet"
            raise IndexNotFoundError(
                f"there is no index named '{name}' in {self.backend} (indexes: {known})",
                fix=f"build it first: `python -m mmdemo index build {name} FOLDER`",
            )
        return found

    @translated
    def load(self, name: str, reuse: Any = None) -> MilvusView:
        return MilvusView(self, *self._require(name))

    # -- writing -----------------------------------------------------------------------------

    @translated
    def create(
        self, name: str, identity: ModelIdentity, dtype: str = "float16", replace: bool = False
    ) -> MilvusView:
        if dtype not in DTYPES:
            from mmdemo.errors import BadInputError

            raise BadInputError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        name = validate_name(name)
        with self.writer(name):
            old = self._read(name)
            if old is not None and not replace:
                raise IndexExistsError(
                    f"an index named '{name}' already exists",
                    fix="add images to it, pick another name, or rebuild it with --replace",
                )
            if old is not None:
                self._drop_rows(name, old[0].identity.embed_dim)
                shutil.rmtree(self.files_dir(name), ignore_errors=True)
            self.collection(identity.embed_dim)
            now = time.time()
            generation = old[0].generation + 1 if old is not None else 0
            return self._commit(Manifest(name, identity, dtype, now, now, generation), 0)

    @translated
    def append(
        self,
        name: str,
        vectors: np.ndarray,
        rows: Sequence[dict[str, Any]],
        identity: ModelIdentity,
        replace_ids: Sequence[int] = (),
        reuse: Any = None,
    ) -> tuple[MilvusView, int]:
        """Add rows (ids ``next_id`` on); returns (new view, rows dropped as duplicates)."""
        if len(vectors) != len(rows):
            raise ValueError("one vector per row")
        with self.writer(name):
            base = self.load(name)
            manifest = base.manifest
            if not manifest.identity.same_space(identity):
                raise mismatch_error(name, manifest.identity, identity)
            dim = manifest.identity.embed_dim
            if vectors.size and vectors.shape[1] != dim:
                raise ValueError(f"vectors have {vectors.shape[1]} dims, index has {dim}")
            replaced = {i.id for i in base.items(sorted({int(i) for i in replace_ids})) if i}
            existing = base.ids_of_shas([r["sha256"] for r in rows])
            keep, seen = [], set()
            for i, row in enumerate(rows):
                sha = row["sha256"]
                if sha in seen or (sha in existing and existing[sha] not in replaced):
                    continue
                seen.add(sha)
                keep.append(i)
            stored = np.asarray(vectors, dtype=manifest.dtype).astype(np.float32)
            collection = self.collection(dim)
            entities = [
                {
                    "pk": f"{name}/{item}",
                    "index": name,
                    "item": item,
                    **{c: rows[i][c] for c in META_COLUMNS},
                    "vector": stored[i],
                }
                for item, i in enumerate(keep, manifest.next_id)
            ]
            for start in range(0, len(entities), BATCH):
                self.client.upsert(collection, entities[start : start + BATCH])
            if replaced:
                self.client.delete(collection, ids=[f"{name}/{i}" for i in sorted(replaced)])
            manifest = manifest.evolve(
                generation=manifest.generation + 1,
                next_id=manifest.next_id + len(keep),
                updated=time.time(),
            )
            view = self._commit(manifest, base.count + len(keep) - len(replaced))
        return view, len(rows) - len(keep)

    @translated
    def remove(
        self, name: str, ids: Sequence[int], reuse: Any = None
    ) -> tuple[MilvusView, list[int]]:
        """Remove images by id; returns (new view, the ids that were live and are gone)."""
        with self.writer(name):
            base = self.load(name)
            items = [i for i in base.items(sorted({int(i) for i in ids})) if i is not None]
            if not items:
                return base, []
            collection = self.collection(base.manifest.identity.embed_dim)
            self.client.delete(collection, ids=[f"{name}/{i.id}" for i in items])
            manifest = base.manifest.evolve(
                generation=base.manifest.generation + 1, updated=time.time()
            )
            view = self._commit(manifest, base.count - len(items))
            files = self.files_dir(name).resolve()
            for item in items:  # copies of uploads go with their entry
                if Path(item.path).resolve().parent == files:
                    Path(item.path).unlink(missing_ok=True)
        return view, [i.id for i in items]

    @translated
    def delete(self, name: str) -> None:
        with self.writer(name):
            manifest, _ = self._require(name)
            self.client.delete(self.meta, ids=[name])  # the commit point goes first
            self._drop_rows(name, manifest.identity.embed_dim)
        shutil.rmtree(self.root / validate_name(name), ignore_errors=True)

    def _drop_rows(self, name: str, dim: int) -> None:
        self.client.delete(self.collection(dim), filter=f"index == {quoted(name)}")

    def files_dir(self, name: str) -> Path:
        return self.root / validate_name(name) / FILES

    def disk_bytes(self, view: MilvusView) -> int:
        """The stored vectors' size (count x dim x 4): the database's own files are shared by
        every index and may be on another machine."""
        return view.count * view.manifest.identity.embed_dim * 4

    def searcher(self, config: SearchConfig, texts: Any = None) -> MilvusSearch:
        return MilvusSearch(self)

    @property
    def exact(self) -> bool:
        return self.index_type in EXACT_INDEXES


def _loaded(client: Any, collection: str) -> None:
    """Load a collection into memory unless it is (after a restart, collections are released)."""
    state = client.get_load_state(collection).get("state")
    if getattr(state, "name", str(state)) != "Loaded":
        client.load_collection(collection)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _types() -> Any:
    from pymilvus import DataType

    return DataType
