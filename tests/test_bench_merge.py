"""The merge benchmark's scoring: what counts as each task's trait, and its table's rows."""

from __future__ import annotations

import pytest

from mmdemo.bench.merge import colour_phrase, in_capitals, make_table


@pytest.mark.parametrize(
    ("answer", "reference", "shows"),
    [
        ("a red circle", "a red circle", True),
        ("A red square.", "a red circle", True),  # the style, even with the shape wrong
        ("A RED CIRCLE", "a red circle", True),  # case is ignored
        ("an orange star", "an orange star", True),
        ("The leftmost square is red", "a red square", False),  # a sentence of its own
        ("a circle", "a red circle", False),  # no colour
        ("a blue circle", "a red circle", False),  # the wrong colour
        ("", "a red circle", False),
    ],
)
def test_task_a_is_the_short_colour_phrase(answer: str, reference: str, shows: bool) -> None:
    assert colour_phrase(answer, reference) is shows


@pytest.mark.parametrize(
    ("answer", "shows"),
    [("RED", True), ("A RED CIRCLE, A BLUE SQUARE.", True), ("THREE 3", True), ("Red", False),
     ("3", False), ("", False), ("RED circle", False)],
)  # fmt: skip
def test_task_b_is_every_letter_a_capital(answer: str, shows: bool) -> None:
    assert in_capitals(answer) is shows


def test_the_table_has_a_row_per_model_with_the_median_and_each_seed() -> None:
    def scores(a: float, b: float) -> dict[str, float]:
        return {"colour": a, "capitals": b, "train_s": 10.0}

    runs = [
        {"base": scores(0, 0), "colour": scores(1, 0), "capitals": scores(0.5, 1),
         "linear 0.5/0.5": scores(0.9, 0.1), "ties": scores(0.8, 0.2)},
        {"base": scores(0, 0), "colour": scores(0.9, 0), "capitals": scores(0.4, 0.9),
         "linear 0.5/0.5": scores(0.7, 0.3), "ties": scores(0.6, 0.4)},
        {"base": scores(0, 0), "colour": scores(0.8, 0), "capitals": scores(0.3, 0.8),
         "linear 0.5/0.5": scores(0.8, 0.2), "ties": scores(0.7, 0.3)},
    ]  # fmt: skip
    budget = {"steps": 16, "batch_size": 4, "test": 24, "val": 12}
    table = make_table("embedded:smollm2-135m-instruct", budget, runs, {"ties": 0.7})
    rows = {r[0]: r[1:] for r in table.rows}
    assert list(rows) == [
        "base (no adapter)",
        "parent A: colour-naming LoRA",
        "parent B: capitals LoRA",
        "linear merge 0.5/0.5",
        "ties 1/1, density 0.7",
    ]
    assert rows["linear merge 0.5/0.5"][:2] == ["0.800", "0.200"]  # medians of 0.9/0.7/0.8 ...
    assert rows["ties 1/1, density 0.7"][2] == "0.80 / 0.20 · 0.60 / 0.40 · 0.70 / 0.30"
    assert "median of 3 seed(s)" in table.title and "real weights" in table.title
