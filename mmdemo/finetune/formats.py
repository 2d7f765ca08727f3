"""Training data from disk: our JSONL (VQA and captioning), and the public VQA-RAD and SLAKE
layouts when a user points at a local copy. Every problem is reported with where it is (file
and line); a dataset is refused only when nothing in it is usable.

JSONL, one object per line, image paths relative to the file and inside the dataset's folder
(``../x.png``, absolute paths and links that lead out are refused, naming the line):
  {"image": "img/1.png", "question": "Is there a fracture?", "answer": "no"}
  {"image": "img/1.png", "caption": "Chest x-ray, no fracture."}
Optional keys: "split" (train / validation / test), "type" (closed / open).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from mmdemo.errors import BadInputError
from mmdemo.finetune.data import Example

SPLIT_NAMES = {"train": "train", "validation": "validation", "val": "validation"}
SPLIT_NAMES |= {"valid": "validation", "validate": "validation", "dev": "validation"}
SPLIT_NAMES |= {"test": "test"}
CLOSED_ANSWERS = frozenset({"yes", "no"})
MAX_PROBLEMS_SHOWN = 8
MAX_PROBLEMS_KEPT = 50  # problems listed in a report; the rest are only counted
MAX_ROWS = 500_000  # rows read from one dataset (memory)
DATASET_MB = 200  # the default of Settings.max_dataset_mb
MIN_IMAGES_TO_SPLIT = 10  # fewer distinct images: everything trains, nothing is held out


@dataclass
class DataReport:
    """What was read: examples per split and every line that was skipped, with its reason."""

    source: str
    layout: str  # builtin | jsonl | vqa-rad | slake
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # the first MAX_PROBLEMS_KEPT
    skipped: int = 0  # every problem, listed or not

    def problem(self, text: str) -> None:
        """Note a skipped line (listed while fewer than MAX_PROBLEMS_KEPT are, then counted)."""
        self.skipped += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(text)

    def listed(self, most: int = MAX_PROBLEMS_KEPT) -> list[str]:
        """The first ``most`` problems, then "and K more" when there are others."""
        shown = self.problems[:most]
        more = self.skipped - len(shown)
        return [*shown, f"and {more} more"] if more > 0 else shown

    def describe(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        text = f"{self.layout} data from {self.source}: {counts}"
        if self.skipped:
            text += f". Skipped {self.skipped}: " + "; ".join(self.listed(MAX_PROBLEMS_SHOWN))
        return text


@dataclass
class Dataset:
    splits: dict[str, list[Example]]
    report: DataReport


def load_dataset(
    source: str, task: str = "vqa", max_side: int = 1024, max_mb: int = DATASET_MB
) -> Dataset:
    """Examples for ``task`` ("vqa" or "caption") from a JSONL file or a dataset folder
    (each file at most ``max_mb`` megabytes: Settings.max_dataset_mb)."""
    path = Path(source).expanduser()
    if not path.exists():
        raise BadInputError(
            f"dataset {source!r} does not exist",
            fix="give a JSONL file, a folder with one, or a local VQA-RAD / SLAKE copy",
        )
    limit = max_mb * 2**20
    root = path.parent if path.is_file() else path  # every image must be inside
    if task == "vqa" and _only_preferences(path):
        from mmdemo.finetune.preferences import load_preferences

        return load_preferences(source, True, max_side, max_mb)  # the chosen answers
    if path.is_file():
        report = DataReport(str(path), "jsonl")
        rows = _read_jsonl(path, report, limit)
    elif (path / "imgs").is_dir() and any(
        (path / f"{s}.json").is_file() for s in ("train", "test")
    ):
        report = DataReport(str(path), "slake")
        rows = _read_slake(path, report, limit)
    elif (rad := _find_vqa_rad(path, limit)) is not None:
        report = DataReport(str(path), "vqa-rad")
        rows = _read_vqa_rad(rad, report, limit)
    else:
        # preference files (an exported vote folder holds both) are for DPO
        files = [f for f in sorted(path.rglob("*.jsonl")) if not _is_preference_file(f)]
        if not files:
            raise BadInputError(
                f"no .jsonl file, VQA-RAD or SLAKE layout found in {path}",
                fix="put a JSONL file with image/question/answer (or caption) lines in the folder",
            )
        _check_size(files, limit)  # all of them together, before reading any
        report = DataReport(str(path), "jsonl")
        rows = [row for f in files for row in _read_jsonl(f, report, limit, _split_of_file(f))]
    if len(rows) > MAX_ROWS:
        raise BadInputError(
            f"{source} has {len(rows):,} rows; at most {MAX_ROWS:,} are read",
            fix="train on a part of the dataset",
        )
    examples = _to_examples(rows, task, report, max_side, root)
    splits = _split(examples)
    report.counts = {k: len(v) for k, v in splits.items()}
    if not splits["train"]:
        shown = "; ".join(report.listed(MAX_PROBLEMS_SHOWN)) or "no lines at all"
        raise BadInputError(
            f"no usable {task} examples in {source} ({shown})",
            fix=(
                "each line needs image + question + answer"
                if task == "vqa"
                else "each line needs image + caption"
            ),
        )
    return Dataset(splits, report)


def _is_preference_file(path: Path) -> bool:
    from mmdemo.finetune.preferences import is_preference_file

    return is_preference_file(path)


def _only_preferences(path: Path) -> bool:
    """A preference file, or a folder whose JSONL files are all preference files: question
    answering then trains on the chosen answers."""
    files = [path] if path.is_file() else sorted(path.rglob("*.jsonl"))
    return bool(files) and all(_is_preference_file(f) for f in files)


def _split_of_file(path: Path) -> str | None:
    return SPLIT_NAMES.get(path.stem.lower())


def _check_size(paths: list[Path], limit: int) -> None:
    """Refuse data files whose total size passes ``limit`` (before any is read)."""
    size = sum(p.stat().st_size for p in paths)
    if size > limit:
        names = ", ".join(p.name for p in paths[:3]) + (" ..." if len(paths) > 3 else "")
        raise BadInputError(
            f"{names}: {size / 2**20:,.1f} MB of data; the limit is {limit / 2**20:,.0f} MB",
            fix="train on a part of the dataset (the operator sets the limit with "
            "MMDEMO_MAX_DATASET_MB)",
        )


def _text(path: Path, limit: int) -> str:
    """The UTF-8 text of a data file, its size checked first."""
    _check_size([path], limit)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BadInputError(f"{path.name} is not UTF-8 text", fix="save it as UTF-8") from None


def _escapes(name: str) -> bool:
    """Whether an image path from the data is absolute or climbs out with ``..``."""
    pure = PurePosixPath(name.replace("\\", "/"))
    return pure.is_absolute() or ".." in pure.parts or PureWindowsPath(name).drive != ""


def _read_jsonl(path: Path, report: DataReport, limit: int, split: str | None = None) -> list[dict]:
    rows = []
    text = _text(path, limit)
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{path.name} line {number}"
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            report.problem(f"{where}: not valid JSON ({exc.msg})")
            continue
        if not isinstance(row, dict):
            report.problem(f"{where}: not a JSON object")
            continue
        image = row.get("image")
        if not isinstance(image, str) or not image.strip():
            report.problem(f"{where}: no 'image' path")
            continue
        if _escapes(image):
            report.problem(f"{where}: image {image[:80]!r} is outside the dataset folder")
            continue
        rows.append(
            {
                "where": where,
                "image": path.parent / image,
                "question": row.get("question"),
                "answer": row.get("answer"),
                "caption": row.get("caption"),
                "type": row.get("type") or row.get("answer_type"),
                "split": SPLIT_NAMES.get(str(row.get("split", "")).lower(), split),
                "qid": str(row.get("id") or row.get("qid") or f"{path.stem}-{number}"),
            }
        )
    return rows


def _find_vqa_rad(folder: Path, limit: int) -> Path | None:
    for candidate in sorted(folder.glob("*.json")):
        if candidate.stat().st_size > limit:
            _check_size([candidate], limit)
        try:
            data = json.loads(candidate.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, OSError):
            continue
        head = data[0] if isinstance(data, list) and data else None
        if isinstance(head, dict) and {"image_name", "question", "answer"} <= set(head):
            return candidate
    return None


def _read_vqa_rad(json_path: Path, report: DataReport, limit: int) -> list[dict]:
    """VQA-RAD: one JSON list; images in a sibling folder; test questions have a phrase_type
    starting with 'test'."""
    data = json.loads(_text(json_path, limit))
    folders = [p for p in json_path.parent.iterdir() if p.is_dir()]
    rows = []
    for i, item in enumerate(data):
        name = str(item.get("image_name", ""))
        if _escapes(name):  # checked before any path is looked at
            report.problem(f"{json_path.name} item {i}: image {name[:80]!r} is outside the folder")
            continue
        image = next((f / name for f in folders if (f / name).is_file()), json_path.parent / name)
        phrase = str(item.get("phrase_type", ""))
        rows.append(
            {
                "where": f"{json_path.name} item {i}",
                "image": image,
                "question": item.get("question"),
                "answer": item.get("answer"),
                "caption": None,
                "type": item.get("answer_type"),
                "split": "test" if phrase.startswith("test") else "train",
                "qid": str(item.get("qid", i)),
            }
        )
    return rows


def _read_slake(folder: Path, report: DataReport, limit: int) -> list[dict]:
    """SLAKE 1.0: train/validate/test.json with img_name under imgs/; English questions only."""
    rows = []
    for stem, split in (("train", "train"), ("validate", "validation"), ("test", "test")):
        path = folder / f"{stem}.json"
        if not path.is_file():
            continue
        text = _text(path, limit)
        try:
            data = json.loads(text)
        except ValueError as exc:
            report.problem(f"{path.name}: not valid JSON ({exc})")
            continue
        for i, item in enumerate(data if isinstance(data, list) else []):
            if item.get("q_lang", "en") != "en":
                continue
            name = str(item.get("img_name", ""))
            if _escapes(name):
                report.problem(f"{path.name} item {i}: image {name[:80]!r} is outside the folder")
                continue
            rows.append(
                {
                    "where": f"{path.name} item {i}",
                    "image": folder / "imgs" / name,
                    "question": item.get("question"),
                    "answer": item.get("answer"),
                    "caption": None,
                    "type": item.get("answer_type"),
                    "split": split,
                    "qid": str(item.get("qid", f"{stem}-{i}")),
                }
            )
    return rows


def _to_examples(
    rows: list[dict], task: str, report: DataReport, max_side: int, root: Path
) -> list[Example]:
    from mmdemo.images import load_image

    inside = root.resolve()

    checked: dict[Path, str] = {}  # image -> "" if readable, else the reason
    out = []
    for row in rows:
        where = row["where"]
        if task == "vqa":
            question, answer = row["question"], row["answer"]
            if row["caption"] is not None and question is None:
                continue  # a caption line: used by the captioning stage, not this one
            if not isinstance(question, str) or not question.strip():
                report.problem(f"{where}: no 'question'")
                continue
            if answer is None or not str(answer).strip():
                report.problem(f"{where}: no 'answer'")
                continue
            prompt, target = question.strip(), str(answer).strip()
            kind = str(row["type"] or "").lower()
            if kind not in ("closed", "open"):
                kind = "closed" if target.lower() in CLOSED_ANSWERS else "open"
        else:
            text = row["caption"]
            if text is None:
                continue  # a question line
            if not isinstance(text, str) or not text.strip():
                report.problem(f"{where}: empty 'caption'")
                continue
            prompt, target, kind = "Describe the image.", text.strip(), "caption"
        image = Path(row["image"])
        if image not in checked:
            checked[image] = _image_problem(image, inside, max_side, load_image)
        if checked[image]:
            report.problem(f"{where}: image {image.name}: {checked[image]}")
            continue
        ex = Example(str(image), prompt, target, (), kind, row["qid"])
        out.append((row["split"], ex))
    return out  # type: ignore[return-value]


def _image_problem(image: Path, inside: Path, max_side: int, load_image: Any) -> str:
    """Why ``image`` cannot be used ("" if it can): a link leading out of the dataset's folder
    is refused before it is opened."""
    try:
        if not image.resolve().is_relative_to(inside):
            return "it is a link that leads outside the dataset folder"
    except (OSError, RuntimeError):  # a link loop
        return "it is a link that leads nowhere"
    try:
        load_image(image, max_side)
    except BadInputError as exc:
        return str(exc)
    return ""


def _split(tagged: list[Any]) -> dict[str, list[Example]]:
    """Use the given splits; otherwise 80/10/10 by a hash of the image path (an image never
    lands in two splits), and carve a validation set from train when there is none."""
    splits: dict[str, list[Example]] = {"train": [], "validation": [], "test": []}
    untagged = []
    for split, ex in tagged:
        (splits[split] if split else untagged).append(ex)
    if len({str(ex.image) for ex in untagged}) < MIN_IMAGES_TO_SPLIT:
        splits["train"] += untagged  # too few images to hold any out
        untagged = []
    for ex in untagged:
        bucket = int(hashlib.sha256(str(ex.image).encode()).hexdigest(), 16) % 10
        splits["test" if bucket == 0 else "validation" if bucket == 1 else "train"].append(ex)
    train_images = {str(ex.image) for ex in splits["train"]}
    if not splits["validation"] and len(train_images) >= MIN_IMAGES_TO_SPLIT:
        keep, held = [], []
        for ex in splits["train"]:
            bucket = int(hashlib.sha256(str(ex.image).encode()).hexdigest(), 16) % 10
            (held if bucket == 1 else keep).append(ex)
        if keep:  # by chance every image may hash to the held-out bucket: then hold none out
            splits["train"], splits["validation"] = keep, held
    return splits
