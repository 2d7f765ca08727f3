"""The Video tab as users reach it: the /video_summary, /video_ask and /video_search endpoints
through gradio_client, bad uploads, and a real browser (upload, chapters, key frames, a click
that jumps the player, a question)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import screenshot_dir
from tests.video_helpers import colour_video

SECONDS = (8.0, 9.0, 8.0)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A WebM (plays in Chromium) of three coloured scenes over a faint noise track."""
    path, cuts = colour_video(tmp_path_factory.mktemp("video") / "scenes.webm", SECONDS)
    return {"path": path, "cuts": cuts}


@pytest.fixture(scope="module")
def client(app_url: str) -> Any:
    from gradio_client import Client

    return Client(app_url, verbose=False)


def test_summary_endpoint_returns_the_promised_data(client: Any, clip: dict[str, Any]) -> None:
    from gradio_client import handle_file

    result = client.predict(handle_file(str(clip["path"])), api_name="/video_summary")
    assert {"chapters", "key_frames", "transcript", "summary", "notes", "video_id"} <= set(result)
    duration = result["duration"]
    assert duration == pytest.approx(sum(SECONDS), abs=0.3)
    chapters = result["chapters"]
    assert chapters[0]["start"] == 0 and chapters[-1]["end"] == pytest.approx(duration, abs=0.3)
    for chapter in chapters:
        assert set(chapter) == {"start", "end", "title", "bullets"}
        assert chapter["title"] and isinstance(chapter["bullets"], list)
    times = [k["time"] for k in result["key_frames"]]
    assert len(times) == len(SECONDS)
    edges = [0.0, *clip["cuts"], duration]
    assert all(a <= t <= b for t, a, b in zip(times, edges, edges[1:], strict=False))
    assert isinstance(result["transcript"], list) and isinstance(result["summary"], str)
    assert all(isinstance(n, str) for n in result["notes"])
    assert any("no speech" in n or "silent" in n for n in result["notes"])


def test_ask_by_id_or_by_file_recomputes_nothing(
    client: Any, clip: dict[str, Any], app: Any
) -> None:
    from gradio_client import handle_file

    summary = client.predict(handle_file(str(clip["path"])), api_name="/video_summary")
    folder = app.services.video.root / summary["video_id"]
    stamps = {p: p.stat().st_mtime_ns for p in folder.glob("*/stage.json")}
    assert stamps, "the stages are cached"
    by_id = client.predict(summary["video_id"], "What colour is the scene?", api_name="/video_ask")
    assert set(by_id) >= {"answer", "citations"} and by_id["answer"]
    assert all(0 <= t <= summary["duration"] for t in by_id["citations"])
    by_file = client.predict(
        handle_file(str(clip["path"])), "What is shown first?", api_name="/video_ask"
    )
    assert by_file["answer"]
    assert {p: p.stat().st_mtime_ns for p in folder.glob("*/stage.json")} == stamps
    hits = client.predict(summary["video_id"], "a red square", 2, api_name="/video_search")
    assert len(hits) == 2 and {h["time"] for h in hits} <= {
        k["time"] for k in summary["key_frames"]
    }


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("broken.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(300), "cannot be read as a video"),
        ("notes.webm", b"meeting notes, not a video\n" * 30, "cannot be read as a video"),
        ("empty.mkv", b"", "empty"),
    ],
)
def test_bad_uploads_get_our_message_with_a_fix(
    client: Any, tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    from gradio_client import handle_file

    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(Exception, match=expected) as info:
        client.predict(handle_file(str(path)), api_name="/video_summary")
    assert "Fix:" in str(info.value)


def test_ask_with_something_that_is_neither_file_nor_id_is_refused(client: Any) -> None:
    with pytest.raises(Exception, match="neither an uploaded file nor a video_id"):
        client.predict("/etc/passwd", "What is in it?", api_name="/video_ask")


def app_chapters(page: Any) -> list[float]:
    """Chapter start times (seconds) as the table shows them."""
    cells = page.locator('#video-chapters [role=gridcell][data-col="0"]').all_text_contents()
    return [int(m) * 60 + int(s) for m, s in (c.strip().split(":") for c in cells if c.strip())]


@pytest.mark.browser
def test_browser_upload_shows_chapters_and_key_frames_and_clicks_jump(
    page: Any, clip: dict[str, Any], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Video summary").click()
    page.locator("#video-player input[type=file]").set_input_files(str(clip["path"]))
    expect(page.locator("#video-status")).to_contain_text("Done.", timeout=180_000)
    expect(page.locator("#video-frames img")).to_have_count(len(SECONDS))
    expect(page.locator("#video-chapters").get_by_test_id("cell-0-0")).to_have_text("00:00")
    expect(page.locator("#video-downloads")).to_contain_text(".srt")
    chapters = app_chapters(page)
    assert len(chapters) >= 2, "a 25-second video with three scenes has chapters to click"

    player = page.locator("#video-player video")
    expect(player).to_have_count(1)

    def player_time() -> float:
        return float(player.evaluate("v => v.currentTime"))

    page.locator("#video-chapters").get_by_test_id("cell-1-2").click()  # 2nd chapter's title
    page.wait_for_function(
        "t => Math.abs(document.querySelector('#video-player video').currentTime - t) < 1.0",
        arg=chapters[1],
    )
    page.locator("#video-frames img").nth(1).click()
    page.wait_for_function(
        "([a, b]) => { const t = document.querySelector('#video-player video').currentTime;"
        " return t >= a - 0.5 && t <= b + 0.5; }",
        arg=[clip["cuts"][0], clip["cuts"][1]],
    )
    assert clip["cuts"][0] - 0.5 <= player_time() <= clip["cuts"][1] + 0.5

    page.locator("#video-question textarea").fill("What is shown at the start?")
    page.locator("#video-ask").click()
    expect(page.locator("#video-answer")).to_contain_text("Cites", timeout=120_000)
    page.screenshot(path=str(screenshot_dir(tmp_path) / "video-tiny.png"), full_page=True)
