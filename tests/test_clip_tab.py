"""The CLIP search tab, through the served app's API and in a real browser."""

from __future__ import annotations

import io
import wave
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import screenshot_dir
from tests.retrieval_helpers import truncated_jpeg, write_photos


@pytest.fixture(scope="module")
def client(app_url: str) -> Any:
    from gradio_client import Client

    return Client(app_url, verbose=False)


def test_clip_api_indexes_uploads_searches_explains_and_classifies(
    app: Any, client: Any, tmp_path: Path
) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    photos = write_photos(tmp_path / "p", ("cat", "rocket", "coffee", "astronaut"))
    broken = tmp_path / "p" / "notes.jpg"
    broken.write_text("not a picture")
    files = [handle_file(str(p)) for p in [*photos.values(), broken]]
    report = client.predict("api", "", files, api_name="/clip_add")
    assert (report["index"], report["added"], report["total"]) == ("api", 4, 4)
    assert report["skipped"] == [
        {"file": "notes.jpg", "reason": "not an image (unrecognised format)"}
    ]
    (entry,) = [e for e in client.predict(api_name="/clip_indexes") if e["name"] == "api"]
    assert entry["images"] == 4 and entry["model_id"] == "tiny:clip" and entry["search"] == "exact"
    assert app.services.index.info("api").count == 4

    found = client.predict(
        "api", "", handle_file(str(photos["coffee"])), 3, 0.5, api_name="/clip_search"
    )
    assert [h["rank"] for h in found["hits"]] == [1, 2, 3]
    first = found["hits"][0]
    assert first["name"] == "coffee.jpg" and first["score"] == pytest.approx(1.0, abs=2e-3)
    assert found["method"] == "exact" and found["searched"] == 4
    assert set(first) == {"rank", "item_id", "name", "file", "score"}

    like = client.predict("api", "", None, 2, 0.5, first["item_id"], api_name="/clip_search")
    assert (
        like["hits"][0]["item_id"] == first["item_id"] and like["query"] == "image like coffee.jpg"
    )

    ex = client.predict("api", first["item_id"], "a cup of coffee", api_name="/clip_explain")
    assert Path(ex["overlay"]).is_file() and ex["name"] == "coffee.jpg"
    assert len(ex["drops"]) == ex["grid"] and max(map(max, ex["drops"])) == ex["largest_drop"]
    assert any("Occlusion" in n for n in ex["notes"])

    zs = client.predict(
        handle_file(str(photos["cat"])),
        "cat, dog, rocket",
        "a photo of a {}.",
        api_name="/clip_classify",
    )
    probs = [row["probability"] for row in zs["labels"]]
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1, abs=1e-4)
    assert zs["top"] == zs["labels"][0]["label"] and zs["templates"] == ["a photo of a {}."]

    removed = client.predict("api", [first["item_id"]], api_name="/clip_remove")
    assert (removed["removed"], removed["total"]) == (1, 3)
    with pytest.raises(AppError, match=r"not in index 'api'.*Fix: search again"):
        client.predict("api", "", None, 2, 0.5, first["item_id"], api_name="/clip_search")

    with pytest.raises(AppError, match="was not deleted"):
        client.predict("api", False, api_name="/clip_delete")
    gone = client.predict("api", True, api_name="/clip_delete")
    assert gone["deleted"] == "api" and "api" not in gone["indexes"]


def test_clip_api_refuses_bad_requests_with_cause_and_fix(client: Any, tmp_path: Path) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    photos = write_photos(tmp_path / "p", ("cat", "rocket"))
    client.predict(
        "refuse", "", [handle_file(str(p)) for p in photos.values()], api_name="/clip_add"
    )
    for args, api_name, message in [
        (("refuse", "", None, 3, 0.5), "/clip_search", "nothing to search for.*Fix: type"),
        (("nope", "a cat", None, 3, 0.5), "/clip_search", "no index named 'nope'.*Fix: build"),
        (("refuse", "a cat", None, 0, 0.5), "/clip_search", "k=0 is outside 1..1000"),
        (("refuse", "", str(photos["cat"]), 3, 0.5), "/clip_search", "handle_file"),
        ((handle_file(str(photos["cat"])), "cat", ""), "/clip_classify", "at least two labels"),
        ((None, "cat, dog", ""), "/clip_classify", "no image to classify.*Fix: upload"),
        (
            (
                "refuse",
                [],
            ),
            "/clip_remove",
            "no image ids given",
        ),
        (("refuse", "", []), "/clip_add", "nothing to add.*Fix"),
    ]:
        with pytest.raises(AppError, match=message):
            client.predict(*args, api_name=api_name)


def _wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(3200))
    return buffer.getvalue()


# what a new user uploads by mistake -> the cause our decoder names
BAD_UPLOADS = {
    "song.wav": (_wav, "not an image (unrecognised format)"),
    "clip.mp4": (lambda: b"\x00\x00\x00\x18ftypmp42" + bytes(400), "not an image"),
    "cut.jpg": (truncated_jpeg, "corrupt or truncated image"),
    "empty.png": (lambda: b"", "empty file (0 bytes)"),
    "notes.png": (lambda: b"just some text\n" * 20, "not an image"),
}


@pytest.mark.parametrize("name", sorted(BAD_UPLOADS))
@pytest.mark.parametrize("endpoint", ["/clip_search", "/clip_classify"])
def test_a_wrong_file_gets_our_message_not_the_frameworks(
    client: Any, tmp_path: Path, name: str, endpoint: str
) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    if endpoint == "/clip_search":
        write_photos(tmp_path / "p", ("cat",))
        client.predict("uploads", str(tmp_path / "p"), None, api_name="/clip_add")
    make, cause = BAD_UPLOADS[name]
    bad = tmp_path / name
    bad.write_bytes(make())
    args = (
        ("uploads", "", handle_file(str(bad)), 3, 0.5)
        if endpoint == "/clip_search"
        else (handle_file(str(bad)), "cat, dog", "")
    )
    with pytest.raises(AppError) as info:
        client.predict(*args, api_name=endpoint)
    message = str(info.value)
    assert f"{name}: {cause}" in message and "Fix: " in message
    assert "preprocess" not in message and "ImageData" not in message


@pytest.mark.browser
def test_browser_builds_an_index_searches_and_clicks_a_result(
    page: Any, app: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    photos = write_photos(tmp_path / "p", ("cat", "rocket", "coffee", "astronaut", "horse"))
    page.get_by_role("tab", name="CLIP search").click()
    index = page.locator("#clip-index input")
    index.fill("browser")
    index.press("Enter")
    expect(page.locator("#clip-index-info")).to_contain_text("does not exist yet")
    page.locator("#clip-upload input[type=file]").set_input_files([str(p) for p in photos.values()])
    uploaded = page.locator("#clip-upload").get_by_role("button", name="Remove this file")
    expect(uploaded).to_have_count(len(photos), timeout=60_000)
    page.locator("#clip-add").click()
    expect(page.locator("#clip-index-info")).to_contain_text("5 images", timeout=60_000)
    expect(page.locator("#clip-add-report")).to_contain_text("added 5")

    page.locator("#clip-query textarea").fill("a rocket")
    page.locator("#clip-search").click()
    results = page.locator("#clip-results img")
    expect(results).to_have_count(5, timeout=60_000)
    expect(page.locator("#clip-search-info")).to_contain_text("'a rocket'")

    second = page.locator("#clip-results").get_by_text("2. ").inner_text()
    clicked = second.split(". ", 1)[1].split(" · ")[0]
    results.nth(1).click()
    expect(page.locator("#clip-search-info")).to_contain_text(
        f"image like {clicked}", timeout=60_000
    )
    expect(page.locator("#clip-results")).to_contain_text(f"1. {clicked} · 1.00")
    expect(page.locator("#clip-query textarea")).to_have_value("")
    expect(page.locator("#clip-query-preview img")).to_be_visible()

    page.locator("#clip-query textarea").fill("a horse")
    page.locator("#clip-explain-btn").click()
    expect(page.locator("#clip-explain-info")).to_contain_text("cosine", timeout=60_000)
    expect(page.locator("#clip-explain img")).to_be_visible()

    broken = tmp_path / "cut.jpg"
    broken.write_bytes(truncated_jpeg())
    page.locator("#clip-zs-image input[type=file]").set_input_files(str(broken))
    page.locator("#clip-classify").click()
    expect(page.get_by_text("cut.jpg: corrupt or truncated image").first).to_be_visible(
        timeout=60_000
    )
    page.locator("#clip-zs-image").get_by_role("button", name="Clear").click()
    page.locator("#clip-zs-image input[type=file]").set_input_files(str(photos["cat"]))
    page.locator("#clip-classify").click()
    expect(page.locator("#clip-zs-top")).to_contain_text("%", timeout=60_000)
    expect(page.locator("#clip-zs-plot").locator("canvas, svg").first).to_be_visible()
    for close in page.locator(".toast-close").all():  # the broken file's message, read above
        close.click()
    expect(page.locator(".toast-close")).to_have_count(0)
    page.screenshot(path=str(screenshot_dir(tmp_path) / "clip.png"), full_page=True)
