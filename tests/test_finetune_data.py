"""Training data: the built-in synthetic set, our JSONL, the VQA-RAD and SLAKE layouts, and
every problem reported with where it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmdemo.errors import BadInputError
from mmdemo.finetune.evaluate import closed_correct, summarize, token_recall
from mmdemo.finetune.evaluate import score as score_one
from mmdemo.finetune.formats import load_dataset
from mmdemo.finetune.synthetic import synthetic_dataset, synthetic_split


def write_png(path: Path, color: tuple[int, int, int] = (200, 30, 30)) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), color).save(path)
    return path


def test_held_out_scenes_never_repeat_a_training_arrangement() -> None:
    from mmdemo.finetune.synthetic import training_arrangements

    seen = training_arrangements()
    for split in ("validation", "test"):
        for ex in synthetic_split(split, scenes=20)[::5]:
            arrangement = tuple(tuple(obj.split()) for _, obj in ex.facts)
            assert arrangement not in seen


def test_builtin_splits_are_fixed_and_answers_match_the_drawn_scene() -> None:
    first, again = synthetic_split("test", scenes=5), synthetic_split("test", scenes=5)
    assert [(e.prompt, e.answer) for e in first] == [(e.prompt, e.answer) for e in again]
    assert list(first[0].image.getdata()) == list(again[0].image.getdata())
    train = synthetic_split("train", scenes=5)
    assert [e.prompt for e in train] != [e.prompt for e in first]
    kinds = {e.kind for e in first}
    assert kinds == {"closed", "open"}
    # the colour answer is the colour of the pixels drawn for that shape (read off the image)
    from mmdemo.finetune.data import COLORS

    for ex in first:
        if ex.prompt.startswith("What colour is the shape on the"):
            # the colour answer is drawn at that end of the picture
            width = ex.image.width
            side = (0, width // 2) if "left" in ex.prompt else (width // 2, width)
            pixels = set(ex.image.crop((side[0], 0, side[1], ex.image.height)).getdata())
            assert COLORS[ex.answer] in pixels
        if ex.prompt == "How many shapes are there?":
            objects = [v for k, v in ex.facts if k == "object"]
            assert ex.answer == {2: "two", 3: "three"}[len(objects)]


def test_yes_no_questions_are_balanced_and_captions_describe_every_object() -> None:
    data = synthetic_dataset("vqa", scale=0.2)["train"]
    yes = sum(e.answer == "yes" for e in data)
    no = sum(e.answer == "no" for e in data)
    assert 0.4 <= yes / (yes + no) <= 0.6
    captions = synthetic_split("validation", "caption", scenes=6)
    assert all(e.kind == "caption" for e in captions)
    for ex in captions:
        for _, obj in ex.facts:
            assert obj in ex.answer


def test_jsonl_reports_bad_lines_with_numbers_and_keeps_the_good(tmp_path: Path) -> None:
    write_png(tmp_path / "img" / "a.png")
    lines = [
        json.dumps({"image": "img/a.png", "question": "Is it red?", "answer": "yes"}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"image": "img/missing.png", "question": "Q?", "answer": "no"}),
        json.dumps({"image": "img/a.png", "question": "", "answer": "no"}),
        json.dumps({"image": "img/a.png", "question": "What colour?", "answer": "red"}),
        json.dumps({"image": "img/a.png", "caption": "A red square."}),
    ]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = load_dataset(str(path), "vqa")
    problems = " | ".join(data.report.problems)
    assert "line 2: not valid JSON" in problems
    assert "line 3: not a JSON object" in problems
    assert "line 4: image missing.png" in problems and "not found" in problems
    assert "line 5: no 'question'" in problems
    examples = [e for split in data.splits.values() for e in split]
    assert sorted(e.answer for e in examples) == ["red", "yes"]
    assert {e.kind for e in examples} == {"closed", "open"}  # yes -> closed, red -> open
    captions = load_dataset(str(path), "caption")
    assert [e.answer for s in captions.splits.values() for e in s] == ["A red square."]


def test_unusable_or_empty_data_is_refused_with_the_reason(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(BadInputError, match="no usable vqa examples"):
        load_dataset(str(empty), "vqa")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"image": "x.png", "question": "q", "answer": "a"}\n', encoding="utf-8")
    with pytest.raises(BadInputError, match=r"x\.png.*not found"):
        load_dataset(str(broken), "vqa")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    corrupt = tmp_path / "corrupt.jsonl"
    corrupt.write_text('{"image": "corrupt.png", "question": "q", "answer": "a"}\n')
    with pytest.raises(BadInputError, match=r"corrupt\.png"):
        load_dataset(str(corrupt), "vqa")
    with pytest.raises(BadInputError, match="does not exist"):
        load_dataset(str(tmp_path / "nope"), "vqa")
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(BadInputError, match=r"no \.jsonl file, VQA-RAD or SLAKE"):
        load_dataset(str(folder), "vqa")


def test_vqa_rad_layout_uses_its_test_phrases_as_the_test_split(tmp_path: Path) -> None:
    root = tmp_path / "vqa_rad"
    images = root / "VQA_RAD Image Folder"
    for i in range(12):
        write_png(images / f"synpic{i}.jpg".replace(".jpg", ".png"), (i * 20, 10, 10))
    items = [
        {
            "qid": i,
            "image_name": f"synpic{i}.png",
            "question": f"Is there a fracture in image {i}?",
            "answer": "yes" if i % 2 else "no",
            "answer_type": "CLOSED",
            "phrase_type": "test_freeform" if i < 3 else "freeform",
        }
        for i in range(12)
    ]
    (root / "VQA_RAD Dataset Public.json").write_text(json.dumps(items), encoding="utf-8")
    data = load_dataset(str(root), "vqa")
    assert data.report.layout == "vqa-rad"
    assert sorted(int(e.qid) for e in data.splits["test"]) == [0, 1, 2]
    assert all(e.kind == "closed" for s in data.splits.values() for e in s)
    assert sum(len(s) for s in data.splits.values()) == 12


def test_slake_layout_reads_english_questions_per_split(tmp_path: Path) -> None:
    root = tmp_path / "Slake1.0"
    write_png(root / "imgs" / "xmlab1" / "source.jpg".replace(".jpg", ".png"))
    item = {"img_name": "xmlab1/source.png", "answer_type": "OPEN"}
    for stem in ("train", "validate", "test"):
        rows = [
            {
                **item,
                "qid": 1,
                "question": "Which organ is shown?",
                "answer": "Lung",
                "q_lang": "en",
            },
            {
                **item,
                "qid": 2,
                "question": "图中显示的是哪个器官？",
                "answer": "肺",
                "q_lang": "zh",
            },
        ]
        (root / f"{stem}.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    data = load_dataset(str(root), "vqa")
    assert data.report.layout == "slake"
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 1, "validation": 1, "test": 1}
    assert data.splits["test"][0].answer == "Lung" and data.splits["test"][0].kind == "open"


def test_untagged_rows_split_by_image_so_no_image_is_in_two_splits(tmp_path: Path) -> None:
    lines = []
    for i in range(40):
        write_png(tmp_path / f"{i}.png", (i * 5, 0, 0))
        for q in ("Is it dark?", "What is it?"):
            lines.append(json.dumps({"image": f"{i}.png", "question": q, "answer": "no"}))
    (tmp_path / "d.jsonl").write_text("\n".join(lines), encoding="utf-8")
    data = load_dataset(str(tmp_path / "d.jsonl"), "vqa")
    owners = {}
    for split, examples in data.splits.items():
        for ex in examples:
            assert owners.setdefault(ex.image, split) == split
    assert data.splits["train"] and sum(len(v) for v in data.splits.values()) == 80


def test_a_few_images_with_many_lines_all_train_whatever_their_names_hash_to(
    tmp_path: Path,
) -> None:
    """Two images, 30 lines: too few images to hold any out, so every line trains. The names
    are picked so that both images' paths land in the held-out hash bucket (the case that once
    emptied the train split)."""
    import hashlib

    names = []
    for i in range(10_000):
        path = tmp_path / f"img{i}.png"
        if int(hashlib.sha256(str(path).encode()).hexdigest(), 16) % 10 == 1:
            names.append(path.name)
        if len(names) == 2:
            break
    lines = []
    for n, name in enumerate(names):
        write_png(tmp_path / name, (n * 90, 0, 0))
        lines += [
            json.dumps({"image": name, "question": f"q{k}?", "answer": "yes"}) for k in range(15)
        ]
    (tmp_path / "d.jsonl").write_text("\n".join(lines), encoding="utf-8")
    data = load_dataset(str(tmp_path / "d.jsonl"), "vqa")
    assert len(data.splits["train"]) == 30


def test_med_vqa_metrics_match_hand_computed_values() -> None:
    assert closed_correct("Yes.", "yes") and closed_correct("yes, there is", "yes")
    assert not closed_correct("no", "yes") and not closed_correct("", "yes")
    assert closed_correct("the left lung", "The left lung") and not closed_correct(
        "left", "left lung"
    )
    assert token_recall("a red circle", "a red square") == pytest.approx(2 / 3)
    assert token_recall("", "a red square") == 0.0
    from mmdemo.finetune.data import Example

    rows = [
        score_one(Example(None, "q1", "yes", kind="closed"), "yes"),
        score_one(Example(None, "q2", "no", kind="closed"), "yes"),
        score_one(Example(None, "q3", "a red square", kind="open"), "a blue square"),
    ]
    metrics = summarize(rows)
    assert metrics["closed_accuracy"] == 0.5
    assert metrics["open_recall"] == pytest.approx(0.6667, abs=1e-4)
    assert metrics["overall"] == pytest.approx((1 + 0 + 2 / 3) / 3, abs=1e-4)
    assert metrics["count"] == 3
