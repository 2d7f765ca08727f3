"""Finding the image files under what the user named (folders are walked, files taken as given).

Decoding is the house decoder's job (``mmdemo.images``); a file that cannot be used is listed
with its reason and never aborts a build."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mmdemo.errors import BadInputError
from mmdemo.images import IMAGE_EXTENSIONS
from mmdemo.retrieval.types import Skipped


@dataclass(frozen=True)
class Scan:
    """Files found under the sources the user gave."""

    files: tuple[Path, ...]
    skipped: tuple[Skipped, ...]  # missing or unreadable paths and folders
    ignored: int  # files whose extension is not an image type (inside folders only)


def scan_sources(
    sources: Sequence[str | Path], extensions: Iterable[str] = IMAGE_EXTENSIONS
) -> Scan:
    """Image files under folders (recursively, sorted) plus files named directly.

    A file named directly is always tried, whatever its extension; inside folders only image
    extensions count. A folder that cannot be listed is reported, not fatal, unless nothing
    usable was given at all.
    """
    exts = tuple(e.lower() for e in extensions)
    files: list[Path] = []
    skipped: list[Skipped] = []
    ignored = 0
    usable = 0
    for raw in sources:
        if not str(raw).strip():
            continue
        path = Path(str(raw).strip()).expanduser()
        if path.is_dir():
            usable += 1
            found, bad, skipped_ext = _walk(path, exts)
            files += found
            skipped += bad
            ignored += skipped_ext
        elif path.is_file():
            usable += 1
            files.append(path)
        elif path.exists():
            skipped.append(Skipped(str(path), "not a regular file or folder"))
        else:
            skipped.append(Skipped(str(path), "does not exist"))
    if not usable:
        if not skipped:
            raise BadInputError(
                "no folder or files given", fix="give a folder path or upload images"
            )
        first = skipped[0]
        raise BadInputError(
            f"cannot use {first.path}: {first.reason}",
            fix="check the path (it is read on the machine that runs mmdemo)",
        )
    return Scan(tuple(dict.fromkeys(files)), tuple(skipped), ignored)


def _walk(root: Path, exts: tuple[str, ...]) -> tuple[list[Path], list[Skipped], int]:
    files: list[Path] = []
    bad: list[Skipped] = []
    ignored = 0

    def onerror(exc: OSError) -> None:
        bad.append(
            Skipped(str(exc.filename or root), f"folder not readable: {exc.strerror or exc}")
        )

    for folder, dirs, names in os.walk(root, onerror=onerror):
        dirs.sort()
        for name in sorted(names):
            if name.startswith("."):
                continue
            if name.lower().endswith(exts):
                files.append(Path(folder) / name)
            else:
                ignored += 1
    return files, bad, ignored


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
