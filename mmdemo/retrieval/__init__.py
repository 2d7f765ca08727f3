"""The CLIP index engine: persistent, growing image indexes; text/image search; zero-shot labels.

``IndexService`` is the front door for the CLIP tab, the ``index`` CLI, the benchmarks and
other tabs (similar cases in chat, key frames in video). Indexes live in faiss files or in
Milvus (``MMDEMO_VECTOR_DB``; backend.py). Importing this package imports numpy only; torch,
open_clip, faiss and pymilvus load on first use. It never imports gradio or ``mmdemo.flows``.
"""

from mmdemo.retrieval.service import IndexService, Query, RetrievalConfig
from mmdemo.retrieval.types import (
    AddReport,
    Explanation,
    Hit,
    IndexInfo,
    Item,
    RemoveReport,
    SearchResult,
    ZeroShotResult,
)

__all__ = [
    "AddReport",
    "Explanation",
    "Hit",
    "IndexInfo",
    "IndexService",
    "Item",
    "Query",
    "RemoveReport",
    "RetrievalConfig",
    "SearchResult",
    "ZeroShotResult",
]
