"""The CLIP search tab, through the served app's API and in a real browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import screenshot_dir
from tests.retrieval_helpers import write_photos


def test_clip_api_indexes_uploads_searches_explains_and_classifies(
    app: Any, app_url: str, tmp_path: Path
) -> None:
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False)
    photos = write_photos(tmp_path / "p", ("cat", "rocket", "coffee", "astronaut"))
    broken = tmp_path / "p" / "notes.jpg"
    broken.write_text("not a picture")
    files = [handle_file(str(p)) for p in [*photos.values(), broken]]
    _, info, report, skipped, _ = client.predict("api", "", files, api_name="/clip_add")
    assert "4 images" in info and "added 4" in report
    assert skipped["value"]["data"] == [["notes.jpg", "not an image (unrecognised format)"]]
    service = app.mmdemo_context.services["clip_index"]
    assert service.info("api").count == 4

    gallery, status, pick = client.predict(
        "api", "", handle_file(str(photos["coffee"])), 0.5, 3, api_name="/clip_search"
    )
    assert len(gallery) == 3 and gallery[0]["caption"].startswith("1. coffee.jpg · 1.00")
    assert "among 4 images (exact" in status and pick["choices"][0][0] == "1. coffee.jpg"

    image, notes = client.predict(0, "a cup of coffee", api_name="/clip_explain")
    assert Path(image).is_file() and "coffee.jpg" in notes and "Occlusion" in notes

    plot, top = client.predict(
        handle_file(str(photos["cat"])),
        "cat, dog, rocket",
        "a photo of a {}.",
        api_name="/clip_classify",
    )
    probs = [row[1] for row in plot["data"]]
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1, abs=1e-4)
    assert "%" in top and "1 prompt templates" in top

    _, _, info = client.predict(0, api_name="/clip_remove")
    assert "3 images" in info and service.info("api").count == 3

    for args, message in [
        (("api", "", None, 0.5, 3), "nothing to search for"),
        (("nope", "a cat", None, 0.5, 3), "no index named 'nope'"),
    ]:
        with pytest.raises(AppError, match=message):
            client.predict(*args, api_name="/clip_search")
    with pytest.raises(AppError, match="at least two labels"):
        client.predict(handle_file(str(photos["cat"])), "cat", "", api_name="/clip_classify")


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

    page.locator("#clip-query textarea").fill("a horse")
    page.locator("#clip-explain-btn").click()
    expect(page.locator("#clip-explain-info")).to_contain_text("cosine", timeout=60_000)
    expect(page.locator("#clip-explain img")).to_be_visible()

    page.locator("#clip-zs-image input[type=file]").set_input_files(str(photos["cat"]))
    page.locator("#clip-classify").click()
    expect(page.locator("#clip-zs-top")).to_contain_text("%", timeout=60_000)
    expect(page.locator("#clip-zs-plot").locator("canvas, svg").first).to_be_visible()
    page.screenshot(path=str(screenshot_dir(tmp_path) / "clip.png"), full_page=True)
