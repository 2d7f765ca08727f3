"""Grounding: boxes read from each family's own answer format into pixels of the uploaded
image (expected pixels worked out by hand), garbage answers, drawing, the synthetic task's
true boxes, IoU scoring with its position-prior baseline, and the flow over a scripted
engine."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mmdemo.finetune.data import COLORS, Example
from mmdemo.grounding.boxes import Box, iou, smart_resize
from mmdemo.grounding.draw import PALETTE, draw_boxes
from mmdemo.grounding.parse import parse_boxes

W, H = 640, 480  # the uploaded image in most cases below
# 0-1000 box (100, 200, 500, 750) on 640x480: x * 0.64, y * 0.48
RED = (64.0, 96.0, 320.0, 360.0)


def xyxy(text: str, family: str, size: tuple[int, int] = (W, H), **kw: Any) -> list[tuple]:
    return [b.xyxy for b in parse_boxes(text, family, size, **kw).boxes]


# (family, answer, expected boxes in pixels of a 640x480 image, expected labels)
CASES = [
    (
        "qwen2_vl",
        "<|object_ref_start|>the red circle<|object_ref_end|><|box_start|>(100,200),(500,750)"
        "<|box_end|> and <|object_ref_start|>a cat<|object_ref_end|><|box_start|>(0,0),(250,500)"
        "<|box_end|>",
        [RED, (0.0, 0.0, 160.0, 240.0)],
        ["the red circle", "a cat"],
    ),
    # the same answer decoded with skip_special_tokens: the markers are gone
    ("qwen2_vl", "the red circle(100,200),(500,750)", [RED], ["the red circle"]),
    # corners given the other way round
    ("qwen2_vl", "<|box_start|>(500,750),(100,200)<|box_end|>", [RED], [""]),
    (
        "internvl",
        "It is here: <ref>red circle</ref><box>[[100, 200, 500, 750], [600, 0, 1000, 1000]]</box>",
        [RED, (384.0, 0.0, 640.0, 480.0)],
        ["red circle", "red circle"],
    ),
    ("internvl", "red circle[[100, 200, 500, 750]]", [RED], ["red circle"]),
    ("glm4v", "The circle: <|begin_of_box|>[[100,200,500,750]]<|end_of_box|>", [RED], [""]),
    # the studio's own format (a family with no grounding of its own): bbox_2d in 0-1000
    (
        "idefics3",
        '[{"bbox_2d": [100, 200, 500, 750], "label": "red circle"}]',
        [RED],
        ["red circle"],
    ),
    # plain JSON: fractions, pixels, single quotes, a fence cut off by the token limit
    ("llava", '{"bbox": [0.1, 0.2, 0.5, 0.75], "label": "circle"}', [RED], ["circle"]),
    ("llava", '[{"box": [64, 96, 320, 360], "name": "circle"}]', [RED], ["circle"]),
    ("", "{'bbox': [64, 96, 320, 360], 'label': 'circle'}", [RED], ["circle"]),
    (
        "",
        'Sure!\n```json\n[\n  {"bbox_2d": [100, 200, 500, 750], "label": "red circle"},\n'
        '  {"bbox_2d": [6',
        [RED],
        ["red circle"],
    ),
    # numbers larger than the image but within 1000: 0-1000
    ("", '{"bbox": [100, 200, 900, 750]}', [(64.0, 96.0, 576.0, 360.0)], [""]),
    # partly outside the image: clamped to it
    (
        "qwen2_vl",
        "<|box_start|>(900,900),(1200,1100)<|box_end|>",
        [(576.0, 432.0, 640.0, 480.0)],
        [""],
    ),
]


@pytest.mark.parametrize(("family", "answer", "expected", "labels"), CASES)
def test_each_format_gives_boxes_in_pixels_of_the_uploaded_image(
    family: str, answer: str, expected: list[tuple], labels: list[str]
) -> None:
    parsed = parse_boxes(answer, family, (W, H))
    assert [b.xyxy for b in parsed.boxes] == expected, parsed
    assert [b.label for b in parsed.boxes] == labels
    assert parsed.reason == "" and parsed.format and parsed.assumption
    for box in parsed.boxes:
        assert box.span and box.span in answer  # the raw text each box came from


def test_the_assumption_names_the_reading_used() -> None:
    fractions = parse_boxes('{"bbox": [0.1, 0.2, 0.5, 0.75]}', "", (W, H))
    pixels = parse_boxes('{"bbox": [64, 96, 320, 360]}', "", (W, H))
    house = parse_boxes('{"bbox_2d": [100, 200, 500, 750]}', "", (W, H))
    assert "0-1" in fractions.assumption and fractions.boxes[0].coords == "0-1"
    assert "pixels" in pixels.assumption and pixels.boxes[0].coords == "pixels"
    assert "0-1000" in house.assumption and house.boxes[0].coords == "0-1000"


def test_qwen25_reads_pixels_of_the_resized_input() -> None:
    answer = '```json\n[{"bbox_2d": [64, 96, 320, 360], "label": "red circle"}]\n```'
    # a 1280x960 upload the processor fed in at 640x480: every number doubles
    assert xyxy(answer, "qwen2_5_vl", (1280, 960), input_size=(640, 480)) == [
        (128.0, 192.0, 640.0, 720.0)
    ]
    # input size unknown: the processor's default rule, 640x480 -> 644x476 (multiples of 28)
    parsed = parse_boxes('[{"bbox_2d": [322, 238, 644, 476]}]', "qwen2_5_vl", (W, H))
    assert [b.xyxy for b in parsed.boxes] == [(320.0, 240.0, 640.0, 480.0)]
    assert "644x476" in parsed.assumption


@pytest.mark.parametrize("size", [(640, 480), (1920, 1080), (97, 33), (5000, 4000), (28, 28)])
def test_smart_resize_matches_the_transformers_processor_rule(size: tuple[int, int]) -> None:
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as reference

    width, height = size
    h, w = reference(height, width, min_pixels=56 * 56, max_pixels=28 * 28 * 16384)
    assert smart_resize(width, height) == (w, h)


def test_processed_size_is_what_the_qwen_processor_feeds_the_model() -> None:
    from PIL import Image

    from mmdemo.flows.grounding import processed_size
    from mmdemo.models.tiny.vlm import qwen2vl_parts

    image_processor = qwen2vl_parts()[1].image_processor
    size = image_processor.size
    bounds = dict(min_pixels=size["shortest_edge"], max_pixels=size["longest_edge"])
    for width, height in ((300, 200), (90, 250)):
        got = processed_size(image_processor, Image.new("RGB", (width, height)))
        assert got == smart_resize(width, height, **bounds)


GARBAGE = [
    "",
    "   ",
    "I cannot see a red circle in this image.",
    "bbox_2d",
    "[1, 2, 3]",
    "(1,2)",
    '{"bbox": "on the left"}',
    '{"bbox": [true, false, true, false]}',
    "<|box_start|>(a,b),(c,d)<|box_end|>",
    "<ref>cat</ref><box>[[1, 2]]</box>",
    "[[100, 100, 100, 200]]",  # no area
    '{"bbox": [2000, 2000, 3000, 3000]}',  # beyond the image
    "```json\n[{",
    "{" * 5000 + "[" * 5000,
    "\x00\xff\ufffd" * 100,
]


@pytest.mark.parametrize("answer", GARBAGE, ids=[repr(g[:24]) for g in GARBAGE])
def test_garbage_gives_no_boxes_and_a_reason(answer: str) -> None:
    for family in ("qwen2_vl", "qwen2_5_vl", "internvl", "idefics3", ""):
        parsed = parse_boxes(answer, family, (W, H))
        assert parsed.boxes == [] and parsed.reason


def test_no_text_or_no_image_size_is_a_reason_not_an_exception() -> None:
    assert parse_boxes(None, "qwen2_vl", (W, H)).reason  # type: ignore[arg-type]
    assert parse_boxes("(1,2),(3,4)", "qwen2_vl", (0, 0)).reason
    assert parse_boxes("(1,2),(3,4)", "qwen2_vl", None).reason  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 0, 2, 2), (0, 0, 2, 2), 1.0),
        ((0, 0, 2, 2), (1, 1, 3, 3), 1 / 7),  # overlap 1, union 4 + 4 - 1
        ((0, 0, 10, 10), (0, 0, 10, 5), 0.5),
        ((0, 0, 1, 1), (1, 0, 2, 1), 0.0),  # touching edges
        ((0, 0, 1, 1), (5, 5, 6, 6), 0.0),
        ((0, 0, 0, 5), (0, 0, 0, 5), 0.0),  # no area
    ],
)
def test_iou_on_hand_computed_cases(a: tuple, b: tuple, expected: float) -> None:
    assert iou(a, b) == pytest.approx(expected)


def test_drawing_outlines_each_box_in_its_colour_and_labels_it() -> None:
    from PIL import Image

    grey = (128, 128, 128)
    image = Image.new("RGB", (100, 80), grey)
    boxes = [Box(10, 20, 60, 70, "cat"), Box(70, 30, 95, 60, "")]
    drawn = draw_boxes(image, boxes)
    first, second = PALETTE[0], PALETTE[1]
    # on each edge of the first box (left, right, bottom), its colour; inside, the picture
    assert drawn.getpixel((10, 45)) == first
    assert drawn.getpixel((60, 45)) == first
    assert drawn.getpixel((35, 70)) == first
    assert drawn.getpixel((35, 45)) == grey
    assert drawn.getpixel((95, 45)) == second and drawn.getpixel((82, 60)) == second
    # the label sits on a tab of the box's colour just above it, in white
    assert drawn.getpixel((11, 19)) == first
    tab = set(drawn.crop((10, 0, 60, 20)).getdata())
    assert any(min(pixel) > 200 for pixel in tab)  # the letters (anti-aliased)
    assert image.getpixel((10, 45)) == grey  # the upload itself is untouched


def test_synthetic_grounding_boxes_are_where_the_shapes_are_drawn() -> None:
    from mmdemo.finetune.grounding import answer_box
    from mmdemo.finetune.synthetic import synthetic_split

    examples = synthetic_split("test", "grounding", scenes=6)
    assert examples and all(e.kind == "grounding" for e in examples)
    for ex in examples:
        color, shape = ex.prompt.removeprefix("Where is the ").rstrip("?").split()
        assert (color, shape) in [tuple(obj.split()) for _, obj in ex.facts]
        box = answer_box(ex.answer)
        assert box is not None and all(0 <= v <= 1000 for v in box)
        x1, y1, x2, y2 = (v / 1000 * side for v, side in zip(box, ex.image.size * 2, strict=True))
        # every pixel of the shape's colour lies in the box, and they reach its four sides
        pixels = ex.image.load()
        width, height = ex.image.size
        painted = [
            (x, y) for x in range(width) for y in range(height) if pixels[x, y] == COLORS[color]
        ]
        xs, ys = [x for x, _ in painted], [y for _, y in painted]
        assert abs(min(xs) - x1) <= 1.5 and abs(max(xs) + 1 - x2) <= 1.5, (ex.prompt, box)
        assert abs(min(ys) - y1) <= 1.5 and abs(max(ys) + 1 - y2) <= 1.5, (ex.prompt, box)
        assert pixels[round((x1 + x2) / 2), round((y1 + y2) / 2)] == COLORS[color]


def test_grounding_splits_are_fixed_and_the_other_tasks_unchanged() -> None:
    from mmdemo.finetune.synthetic import synthetic_dataset, synthetic_split

    data = synthetic_dataset("grounding", scale=0.05)
    assert all(data[s] for s in ("train", "validation", "test"))
    again = synthetic_split("test", "grounding", scenes=3)
    assert [(e.prompt, e.answer) for e in again] == [
        (e.prompt, e.answer) for e in data["test"][: len(again)]
    ]
    # the same scenes as the VQA questions: a grounding question per shape of each scene
    vqa = synthetic_split("test", "vqa", scenes=3)
    assert [e.image.tobytes() for e in vqa[::6]] == [
        e.image.tobytes() for e in again if e.qid.endswith("-g0")
    ]


def grounding_example(
    box: tuple[int, int, int, int], question: str = "Where is the cat?"
) -> Example:
    answer = json.dumps([{"bbox_2d": list(box), "label": "cat"}])
    return Example(None, question, answer, (), "grounding", question)


def test_iou_scoring_of_grounding_answers() -> None:
    from mmdemo.finetune.evaluate import score, summarize

    truth = grounding_example((0, 0, 500, 500))
    half = score(truth, '[{"bbox_2d": [0, 0, 500, 250], "label": "cat"}]')  # IoU 0.5: a hit
    off = score(truth, '[{"bbox_2d": [250, 250, 750, 750]}]')  # overlap 1/7: a miss
    junk = score(truth, "bbbbbbbb")
    assert (half.score, half.iou) == (1.0, pytest.approx(0.5))
    assert (off.score, off.iou) == (0.0, pytest.approx(1 / 7))
    assert (junk.score, junk.iou) == (0.0, 0.0)
    metrics = summarize([half, off, junk])
    assert metrics["iou50_accuracy"] == pytest.approx(1 / 3, abs=1e-4)
    assert metrics["mean_iou"] == pytest.approx((0.5 + 1 / 7) / 3, abs=1e-4)
    assert metrics["count"] == 3


def test_position_prior_answers_the_mean_training_box_of_the_question() -> None:
    from mmdemo.finetune.evaluate import position_prior_baseline

    train = [
        grounding_example((0, 0, 100, 100)),
        grounding_example((200, 200, 300, 300)),  # the cat's mean box: (100, 100, 200, 200)
    ]
    test = [
        grounding_example((100, 100, 200, 200)),  # exactly the mean: a hit
        grounding_example((600, 600, 900, 900), "Where is the dog?"),  # unseen: the overall mean
    ]
    metrics = position_prior_baseline(train, test)
    assert metrics["iou50_accuracy"] == 0.5 and metrics["mean_iou"] == 0.5


def test_grounding_trains_on_the_builtin_set_only() -> None:
    from mmdemo.errors import BadInputError
    from mmdemo.finetune.config import TrainConfig

    assert TrainConfig(stages="grounding").stage_steps() == [("grounding", 200)]
    with pytest.raises(BadInputError, match="built-in set"):
        TrainConfig(stages="grounding", dataset="my.jsonl")


# -- the flow, over a scripted engine (no model) -------------------------------------------


class ScriptedEngine:
    """Answers every question with ``text``, as a remote server serving ``model`` would."""

    where = "a scripted server"
    concurrent_answers = 1

    def __init__(self, text: str, model: str) -> None:
        self.text, self.model = text, model
        self.asked: list[str] = []

    @property
    def base_model(self) -> str:
        return self.model

    def choices(self, ranks: bool = False) -> list[str]:
        return ["base"]

    def adapter(self, name: str | None) -> None:
        return None

    def endpoint(self, name: str | None) -> Any:
        from mmdemo.flows.remote import RemoteEndpoint

        return RemoteEndpoint(label="base", base_url="http://127.0.0.1:9/v1", model=self.model)

    def answer(
        self, messages: list, images: list, adapter: Any, gen: Any, stop: threading.Event
    ) -> Iterator[Any]:
        from mmdemo.flows.conversation import AnswerMetrics, ChatUpdate

        self.asked.append(str(messages[-1]["content"]))
        yield ChatUpdate(self.text[:5])
        yield ChatUpdate(self.text, AnswerMetrics("base", 0, 0, 0, 1, 1, 0, 0))


def scripted_grounding(settings: Any, text: str, model: str) -> tuple[Any, ScriptedEngine]:
    from mmdemo.flows.chat import ChatService
    from mmdemo.flows.grounding import GroundingService
    from mmdemo.models.adapters import AdapterStore
    from mmdemo.models.manager import ModelManager

    engine = ScriptedEngine(text, model)
    chat = ChatService(ModelManager(settings), AdapterStore(settings), engine=engine)
    return GroundingService(chat), engine


def test_the_flow_asks_the_family_way_and_draws_the_boxes(
    isolated_settings: Any, tmp_path: Path
) -> None:
    from PIL import Image

    path = tmp_path / "scene.png"
    Image.new("RGB", (200, 100), (250, 250, 250)).save(path)
    answer = "<|object_ref_start|>red circle<|object_ref_end|><|box_start|>(100,200),(500,700)<|box_end|>"
    service, engine = scripted_grounding(isolated_settings, answer, "Qwen/Qwen2-VL-2B-Instruct")
    result = service.ground(str(path), "Where is the red circle?")
    assert result.family == "qwen2_vl" and result.raw == answer
    assert [b.xyxy for b in result.boxes] == [(20.0, 20.0, 100.0, 70.0)]  # x*0.2, y*0.1
    assert result.boxes[0].label == "red circle" and result.reason == ""
    assert "Where is the red circle?" in engine.asked[0] and len(engine.asked[0]) > 25
    assert result.annotated.getpixel((20, 45)) == PALETTE[0]  # the left edge
    assert result.to_json()["boxes"][0]["x2"] == 100.0


def test_the_flow_returns_no_boxes_and_the_reason_for_an_answer_without_any(
    isolated_settings: Any, tmp_path: Path
) -> None:
    from PIL import Image

    path = tmp_path / "scene.png"
    Image.new("RGB", (64, 48), (10, 200, 10)).save(path)
    service, _ = scripted_grounding(isolated_settings, "bbbbbbbb", "my-finetuned-model")
    result = service.ground(str(path), "Where is the red circle?")
    assert result.boxes == [] and result.reason and result.family == ""
    assert list(result.annotated.getdata()) == list(Image.open(path).convert("RGB").getdata())
