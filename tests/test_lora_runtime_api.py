"""vLLM's runtime adapter routes on mmdemo's /v1: ``/v1/load_lora_adapter`` serves an adapter
of this server's store (or of the Hub) under a new name, which /v1/models then lists and chat
completions answer with; ``/v1/unload_lora_adapter`` takes it away again. Answers and errors
have vLLM's shapes; a caller's path is never opened unless it is a folder of the store."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mmdemo.config import Settings
from mmdemo.flows.chat import ChatService
from mmdemo.models.manager import ModelManager
from tests.helpers import fake_hub, home_for
from tests.test_security_v1 import serve_v1

RED = Path(__file__).resolve().parents[1] / "assets" / "images" / "red-circle.png"


@pytest.fixture(scope="module")
def chat(tiny_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    manager = ModelManager(home_for(tiny_settings, tmp_path_factory.mktemp("runtime-home")))
    yield ChatService.standalone(manager)
    manager.unload_all()


@pytest.fixture(scope="module")
def v1(chat: ChatService) -> Iterator[str]:
    with serve_v1(chat, chat.settings) as url:
        yield url


def post(base: str, route: str, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{base}/v1/{route}", json=body, timeout=120, **kwargs)


def models(base: str) -> list[str]:
    return [m["id"] for m in httpx.get(f"{base}/v1/models", timeout=60).json()["data"]]


def ask(base: str, model: str) -> httpx.Response:
    url = "data:image/png;base64," + base64.b64encode(RED.read_bytes()).decode()
    content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "Hi"}]
    body = {"model": model, "max_tokens": 12, "messages": [{"role": "user", "content": content}]}
    return post(base, "chat/completions", body)


def answer(base: str, model: str) -> str:
    reply = ask(base, model)
    assert reply.status_code == 200, reply.text
    return reply.json()["choices"][0]["message"]["content"]


def vllm_error(reply: httpx.Response, status: int, kind: str) -> str:
    """The message of a vLLM error object, after checking its shape."""
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (kind, status, None)
    return error["message"]


def test_a_loaded_adapter_is_listed_answers_and_unloads(v1: str, chat: ChatService) -> None:
    folder = chat.store.get("pirate").path  # a folder of the built-in adapters
    loaded = post(v1, "load_lora_adapter", {"lora_name": "my-pirate", "lora_path": str(folder)})
    assert loaded.status_code == 200
    assert loaded.text == "Success: LoRA adapter 'my-pirate' added successfully."
    assert "my-pirate" in models(v1)
    assert answer(v1, "my-pirate") == answer(v1, "pirate") != answer(v1, "base")

    again = post(v1, "load_lora_adapter", {"lora_name": "my-pirate", "lora_path": "pirate"})
    message = vllm_error(again, 400, "InvalidUserInput")
    assert message == "The lora adapter 'my-pirate' has already been loaded."

    gone = post(v1, "unload_lora_adapter", {"lora_name": "my-pirate"})
    assert gone.status_code == 200
    assert gone.text == "Success: LoRA adapter 'my-pirate' removed successfully."
    assert "my-pirate" not in models(v1) and "pirate" in models(v1)
    assert ask(v1, "my-pirate").status_code == 404
    twice = post(v1, "unload_lora_adapter", {"lora_name": "my-pirate"})
    assert (
        vllm_error(twice, 404, "NotFoundError") == "The lora adapter 'my-pirate' cannot be found."
    )


def test_an_adapter_of_the_store_loads_by_its_name_too(v1: str, chat: ChatService) -> None:
    loaded = post(v1, "load_lora_adapter", {"lora_name": "colors", "lora_path": "color-namer"})
    assert loaded.status_code == 200, loaded.text
    try:
        assert answer(v1, "colors") == answer(v1, "color-namer")
        assert chat.store.get("colors").source == "load_lora_adapter:color-namer"
    finally:
        post(v1, "unload_lora_adapter", {"lora_name": "colors"})


def test_lora_path_is_only_ever_a_folder_of_the_store(
    v1: str, chat: ChatService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = fake_hub(monkeypatch, {})  # a path that reads like a Hub id goes to the (fake) Hub
    outside = shutil.copytree(chat.store.get("pirate").path, tmp_path / "outside")
    root = chat.store.root
    root.mkdir(parents=True, exist_ok=True)
    before = chat.store.names()
    link = root / "linked"
    link.symlink_to(outside, target_is_directory=True)
    try:
        for path in (
            str(outside),  # a real adapter, outside the store
            str(link),  # a link in the store that leads out of it
            f"{root}/../../{outside.relative_to(tmp_path.anchor)}",
            f"{root}/.locks",  # the store's own hidden folders
            str(root),
            "/etc",
            "~/adapters/pirate",
            "nope",  # no adapter of that name
            "adapters/pirate",  # relative: read as a Hub id, which the Hub does not have
        ):
            reply = post(v1, "load_lora_adapter", {"lora_name": "sneaky", "lora_path": path})
            message = vllm_error(reply, 400, "BadRequestError")
            assert "not an adapter folder this server serves from" in message or (
                "no adapter adapters/pirate@main" in message
            ), (path, message)
        assert [c["repo"] for c in hub.calls] == ["adapters/pirate"]
    finally:
        link.unlink()
    assert chat.store.names() == before


def test_adapters_that_were_not_loaded_at_runtime_are_not_unloaded(
    v1: str, chat: ChatService
) -> None:
    reply = post(v1, "unload_lora_adapter", {"lora_name": "pirate"})
    assert "ships with mmdemo" in vllm_error(reply, 400, "BadRequestError")
    assert "pirate" in models(v1)


def test_a_hub_id_loads_from_the_hub_and_unloads(
    v1: str, chat: ChatService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = shutil.copytree(chat.store.get("color-namer").path, tmp_path / "repo")
    hub = fake_hub(monkeypatch, {"someone/colors": repo})
    body = {"lora_name": "hub-colors", "lora_path": "someone/colors@v2"}
    assert post(v1, "load_lora_adapter", body).status_code == 200
    assert hub.downloads()[0]["revision"] == hub.commit
    assert answer(v1, "hub-colors") == answer(v1, "color-namer")
    assert post(v1, "unload_lora_adapter", {"lora_name": "hub-colors"}).status_code == 200
    assert "hub-colors" not in models(v1)


def test_bad_bodies_get_vllm_errors(v1: str) -> None:
    for body in ({}, {"lora_name": "x"}, {"lora_path": "pirate"}):
        reply = post(v1, "load_lora_adapter", body)
        message = vllm_error(reply, 400, "InvalidUserInput")
        assert message == "Both 'lora_name' and 'lora_path' must be provided."
    assert "'lora_name' must be provided" in vllm_error(
        post(v1, "unload_lora_adapter", {}), 400, "InvalidUserInput"
    )
    not_json = httpx.post(f"{v1}/v1/load_lora_adapter", content=b"{", timeout=30)
    assert not_json.status_code == 415  # like every /v1 POST: JSON bodies only
    broken = httpx.post(
        f"{v1}/v1/load_lora_adapter",
        content=b"{",
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    vllm_error(broken, 400, "InvalidUserInput")
    bad_name = post(v1, "load_lora_adapter", {"lora_name": "../x", "lora_path": "pirate"})
    assert "is not allowed" in vllm_error(bad_name, 400, "BadRequestError")


def test_hosted_mode_and_api_keys_guard_the_routes(chat: ChatService) -> None:
    body = {"lora_name": "x", "lora_path": "pirate"}
    with serve_v1(chat, chat.settings.replace(hosted=True)) as hosted:
        for route, payload in (("load_lora_adapter", body), ("unload_lora_adapter", body)):
            message = vllm_error(post(hosted, route, payload), 403, "Forbidden")
            assert "turned off in hosted mode (MMDEMO_HOSTED" in message
    with serve_v1(chat, chat.settings.replace(api_key="sesame")) as keyed:
        assert post(keyed, "load_lora_adapter", body).status_code == 401
        page = {"Origin": "http://evil.example"}
        assert post(keyed, "load_lora_adapter", body, headers=page).status_code == 403
    assert "x" not in chat.store.names()
