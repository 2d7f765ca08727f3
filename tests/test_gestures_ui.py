"""The Gestures tab as users reach it: the named API endpoints through gradio_client, bad
uploads, and a real browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import screenshot_dir
from tests.gesture_helpers import GESTURE_IMAGES, write_video
from tests.test_gestures_flow import vulcan_examples


@pytest.fixture(scope="module")
def client(app_url: str) -> Any:
    from gradio_client import Client

    return Client(app_url, verbose=False)


def test_gestures_endpoint_returns_hands_with_landmarks(client: Any) -> None:
    from gradio_client import handle_file

    result = client.predict(
        handle_file(str(GESTURE_IMAGES / "thumbs-up.png")), api_name="/gestures"
    )
    [hand] = result["hands"]
    assert hand["gesture"] == "thumbs_up" and hand["confidence"] > 0.5
    assert hand["handedness"] in ("Left", "Right")
    assert len(hand["landmarks"]) == 21 and all(len(p) == 3 for p in hand["landmarks"])
    assert all(0 <= x <= 1 and 0 <= y <= 1 for x, y, _ in hand["landmarks"])


def test_gestures_endpoint_refuses_a_broken_upload_with_cause_and_fix(
    client: Any, tmp_path: Path
) -> None:
    from gradio_client import handle_file

    broken = tmp_path / "hand.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(Exception) as err:
        client.predict(handle_file(str(broken)), api_name="/gestures")
    assert "hand.png" in str(err.value) and "Fix:" in str(err.value)


def test_gestures_video_endpoint_returns_frames_and_transcript(client: Any, tmp_path: Path) -> None:
    from gradio_client import handle_file

    video = write_video(tmp_path / "call.mp4", lambda t: (0.5, 0.5), 2.0, sprite="call-me")
    result = client.predict(handle_file(str(video)), 8, 600, api_name="/gestures_video")
    assert result["transcript"] == "Y"
    assert len(result["frames"]) >= 12
    first = result["frames"][0]
    assert first["time"] == 0 and first["hands"][0]["gesture"] == "call_me"


def test_gesture_teach_endpoint_trains_and_refuses_bad_sets(client: Any, tmp_path: Path) -> None:
    from gradio_client import handle_file

    examples = [handle_file(str(p)) for p in vulcan_examples(tmp_path, 6)]
    with pytest.raises(Exception, match="needs 5-20"):
        client.predict("live long", examples[:1], False, api_name="/gesture_teach")
    result = client.predict("live long", examples, False, api_name="/gesture_teach")
    taught = {g["name"]: g for g in result["gestures"]}
    assert taught["live long"]["examples"] == 6 and taught["live long"]["train_accuracy"] >= 0.8
    with pytest.raises(Exception, match="already called"):
        client.predict("live long", examples, False, api_name="/gesture_teach")
    client.predict("live long", api_name="/gesture_delete")


@pytest.mark.browser
def test_browser_recognises_an_uploaded_hand(page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Gestures").click()
    page.locator("#gest-image input[type=file]").set_input_files(
        str(GESTURE_IMAGES / "i-love-you.png")
    )
    summary = page.locator("#gest-summary")
    expect(summary).to_contain_text("I love you", timeout=60_000)
    expect(page.locator("#gest-hands")).to_contain_text("I love you")
    expect(page.locator("#gest-annotated img")).to_be_visible()
    page.screenshot(path=str(screenshot_dir(tmp_path) / "gestures.png"), full_page=True)
