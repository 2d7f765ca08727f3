"""The adapter operations through the served app's named endpoints (``gradio_client``), as a
script would use them: fetch from the Hub (a local fake), merge, export merged; and the
adapter panel's controls are where a user finds them."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import fake_hub

RED = Path(__file__).resolve().parents[1] / "assets" / "images" / "red-circle.png"


@pytest.fixture(scope="module")
def client(app_url: str) -> Any:
    from gradio_client import Client

    return Client(app_url, verbose=False)


def ask(client: Any, adapter: str) -> str:
    from gradio_client import handle_file

    return client.predict(
        "What is this?", [handle_file(str(RED))], adapter, 12, True, api_name="/chat"
    )


def test_merge_then_chat_and_arena_with_it(client: Any, app: Any) -> None:
    merged = client.predict(
        ["pirate", "color-namer"],
        [1.0, 0.0],
        "linear",
        0.5,
        "api-merge",
        api_name="/adapters_merge",
    )
    try:
        assert merged["name"] == "api-merge"
        assert merged["source"] == "merge:linear(pirate, color-namer)"
        assert merged["method"] == "merge (linear)"
        assert ask(client, "api-merge") == ask(client, "pirate")
        assert {"pirate", "color-namer", "api-merge"} <= set(app.services.arena.choices())
        listed = {a["name"]: a for a in client.predict(api_name="/adapters")}
        assert listed["api-merge"]["source"] == merged["source"]
    finally:
        app.services.chat.delete_adapter("api-merge")


def test_export_merged_returns_a_zip_of_a_transformers_folder(client: Any) -> None:
    result = client.predict("color-namer", api_name="/adapters_export_merged")
    assert (result["adapter"], result["base_model"]) == ("color-namer", "tiny:smolvlm")
    archive = Path(result["file"])
    assert archive.name == "color-namer-merged.zip" and archive.stat().st_size == result["bytes"]
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
    assert {"color-namer-merged/model.safetensors", "color-namer-merged/config.json"} <= names
    assert "color-namer-merged/tokenizer.json" in names


def test_adapter_from_hub_adds_it_with_its_source(
    client: Any, app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = shutil.copytree(app.services.chat.store.get("pirate").path, tmp_path / "repo")
    hub = fake_hub(monkeypatch, {"someone/pirate": repo})
    added = client.predict("someone/pirate@v3", "api-hub", api_name="/adapter_from_hub")
    try:
        assert added["source"] == f"hub:someone/pirate@{hub.commit}"
        assert ask(client, "api-hub") == ask(client, "pirate")
    finally:
        app.services.chat.delete_adapter("api-hub")


def test_the_operations_queue_with_the_vlm_and_have_controls(app: Any) -> None:
    groups = {fn.api_name: fn.concurrency_id for fn in app.demo.fns.values()}
    for name in ("adapter_from_hub", "adapters_merge", "adapters_export_merged"):
        assert groups[name] == "vlm", name
    ids = {getattr(b, "elem_id", None): b for b in app.demo.blocks.values()}
    for elem_id in ("chat-hub-btn", "chat-merge-btn", "chat-merge-parents", "chat-export-btn"):
        assert elem_id in ids, elem_id
