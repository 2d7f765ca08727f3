"""Uploaded training data: put an uploaded dataset (a zip, or a JSONL with its images) into
its own folder under the runs folder, safely, and check it once before a run is queued.

UI-free: the Fine-tune tab and its ``/train_dataset`` endpoint call these with plain paths.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from mmdemo.errors import BadInputError
from mmdemo.models.archive import safe_extract

DATA_SUFFIXES = (".jsonl", ".json", ".zip", ".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


def stage_dataset(files: list[str], root: Path, max_bytes: int) -> Path:
    """Put an uploaded dataset (a zip, or a JSONL with its images) into its own folder."""
    if not files:
        raise BadInputError("no dataset files uploaded", fix="upload a zip or a JSONL + images")
    paths = [Path(f) for f in files]
    for path in paths:
        if path.suffix.lower() not in DATA_SUFFIXES:
            raise BadInputError(
                f"{path.name} is not a dataset file",
                fix="upload a .zip, or a .jsonl with its images (.png, .jpg, ...)",
            )
        if path.stat().st_size == 0:
            raise BadInputError(f"{path.name} is empty (0 bytes)", fix="upload it again")
    if not any(p.suffix.lower() in (".zip", ".jsonl", ".json") for p in paths):
        raise BadInputError(
            "no dataset file among the uploads (only images)",
            fix="add the .jsonl that lists image, question and answer, or upload a .zip",
        )
    folder = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9}"
    folder.mkdir(parents=True)
    try:
        if len(paths) == 1 and paths[0].suffix.lower() == ".zip":
            safe_extract(paths[0], folder, max_bytes=max_bytes, max_files=50_000)
        else:
            for path in paths:
                shutil.copy2(path, folder / path.name)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # a refused upload leaves nothing behind
        raise
    return folder


def checked_upload(
    files: list[str], root: Path, max_upload_mb: int, task: str, max_dataset_mb: int = 200
) -> dict:
    """Stage an uploaded dataset and read it once (malformed or non-UTF-8 lines, missing
    images ... are refused or listed now, not when the run starts); the staged folder is
    removed again when the data cannot be used."""
    from mmdemo.finetune.formats import load_dataset

    folder = stage_dataset(files, root, max_upload_mb * 2**20)
    try:
        data = load_dataset(str(folder), task, max_mb=max_dataset_mb)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return {
        "dataset": str(folder),
        "layout": data.report.layout,
        "examples": dict(data.report.counts),
        "skipped": data.report.listed(),  # the first ones, then "and K more"
    }
