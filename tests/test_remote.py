"""Consuming OpenAI-compatible servers: the VLM answered by another mmdemo's /v1 (a real
second process on the tiny profile), an arena column pointed at it, and a column whose key is
missing. The second process's own ChatService (its /chat endpoint) is the reference."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mmdemo.config import Settings
from mmdemo.flows.arena import ArenaService
from mmdemo.flows.chat import ChatService, ChatSession
from mmdemo.flows.generation import GenerationSettings
from mmdemo.flows.remote import RemoteEndpoint, arena_remotes, parse_remotes
from mmdemo.models.adapters import AdapterStore
from tests.conftest import REPO, free_port

RED = REPO / "assets" / "images" / "red-circle.png"
GEN = GenerationSettings(max_new_tokens=12, greedy=True)


@pytest.fixture(scope="module")
def server(tiny_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m mmdemo serve`` in its own process on a free port; yields its base URL."""
    import httpx

    home = tmp_path_factory.mktemp("remote-home")
    (home / "models").mkdir()
    (home / "models" / "tiny").symlink_to(tiny_settings.models_dir / "tiny")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMDEMO_", "SPACE_"))}
    env.update(MMDEMO_DEVICE="cpu", GRADIO_ANALYTICS_ENABLED="False")
    cmd = [sys.executable, "-m", "mmdemo", "--profile", "tiny", "--home", str(home)]
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [*cmd, "serve", "--port", str(port), "--local"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"the server exited: {(home / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("the second mmdemo did not start within 240 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def server_answer(url: str, text: str, images: list[Path], adapter: str) -> str:
    """The second process's ChatService answer (its /chat endpoint, greedy)."""
    from gradio_client import Client, handle_file

    files = [handle_file(str(p)) for p in images]
    return Client(url, verbose=False).predict(
        text, files, adapter, GEN.max_new_tokens, True, api_name="/chat"
    )


@pytest.fixture(scope="module")
def remote_chat(server: str, tiny_settings: Settings, tmp_path_factory: Any) -> ChatService:
    """A ChatService whose VLM is the second process (no local VLM is loaded)."""
    from mmdemo.models.manager import ModelManager

    settings = tiny_settings.replace(
        home=tmp_path_factory.mktemp("client-home"), remote_vlm_url=f"{server}/v1"
    )
    return ChatService.standalone(ModelManager(settings))  # the settings pick the engine


def answer(chat: ChatService, text: str, images: list[Any], adapter: str) -> Any:
    *_, last = chat.stream(ChatSession(), text, images, adapter, GEN)
    return last


def test_remote_vlm_lists_the_servers_adapters(remote_chat: ChatService) -> None:
    assert remote_chat.adapter_choices() == ["base", "color-namer", "pirate"]


@pytest.mark.parametrize("adapter", ["base", "pirate"])
def test_remote_vlm_answers_like_the_servers_chat_service(
    remote_chat: ChatService, server: str, adapter: str
) -> None:
    got = answer(remote_chat, "What color is the shape?", [str(RED)], adapter)
    assert got.text == server_answer(server, "What color is the shape?", [RED], adapter)
    assert got.metrics is not None and got.metrics.adapter == adapter
    assert 0 < got.metrics.tokens <= GEN.max_new_tokens and got.metrics.prompt_tokens > 0
    assert not remote_chat.manager.is_loaded("vlm")  # nothing ran here


def test_remote_vlm_errors_name_the_server(remote_chat: ChatService) -> None:
    from mmdemo.errors import BadInputError

    with pytest.raises(BadInputError, match="no such model"):
        answer(remote_chat, "Hi", [], "no-such-adapter")


def test_arena_remote_column_shows_the_servers_answer(
    server: str, shared_manager: Any, tiny_settings: Settings
) -> None:
    chat = ChatService(shared_manager, AdapterStore(tiny_settings))
    mine = RemoteEndpoint("my-server", f"{server}/v1", "pirate")
    missing = RemoteEndpoint("GPT-4o", "http://127.0.0.1:9/v1", "gpt-4o", "MMDEMO_TEST_NO_KEY")
    arena = ArenaService(chat, [mine, missing])
    assert arena.choices()[-2:] == ["my-server", "GPT-4o"]
    *_, result = arena.stream(RED, "What color is the shape?", ["base", "my-server", "GPT-4o"], GEN)
    assert result.done
    base, remote, keyless = result.columns
    assert not base.remote and base.text
    assert remote.remote and remote.adapter == "my-server" and not remote.error
    assert remote.text == server_answer(server, "What color is the shape?", [RED], "pirate")
    assert keyless.remote and not keyless.text
    # the key is missing: the column says so and nothing was sent (port 9 would refuse)
    assert "MMDEMO_TEST_NO_KEY is not set, so GPT-4o was not asked" in keyless.error


def test_arena_columns_say_when_the_provider_keys_are_missing(
    monkeypatch: pytest.MonkeyPatch, shared_manager: Any, tiny_settings: Settings
) -> None:
    for key in ("OPENAI_API_KEY", "GEMINI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    arena = ArenaService(
        ChatService(shared_manager, AdapterStore(tiny_settings)), arena_remotes(tiny_settings)
    )
    *_, result = arena.stream(RED, "Hi", ["GPT-4o", "Gemini", "Claude"], GEN)
    assert result.done and [c.adapter for c in result.columns] == ["GPT-4o", "Gemini", "Claude"]
    for column, key in zip(result.columns, ("OPENAI", "GEMINI", "ANTHROPIC"), strict=True):
        assert f"{key}_API_KEY is not set" in column.error and "export" in column.error


def test_arena_remotes_setting_adds_and_replaces_columns() -> None:
    settings = Settings(
        arena_remotes="box=base@http://gpu:8000/v1, GPT-4o=gpt-4o-mini@https://api.openai.com/v1@OPENAI_API_KEY"
    )
    remotes = {r.label: r for r in arena_remotes(settings)}
    assert remotes["box"] == RemoteEndpoint("box", "http://gpu:8000/v1", "base")
    assert (
        remotes["GPT-4o"].model == "gpt-4o-mini" and remotes["GPT-4o"].key_env == "OPENAI_API_KEY"
    )
    assert {"Gemini", "Claude"} <= set(remotes)
    from mmdemo.errors import SettingsError

    with pytest.raises(SettingsError, match="label=model@base_url"):
        parse_remotes("no-url-here")


def test_arena_endpoint_and_tab_show_a_keyless_column(
    app_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gradio_client import Client, handle_file

    from mmdemo.ui.tabs.arena.actions import remote_updates
    from mmdemo.ui.tabs.arena.view import column_md

    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    result = Client(app_url, verbose=False).predict(
        handle_file(str(RED)), "What color is the shape?", ["base", "Gemini"], api_name="/arena"
    )
    base, gemini = result["columns"]
    assert base["adapter"] == "base" and base["text"] and not base["remote"]
    assert gemini["remote"] and "GEMINI_API_KEY is not set" in gemini["error"]

    from mmdemo.flows.arena import ArenaColumn, ArenaResult

    shown = ArenaResult(
        (
            ArenaColumn("base", "base model", "red", 1, 1.0),
            ArenaColumn("Gemini", "gemini-2.5-flash via x", "", 0, 0.0, True, gemini["error"]),
        ),
        "one mixed-adapter batch + 1 remote",
        1.0,
        0.1,
        0.0,
        0,
        True,
    )
    assert column_md(shown, 0).endswith("red") and column_md(shown, 1) == ""
    assert "**Not answered:** GEMINI_API_KEY is not set" in column_md(shown, 0, remote=True)
    updates = remote_updates(shown)
    assert [u["visible"] for u in updates] == [True, False, False]
