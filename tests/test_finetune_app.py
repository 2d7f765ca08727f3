"""The Fine-tune tab as users reach it: the training API through gradio_client, and a real
browser that trains an adapter and then chats with it in the Visual chat tab, no restart."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import screenshot_dir
from tests.test_bakeoff_results import MEASURED

RED = Path(__file__).resolve().parents[1] / "assets" / "images" / "red-circle.png"


@pytest.fixture(scope="module")
def client(app_url: str) -> Any:
    from gradio_client import Client

    return Client(app_url, verbose=False)


def wait_done(client: Any, run_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.predict(run_id, api_name="/train_status")
        if status["state"] in ("done", "error", "stopped"):
            return status
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish: {status}")


def test_api_trains_an_adapter_that_chat_serves_at_once(client: Any) -> None:
    from gradio_client import handle_file

    methods = {m["name"] for m in client.predict(api_name="/train_methods")}
    assert {"lora", "qlora", "dylora", "mezo", "lomo", "bottleneck"} <= methods
    assert client.predict(api_name="/train_devices")[:2] == ["auto", "cpu"]
    started = client.predict(
        "lora",
        "builtin",
        "vqa",
        3,
        2,
        0.0,
        4,
        "language",
        "api-trained",
        0,
        "cpu",
        api_name="/train",
    )
    assert started["state"] in ("queued", "running") and started["id"]
    assert started["device"] == "cpu"
    status = wait_done(client, started["id"])
    assert status["state"] == "done", status
    assert status["adapter"] == "api-trained" and len(status["loss_history"]) == 3
    listing = {a["name"]: a for a in client.predict(api_name="/adapters")}
    assert listing["api-trained"]["method"] == "lora"
    assert "closed_accuracy" in listing["api-trained"]["metrics"]
    answer = client.predict(
        "What color is the shape?",
        [handle_file(str(RED))],
        "api-trained",
        8,
        True,
        api_name="/chat",
    )
    assert isinstance(answer, str)
    metrics = client.predict("api-trained", "builtin", api_name="/evaluate")
    assert metrics["adapter"] == "api-trained" and metrics["count"] > 0


def test_api_refuses_bad_requests_with_the_cause(client: Any) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="unknown method 'magic'"):
        client.predict("magic", api_name="/train")
    with pytest.raises(AppError, match="no training run with id"):
        client.predict("nope", api_name="/train_status")
    with pytest.raises(AppError, match="does not exist"):
        client.predict("lora", "/nowhere/data.jsonl", api_name="/train")
    with pytest.raises(AppError, match="'tpu' is not a device"):
        client.predict("lora", device="tpu", api_name="/train")
    if "cuda" not in client.predict(api_name="/train_devices"):
        with pytest.raises(AppError, match=r"no such CUDA GPU.*pick one of: auto, cpu"):
            client.predict("lora", device="cuda", api_name="/train")


def test_api_bakeoff_results_returns_the_measured_file_or_why_not(
    client: Any, app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gradio_client.exceptions import AppError

    service = app.services.train
    measured = tmp_path / "bakeoff.json"
    measured.write_text(json.dumps(MEASURED), encoding="utf-8")
    monkeypatch.setattr(service, "bakeoff_file", measured)
    data = client.predict(api_name="/bakeoff_results")
    assert data["measured"] == "2026-12-06" and data["budget"]["seeds"] == [0, 1, 2]
    rows = {r["method"]: r for r in data["rows"]}
    assert rows["ia3"]["gain_share_of_lora"] == pytest.approx(0.5)
    assert rows["adalomo"]["unavailable"] == "needs a CUDA GPU"
    monkeypatch.setattr(service, "bakeoff_file", tmp_path / "absent.json")
    with pytest.raises(AppError, match=r"no measured bake-off yet.*bench finetune --write"):
        client.predict(api_name="/bakeoff_results")


def test_api_stop_ends_a_run_without_an_adapter(client: Any) -> None:
    started = client.predict(
        "lora",
        "builtin",
        "vqa",
        100000,
        2,
        0.0,
        4,
        "language",
        "api-stopped",
        0,
        api_name="/train",
    )
    deadline = time.monotonic() + 300
    while client.predict(started["id"], api_name="/train_status")["step"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    client.predict(started["id"], api_name="/train_stop")
    status = wait_done(client, started["id"], timeout=120)
    assert status["state"] == "stopped"
    assert "api-stopped" not in {a["name"] for a in client.predict(api_name="/adapters")}


@pytest.mark.browser
def test_browser_trains_in_the_tab_then_chats_with_the_adapter(page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Fine-tune").click()
    page.locator("#train-name input, #train-name textarea").first.fill("browser-trained")
    page.get_by_role("button", name="Knobs").click()
    steps = page.locator("#train-steps input[type=number]")
    steps.fill("4")
    steps.press("Tab")
    share = page.locator("#train-scale input[type=number]")
    share.fill("0.05")
    share.press("Tab")
    page.locator("#train-start").click()
    result = page.locator("#train-result")
    expect(result).to_contain_text("browser-trained", timeout=600_000)
    expect(result).to_contain_text("is ready")
    expect(page.locator("#train-status")).to_contain_text("done")
    page.screenshot(path=str(screenshot_dir(tmp_path) / "train.png"), full_page=True)

    page.get_by_role("tab", name="Visual chat").click()
    menu = page.locator("#chat-adapter input")
    menu.click()
    page.get_by_role("option", name="browser-trained").click()
    expect(page.locator("#chat-adapter-info")).to_contain_text("browser-trained")
    box = page.locator("#chat-input textarea")
    box.fill("What color is the shape?")
    box.press("Enter")
    expect(page.locator("#chat-metrics")).to_contain_text("browser-trained", timeout=120_000)


@pytest.mark.browser
def test_browser_bakeoff_panel_shows_the_measured_table_and_picture(
    page: Any, app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    service = app.services.train
    measured = tmp_path / "bakeoff.json"
    measured.write_text(json.dumps(MEASURED), encoding="utf-8")
    monkeypatch.setattr(service, "bakeoff_file", measured)
    page.get_by_role("tab", name="Fine-tune").click()
    page.get_by_role("button", name="Bake-off").click()
    caption = page.locator("#train-bakeoff-caption")
    expect(caption).to_contain_text("measured 2026-12-06")
    expect(caption).to_contain_text("30 steps, batch 8, median of 3 seeds")
    table = page.locator("#train-bakeoff-table")
    expect(table).to_contain_text("base (no training)")
    expect(table).to_contain_text("50 %")  # ia3: half of LoRA's gain over the base
    expect(table).to_contain_text("not run: needs a CUDA GPU")
    expect(page.locator("#train-bakeoff-plot img")).to_be_visible()
    page.locator("#train-bakeoff-panel").screenshot(path=str(tmp_path / "bakeoff-panel.png"))

    measured.write_text('{"rows": [{"method": "lora", "overall": "high"}]}', encoding="utf-8")
    page.reload()
    page.get_by_role("tab", name="Fine-tune").click()
    page.get_by_role("button", name="Bake-off").click()
    expect(caption).to_contain_text("No measured bake-off to show")
    expect(caption).to_contain_text("bench finetune --write")
    expect(page.locator("#train-bakeoff-plot img")).to_have_count(0)
