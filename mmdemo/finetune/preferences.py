"""Preference data from disk: JSONL lines with a prompt, a preferred and a rejected answer, and
optionally an image (what ``flows/votes_export.py`` writes from the arena's blind votes).

  {"prompt": "What color is the shape?", "image": "images/ab12.png",
   "chosen": "The shape is red.", "rejected": "A shape."}

Optional keys: "split" (train / validation / test), "id". Image paths are relative to the
file and must stay inside its folder (as in ``formats.py``). Each pair becomes an ``Example``
whose ``answer`` is the chosen answer and ``rejected`` the other one, so DPO trains on the
pairs and every other method can train on the chosen answers. A text-only base reads the
prompts alone; the VLM needs the image, and pairs without one are skipped and listed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mmdemo.errors import BadInputError
from mmdemo.finetune.data import Example
from mmdemo.finetune.formats import (
    DATASET_MB,
    MAX_PROBLEMS_SHOWN,
    MAX_ROWS,
    SPLIT_NAMES,
    DataReport,
    Dataset,
    _check_size,
    _escapes,
    _image_problem,
    _text,
)

MIN_KEYS_TO_SPLIT = 10  # fewer distinct images (or prompts): everything trains
HOW = "each line needs prompt, chosen and rejected (and an image for the VLM)"


def is_preference_file(path: Path) -> bool:
    """Whether a JSONL file holds preference pairs: its first JSON object has "chosen" and
    "rejected" (a file that cannot be read is not one)."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                row = json.loads(line)
                return isinstance(row, dict) and "chosen" in row and "rejected" in row
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return False


def preference_files(path: Path) -> list[Path]:
    """The preference files at ``path`` (the file itself, or those in a folder)."""
    if path.is_file():
        return [path] if is_preference_file(path) else []
    return [f for f in sorted(path.rglob("*.jsonl")) if is_preference_file(f)]


def load_preferences(
    source: str, with_images: bool, max_side: int = 1024, max_mb: int = DATASET_MB
) -> Dataset:
    """Preference pairs from a JSONL file or the preference files of a folder, in splits."""
    path = Path(source).expanduser()
    if not path.exists():
        raise BadInputError(
            f"dataset {source!r} does not exist",
            fix="give the preferences.jsonl the arena's vote export wrote, or its folder",
        )
    files = preference_files(path)
    if not files:
        raise BadInputError(
            f"no preference pairs in {source}: DPO learns from a preferred and a rejected "
            "answer to the same prompt",
            fix="export the arena's blind votes (Arena tab: Export votes, or /votes_export) "
            "and train on its preferences.jsonl; or write JSONL lines with prompt, chosen and "
            "rejected (and an image for the VLM)",
        )
    limit = max_mb * 2**20
    _check_size(files, limit)
    report = DataReport(str(path), "preferences")
    root = (path.parent if path.is_file() else path).resolve()
    tagged: list[tuple[str | None, Example]] = []
    checked: dict[Path, str] = {}
    for file in files:
        for number, line in enumerate(_text(file, limit).splitlines(), 1):
            if not line.strip():
                continue
            if len(tagged) >= MAX_ROWS:
                raise BadInputError(
                    f"{source} has more than {MAX_ROWS:,} pairs", fix="train on a part of it"
                )
            where = f"{file.name} line {number}"
            pair = _pair(line, where, file, root, with_images, max_side, checked, report)
            if pair is not None:
                tagged.append(pair)
    splits = _split(tagged)
    report.counts = {k: len(v) for k, v in splits.items()}
    if not splits["train"]:
        shown = "; ".join(report.listed(MAX_PROBLEMS_SHOWN)) or "no lines at all"
        raise BadInputError(f"no usable preference pairs in {source} ({shown})", fix=HOW)
    return Dataset(splits, report)


def preference_data(
    dataset: str, base: str, scale: float = 1.0, max_side: int = 1024, max_mb: int = DATASET_MB
) -> tuple[dict[str, list[Example]], str]:
    """A run's pairs and where they came from: the built-in "name the colour" task
    (``dataset`` "builtin", ``scale`` of its scenes), or a preference file or folder."""
    if dataset == "builtin":
        from mmdemo.finetune.colour_pairs import colour_pairs

        shown = "pictures" if base == "vlm" else "scenes in words"
        return colour_pairs(base, scale), f"built-in colour-naming pairs ({shown})"
    data = load_preferences(dataset, base == "vlm", max_side, max_mb)
    return data.splits, data.report.describe()


def _pair(
    line: str,
    where: str,
    file: Path,
    root: Path,
    with_images: bool,
    max_side: int,
    checked: dict[Path, str],
    report: DataReport,
) -> tuple[str | None, Example] | None:
    """One line as (split, example), or None with the reason noted in ``report``."""
    from mmdemo.images import load_image

    try:
        row = json.loads(line)
    except ValueError as exc:
        report.problem(f"{where}: not valid JSON ({exc.msg})")
        return None
    if not isinstance(row, dict):
        report.problem(f"{where}: not a JSON object")
        return None
    texts = {}
    for key in ("prompt", "chosen", "rejected"):
        value = row.get(key)
        if not isinstance(value, str) or not value.strip():
            report.problem(f"{where}: no '{key}'")
            return None
        texts[key] = value.strip()
    if texts["chosen"] == texts["rejected"]:
        report.problem(f"{where}: chosen and rejected are the same answer")
        return None
    image = None
    if with_images:
        name = row.get("image")
        if not isinstance(name, str) or not name.strip():
            report.problem(f"{where}: no 'image' (the VLM trains on pairs with their image)")
            return None
        if _escapes(name):
            report.problem(f"{where}: image {name[:80]!r} is outside the dataset folder")
            return None
        image = file.parent / name
        if image not in checked:
            checked[image] = _image_problem(image, root, max_side, load_image)
        if checked[image]:
            report.problem(f"{where}: image {image.name}: {checked[image]}")
            return None
        image = str(image)
    split = SPLIT_NAMES.get(str(row.get("split", "")).lower())
    qid = str(row.get("id") or f"{file.stem}-{where.rsplit(' ', 1)[-1]}")
    example = Example(image, texts["prompt"], texts["chosen"], (), "open", qid, texts["rejected"])
    return split, example


def _split(tagged: list[tuple[str | None, Example]]) -> dict[str, list[Example]]:
    """The given splits; otherwise 80/10/10 by a hash of the image (or, without images, the
    prompt), so that one picture or prompt never lands in two splits."""
    splits: dict[str, list[Example]] = {"train": [], "validation": [], "test": []}
    untagged = []
    for split, ex in tagged:
        (splits[split] if split else untagged).append(ex)

    def key(ex: Example) -> str:
        return str(ex.image) if ex.image is not None else ex.prompt

    if len({key(ex) for ex in untagged}) < MIN_KEYS_TO_SPLIT:
        splits["train"] += untagged  # too few to hold any out
        return splits
    for ex in untagged:
        bucket = int(hashlib.sha256(key(ex).encode()).hexdigest(), 16) % 10
        splits["test" if bucket == 0 else "validation" if bucket == 1 else "train"].append(ex)
    return splits
