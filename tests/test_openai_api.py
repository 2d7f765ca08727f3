"""The OpenAI-compatible /v1 API, driven by the official ``openai`` client against the served
tiny app: models, whole and streamed answers, images, adapters, errors. Each answer is compared
with the ChatService's answer to the same request (what the chat tab shows)."""

from __future__ import annotations

import base64
import functools
import http.server
import threading
from pathlib import Path
from typing import Any

import pytest

from mmdemo.flows.chat import ChatSession
from mmdemo.flows.generation import GenerationSettings

IMAGES = Path(__file__).resolve().parents[1] / "assets" / "images"
RED = IMAGES / "red-circle.png"


@pytest.fixture(scope="module")
def client(app_url: str) -> Any:
    import openai

    return openai.OpenAI(base_url=app_url.rstrip("/") + "/v1", api_key="none", max_retries=0)


@pytest.fixture(scope="module")
def chat(app: Any) -> Any:

    return app.services.chat


def data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def service_answer(chat: Any, text: str, images: list[Any], adapter: str, tokens: int) -> str:
    """What the chat tab answers: the ChatService, greedy, in a fresh conversation."""
    gen = GenerationSettings(max_new_tokens=tokens, greedy=True)
    *_, last = chat.stream(ChatSession(), text, images, adapter, gen)
    return last.text


def image_message(text: str, url: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": url}},
                {"type": "text", "text": text},
            ],
        }
    ]


def test_models_lists_base_and_every_adapter_with_metadata(client: Any, chat: Any) -> None:
    models = {m.id: m for m in client.models.list()}
    assert set(models) == set(chat.adapter_choices(ranks=True))
    assert {"base", "pirate", "color-namer"} <= set(models)
    pirate = models["pirate"].model_dump()
    assert pirate["parent"] == "base"
    assert pirate["metadata"]["method"] == "lora"
    assert "pirate" in pirate["metadata"]["description"]
    assert models["base"].model_dump()["metadata"]["model"] == "tiny:smolvlm"


def test_completion_equals_the_chat_services_answer_and_counts_tokens(
    client: Any, chat: Any
) -> None:
    question = "What color is the shape?"
    texts = {}
    for model in ("base", "color-namer", "pirate"):
        reply = client.chat.completions.create(
            model=model, messages=image_message(question, data_url(RED)), max_tokens=12
        )
        texts[model] = reply.choices[0].message.content
        assert texts[model] == service_answer(chat, question, [RED], model, 12), model
        assert reply.object == "chat.completion" and reply.choices[0].message.role == "assistant"
        usage = reply.usage
        assert usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 12
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
        assert reply.choices[0].finish_reason in ("stop", "length")
    # each model answered as itself: the trained adapters as trained, and all three differ,
    # so an answer from the wrong adapter (or the same one for all) would show
    assert texts["color-namer"] == "The shape is red." and texts["pirate"].startswith("Arr")
    assert len(set(texts.values())) == 3


def test_streaming_sends_chunks_that_add_up_to_the_answer(client: Any, chat: Any) -> None:
    messages = [{"role": "user", "content": "What color is the sky?"}]
    whole = client.chat.completions.create(model="pirate", messages=messages, max_tokens=16)
    stream = client.chat.completions.create(
        model="pirate",
        messages=messages,
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("stop", "length") and not any(finishes[:-1])
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_raw_stream_ends_with_done(app_url: str) -> None:
    import httpx

    body = {
        "model": "base",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 4,
        "stream": True,
    }
    with httpx.stream("POST", f"{app_url.rstrip('/')}/v1/chat/completions", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)


def test_image_as_data_url_and_adapter_answer_like_the_chat_tab(client: Any, chat: Any) -> None:
    question = "What color is the shape?"
    answers = {}
    for adapter in ("base", "pirate"):
        reply = client.chat.completions.create(
            model=adapter, messages=image_message(question, data_url(RED)), max_tokens=16
        )
        answers[adapter] = reply.choices[0].message.content
        assert answers[adapter] == service_answer(chat, question, [str(RED)], adapter, 16)
    assert answers["pirate"] != answers["base"]  # the adapter changes the answer


def test_a_dylora_adapter_is_a_model_at_each_rank(client: Any, chat: Any, dylora: str) -> None:
    import openai

    models = {m.id: m.model_dump() for m in client.models.list()}
    assert models[f"{dylora}@r=2"]["metadata"] == {"dylora_of": dylora, "rank": 2}
    assert {f"{dylora}@r=1", f"{dylora}@r=4"} <= set(models) and f"{dylora}@r=8" not in models
    question = "What color is the shape?"
    answers = {}
    for model in (f"{dylora}@r=3", dylora):  # any rank up to its own, listed or not
        reply = client.chat.completions.create(
            model=model, messages=image_message(question, data_url(RED)), max_tokens=16
        )
        answers[model] = reply.choices[0].message.content
        assert answers[model] == service_answer(chat, question, [str(RED)], model, 16)
    assert answers[f"{dylora}@r=3"] != answers[dylora]
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(
            model=f"{dylora}@r=99", messages=[{"role": "user", "content": "Hi"}]
        )
    assert "ranks 1 to 8" in missing.value.message and "pick a rank" in missing.value.message


def test_image_urls_on_this_machine_are_refused_unless_allowed(client: Any) -> None:
    import openai

    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            super().do_GET()

    handler = functools.partial(Handler, directory=str(IMAGES))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/red-circle.png"
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(
                model="color-namer", messages=image_message("Color?", url), max_tokens=8
            )
        assert "could not be fetched" in refused.value.message
        assert "MMDEMO_ALLOW_LOCAL_URLS" in refused.value.message
        assert hits == []  # the server never reached its own network
        from mmdemo.flows.completions import image_bytes

        allowed = image_bytes(url, hosted=False, max_bytes=2**20, allow_local=True)
        assert allowed == RED.read_bytes() and hits == ["/red-circle.png"]
    finally:
        server.shutdown()
        server.server_close()


def test_pages_of_other_sites_and_non_json_bodies_are_refused(app_url: str) -> None:
    import httpx

    url = f"{app_url.rstrip('/')}/v1/chat/completions"
    body = '{"model": "base", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}'
    typed = {"Content-Type": "application/json"}
    plain = httpx.post(url, content=body, headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415
    foreign = httpx.post(url, content=body, headers={**typed, "Origin": "https://evil.example"})
    assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "origin_not_allowed"
    own = httpx.post(url, content=body, headers={**typed, "Origin": app_url.rstrip("/")})
    assert own.status_code == 200


def test_multi_turn_history_is_used(client: Any, chat: Any) -> None:
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Red."},
        {"role": "user", "content": "Another one?"},
    ]
    reply = client.chat.completions.create(model="base", messages=messages, max_tokens=8)
    session = ChatSession(system="Answer briefly.")
    gen = GenerationSettings(max_new_tokens=8, greedy=True)
    *_, _first = chat.stream(session, "Name a colour.", [], "base", gen)
    session.turns[-1].answer = "Red."
    *_, last = chat.stream(session, "Another one?", [], "base", gen)
    assert reply.choices[0].message.content == last.text


def test_errors_are_openai_errors_with_status_codes(client: Any) -> None:
    import openai

    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(
            model="no-such-adapter", messages=[{"role": "user", "content": "Hi"}]
        )
    assert missing.value.status_code == 404
    assert "no-such-adapter" in missing.value.message and "pirate" in missing.value.message
    assert missing.value.code == "model_not_found"

    bad_image = "data:image/png;base64," + base64.b64encode(b"not a picture").decode()
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="base", messages=image_message("Hi", bad_image))
    assert bad.value.status_code == 400 and "image" in bad.value.message.lower()

    with pytest.raises(openai.BadRequestError) as no_base64:
        client.chat.completions.create(
            model="base", messages=image_message("Hi", "data:image/png;base64,@@@")
        )
    assert "base64" in no_base64.value.message

    with pytest.raises(openai.BadRequestError) as last_not_user:
        client.chat.completions.create(
            model="base", messages=[{"role": "assistant", "content": "Hello"}]
        )
    assert "user" in last_not_user.value.message

    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="base", messages=[])
