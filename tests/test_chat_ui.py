"""Visual chat and arena as users reach them: gradio_client API and a real browser."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import screenshot_dir

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "images"
RED = ASSETS / "red-circle.png"


@pytest.fixture(scope="module")
def client(app_url: str) -> Any:
    from gradio_client import Client

    return Client(app_url, verbose=False)


def test_api_chat_streams_with_the_chosen_adapter(client: Any, app: Any) -> None:
    from gradio_client import handle_file

    chat = app.services.chat
    saved, chat.engine.stream_interval = chat.engine.stream_interval, 0.0  # an update per token
    try:
        job = client.submit(
            "What color is the shape?",
            [handle_file(str(RED))],
            "color-namer",
            20,
            True,
            api_name="/chat",
        )
        job.result()
        outputs = job.outputs()
    finally:
        chat.engine.stream_interval = saved
    assert outputs[-1] == "The shape is red."
    # the client saw the answer grow: a partial answer first, each one extending the last
    assert outputs[0] != outputs[-1] and "The shape is red.".startswith(outputs[0].strip())
    assert all(b.strip().startswith(a.strip()) for a, b in itertools.pairwise(outputs))
    base = client.predict(
        "What color is the shape?", [handle_file(str(RED))], "base", 20, True, api_name="/chat"
    )
    assert base != "The shape is red."


def test_api_arena_and_adapter_list(client: Any) -> None:
    from gradio_client import handle_file

    result = client.predict(
        handle_file(str(RED)),
        "What color is the shape?",
        ["base", "color-namer", "pirate"],
        api_name="/arena",
    )
    texts = {c["adapter"]: c["text"] for c in result["columns"]}
    assert texts["color-namer"] == "The shape is red." and texts["pirate"].startswith("Arr")
    assert "image encoded once" in result["mode"]
    listing = client.predict(api_name="/adapters")
    names = {a["name"] for a in listing}
    assert {"color-namer", "pirate"} <= names
    assert all("metrics" in a and "base_model_type" in a for a in listing)


def test_api_serves_one_dylora_adapter_at_several_ranks_side_by_side(
    client: Any, dylora: str
) -> None:
    from gradio_client import handle_file

    listing = {a["name"]: a for a in client.predict(api_name="/adapters")}
    assert listing[dylora]["method"] == "dylora" and listing[dylora]["ranks"] == [1, 2, 4]
    names = [f"{dylora}@r=1", f"{dylora}@r=4", dylora]
    result = client.predict(
        handle_file(str(RED)), "What color is the shape?", names, api_name="/arena"
    )
    assert [c["adapter"] for c in result["columns"]] == names
    assert "one mixed-adapter batch" in result["mode"]
    assert result["columns"][0]["label"].startswith("dylora at r=1")
    # each column is that rank answering alone, and the ranks answer differently
    alone = [
        client.predict(
            "What color is the shape?", [handle_file(str(RED))], n, 128, True, api_name="/chat"
        )
        for n in names
    ]
    assert [c["text"] for c in result["columns"]] == alone
    assert len(set(alone)) == len(alone)
    with pytest.raises(Exception, match="has ranks 1 to 8; 9 is outside them"):
        client.predict("hi", [], f"{dylora}@r=9", 8, True, api_name="/chat")
    with pytest.raises(Exception, match="only DyLoRA adapters serve at a chosen rank"):
        client.predict("hi", [], "pirate@r=2", 8, True, api_name="/chat")


def test_everything_that_touches_the_vlm_queues_in_its_group(app: Any) -> None:
    """Generation, the arena and loading an adapter share the 'vlm' concurrency group."""
    groups = {fn.name: fn.concurrency_id for fn in app.demo.fns.values()}
    names = ("submit", "regenerate", "show_adapter", "chat_endpoint", "arena_endpoint", "run")
    names += ("arena_blind", "run_blind", "arena_models", "run_models")
    for name in (*names, "adapter_upload", "adapter_delete"):
        assert groups.get(name) == "vlm", (name, groups.get(name))


def test_api_reports_bad_input_clearly(client: Any) -> None:
    with pytest.raises(Exception, match="empty"):
        client.predict("   ", [], "base", 8, True, api_name="/chat")
    with pytest.raises(Exception, match="no adapter called"):
        client.predict("hi", [], "nonexistent", 8, True, api_name="/chat")


@pytest.mark.browser
def test_browser_chat_switch_adapter_and_arena(page: Any, app: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    out = screenshot_dir(tmp_path)
    page.get_by_role("tab", name="Visual chat").click()
    page.locator("#chat-input input[type=file]").set_input_files(str(RED))
    page.locator("#chat-input textarea").fill("What color is the shape?")
    page.locator("#chat-input textarea").press("Enter")
    expect(page.locator("#chat-metrics")).to_contain_text("tok/s", timeout=60_000)
    expect(page.locator("#chat-metrics")).to_contain_text("base")
    expect(page.locator("#chat-bot img")).to_have_count(1)

    page.locator("#chat-adapter input").fill("color-namer")
    page.locator("#chat-adapter input").press("Enter")
    expect(page.locator("#chat-adapter-info")).to_contain_text("names the colour")
    page.locator("#chat-regenerate").click()
    expect(page.locator("#chat-bot")).to_contain_text("The shape is red.", timeout=60_000)
    expect(page.locator("#chat-metrics")).to_contain_text("color-namer")
    page.screenshot(path=str(out / "chat.png"), full_page=True)

    page.get_by_role("tab", name="Arena").click()
    page.locator("#arena-image input[type=file]").set_input_files(str(RED))
    page.locator("#arena-run").click()
    expect(page.locator("#arena-summary")).to_contain_text("image encoded once", timeout=60_000)
    expect(page.locator("#arena-col-1")).to_contain_text("The shape is red.", timeout=60_000)
    expect(page.locator("#arena-col-2")).to_contain_text("Arr matey")
    expect(page.locator("#arena-summary")).to_contain_text("peak memory", timeout=60_000)
    page.screenshot(path=str(out / "arena.png"), full_page=True)

    page.get_by_role("tab", name="Visual chat").click()
    page.locator("#chat-input textarea").fill("   ")
    page.locator("#chat-input textarea").press("Enter")
    expect(page.get_by_text("the message is empty").first).to_be_visible(timeout=30_000)


@pytest.mark.browser
def test_browser_stop_button_stops_the_answer(page: Any) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Visual chat").click()
    page.get_by_text("Generation", exact=True).click()
    number = page.locator("#chat-max-new input[type=number]")
    number.fill("1024")
    number.press("Enter")
    page.locator("#chat-input textarea").fill("Tell me a very long story.")
    page.locator("#chat-input textarea").press("Enter")
    expect(page.locator("#chat-bot")).to_contain_text("Tell me a very long story.", timeout=60_000)
    answer = page.locator("#chat-bot .bot-row").last  # "…" until the first token is shown
    expect(answer).not_to_have_text(re.compile(r"^\s*…?\s*$"), timeout=60_000)
    page.locator("#chat-stop").click()
    # "stopped" is shown only when Stop ended the generation (the stopping criterion says
    # so), not when the answer ran to its end: so the click, not timing, ended it
    expect(page.locator("#chat-metrics")).to_contain_text("stopped", timeout=60_000)
    tokens = int(page.locator("#chat-metrics").inner_text().split(" tokens")[0].split()[-1])
    assert tokens < 1024


@pytest.mark.browser
def test_browser_picks_dylora_ranks_in_chat_and_side_by_side_in_the_arena(
    page: Any, dylora: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Visual chat").click()
    expect(page.locator("#chat-rank")).to_be_hidden()
    page.locator("#chat-adapter input").click()
    page.get_by_role("option", name=dylora, exact=True).click()
    expect(page.locator("#chat-rank")).to_be_visible()  # a DyLoRA adapter: its ranks
    page.locator("#chat-rank input").click()
    page.get_by_role("option", name="r=2 · overall 0.41").click()
    expect(page.locator("#chat-adapter-info")).to_contain_text(f"{dylora}@r=2")
    expect(page.locator("#chat-adapter-info")).to_contain_text("rank 2")
    page.locator("#chat-input textarea").fill("What color is the shape?")
    page.locator("#chat-input textarea").press("Enter")
    expect(page.locator("#chat-metrics")).to_contain_text(f"{dylora}@r=2", timeout=60_000)
    page.locator("#chat-adapter input").click()
    page.get_by_role("option", name="pirate", exact=True).click()
    expect(page.locator("#chat-rank")).to_be_hidden()  # not DyLoRA: no rank to pick

    page.get_by_role("tab", name="Arena").click()
    picks = page.locator("#arena-picks input")
    picks.click()
    for _ in range(8):  # empty the default picks
        picks.press("Backspace")
    for rank in (1, 4):
        picks.fill(f"{dylora}@r={rank}")
        page.get_by_role("option", name=f"{dylora}@r={rank}", exact=True).click()
    page.locator("#arena-image input[type=file]").set_input_files(str(RED))
    page.locator("#arena-run").click()
    expect(page.locator("#arena-summary")).to_contain_text("peak memory", timeout=60_000)
    expect(page.locator("#arena-summary")).to_contain_text("2 answers as one mixed-adapter batch")
    expect(page.locator("#arena-col-0")).to_contain_text(f"{dylora}@r=1")
    expect(page.locator("#arena-col-0")).to_contain_text("dylora at r=1")
    expect(page.locator("#arena-col-1")).to_contain_text(f"{dylora}@r=4")
    expect(page.locator("#arena-col-2")).to_have_text("")
    page.screenshot(path=str(tmp_path / "arena-ranks.png"), full_page=True)
