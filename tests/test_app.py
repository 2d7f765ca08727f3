"""The served app: System tab through the API and in a real browser (every tab visited)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import screenshot_dir


def states(status: dict) -> dict[str, dict]:
    return {m["backend"]: m for m in status["models"]}


def test_system_api_shows_lazy_loading_and_unloading(app: Any, app_url: str) -> None:
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    status = client.predict(api_name="/system_status")
    rows = states(status)
    assert set(rows) == {"vlm", "llm", "clip", "asr", "tts", "hands", "alm"}
    assert status["profile"] == "tiny" and status["rss_bytes"] > 0
    assert "torch" in status["versions"] and "gradio" in status["versions"]
    assert rows["clip"]["state"] in ("not loaded", "loaded")
    client.predict("clip", api_name="/unload_model")
    assert states(client.predict(api_name="/system_status"))["clip"]["state"] == "not loaded"
    clip = states(client.predict("clip", api_name="/load_model"))["clip"]
    assert clip["state"] == "loaded" and clip["nbytes"] > 0
    status = client.predict("clip", api_name="/unload_model")
    assert status["was_loaded"] and states(status)["clip"]["state"] == "not loaded"


@pytest.mark.browser
def test_browser_visits_every_tab_and_drives_the_system_tab(
    page: Any, app: Any, tmp_path: Path
) -> None:
    from mmdemo.ui.app import TABS

    out = screenshot_dir(tmp_path)
    app.manager.unload("tts")  # an earlier test on the shared app may have loaded it
    for label, _module, elem_id in TABS:
        page.get_by_role("tab", name=label).click()
        page.locator(f"#{elem_id}").wait_for(state="visible")
        page.screenshot(path=str(out / f"tab-{elem_id.removeprefix('tab-')}.png"), full_page=True)

    from playwright.sync_api import expect

    page.get_by_role("tab", name="System").click()
    table = page.locator("#system-models")
    backends = list(app.manager.backends)
    tts_state = table.get_by_test_id(f"cell-{backends.index('tts')}-2")
    expect(tts_state).to_have_text("not loaded")
    page.locator("#system-backend input").fill("tts")
    page.locator("#system-backend input").press("Enter")
    page.locator("#system-load").click()
    expect(tts_state).to_have_text("loaded", timeout=60_000)
    assert app.manager.is_loaded("tts")
    page.screenshot(path=str(out / "system.png"), full_page=True)
    page.locator("#system-unload").click()
    expect(tts_state).to_have_text("not loaded", timeout=60_000)
    assert not app.manager.is_loaded("tts")


def test_the_api_lists_only_named_endpoints(app: Any) -> None:
    """Every public endpoint is one we named on purpose: no auto-numbered handler
    (``stop_2``), no lambda, no state factory (``/dict``), and no name taken twice."""
    import re

    public = [f.api_name for f in app.demo.fns.values() if f.api_visibility == "public"]
    named = {"chat", "arena", "clip_search", "voice", "gestures", "video_summary", "train"}
    named |= {"how_parts", "how_image_tokens", "how_method", "how_contrastive", "how_fewshot"}
    named |= {"arena_blind", "arena_vote", "leaderboard", "votes_export", "arena_models"}
    assert named | {"how_audio_units", "how_methods"} <= set(public)
    accidental = [n for n in public if re.search(r"_\d+$|lambda|^[A-Z]|^dict$", n)]
    assert accidental == [] and len(public) == len(set(public))


def test_the_system_timer_polls_only_while_its_tab_is_shown(app: Any) -> None:
    import gradio as gr

    timer = next(b for b in app.demo.blocks.values() if isinstance(b, gr.Timer) and b.value == 3.0)
    assert not timer.active, "no polling before the System tab is opened"
    switches = {}
    for fn in app.demo.fns.values():
        if [o._id for o in fn.outputs] == [timer._id]:
            (block, event), *_ = fn.targets
            switches[app.demo.blocks[block].elem_id, event] = fn.fn().active
    assert switches[("tab-system", "select")] is True
    others = {k: v for k, v in switches.items() if k[0] != "tab-system"}
    assert len(others) >= 6 and not any(others.values()), "any other tab stops it"
