"""Training data from disk: our JSONL (VQA and captioning), and the public VQA-RAD and SLAKE
layouts when a user points at a local copy. Every problem is reported with where it is (file
and line); a dataset is refused only when nothing in it is usable.

JSONL, one object per line, image paths relative to the file:
  {"image": "img/1.png", "question": "Is there a fracture?", "answer": "no"}
  {"image": "img/1.png", "caption": "Chest x-ray, no fracture."}
Optional keys: "split" (train / validation / test), "type" (closed / open).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmdemo.errors import BadInputError
from mmdemo.finetune.data import Example

SPLIT_NAMES = {"train": "train", "validation": "validation", "val": "validation"}
SPLIT_NAMES |= {"valid": "validation", "validate": "validation", "dev": "validation"}
SPLIT_NAMES |= {"test": "test"}
CLOSED_ANSWERS = frozenset({"yes", "no"})
MAX_PROBLEMS_SHOWN = 8
MIN_IMAGES_TO_SPLIT = 10  # fewer distinct images: everything trains, nothing is held out


@dataclass
class DataReport:
    """What was read: examples per split and every line that was skipped, with its reason."""

    source: str
    layout: str  # builtin | jsonl | vqa-rad | slake
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        text = f"{self.layout} data from {self.source}: {counts}"
        if self.problems:
            shown = "; ".join(self.problems[:MAX_PROBLEMS_SHOWN])
            more = len(self.problems) - MAX_PROBLEMS_SHOWN
            text += f". Skipped {len(self.problems)}: {shown}" + (
                f" (+{more} more)" if more > 0 else ""
            )
        return text


@dataclass
class Dataset:
    splits: dict[str, list[Example]]
    report: DataReport


def load_dataset(source: str, task: str = "vqa", max_side: int = 1024) -> Dataset:
    """Examples for ``task`` ("vqa" or "caption") from a JSONL file or a dataset folder."""
    path = Path(source).expanduser()
    if not path.exists():
        raise BadInputError(
            f"dataset {source!r} does not exist",
            fix="give a JSONL file, a folder with one, or a local VQA-RAD / SLAKE copy",
        )
    if path.is_file():
        report = DataReport(str(path), "jsonl")
        rows = _read_jsonl(path, report)
    elif (path / "imgs").is_dir() and any(
        (path / f"{s}.json").is_file() for s in ("train", "test")
    ):
        report = DataReport(str(path), "slake")
        rows = _read_slake(path, report)
    elif (rad := _find_vqa_rad(path)) is not None:
        report = DataReport(str(path), "vqa-rad")
        rows = _read_vqa_rad(rad, report)
    else:
        files = sorted(path.rglob("*.jsonl"))
        if not files:
            raise BadInputError(
                f"no .jsonl file, VQA-RAD or SLAKE layout found in {path}",
                fix="put a JSONL file with image/question/answer (or caption) lines in the folder",
            )
        report = DataReport(str(path), "jsonl")
        rows = [row for f in files for row in _read_jsonl(f, report, _split_of_file(f))]
    examples = _to_examples(rows, task, report, max_side)
    splits = _split(examples)
    report.counts = {k: len(v) for k, v in splits.items()}
    if not splits["train"]:
        shown = "; ".join(report.problems[:MAX_PROBLEMS_SHOWN]) or "no lines at all"
        raise BadInputError(
            f"no usable {task} examples in {source} ({shown})",
            fix=(
                "each line needs image + question + answer"
                if task == "vqa"
                else "each line needs image + caption"
            ),
        )
    return Dataset(splits, report)


def _split_of_file(path: Path) -> str | None:
    return SPLIT_NAMES.get(path.stem.lower())


def _read_jsonl(path: Path, report: DataReport, split: str | None = None) -> list[dict]:
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BadInputError(
            f"{path.name} is not UTF-8 text", fix="save the JSONL as UTF-8"
        ) from None
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{path.name} line {number}"
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            report.problems.append(f"{where}: not valid JSON ({exc.msg})")
            continue
        if not isinstance(row, dict):
            report.problems.append(f"{where}: not a JSON object")
            continue
        image = row.get("image")
        if not isinstance(image, str) or not image.strip():
            report.problems.append(f"{where}: no 'image' path")
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


def _find_vqa_rad(folder: Path) -> Path | None:
    for candidate in sorted(folder.glob("*.json")):
        try:
            data = json.loads(candidate.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, OSError):
            continue
        head = data[0] if isinstance(data, list) and data else None
        if isinstance(head, dict) and {"image_name", "question", "answer"} <= set(head):
            return candidate
    return None


def _read_vqa_rad(json_path: Path, report: DataReport) -> list[dict]:
    """VQA-RAD: one JSON list; images in a sibling folder; test questions have a phrase_type
    starting with 'test'."""
    data = json.loads(json_path.read_text(encoding="utf-8"))
    folders = [p for p in json_path.parent.iterdir() if p.is_dir()]
    rows = []
    for i, item in enumerate(data):
        name = str(item.get("image_name", ""))
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


def _read_slake(folder: Path, report: DataReport) -> list[dict]:
    """SLAKE 1.0: train/validate/test.json with img_name under imgs/; English questions only."""
    rows = []
    for stem, split in (("train", "train"), ("validate", "validation"), ("test", "test")):
        path = folder / f"{stem}.json"
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            report.problems.append(f"{path.name}: not valid JSON ({exc})")
            continue
        for i, item in enumerate(data if isinstance(data, list) else []):
            if item.get("q_lang", "en") != "en":
                continue
            rows.append(
                {
                    "where": f"{path.name} item {i}",
                    "image": folder / "imgs" / str(item.get("img_name", "")),
                    "question": item.get("question"),
                    "answer": item.get("answer"),
                    "caption": None,
                    "type": item.get("answer_type"),
                    "split": split,
                    "qid": str(item.get("qid", f"{stem}-{i}")),
                }
            )
    return rows


def _to_examples(rows: list[dict], task: str, report: DataReport, max_side: int) -> list[Example]:
    from mmdemo.images import load_image

    checked: dict[Path, str] = {}  # image -> "" if readable, else the reason
    out = []
    for row in rows:
        where = row["where"]
        if task == "vqa":
            question, answer = row["question"], row["answer"]
            if row["caption"] is not None and question is None:
                continue  # a caption line: used by the captioning stage, not this one
            if not isinstance(question, str) or not question.strip():
                report.problems.append(f"{where}: no 'question'")
                continue
            if answer is None or not str(answer).strip():
                report.problems.append(f"{where}: no 'answer'")
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
                report.problems.append(f"{where}: empty 'caption'")
                continue
            prompt, target, kind = "Describe the image.", text.strip(), "caption"
        image = Path(row["image"])
        if image not in checked:
            try:
                load_image(image, max_side)
                checked[image] = ""
            except BadInputError as exc:
                checked[image] = str(exc)
        if checked[image]:
            report.problems.append(f"{where}: image {image.name}: {checked[image]}")
            continue
        ex = Example(str(image), prompt, target, (), kind, row["qid"])
        out.append((row["split"], ex))
    return out  # type: ignore[return-value]


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
    if not splits["validation"] and len(splits["train"]) >= 10:
        keep = []
        for ex in splits["train"]:
            bucket = int(hashlib.sha256(str(ex.image).encode()).hexdigest(), 16) % 10
            (splits["validation"] if bucket == 1 else keep).append(ex)
        splits["train"] = keep
    return splits
