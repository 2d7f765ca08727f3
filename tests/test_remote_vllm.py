"""The remote VLM and the arena against a vLLM-shaped server: a local HTTP server replays
what ``vllm serve BASE --enable-lora --lora-modules pirate=... color-namer=...`` sends
(tests/data/vllm-session.json: its /v1/models, its streamed chunks, its error bodies, written
from vLLM's source). The app must offer the LoRA modules as models, show the streamed text and
the server's token counts, and turn every vLLM error body into an error naming its message."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mmdemo.config import Settings
from mmdemo.errors import BadInputError
from mmdemo.flows.arena import ArenaService
from mmdemo.flows.chat import ChatService, ChatSession
from mmdemo.flows.generation import GenerationSettings
from mmdemo.flows.remote import RemoteEndpoint, RemoteError
from tests.conftest import REPO

SESSION = json.loads((REPO / "tests" / "data" / "vllm-session.json").read_text("utf-8"))
BASE = SESSION["models"]["data"][0]["id"]
LORAS = [m["id"] for m in SESSION["models"]["data"] if m["parent"]]  # pirate, color-namer
# what the stream says, delta by delta (the first carries the role and "", the last "")
DELTAS = [c["choices"][0]["delta"].get("content") or "" for c in SESSION["stream"]]
USAGE = SESSION["usage_chunk"]["usage"]
MAX_MODEL_LEN = SESSION["models"]["data"][0]["max_model_len"]
KEY = "vllm-test-key"  # vllm serve --api-key
RED = REPO / "assets" / "images" / "red-circle.png"
GEN = GenerationSettings(max_new_tokens=32, greedy=True)


class FakeVLLM(ThreadingHTTPServer):
    """Replays the session; remembers each chat request's JSON body."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), VLLMHandler)
        self.requests: list[dict[str, Any]] = []
        self.error_shape = "nested"  # nested: vLLM today; flat: older releases
        self.fail_mid_stream = False
        self.stream = "stream"  # or stream_with_parser (vllm serve --reasoning-parser ...)
        self.models = SESSION["models"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class VLLMHandler(BaseHTTPRequestHandler):
    server: FakeVLLM

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def send_json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {KEY}":
            return True
        self.send_json(401, {"error": "Unauthorized"})  # vLLM's --api-key middleware
        return False

    def do_GET(self) -> None:
        if not self.authorized():
            return
        if self.path == "/v1/models":
            self.send_json(200, self.server.models)
        else:
            self.send_json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        if not self.authorized():
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        model = body["model"]
        if model not in [m["id"] for m in self.server.models["data"]]:
            error = SESSION["errors"]["no_model_nested"]
            self.send_json(404, fill(error, model=model))
            return
        if body.get("max_tokens", 0) > MAX_MODEL_LEN - USAGE["prompt_tokens"]:
            error = SESSION["errors"][f"max_tokens_{self.server.error_shape}"]
            self.send_json(400, fill(error, max_tokens=body["max_tokens"]))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.end_headers()  # HTTP/1.0: the stream ends when the connection closes
        chunks = list(SESSION[self.server.stream])
        if self.server.fail_mid_stream:
            chunks = [*chunks[:3], SESSION["errors"]["mid_stream"]]
        elif (body.get("stream_options") or {}).get("include_usage"):
            chunks.append(SESSION["usage_chunk"])
        for chunk in chunks:
            line = json.dumps(fill(chunk, model=model), separators=(",", ":"))
            self.wfile.write(f"data: {line}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")


def fill(value: Any, **fields: Any) -> Any:
    """``value`` with its ``{name}`` placeholders filled in."""
    if isinstance(value, str):
        for name, v in fields.items():
            value = value.replace("{" + name + "}", str(v))
        return value
    if isinstance(value, dict):
        return {k: fill(v, **fields) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, **fields) for v in value]
    return value


@pytest.fixture
def vllm() -> Iterator[FakeVLLM]:
    server = FakeVLLM()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def chat(vllm: FakeVLLM, tiny_settings: Settings, tmp_path: Path) -> ChatService:
    """The app's chat service with the fake vLLM as its VLM (the settings pick the engine)."""
    from mmdemo.models.manager import ModelManager

    settings = tiny_settings.replace(
        home=tmp_path / "home", remote_vlm_url=vllm.url, remote_vlm_key=KEY
    )
    return ChatService.standalone(ModelManager(settings))


def ask(chat: ChatService, adapter: str, gen: GenerationSettings = GEN) -> Any:
    *_, last = chat.stream(ChatSession(), "What color is the shape?", [str(RED)], adapter, gen)
    return last


def test_the_lora_modules_are_the_models_to_choose(chat: ChatService, vllm: FakeVLLM) -> None:
    assert chat.adapter_choices() == ["base", "pirate", "color-namer"]
    arena = ArenaService(chat, [RemoteEndpoint("box", vllm.url, "pirate", key=KEY)])
    assert arena.choices() == ["base", "pirate", "color-namer", "box"]
    # the base named explicitly (MMDEMO_REMOTE_VLM_MODEL): the same menu
    named = ChatService.standalone(type(chat.manager)(chat.settings.replace(remote_vlm_model=BASE)))
    assert named.adapter_choices() == ["base", "pirate", "color-namer"]
    # --served-model-name smolvlm HuggingFaceTB/...: a second name of the base, not an adapter
    alias = {**SESSION["models"]["data"][0], "id": "smolvlm"}
    vllm.models = {**SESSION["models"], "data": [alias, *SESSION["models"]["data"]]}
    assert chat.adapter_choices() == ["base", "pirate", "color-namer"]


@pytest.mark.parametrize(
    ("adapter", "served", "stream"),
    [
        ("pirate", "pirate", "stream"),
        ("base", BASE, "stream"),
        ("pirate", "pirate", "stream_with_parser"),
    ],
)
def test_a_streamed_answer_is_the_deltas_and_the_usage(
    chat: ChatService, vllm: FakeVLLM, adapter: str, served: str, stream: str
) -> None:
    vllm.stream = stream  # with a parser: a reasoning-only delta and an empty last delta
    got = ask(chat, adapter)
    assert got.text == "".join(DELTAS) == "The shape is red."
    assert got.metrics.adapter == adapter
    assert got.metrics.tokens == USAGE["completion_tokens"]
    assert got.metrics.prompt_tokens == USAGE["prompt_tokens"]
    (sent,) = vllm.requests
    assert sent["model"] == served and sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["max_tokens"] == GEN.max_new_tokens and sent["temperature"] == 0.0
    image = sent["messages"][-1]["content"][0]
    assert image["image_url"]["url"].startswith("data:image/png;base64,")
    assert not chat.manager.is_loaded("vlm")  # nothing was computed here


def test_the_arena_asks_the_server_for_base_and_each_lora(
    chat: ChatService, vllm: FakeVLLM
) -> None:
    box = RemoteEndpoint("box", vllm.url, "color-namer", key=KEY)
    arena = ArenaService(chat, [box])
    *_, result = arena.stream(RED, "What color is the shape?", ["base", "pirate", "box"], GEN)
    assert result.done and not chat.manager.is_loaded("vlm")
    base, pirate, remote = result.columns
    assert [c.adapter for c in result.columns] == ["base", "pirate", "box"]
    assert not base.remote and not pirate.remote and remote.remote  # the VLM's columns first
    for column in result.columns:
        assert column.text == "The shape is red." and not column.error
    assert base.tokens == pirate.tokens == USAGE["completion_tokens"]  # asked with usage
    assert "pirate via 127.0.0.1" in pirate.label
    assert sorted(r["model"] for r in vllm.requests) == sorted([BASE, "pirate", "color-namer"])
    assert "2 requests to the remote VLM + 1 remote" in result.mode


@pytest.mark.parametrize("shape", ["nested", "flat"])
def test_a_vllm_error_body_names_the_servers_message(
    chat: ChatService, vllm: FakeVLLM, shape: str
) -> None:
    vllm.error_shape = shape
    too_long = GenerationSettings(max_new_tokens=4096, greedy=True)
    with pytest.raises(RemoteError, match="answered 400") as err:
        ask(chat, "pirate", too_long)
    assert "maximum context length is 2048 tokens" in str(err.value)
    assert "is too large: 4096" in str(err.value)
    # the arena puts the same reason in the column, and the other columns go on
    arena = ArenaService(chat)
    *_, result = arena.stream(RED, "Hi", ["base", "pirate"], too_long)
    assert all("maximum context length is 2048" in c.error for c in result.columns)


def test_other_vllm_errors_say_what_the_server_said(
    chat: ChatService, vllm: FakeVLLM, tiny_settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(BadInputError, match=r"no such model: The model `gone` does not exist"):
        ask(chat, "gone")
    vllm.fail_mid_stream = True  # vLLM: data: {"error": ...} after the first chunks, [DONE]
    with pytest.raises(RemoteError, match="Sampler failed: probability tensor contains inf"):
        ask(chat, "pirate")
    from mmdemo.models.manager import ModelManager

    keyless = tiny_settings.replace(home=tmp_path / "other", remote_vlm_url=vllm.url)
    with pytest.raises(RemoteError, match="answered 401") as err:
        ask(ChatService.standalone(ModelManager(keyless)), "pirate")
    assert err.value.fix == "check the API key"
