"""CLIP search as plain data: the CLIP tab's handlers and its named endpoints call these
(plain values in, dicts and file paths out) over the app's ``IndexService``
(mmdemo.retrieval): list, add, search, explain, remove, prune, delete, classify.

Images arrive as paths the caller has already checked; they are decoded by the house decoder
(mmdemo.images), so a WAV, an empty or a truncated file is refused with its cause and a fix.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from mmdemo.errors import BadInputError, MMDemoError
from mmdemo.flows.limits import require_local
from mmdemo.retrieval import IndexService, Query
from mmdemo.retrieval.zeroshot import DEFAULT_TEMPLATES

SAMPLES = Path(__file__).resolve().parents[2] / "assets" / "images"  # allowed when hosted
SCRATCH = "mmdemo-clip"  # explanation pictures, under the system temp folder (gradio serves it)
SCRATCH_HOURS = 1.0


def _scratch_png(image: Any) -> str:
    """Save an RGB array as a PNG in the scratch folder (dropping ones over an hour old)."""
    from PIL import Image

    folder = Path(tempfile.gettempdir()) / SCRATCH
    folder.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - SCRATCH_HOURS * 3600
    for old in folder.glob("*.png"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass
    path = folder / f"explain-{uuid.uuid4().hex[:12]}.png"
    Image.fromarray(image).save(path)
    return str(path)


class ClipSearch:
    """The CLIP tab's jobs over the app's ``IndexService``: plain values in, data out."""

    def __init__(self, service: IndexService) -> None:
        self.service = service
        self.settings = service.settings
        self.samples = SAMPLES  # the sample photos (may be indexed when hosted, too)
        self.default_templates = tuple(DEFAULT_TEMPLATES)  # zero-shot prompt templates

    def thumbnail(self, file: str, side: int = 256) -> Any:
        """A small copy of an indexed image (index files are not served: the picture is sent)."""
        return self.service.thumbnail(file, side)

    def indexes(self) -> list[dict[str, Any]]:
        """Every index: name, images, model, search method, size; a damaged one says why."""
        out = []
        for name in self.service.names():
            try:
                out.append(self.service.info(name).to_json())
            except MMDemoError as exc:  # a damaged index must not hide the others
                out.append({"name": name, "error": str(exc)})
        return out

    def add(
        self,
        index_name: str,
        folder: str = "",
        files: list[str] | None = None,
        progress: Any = None,
    ) -> dict[str, Any]:
        """Add a server folder (scanned recursively) and/or uploaded images; the index is made
        if it does not exist. Unreadable files are listed under "skipped" with the reason."""
        name = (index_name or "").strip()
        folder = (folder or "").strip()
        files = [f for f in files or [] if f]
        if not folder and not files:
            raise BadInputError("nothing to add", fix="give a folder path or upload images")
        if folder and Path(folder).expanduser().resolve() != SAMPLES:
            require_local(self.settings, "indexing a folder on the server")
        report = None
        if folder:
            report = self.service.add(name, [folder], create=True, progress=progress)
        if files:
            uploaded = self.service.add(name, files, copy=True, create=True, progress=progress)
            # uploads live in temporary folders: the user knows them by file name
            uploaded = _rename_skipped(uploaded)
            report = report.merged(uploaded) if report is not None else uploaded
        assert report is not None
        return report.to_json()

    def search(
        self,
        index_name: str,
        query_text: str = "",
        query_image: str | None = None,
        top_k: int = 12,
        text_weight: float = 0.5,
        like_item_id: int | None = None,
    ) -> dict[str, Any]:
        """The ``top_k`` indexed images closest to the text, the image, both (``text_weight``:
        the text's share), or to indexed image ``like_item_id``; scores are cosines."""
        if like_item_id is not None:
            query = Query(item_id=int(like_item_id))
        else:
            query = Query(text=query_text or "", image=query_image, text_weight=text_weight)
        return self.service.search(index_name, query, _int(top_k, "top_k")).to_json()

    def explain(self, index_name: str, item_id: int, query_text: str) -> dict[str, Any]:
        """Where indexed image ``item_id`` matches ``query_text``: an occlusion map (the PNG
        file "overlay", and "drops": the score lost when each grid cell is hidden)."""
        item = self.service.snapshot(index_name).item(_int(item_id, "item_id"))
        if item is None:
            raise BadInputError(
                f"image #{item_id} is not in index '{index_name}'",
                fix="search again and pick a current result",
            )
        ex = self.service.explain(index_name, item.id, query_text)
        return {
            "item_id": item.id,
            "name": item.name,
            "text": ex.text,
            "score": round(ex.score, 6),
            "grid": ex.grid,
            "drops": [[round(float(v), 6) for v in row] for row in ex.drops],
            "largest_drop": round(float(ex.drops.max()), 6),
            "overlay": _scratch_png(ex.overlay),
            "seconds": round(ex.seconds, 3),
            "notes": list(ex.notes),
        }

    def remove(self, index_name: str, item_ids: list[int]) -> dict[str, Any]:
        """Remove images by id (the "item_id" of search hits)."""
        ids = [_int(i, "item id") for i in item_ids or []]
        if not ids:
            raise BadInputError("no image ids given", fix="pass the item_id of search hits")
        return self.service.remove(index_name, ids=ids).to_json()

    def prune(self, index_name: str) -> dict[str, Any]:
        """Remove the entries whose files are gone from disk."""
        return self.service.remove(index_name, missing=True).to_json()

    def delete(self, index_name: str, confirm: bool = False) -> dict[str, Any]:
        """Delete an index (only with ``confirm``); returns the indexes left."""
        if not confirm:
            raise BadInputError(
                f"index '{index_name}' was not deleted", fix="confirm that you want it deleted"
            )
        self.service.delete(index_name)
        return {"deleted": index_name, "indexes": self.service.names()}

    def classify(
        self, image: str | None, labels: str | list[str], templates: str | list[str] = ""
    ) -> dict[str, Any]:
        """Zero-shot: the probability of each label for the image (prompt templates with {}
        ensembled; empty: the defaults)."""
        if not image:
            raise BadInputError("no image to classify", fix="upload an image")
        return self.service.classify(image, labels, templates or None).to_json()


def _int(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadInputError(f"{what} must be a whole number, got {value!r}") from None


def _rename_skipped(report: Any) -> Any:
    from dataclasses import replace

    from mmdemo.retrieval.types import Skipped

    skipped = tuple(Skipped(Path(s.path).name, s.reason) for s in report.skipped)
    return replace(report, skipped=skipped)
