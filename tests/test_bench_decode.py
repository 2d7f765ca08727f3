"""The decode benchmark's helpers on the tiny text LLM (the benchmark itself is run by
``python -m mmdemo bench decode``, not here)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from mmdemo.bench.decode import Stamps, _generate, _matching, bench_model, matrix_bytes, timed
from mmdemo.bench.report import Table
from mmdemo.config import Settings
from mmdemo.models.backends.llm import load_parts


@pytest.fixture(scope="module")
def tiny_llm(tiny_settings: Settings) -> tuple[Any, dict]:
    model, tokenizer = load_parts("tiny:llm", tiny_settings, "cpu", "float32")
    ids = tokenizer("hello there", return_tensors="pt")
    return model, {"input_ids": ids["input_ids"], "attention_mask": ids["attention_mask"]}


def test_first_change_is_counted() -> None:
    assert _matching([1, 2, 3], [1, 2, 3]) == "yes"
    assert _matching([1, 9, 3], [1, 2, 3]) == "no (1 of 3 before the first change)"


def test_the_streamer_stamps_every_new_token_and_not_the_prompt(tiny_llm: Any) -> None:
    model, inputs = tiny_llm
    ttft, rate, tokens = timed(_generate(model, inputs, 6), runs=1)
    assert len(tokens) == 6 and ttft > 0 and rate > 0
    stamps = Stamps()
    _generate(model, inputs, 6)(stamps)
    assert len(stamps.times) == 6 and stamps.tokens == tokens  # greedy: the same again


def test_weights_read_count_int8_storage() -> None:
    pytest.importorskip("torchao")
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    lm = torch.nn.Sequential(torch.nn.Linear(64, 32, bias=False))
    head = torch.nn.Linear(32, 128, bias=False)
    assert matrix_bytes(lm, head) == (64 * 32 + 32 * 128) * 4
    quantize_(lm, Int8WeightOnlyConfig())
    quantize_(head, Int8WeightOnlyConfig())
    # one byte per weight plus, per output row, an fp32 scale and an int8 zero point
    assert matrix_bytes(lm, head) == 64 * 32 + 32 * 128 + (32 + 128) * (4 + 1)


def test_each_route_gets_a_row_and_eager_is_the_reference(
    tiny_llm: Any, tiny_settings: Settings
) -> None:
    pytest.importorskip("torchao")
    _, inputs = tiny_llm
    table = Table("decode", "t", ["a"] * 7)

    def make(dtype: str) -> tuple[Any, dict]:
        return load_parts("tiny:llm", tiny_settings, "cpu", dtype)[0], inputs

    # (the app's own OpenVINO route: tests/test_ov_decode.py, which traces it once)
    routes = ("eager", "int8", "openvino")
    measured = bench_model("tiny", make, 1e9, 4, routes, table)
    names = [row[0] for row in table.rows]
    assert names == [f"tiny, {d}, {r}" for d in ("float32", "bfloat16") for r in routes]
    assert table.rows[0][5] == "reference"
    assert table.rows[1][5].startswith(("yes", "no ("))
    assert table.rows[2][1] == "not run"  # no OpenVINO GenAI runner given: a row saying so
    assert {d for d, _ in measured} == {"float32", "bfloat16"}
    assert {r for _, r in measured} == {"eager", "int8"}
    assert len(measured["float32", "eager"][2]) == 4
