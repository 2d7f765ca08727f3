"""Training settings are checked before anything loads; uploads are staged safely; failures
become events that name the cause and the fix."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from mmdemo.errors import BadInputError
from mmdemo.finetune.config import TrainConfig
from mmdemo.finetune.events import failure_event
from mmdemo.finetune.formats import load_dataset


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"method": "nope"}, "unknown method 'nope'"),
        ({"steps": 0}, "steps=0 is outside"),
        ({"lr": 2.0}, "learning rate 2.0 is outside"),
        ({"stages": "three"}, "stages='three' is not one of"),
        ({"attach": "everything"}, "attach='everything'"),
        ({"name": "../escape"}, "adapter name '../escape' is not allowed"),
        ({"base": "llm", "attach": "all"}, "text-only base has no projector"),
        ({"base": "llm", "stages": "two-stage"}, "captioning needs images"),
        ({"model": " tiny:smolvlm"}, "surrounding spaces"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(knobs: dict, message: str) -> None:
    with pytest.raises(BadInputError, match=message.replace("(", r"\(").replace(".", r"\.")):
        TrainConfig(**knobs)


def test_two_stage_splits_the_step_budget_captioning_first() -> None:
    assert TrainConfig(stages="two-stage", steps=10).stage_steps() == [("caption", 5), ("vqa", 5)]
    assert TrainConfig(stages="two-stage", steps=2).stage_steps() == [("caption", 1), ("vqa", 1)]
    assert TrainConfig(steps=7).stage_steps() == [("vqa", 7)]
    cfg = TrainConfig(method="dora", rank=4, name="x")
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_uploaded_datasets_are_staged_from_a_zip_or_loose_files(tmp_path: Path) -> None:
    from PIL import Image

    from mmdemo.flows.train_data import stage_dataset

    Image.new("RGB", (16, 16), (255, 0, 0)).save(tmp_path / "red.png")
    line = json.dumps({"image": "red.png", "question": "What colour?", "answer": "red"})
    (tmp_path / "data.jsonl").write_text(line + "\n", encoding="utf-8")
    loose = stage_dataset(
        [str(tmp_path / "data.jsonl"), str(tmp_path / "red.png")], tmp_path / "a", 10**6
    )
    loaded = load_dataset(str(loose), "vqa")
    assert [e.answer for s in loaded.splits.values() for e in s] == ["red"]
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(tmp_path / "data.jsonl", "set/data.jsonl")
        zf.write(tmp_path / "red.png", "set/red.png")
    staged = stage_dataset([str(archive)], tmp_path / "b", 10**6)
    examples = [e for s in load_dataset(str(staged), "vqa").splits.values() for e in s]
    assert [e.answer for e in examples] == ["red"]
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../outside.jsonl", line)
    with pytest.raises(BadInputError, match="points outside its folder"):
        stage_dataset([str(evil)], tmp_path / "c", 10**6)
    (tmp_path / "model.pt").write_bytes(b"pickle")
    with pytest.raises(BadInputError, match="not a dataset file"):
        stage_dataset([str(tmp_path / "model.pt")], tmp_path / "d", 10**6)
    with pytest.raises(BadInputError, match="no dataset files"):
        stage_dataset([], tmp_path / "e", 10**6)


def test_failures_name_cause_and_fix() -> None:
    import torch

    from mmdemo.errors import TrainingStopped

    oom = failure_event(torch.OutOfMemoryError("CUDA out of memory")).to_dict()
    assert oom["type"] == "error" and "ran out of memory" in oom["message"]
    assert "batch size" in oom["fix"]
    assert failure_event(TrainingStopped("stopped")).to_dict()["type"] == "stopped"
    bad = failure_event(BadInputError("the data is empty", fix="add lines"))
    assert bad.to_dict() == {"type": "error", "message": "the data is empty", "fix": "add lines"}
