"""Close the loop in the browser, as a user would on the tiny build: compare blind in the
Arena tab, vote, see the leaderboard change; export the votes; train ``dpo`` on the export
in the Fine-tune tab (its zip downloaded and uploaded again); chat with the new adapter."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
RED = REPO / "assets" / "images" / "red-circle.png"
ADAPTER = "from-votes"
COLOUR = "The shape is red."  # what the demo adapter color-namer answers


def votes_shown(text: str) -> int:
    """The vote count the line above the leaderboard shows (0: "No blind votes yet")."""
    found = re.search(r"(\d+) votes?\b", text)
    return int(found.group(1)) if found else 0


@pytest.mark.browser
def test_browser_goes_from_blind_votes_to_a_dpo_adapter_that_answers(
    page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    # Arena: compare blind, vote for the answer that names the colour
    page.get_by_role("tab", name="Arena").click()
    info = page.locator("#arena-leaderboard-info")
    expect(info).to_contain_text("vote")  # filled when the page opened
    before = votes_shown(info.inner_text())
    page.locator("#arena-image input[type=file]").set_input_files(str(RED))
    page.locator("#arena-blind-run").click()
    expect(page.locator("#arena-vote-a")).to_be_visible(timeout=120_000)
    expect(page.locator("#arena-summary")).to_contain_text("names hidden")
    answers = [page.locator(f"#arena-col-{i}").inner_text() for i in range(4)]
    shown = " ".join(answers)
    assert "color-namer" not in shown and "pirate" not in shown  # names hidden
    colour = next(i for i, text in enumerate(answers) if COLOUR in text)
    page.locator(f"#arena-vote-{'abcd'[colour]}").click()
    expect(page.locator("#arena-summary")).to_contain_text("Vote recorded", timeout=60_000)
    expect(page.locator(f"#arena-col-{colour}")).to_contain_text("your pick")
    expect(page.locator(f"#arena-col-{colour}")).to_contain_text("color-namer")
    expect(info).to_contain_text(f"{before + 1} vote")
    expect(page.locator("#arena-leaderboard")).to_contain_text("color-namer")

    # export the votes and download the zip
    page.get_by_text("Votes as training data").click()
    page.locator("#arena-export").click()
    expect(page.locator("#arena-export-info")).to_contain_text("preference pairs", timeout=60_000)
    link = page.locator("#arena-export-file a[download]").first
    expect(link).to_be_visible()
    with page.expect_download() as download:
        link.click()
    zipped = tmp_path / download.value.suggested_filename
    download.value.save_as(zipped)
    assert zipped.suffix == ".zip"

    # Fine-tune: dpo on the uploaded export, a couple of steps
    page.get_by_role("tab", name="Fine-tune").click()
    page.locator("#train-method input").click()
    page.get_by_role("option", name=re.compile(r"^dpo\b")).click()
    expect(page.locator("#train-method input")).to_have_value(re.compile(r"^dpo\b"))
    page.locator("#train-source").get_by_text("Upload", exact=True).click()
    page.locator("#train-upload input[type=file]").set_input_files(str(zipped))
    # Gradio shows the stem and the extension in separate cells of the file row (the text
    # between them may hold whitespace)
    shown = re.compile(re.escape(zipped.stem) + r"\s*" + re.escape(zipped.suffix))
    expect(page.locator("#train-upload")).to_contain_text(shown)
    page.locator("#train-name input, #train-name textarea").first.fill(ADAPTER)
    page.get_by_role("button", name="Knobs").click()
    steps = page.locator("#train-steps input[type=number]")
    steps.fill("2")
    steps.press("Tab")
    page.locator("#train-start").click()
    result = page.locator("#train-result")
    expect(result).to_contain_text(ADAPTER, timeout=600_000)
    expect(result).to_contain_text("is ready")
    expect(result).to_contain_text("preferences data from")  # the export, not the built-in set
    expect(page.locator("#train-status")).to_contain_text("done")

    # Visual chat: the new adapter is in the menu and answers
    page.get_by_role("tab", name="Visual chat").click()
    page.locator("#chat-adapter input").click()
    page.get_by_role("option", name=ADAPTER).click()
    expect(page.locator("#chat-adapter-info")).to_contain_text(ADAPTER)
    expect(page.locator("#chat-adapter-info")).to_contain_text("dpo")
    box = page.locator("#chat-input textarea")
    box.fill("What color is the shape?")
    box.press("Enter")
    expect(page.locator("#chat-metrics")).to_contain_text(ADAPTER, timeout=120_000)
