"""Requests from elsewhere on ``/v1``: a local image URL, pages on other sites, oversized
bodies, conversations and image counts, API keys, and clients that hang up before the answer
is done (the URL checks themselves: test_security_urls.py).

The /v1 router runs on its own uvicorn server over the tiny VLM.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mmdemo.config import Settings
from mmdemo.errors import BadInputError
from mmdemo.flows.chat import MAX_IMAGES_IN_CONTEXT, ChatService, ChatSession
from mmdemo.flows.completions import complete, to_session
from mmdemo.flows.generation import GenerationSettings
from mmdemo.flows.limits import RateLimiter
from tests.url_helpers import ImageServer

IMAGES = Path(__file__).resolve().parents[1] / "assets" / "images"
RED = IMAGES / "red-circle.png"
GENERIC = "the image URL could not be fetched"


# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def internal() -> Iterator[ImageServer]:
    """A server standing for this machine's private network (127.0.0.1)."""
    server = ImageServer("127.0.0.1")
    yield server
    server.close()


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def user(text: str, *urls: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    return {"role": "user", "content": [*parts, {"type": "text", "text": text}]}


@pytest.fixture(scope="module")
def chat(tiny_settings: Settings) -> Iterator[ChatService]:
    """A ChatService of its own over the tiny VLM (its settings are changed per test)."""
    from mmdemo.models.manager import ModelManager

    manager = ModelManager(tiny_settings)
    yield ChatService.standalone(manager)
    manager.unload_all()


@pytest.fixture
def settings_of(chat: ChatService) -> Iterator[Any]:
    """Change the chat's settings for one test; returns the function that does it."""
    before = chat.settings

    def change(**changes: Any) -> Settings:
        chat.settings = before.replace(**changes)
        return chat.settings

    yield change
    chat.settings = before


@contextlib.contextmanager
def serve_v1(chat: ChatService, settings: Settings) -> Iterator[str]:
    """The /v1 router on a uvicorn server of its own; yields its base URL. The socket
    listens before the server thread starts, so no wait is needed."""
    import uvicorn
    from fastapi import FastAPI

    from mmdemo.serve.openai_api import build_router

    app = FastAPI()
    app.include_router(build_router(chat, settings, RateLimiter(0)))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def post(base: str, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{base}/v1/chat/completions", json=body, timeout=120, **kwargs)


ASK = {"model": "base", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}


# -- the /v1 server -------------------------------------------------------------------------------


def test_v1_refuses_a_local_image_url_without_contacting_it(
    chat: ChatService, internal: ImageServer
) -> None:
    body = {"model": "base", "messages": [user("Colour?", internal.url())], "max_tokens": 2}
    with serve_v1(chat, chat.settings) as base:
        reply = post(base, body)
    assert reply.status_code == 400
    assert reply.json()["error"]["message"].startswith(GENERIC)
    assert internal.hits == []


def test_v1_takes_only_json_bodies(chat: ChatService) -> None:
    raw = json.dumps(ASK)
    with serve_v1(chat, chat.settings) as base:
        url = f"{base}/v1/chat/completions"
        for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            reply = httpx.post(url, content=raw, headers={"Content-Type": kind})
            assert reply.status_code == 415, kind
            assert "application/json" in reply.json()["error"]["message"]
        reply = httpx.post(url, content=raw, timeout=120)  # no type at all
        assert reply.status_code == 415
        typed = {"Content-Type": "application/json; charset=utf-8"}
        assert httpx.post(url, content=raw, headers=typed, timeout=120).status_code == 200


def test_v1_refuses_pages_of_other_sites(chat: ChatService) -> None:
    settings = chat.settings.replace(allowed_origins="https://friend.example")
    with serve_v1(chat, settings) as base:
        for origin, status in (
            ("https://evil.example", 403),
            ("null", 403),
            ("http://127.0.0.1:1", 403),  # same host, another port: another origin
            ("https://friend.example", 200),
            (base, 200),  # the server's own origin
        ):
            reply = post(base, ASK, headers={"Origin": origin})
            assert reply.status_code == status, origin
            listed = httpx.get(f"{base}/v1/models", headers={"Origin": origin})
            assert listed.status_code == status, origin
        assert post(base, ASK).status_code == 200  # SDKs and curl send no Origin


def test_v1_refuses_an_oversized_body_declared_or_streamed(chat: ChatService) -> None:
    settings = chat.settings.replace(max_request_mb=1)
    big = {**ASK, "padding": "x" * (2 * 2**20)}

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count itself
        data = json.dumps(big).encode()
        for i in range(0, len(data), 2**16):
            yield data[i : i + 2**16]

    with serve_v1(chat, settings) as base:
        declared = post(base, big)
        assert declared.status_code == 413
        assert "MMDEMO_MAX_REQUEST_MB" in declared.json()["error"]["message"]
        streamed = httpx.post(
            f"{base}/v1/chat/completions",
            content=chunks(),
            headers={"Content-Type": "application/json"},
            timeout=120,
        )
        assert streamed.status_code == 413
        assert post(base, ASK).status_code == 200


def test_v1_api_keys_are_all_accepted_and_nothing_else(chat: ChatService) -> None:
    settings = chat.settings.replace(
        api_key="key-one", auth_user="ann", auth_password="password-two"
    )
    with serve_v1(chat, settings) as base:
        for key, status in (
            ("key-one", 200),
            ("password-two", 200),
            ("key-on", 401),
            ("key-one2", 401),
            (None, 401),
        ):
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            assert httpx.get(f"{base}/v1/models", headers=headers).status_code == status, key


def test_a_client_that_hangs_up_stops_its_non_streamed_answer(chat: ChatService) -> None:
    started, stopped, finished = threading.Event(), threading.Event(), threading.Event()
    seen: list[threading.Event] = []
    real = chat.stream

    def watched(session, text, images=(), adapter=None, gen=None, stop=None, similar=None):
        seen.append(stop)
        try:
            for update in real(session, text, images, adapter, gen, stop, similar):
                if not started.is_set():
                    started.set()
                    # hold the answer open until the server notices the client is gone
                    if stop.wait(timeout=60):
                        stopped.set()
                yield update
        finally:
            finished.set()

    chat.stream = watched  # type: ignore[method-assign]
    try:
        with serve_v1(chat, chat.settings) as base:
            port = int(base.rsplit(":", 1)[1])
            body = json.dumps({**ASK, "max_tokens": 4096}).encode()
            head = (
                "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            with socket.create_connection(("127.0.0.1", port)) as client:
                client.sendall(head + body)
                assert started.wait(timeout=60), "the answer never started"
            # the client is gone; the server must set the stop switch
            assert stopped.wait(timeout=60), "the generation was not told to stop"
            assert finished.wait(timeout=60)
    finally:
        del chat.stream
    assert seen and seen[0].is_set()


# -- sizes of what /v1 decodes ------------------------------------------------------------------


def test_only_the_images_a_prompt_shows_are_decoded(chat: ChatService) -> None:
    broken = "data:image/png;base64,@@@"  # decoding this would fail
    red = data_url(RED.read_bytes())
    old_turns = [
        user("First?", broken, "http://127.0.0.1:9/never-fetched.png"),
        {"role": "assistant", "content": "One."},
        user("Second?", red, red),
        {"role": "assistant", "content": "Two."},
    ]
    session, text, images = to_session(chat, [*old_turns, user("Third?", red, red)], True)
    assert text == "Third?" and len(images) == 2
    shown = [len(t.images) for t in session.turns]
    assert shown == [0, 2] and sum(shown) + len(images) == MAX_IMAGES_IN_CONTEXT
    too_many = [user("Look", *[red] * (MAX_IMAGES_IN_CONTEXT + 1))]
    with pytest.raises(BadInputError, match=f"at most {MAX_IMAGES_IN_CONTEXT}"):
        to_session(chat, too_many, True)


def test_v1_answer_with_many_images_equals_the_chat_tabs(chat: ChatService) -> None:
    red = data_url(RED.read_bytes())
    gen = GenerationSettings(max_new_tokens=6, greedy=True)
    messages = [
        user("A?", red, red, red),
        {"role": "assistant", "content": "A."},
        user("B?", red, red),
    ]
    chunks = list(complete(chat, "base", messages, gen, hosted=True))
    tab = ChatSession()
    *_, first = chat.stream(tab, "A?", [str(RED)] * 3, "base", gen)
    tab.turns[-1].answer = "A."
    *_, answer = chat.stream(tab, "B?", [str(RED)] * 2, "base", gen)
    assert first.metrics is not None and answer.metrics is not None
    assert "".join(c.delta for c in chunks) == answer.text
    assert chunks[-1].prompt_tokens == answer.metrics.prompt_tokens  # the same images shown


def test_the_whole_conversation_is_capped_not_only_the_last_message(
    chat: ChatService, settings_of: Any
) -> None:
    settings_of(max_conversation_chars=1000)
    long = "word " * 150  # 750 characters: each message alone is fine
    messages = [
        {"role": "user", "content": long},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": long},
    ]
    with pytest.raises(BadInputError, match="1,000") as refused:
        to_session(chat, messages, False)
    assert "conversation has 1,502 characters" in str(refused.value)
    assert "new conversation" in refused.value.fix
    with serve_v1(chat, chat.settings) as base:
        reply = post(base, {"model": "base", "messages": messages})
    assert reply.status_code == 400 and "conversation" in reply.json()["error"]["message"]
