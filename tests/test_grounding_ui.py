"""``/ground`` as API clients reach it (gradio_client, a real upload), its refusal of a bare
server path, and the "Find it" event's place in the VLM queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mmdemo.grounding.draw import PALETTE
from tests.test_grounding import ScriptedEngine


@pytest.fixture(scope="module")
def client(app_url: str) -> Any:
    from gradio_client import Client

    return Client(app_url, verbose=False)


def scene(tmp_path: Path) -> Path:
    from PIL import Image

    path = tmp_path / "scene.png"
    Image.new("RGB", (200, 100), (250, 250, 250)).save(path)
    return path


def test_ground_returns_boxes_in_pixels_and_the_image_they_are_drawn_on(
    client: Any, app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gradio_client import handle_file
    from PIL import Image

    from mmdemo.flows.chat import ChatService

    answer = (
        "<|object_ref_start|>red circle<|object_ref_end|><|box_start|>(100,200),(500,700)"
        "<|box_end|>"
    )
    chat = app.services.chat
    scripted = ChatService(
        chat.manager, chat.store, engine=ScriptedEngine(answer, "Qwen/Qwen2-VL-7B-Instruct")
    )
    monkeypatch.setattr(app.services.grounding, "chat", scripted)
    result = client.predict(
        handle_file(str(scene(tmp_path))), "Where is the red circle?", "base", api_name="/ground"
    )
    assert result["family"] == "qwen2_vl" and result["raw"] == answer
    [box] = result["boxes"]
    # 0-1000 on a 200x100 image: x * 0.2, y * 0.1
    assert (box["x1"], box["y1"], box["x2"], box["y2"]) == (20.0, 20.0, 100.0, 70.0)
    assert box["label"] == "red circle" and "<|box_start|>" in box["span"]
    drawn = Image.open(result["image"]).convert("RGB")
    assert drawn.size == (200, 100)
    assert drawn.getpixel((20, 45)) == PALETTE[0] and drawn.getpixel((60, 45)) != PALETTE[0]


def test_ground_with_the_tiny_vlm_answers_even_without_boxes(client: Any, tmp_path: Path) -> None:
    """The tiny VLM has random weights: whatever it writes, the reply is boxes (or none and
    why), the family, the raw answer and the image."""
    from gradio_client import handle_file

    result = client.predict(
        handle_file(str(scene(tmp_path))),
        "Where is the red circle?",
        "base",
        16,
        api_name="/ground",
    )
    assert result["family"] == "idefics3" and isinstance(result["raw"], str)
    assert isinstance(result["boxes"], list)
    assert result["boxes"] or result["reason"]
    assert Path(result["image"]).is_file()


def test_ground_refuses_a_bare_server_path(client: Any, tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"uploaded to this server|not uploaded by a user|meta"):
        client.predict(str(scene(tmp_path)), "Where is it?", "base", api_name="/ground")


def test_finding_queues_with_the_other_vlm_work(app: Any) -> None:
    groups = {fn.name: fn.concurrency_id for fn in app.demo.fns.values()}
    assert groups.get("find") == "vlm" and groups.get("ground") == "vlm", groups


def test_find_it_lists_and_draws_the_boxes_or_says_why_there_are_none(
    app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gradio as gr

    from mmdemo.flows.chat import ChatService
    from mmdemo.ui.tabs.chat.actions import GroundingActions

    chat = app.services.chat
    grounding = app.services.grounding
    act = GroundingActions(grounding)
    found = "[[100, 200, 500, 700]]"
    for answer, rows, says in (
        (f"<ref>red circle</ref><box>{found}</box>", [[1, "red circle", 20, 20, 100, 70]], "1 box"),
        ("I see no circle.", [], "No boxes"),
    ):
        engine = ScriptedEngine(answer, "OpenGVLab/InternVL2-1B")
        monkeypatch.setattr(grounding, "chat", ChatService(chat.manager, chat.store, engine=engine))
        drawn, table, how = act.find(str(scene(tmp_path)), "Where is the red circle?", "base", None)
        assert table == rows and says in how and drawn.size == (200, 100)
    with pytest.raises(gr.Error, match="Upload an image"):
        act.find(None, "Where is it?", "base", None)
