"""Boxes out of a VLM's answer, in pixels of the original image, from each family's own format.

| family (model_type) | what it writes | coordinates |
| --- | --- | --- |
| qwen2_vl | ``<|object_ref_start|>cat<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>`` | 0-1000 |
| qwen2_5_vl | JSON ``[{"bbox_2d": [x1, y1, x2, y2], "label": "cat"}]``, often in a json fence | pixels of the resized input image |
| internvl, internvl_chat | ``<ref>cat</ref><box>[[x1, y1, x2, y2]]</box>`` | 0-1000 |
| glm4v | ``<|begin_of_box|>[[x1, y1, x2, y2]]<|end_of_box|>`` | 0-1000 |
| any other | JSON objects with a ``bbox_2d`` / ``bbox`` / ``box`` key, or bare lists | detected |

Qwen2.5-VL answers in absolute coordinates of the image its processor resized (sides rounded
to multiples of 28 within a pixel budget, ``boxes.smart_resize``), not of the uploaded one;
pass that ``input_size`` when it is known (the flow reads it off the processor), else the
processor's default rule is assumed and the result says so.

An answer decoded with ``skip_special_tokens`` loses the marker tokens: what is left,
``cat(x1,y1),(x2,y2)`` or ``cat[[x1, y1, x2, y2]]``, is read too, with the family's convention.
Where no family convention applies, ``bbox_2d`` is read as 0-1000 (the format the studio's
grounding task trains, ``finetune/synthetic.py``), and other boxes as fractions when every
number is within 0-1, else as pixels when they fit the image, else as 0-1000. Every result
says which reading it used. Nothing here raises: an answer without boxes gives an empty list
and the reason.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mmdemo.grounding.boxes import Box, smart_resize

NORM1000 = "0-1000"  # fractions of the image side times 1000
NORM1 = "0-1"  # fractions of the image side
INPUT = "input pixels"  # pixels of the image the model saw (after its processor resized it)
PIXELS = "pixels"  # pixels of the original image

# model_type -> how the family writes coordinates natively
FAMILY_COORDS: dict[str, str] = {
    "qwen2_vl": NORM1000,
    "qwen2_5_vl": INPUT,
    "internvl": NORM1000,
    "internvl_chat": NORM1000,
    "glm4v": NORM1000,
    "glm4v_moe": NORM1000,
}
# the studio's own answer format (the synthetic grounding task): JSON bbox_2d, 0-1000 ints
HOUSE_COORDS = NORM1000

NUM = r"[-+]?\d+(?:\.\d+)?"
PAIR = re.compile(rf"\(\s*({NUM})\s*,\s*({NUM})\s*\)\s*,?\s*\(\s*({NUM})\s*,\s*({NUM})\s*\)")
QUAD = re.compile(rf"\[\s*({NUM})\s*,\s*({NUM})\s*,\s*({NUM})\s*,\s*({NUM})\s*\]")
QWEN_BOX = re.compile(
    r"(?:<\|object_ref_start\|>(?P<label>.*?)<\|object_ref_end\|>\s*)?"
    r"<\|box_start\|>(?P<body>.*?)<\|box_end\|>",
    re.S,
)
INTERNVL_BOX = re.compile(r"(?:<ref>(?P<label>.*?)</ref>\s*)?<box>(?P<body>.*?)</box>", re.S)
GLM_BOX = re.compile(r"<\|begin_of_box\|>(?P<body>.*?)<\|end_of_box\|>", re.S)
FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)(?:```|\Z)", re.S)
OBJECT = re.compile(r"\{[^{}]*\}")
BOX_KEYS = ("bbox_2d", "bbox", "box", "bounding_box", "bndbox", "coordinates")
LABEL_KEYS = ("label", "name", "object", "category", "class", "text", "description")
KEYED = re.compile(
    rf"[\"']?(bbox_2d|bbox|box|bounding_box)[\"']?\s*:\s*\[\s*\[?\s*({NUM})\s*,\s*({NUM})\s*,"
    rf"\s*({NUM})\s*,\s*({NUM})\s*\]"
)
KEYED_LABEL = re.compile(r"[\"'](?:label|name|object|category|class)[\"']\s*:\s*[\"']([^\"']*)")
CORNER_KEYS = (("x1", "y1", "x2", "y2"), ("xmin", "ymin", "xmax", "ymax"))
MAX_CHARS = 200_000  # longer answers are read up to here


@dataclass(frozen=True)
class Found:
    """A box as written: four numbers, its label, its text and where it starts."""

    values: tuple[float, float, float, float]
    label: str
    span: str
    start: int
    # "native": a family's own markers; "bbox_2d": that JSON key; "generic": any other
    key: str = "generic"


@dataclass(frozen=True)
class Parsed:
    """The boxes of one answer, in original-image pixels, and how they were read."""

    boxes: list[Box] = field(default_factory=list)
    format: str = ""  # which format the boxes were written in ("" for none)
    assumption: str = ""  # how their coordinates were read
    reason: str = ""  # why there are no boxes ("" when there are)

    def to_dict(self) -> dict[str, Any]:
        return {
            "boxes": [b.to_dict() for b in self.boxes],
            "format": self.format,
            "assumption": self.assumption,
            "reason": self.reason,
        }


def _numbers(groups: tuple[str, ...]) -> tuple[float, float, float, float] | None:
    try:
        values = tuple(float(g) for g in groups)
    except (TypeError, ValueError):
        return None
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        return None
    return values  # type: ignore[return-value]


def _label_before(text: str, start: int, floor: int) -> str:
    """The words just before a bare box ("the red circle(100,200),(...)"): its label."""
    before = text[floor:start].splitlines()[-1:] or [""]
    return before[0].strip(" \t:;,.-=([{\"'`*").strip()[-60:]


def _marked(pattern: re.Pattern[str], inner: re.Pattern[str], text: str) -> list[Found]:
    """Boxes inside a family's markers; a box without its own label takes the last one."""
    out: list[Found] = []
    label = ""
    for m in pattern.finditer(text):
        named = m.groupdict().get("label")
        label = named.strip() if named is not None else label
        for box in inner.finditer(m.group("body")):
            values = _numbers(box.groups())
            if values is not None:
                out.append(Found(values, label, m.group(0), m.start(), "native"))
    return out


def qwen_tokens(text: str) -> list[Found]:
    return _marked(QWEN_BOX, PAIR, text)


def internvl_tokens(text: str) -> list[Found]:
    return _marked(INTERNVL_BOX, QUAD, text)


def glm_tokens(text: str) -> list[Found]:
    return _marked(GLM_BOX, QUAD, text)


def _load(chunk: str) -> Any:
    """A JSON (or Python-literal, single-quoted) value, or None."""
    try:
        return json.loads(chunk)
    except ValueError:
        pass
    try:
        return ast.literal_eval(chunk)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _four(value: Any) -> tuple[float, float, float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 1:
        value = value[0]  # [[x1, y1, x2, y2]]
    if isinstance(value, dict):
        for names in CORNER_KEYS:
            if all(n in value for n in names):
                value = [value[n] for n in names]
                break
    if not isinstance(value, list | tuple) or len(value) != 4:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return None
    return _numbers(tuple(str(v) for v in value))


def _from_object(data: Any) -> tuple[tuple[float, float, float, float], str, str] | None:
    """(numbers, label, key kind) of a parsed JSON object that holds a box."""
    if not isinstance(data, dict):
        return None
    label = next((str(data[k]) for k in LABEL_KEYS if isinstance(data.get(k), str)), "")
    for key in BOX_KEYS:
        values = _four(data.get(key))
        if values is not None:
            return values, label, "bbox_2d" if key == "bbox_2d" else "generic"
    values = _four(data)  # {"x1": .., "y1": .., "x2": .., "y2": ..} itself
    return (values, label, "generic") if values is not None else None


def json_boxes(text: str) -> list[Found]:
    """Boxes in JSON objects (inside ```json fences when there are any; a fence cut off by
    the token limit counts, and so do the whole objects before the cut)."""
    regions = [(m.group(1), m.start(1)) for m in FENCE.finditer(text)] or [(text, 0)]
    out: list[Found] = []
    for region, offset in regions:
        for m in OBJECT.finditer(region):
            parsed = _from_object(_load(m.group(0)))
            if parsed is None:  # not JSON (a trailing comma...): read its keys
                keyed = KEYED.search(m.group(0))
                if keyed is None or (values := _numbers(keyed.groups()[1:])) is None:
                    continue
                named = KEYED_LABEL.search(m.group(0))
                kind = "bbox_2d" if keyed.group(1) == "bbox_2d" else "generic"
                parsed = (values, named.group(1) if named else "", kind)
            values, label, kind = parsed
            out.append(Found(values, label, m.group(0), offset + m.start(), kind))
        if not out:  # an object cut off before its closing brace
            for keyed in KEYED.finditer(region):
                values = _numbers(keyed.groups()[1:])
                if values is None:
                    continue
                tail = region[keyed.end() : keyed.end() + 80]
                named = KEYED_LABEL.search(tail)
                kind = "bbox_2d" if keyed.group(1) == "bbox_2d" else "generic"
                start = offset + keyed.start()
                out.append(
                    Found(values, named.group(1) if named else "", keyed.group(0), start, kind)
                )
    return out


def _bare(pattern: re.Pattern[str], text: str) -> list[Found]:
    out: list[Found] = []
    floor = 0
    for m in pattern.finditer(text):
        values = _numbers(m.groups())
        if values is not None:
            out.append(Found(values, _label_before(text, m.start(), floor), m.group(0), m.start()))
        floor = m.end()
    return out


def bare_pairs(text: str) -> list[Found]:
    """``(x1,y1),(x2,y2)``: Qwen's boxes once their marker tokens were decoded away."""
    return _bare(PAIR, text)


def bare_lists(text: str) -> list[Found]:
    """``[x1, y1, x2, y2]``: InternVL's and GLM's boxes without markers, or a plain list."""
    return _bare(QUAD, text)


# tried in order; the first that finds a box wins
READERS: tuple[tuple[str, Callable[[str], list[Found]]], ...] = (
    ("Qwen2-VL box tokens", qwen_tokens),
    ("InternVL <ref>/<box>", internvl_tokens),
    ("GLM box tokens", glm_tokens),
    ("JSON", json_boxes),
    ("(x1,y1),(x2,y2) pairs", bare_pairs),
    ("[x1, y1, x2, y2] lists", bare_lists),
)


def _scale(
    found: list[Found], family: str, size: tuple[int, int], input_size: tuple[int, int] | None
) -> tuple[str, str, tuple[int, int]]:
    """(scale, the assumption in words, the size the numbers refer to) for one answer."""
    width, height = size
    values = [v for f in found for v in f.values]
    native = FAMILY_COORDS.get(family)
    if any(f.key != "native" for f in found) and all(0 <= v <= 1 for v in values):
        return NORM1, "every number is within 0-1: read as fractions of the image", (1, 1)
    if native == INPUT:
        if input_size is not None:
            return (
                INPUT,
                f"{family}: pixels of the {input_size[0]}x{input_size[1]} input",
                input_size,
            )
        guess = smart_resize(width, height)
        return (
            INPUT,
            f"{family}: pixels of the input image, assumed {guess[0]}x{guess[1]} by the "
            "processor's default resize rule",
            guess,
        )
    if native is not None:
        return native, f"{family}: 0-1000 of each side (the family's convention)", (1000, 1000)
    if all(f.key == "native" for f in found):
        return NORM1000, "box tokens read as 0-1000 (Qwen2-VL / InternVL convention)", (1000, 1000)
    if all(f.key == "bbox_2d" for f in found):
        return HOUSE_COORDS, "bbox_2d read as 0-1000 (the studio's grounding format)", (1000, 1000)
    xs, ys = values[0::2], values[1::2]
    if max(xs) <= width and max(ys) <= height:
        return PIXELS, f"numbers fit the {width}x{height} image: read as its pixels", size
    if max(values) <= 1000:
        return NORM1000, "numbers exceed the image but not 1000: read as 0-1000", (1000, 1000)
    return PIXELS, "read as pixels (beyond the image: clamped to it)", size


def _to_box(found: Found, frame: tuple[int, int], size: tuple[int, int], coords: str) -> Box | None:
    """``found`` in pixels of an image of ``size`` (its numbers refer to ``frame``), ordered
    and clamped to the image; None when nothing of it is inside."""
    width, height = size
    sx, sy = width / frame[0], height / frame[1]
    x1, y1, x2, y2 = found.values
    x1, x2 = sorted((min(max(x1 * sx, 0.0), width), min(max(x2 * sx, 0.0), width)))
    y1, y2 = sorted((min(max(y1 * sy, 0.0), height), min(max(y2 * sy, 0.0), height)))
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        return None
    return Box(
        round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2), found.label, found.span, coords
    )


def parse_boxes(
    text: str,
    family: str,
    image_size: tuple[int, int],
    input_size: tuple[int, int] | None = None,
) -> Parsed:
    """The boxes in ``text`` (an answer of a ``family`` model, its ``model_type``) in pixels
    of the original ``image_size`` (width, height). ``input_size``: the size the model saw,
    for families that answer in its pixels (Qwen2.5-VL). Never raises."""
    try:
        return _parse(text, family or "", image_size, input_size)
    except Exception as exc:  # a reader's bug must not cost the user the answer
        return Parsed(reason=f"the answer could not be read ({type(exc).__name__}: {exc})")


def _parse(
    text: Any, family: str, image_size: tuple[int, int], input_size: tuple[int, int] | None
) -> Parsed:
    if not isinstance(text, str) or not text.strip():
        return Parsed(reason="the answer is empty")
    width, height = (int(v) for v in image_size)
    if width <= 0 or height <= 0:
        return Parsed(reason=f"the image size {width}x{height} is not a picture's")
    text = text[:MAX_CHARS]
    for name, reader in READERS:
        found = reader(text)
        if not found:
            continue
        scale, assumption, frame = _scale(found, family, (width, height), input_size)
        coords = scale if scale != INPUT else f"pixels of the {frame[0]}x{frame[1]} input"
        boxes = [b for f in found if (b := _to_box(f, frame, (width, height), coords))]
        if not boxes:
            return Parsed(
                format=name,
                assumption=assumption,
                reason=f"{len(found)} box(es) written, none inside the image ({assumption})",
            )
        return Parsed(boxes, name, assumption)
    return Parsed(
        reason="no boxes in the answer: no coordinates in a known format (Qwen box tokens, "
        "<ref>/<box>, JSON bbox_2d / bbox / box, (x1,y1),(x2,y2) or [x1, y1, x2, y2])"
    )
