"""Grounding: ask "where is the red circle?" about an image and get boxes, drawn on it.

The question goes to the app's chat engine (this machine's VLM with the chosen adapter, or a
remote server) like any chat turn; the answer is read by the parser of the family that wrote
it (``mmdemo/grounding/parse.py``) and the boxes come back in pixels of the uploaded image.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from mmdemo.flows.chat import BASE_NAME, ChatService, ChatSession
from mmdemo.flows.generation import GenerationSettings
from mmdemo.grounding.boxes import Box
from mmdemo.grounding.draw import draw_boxes
from mmdemo.grounding.parse import FAMILY_COORDS, INPUT, parse_boxes

# what a family is told, after the question, to answer with boxes in its own format; families
# without native grounding get the question alone (the studio's grounding adapters are trained
# on the bare question)
HINTS: dict[str, str] = {
    "qwen2_vl": "Give the bounding box of each object you mean.",
    "qwen2_5_vl": "Output the bounding box of each object you mean in JSON format (bbox_2d).",
    "internvl": "Please provide the bounding box coordinates of each object you mean.",
    "internvl_chat": "Please provide the bounding box coordinates of each object you mean.",
    "glm4v": "Give the bounding box of each object you mean.",
    "glm4v_moe": "Give the bounding box of each object you mean.",
}
# model id fragments -> family, for a remote server's models (it does not say its model_type)
NAME_FAMILIES = (
    (("qwen2.5-vl", "qwen2_5_vl", "qwen2.5vl", "qwen25-vl"), "qwen2_5_vl"),
    (("qwen2-vl", "qwen2_vl", "qwen2vl"), "qwen2_vl"),
    (("internvl",), "internvl"),
    (("glm-4.1v", "glm-4.5v", "glm4v", "glm-4v"), "glm4v"),
    (("llava",), "llava"),
    (("smolvlm", "idefics3"), "idefics3"),
)


def family_from_name(model: str) -> str:
    """The family a model id names ("Qwen/Qwen2.5-VL-7B-Instruct" -> qwen2_5_vl), "" if none."""
    lowered = (model or "").lower()
    for fragments, family in NAME_FAMILIES:
        if any(f in lowered for f in fragments):
            return family
    return ""


def processed_size(image_processor: Any, image: Any) -> tuple[int, int]:
    """(width, height) a Qwen2-VL-style image processor resizes ``image`` to: its patch grid
    times the patch size."""
    grid = image_processor(images=[image], return_tensors="pt")["image_grid_thw"][0]
    patch = int(getattr(image_processor, "patch_size", 14))
    return int(grid[2]) * patch, int(grid[1]) * patch


@dataclass(frozen=True)
class GroundingResult:
    """Boxes in pixels of the uploaded image, the image with them drawn, and the answer."""

    boxes: list[Box]
    annotated: Any = field(repr=False)  # PIL image: the upload with the boxes drawn
    raw: str  # the model's whole answer
    family: str  # model_type of the model that answered ("" when unknown)
    format: str  # the format the boxes were written in
    assumption: str  # how their coordinates were read
    reason: str  # why there are no boxes ("" when there are)
    image_size: tuple[int, int]
    adapter: str
    prompt: str  # what the model was asked

    def to_json(self) -> dict[str, Any]:
        return {
            "boxes": [b.to_dict() for b in self.boxes],
            "raw": self.raw,
            "family": self.family,
            "format": self.format,
            "assumption": self.assumption,
            "reason": self.reason,
            "image_size": list(self.image_size),
            "adapter": self.adapter,
            "prompt": self.prompt,
        }


class GroundingService:
    """Grounding over the app's chat service (one per app, made in ``mmdemo.wiring``)."""

    def __init__(self, chat: ChatService) -> None:
        self.chat = chat

    def family(self, adapter: str | None) -> str:
        """model_type of what answers ``adapter``: the local VLM's (loading it), or the
        family a remote model's name says."""
        endpoint = self.chat.engine.endpoint(adapter)
        if endpoint is not None:
            return family_from_name(endpoint.model or self.chat.engine.base_model)
        return str(self.chat.manager.get("vlm").family)

    def input_size(self, image: Any, family: str, adapter: str | None) -> tuple[int, int] | None:
        """The size the model sees ``image`` at, for families answering in its pixels (the
        local processor's own resize; None elsewhere: the parser assumes the default rule)."""
        if FAMILY_COORDS.get(family) != INPUT or self.chat.engine.endpoint(adapter) is not None:
            return None
        return processed_size(self.chat.manager.get("vlm").processor.image_processor, image)

    def ground(
        self,
        image: Any,
        prompt: str,
        adapter: str | None = BASE_NAME,
        max_new_tokens: int = 256,
        hint: bool = True,
        stop: threading.Event | None = None,
    ) -> GroundingResult:
        """Ask ``prompt`` about ``image`` (a path, upload or PIL image) and read the boxes.
        ``hint``: add the family's instruction for answering with boxes."""
        adapter = adapter or BASE_NAME
        [picture] = self.chat.prepare_images([image])
        family = self.family(adapter)
        asked = (prompt or "").strip()
        if hint and asked and family in HINTS:
            asked = f"{asked} {HINTS[family]}"
        gen = GenerationSettings(max_new_tokens=int(max_new_tokens), greedy=True)
        answer = ""
        for update in self.chat.stream(
            ChatSession(), asked, [picture], adapter, gen, stop or threading.Event()
        ):
            answer = update.text
        parsed = parse_boxes(
            answer, family, picture.size, self.input_size(picture, family, adapter)
        )
        return GroundingResult(
            boxes=parsed.boxes,
            annotated=draw_boxes(picture, parsed.boxes),
            raw=answer,
            family=family,
            format=parsed.format,
            assumption=parsed.assumption,
            reason=parsed.reason,
            image_size=picture.size,
            adapter=adapter,
            prompt=asked,
        )
