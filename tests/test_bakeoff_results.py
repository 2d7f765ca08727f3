"""The measured bake-off file as the Fine-tune tab and /bakeoff_results read it: scores, gain
over base as a share of LoRA's, cost; unavailable methods; a missing or damaged file refused
with the command that writes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mmdemo.errors import DamagedFileError
from mmdemo.flows.bakeoff import load_bakeoff

MEASURED: dict[str, Any] = {
    "measured": "2026-12-06",
    "title": "Real-weights bake-off",
    "model": "embedded:smollm2-135m-instruct",
    "budget": {"steps": 30, "batch_size": 8, "seeds": [0, 1, 2]},
    "base": {"closed_accuracy": 0.0, "open_recall": 0.52, "overall": 0.17, "val_loss": 3.36},
    "rows": [
        {
            "method": "lora",
            "closed_accuracy": 0.97,
            "open_recall": 0.9,
            "overall": 0.95,
            "val_loss": 0.2,
            "train_s": 60.0,
            "trainable": 2442240,
            "total": 134515008,
            "peak_above_model_bytes": 600000000,
            "tokens_per_s": 250.0,
            "lr": 0.001,
            "per_seed_overall": [0.95, 0.94, 0.96],
            "note": "",
        },
        {
            "method": "ia3",
            "closed_accuracy": 0.5,
            "open_recall": 0.7,
            "overall": 0.56,
            "train_s": 41.0,
            "trainable": 30000,
            "total": 134515008,
            "peak_above_model_bytes": 300000000,
            "tokens_per_s": 310.0,
            "note": "slow to start",
        },
        {
            "method": "mezo",
            "overall": 0.17,
            "trainable": 134515008,
            "total": 134515008,
            "peak_above_model_bytes": 20000000,
        },
        {"method": "adalomo", "unavailable": "needs a CUDA GPU"},
    ],
}


def write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_the_measured_file_reads_with_gains_as_a_share_of_loras(tmp_path: Path) -> None:
    bakeoff = load_bakeoff(write(tmp_path / "b.json", MEASURED))
    rows = {r.method: r for r in bakeoff.rows}
    assert rows["lora"].gain_share_of_lora == pytest.approx(1.0)
    assert rows["ia3"].gain_share_of_lora == pytest.approx(0.5)  # (0.56-0.17)/(0.95-0.17)
    assert rows["mezo"].gain_share_of_lora == pytest.approx(0.0)
    assert rows["adalomo"].unavailable == "needs a CUDA GPU" and rows["adalomo"].overall is None
    assert rows["lora"].per_seed_overall == (0.95, 0.94, 0.96)
    caption = bakeoff.caption()
    for part in ("2026-12-06", "smollm2-135m", "30 steps", "batch 8", "median of 3 seeds"):
        assert part in caption
    data = json.loads(json.dumps(bakeoff.as_dict()))  # plain data, as the endpoint sends
    assert data["rows"][1]["gain_share_of_lora"] == pytest.approx(0.5)
    assert data["base"]["overall"] == 0.17 and data["budget"]["seeds"] == [0, 1, 2]


def test_without_a_lora_row_there_is_no_share_to_show(tmp_path: Path) -> None:
    rows = [r for r in MEASURED["rows"] if r["method"] != "lora"]
    bakeoff = load_bakeoff(write(tmp_path / "b.json", {**MEASURED, "rows": rows}))
    assert all(r.gain_share_of_lora is None for r in bakeoff.rows)


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        ("{not json", "is damaged"),
        ({"rows": "lora"}, "no list of rows"),
        ({**MEASURED, "rows": [{"overall": 0.5}]}, "a row without a method"),
        ({**MEASURED, "rows": [{"method": "lora", "overall": "high"}]}, "overall is 'high'"),
        ({**MEASURED, "base": {"overall": float("nan")}}, "not a number"),
        ({**MEASURED, "base": [0.1]}, "is damaged"),
    ],
)
def test_a_damaged_file_is_refused_with_the_command_that_rewrites_it(
    tmp_path: Path, content: Any, cause: str
) -> None:
    with pytest.raises(DamagedFileError, match=cause) as caught:
        load_bakeoff(write(tmp_path / "b.json", content))
    assert "bench finetune --write" in caught.value.fix


def test_a_missing_file_says_nothing_was_measured_yet(tmp_path: Path) -> None:
    with pytest.raises(DamagedFileError, match="no measured bake-off yet") as caught:
        load_bakeoff(tmp_path / "absent.json")
    assert "python -m mmdemo bench finetune --write" in caught.value.fix


def test_the_panel_table_and_picture(tmp_path: Path) -> None:
    from mmdemo.ui.tabs.train import view as bakeoff_view

    bakeoff = load_bakeoff(write(tmp_path / "b.json", MEASURED))
    table = bakeoff_view.measured_table(bakeoff).set_index("method")
    assert list(table.index) == ["base (no training)", "lora", "ia3", "mezo", "adalomo"]
    assert table.loc["ia3", "gain over base (% of LoRA's)"] == "50 %"
    assert table.loc["lora", "trainable params"] == "2.4 M (1.8 %)"
    assert table.loc["lora", "peak memory above the model"] == "572.2 MB"
    assert table.loc["lora", "overall"] == "0.95" and table.loc["lora", "tokens/s"] == "250"
    assert table.loc["adalomo", "note"] == "not run: needs a CUDA GPU"
    fig = bakeoff_view.measured_figure(bakeoff)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "trainable" in ax.get_xlabel()
    labels = {t.get_text() for t in ax.texts}
    assert {"lora", "ia3", "mezo"} <= labels and "adalomo" not in labels
    assert "peak memory above the model" in fig.axes[1].get_ylabel()  # the colour bar
