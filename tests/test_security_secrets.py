"""Secrets stay with the app: a training job's spec.json and environment hold no key or
password, and a remote server's URL never shows its login or key (labels, errors, reprs)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mmdemo.config import Settings
from mmdemo.errors import SettingsError
from mmdemo.finetune.config import TrainConfig
from mmdemo.finetune.job import job_environment
from mmdemo.flows.remote import RemoteClient, RemoteEndpoint, RemoteError, parse_remotes
from mmdemo.redact import redact_text, redact_url

SECRET = "S3CRET"  # every secret below contains it; nothing a job or a user sees may
SECRET_ENV = {
    "MMDEMO_API_KEY": f"sk-{SECRET}-api",
    "MMDEMO_AUTH_PASSWORD": f"pw-{SECRET}-login",
    "MMDEMO_REMOTE_VLM_KEY": f"sk-{SECRET}-remote",
    "MMDEMO_REMOTE_VLM_URL": f"https://bob:{SECRET}@gpu.example/v1",
    "OPENAI_API_KEY": f"sk-{SECRET}-openai",
    "ANTHROPIC_API_KEY": f"sk-{SECRET}-anthropic",
    "GEMINI_API_KEY": f"{SECRET}-gemini",
    "HF_TOKEN": f"hf_{SECRET}",
    "HUGGING_FACE_HUB_TOKEN": f"hf_{SECRET}_old",
    "AWS_SECRET_ACCESS_KEY": f"{SECRET}-aws",
    "HF_HUB_SECRET_THING": f"{SECRET}-prefixed",  # kept prefix, secret-looking name
}
# the child process writes the environment it was given, then exits
DUMP_ENV = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"


def secret_settings(settings: Settings, **changes: Any) -> Settings:
    return settings.replace(
        auth_user="admin",
        auth_password=f"pw-{SECRET}-login",
        api_key=f"sk-{SECRET}-api",
        remote_vlm_url=f"https://bob:{SECRET}@gpu.example/v1",
        remote_vlm_key=f"sk-{SECRET}-remote",
        arena_remotes=f"box=base@https://eve:{SECRET}@box.example/v1@BOX_KEY",
        **changes,
    )


def test_a_training_run_gets_no_secret_in_its_spec_or_its_environment(
    isolated_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from mmdemo.flows.train import TrainService

    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    seen = tmp_path / "job-env.json"
    real_popen = subprocess.Popen

    def popen(cmd: list[str], **kwargs: Any) -> subprocess.Popen:
        assert cmd[1:4] == ["-m", "mmdemo", "train"]  # the job it would start
        return real_popen([sys.executable, "-c", DUMP_ENV, str(seen)], **kwargs)

    monkeypatch.setattr(subprocess, "Popen", popen)
    settings = secret_settings(isolated_settings, offline=True)
    service = TrainService(settings, threads=1)
    run_id = service.submit(TrainConfig(name="no-secrets", steps=1))
    service.wait(run_id, timeout=120)

    spec_text = (settings.runs_dir / run_id / "spec.json").read_text(encoding="utf-8")
    assert SECRET not in spec_text
    spec = json.loads(spec_text)
    assert spec["settings"]["home"] == str(settings.home)  # what the job needs is there
    assert spec["settings"]["profile"] == "tiny" and spec["config"]["name"] == "no-secrets"
    assert Settings(**spec["settings"]).auth_user == ""  # the job's settings still load

    env = json.loads(seen.read_text(encoding="utf-8"))
    leaked = sorted(k for k, v in env.items() if SECRET in v)
    assert leaked == []
    assert env["PATH"] and env["CUDA_VISIBLE_DEVICES"] == "0" and env["MMDEMO_TRAIN_THREADS"]
    assert not [k for k in env if k.startswith("MMDEMO_") and k != "MMDEMO_TRAIN_THREADS"]


def test_a_job_keeps_what_python_torch_and_the_hub_need_and_the_token_only_online() -> None:
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/home/user",
        "LC_ALL": "C.UTF-8",
        "CUDA_VISIBLE_DEVICES": "1",
        "HF_HOME": "/data/hf",
        "HF_HUB_OFFLINE": "0",
        "OMP_NUM_THREADS": "4",
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
        **SECRET_ENV,
    }
    online = job_environment(environ, Settings())
    kept = {
        "PATH": "/usr/bin",
        "HOME": "/home/user",
        "LC_ALL": "C.UTF-8",
        "CUDA_VISIBLE_DEVICES": "1",
        "HF_HOME": "/data/hf",
        "HF_HUB_OFFLINE": "0",
        "OMP_NUM_THREADS": "4",
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
        # a job downloads its base model when it is not cached yet (gated ones need it)
        "HF_TOKEN": f"hf_{SECRET}",
        "HUGGING_FACE_HUB_TOKEN": f"hf_{SECRET}_old",
    }
    assert online == kept
    offline = job_environment(environ, Settings(offline=True))
    assert offline == {k: v for k, v in kept.items() if "TOKEN" not in k}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://bob:S3CRET@gpu.example/v1", "https://***@gpu.example/v1"),
        ("http://bob@10.0.0.2:8000/v1", "http://***@10.0.0.2:8000/v1"),
        ("https://:S3CRET@gpu.example:443/v1/", "https://***@gpu.example:443/v1/"),
        ("http://u:S3CRET@[::1]:8000/v1", "http://***@[::1]:8000/v1"),
        ("https://api.example/v1?key=S3CRET&region=eu", "https://api.example/v1?key=***&region=eu"),
        ("https://api.example/v1?api_token=S3CRET", "https://api.example/v1?api_token=***"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("https://api.openai.com/v1", "https://api.openai.com/v1"),
        ("http://u:S3CRET@[broken/v1", "http://***@[broken/v1"),  # not parseable
    ],
)
def test_a_url_is_shown_without_its_login_or_key(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_urls_inside_a_text_are_redacted() -> None:
    text = "GET 'https://bob:S3CRET@gpu.example/v1/models' failed; see http://docs.example/x"
    assert redact_text(text) == (
        "GET 'https://***@gpu.example/v1/models' failed; see http://docs.example/x"
    )


def test_an_endpoint_repr_hides_the_key_and_the_login() -> None:
    endpoint = RemoteEndpoint("box", "https://bob:S3CRET@gpu.example/v1", "m", "", "sk-S3CRET")
    shown = repr(endpoint)
    assert SECRET not in shown and "bob" not in shown
    assert "gpu.example/v1" in shown and "key='***'" in shown
    assert endpoint.api_key() == "sk-S3CRET"  # still sent to the server


def test_settings_and_their_errors_hide_remote_logins() -> None:
    settings = secret_settings(Settings())
    assert SECRET not in repr(settings)
    with pytest.raises(SettingsError) as bad:
        Settings(remote_vlm_url=f"ftp://bob:{SECRET}@gpu.example/v1")
    assert SECRET not in str(bad.value) and "gpu.example" in str(bad.value)
    with pytest.raises(SettingsError) as entry:
        parse_remotes(f"box@https://bob:{SECRET}@gpu.example/v1")
    assert SECRET not in str(entry.value) and "gpu.example" in str(entry.value)


def test_an_unreachable_server_error_names_it_without_its_login() -> None:
    # port 9 (discard) refuses at once: the client's own error is a connection error
    client = RemoteClient(RemoteEndpoint("box", f"http://bob:{SECRET}@127.0.0.1:9/v1", "m"))
    with pytest.raises(RemoteError) as caught:
        client.models()
    message = str(caught.value)
    assert "box (http://***@127.0.0.1:9/v1) cannot be reached" in message
    assert SECRET not in message and "bob" not in message
    logged = "".join(traceback.format_exception(caught.value))  # what log.exception writes
    assert SECRET not in logged


def test_arena_columns_show_no_login_in_label_or_error(
    shared_manager: Any, isolated_settings
) -> None:
    from mmdemo.flows.arena import ArenaService
    from mmdemo.flows.chat import ChatService
    from mmdemo.flows.generation import GenerationSettings
    from mmdemo.models.adapters import AdapterStore

    box = RemoteEndpoint("box", f"http://bob:{SECRET}@127.0.0.1:9/v1", "served-model")
    arena = ArenaService(ChatService(shared_manager, AdapterStore(isolated_settings)), [box])
    red = Path(__file__).resolve().parents[1] / "assets" / "images" / "red-circle.png"
    *_, result = arena.stream(red, "Hi", ["box"], GenerationSettings(max_new_tokens=4))
    (column,) = result.columns
    assert column.remote and column.error and not column.text
    assert column.label == "served-model via 127.0.0.1:9"
    assert SECRET not in column.error and "bob" not in column.error
    assert "127.0.0.1:9" in column.error


def test_the_chat_tab_names_the_remote_vlm_without_its_login(isolated_settings) -> None:
    from mmdemo.ui.app import create_ui

    settings = isolated_settings.replace(remote_vlm_url=f"http://bob:{SECRET}@127.0.0.1:9/v1")
    demo = create_ui(settings, tabs=(("Visual chat", "mmdemo.ui.tabs.chat.layout", "tab-chat"),))
    show = next(f for f in demo.fns.values() if f.name == "show_adapter")
    shown = show.fn("base")
    assert shown == "**base**, answered by the remote VLM at http://***@127.0.0.1:9/v1"


class Server(BaseHTTPRequestHandler):
    """An OpenAI-compatible stand-in: lists one model; under /deny it answers 401 with a
    message that quotes the URL it was asked with (as some proxies do)."""

    def do_GET(self) -> None:
        if self.path.startswith("/deny"):
            status = 401
            url = f"http://bob:{SECRET}@{self.headers['Host']}{self.path}"
            body = {"error": {"message": f"no access for {url}"}}
        else:
            status = 200
            body = {"object": "list", "data": [{"id": "m", "object": "model", "created": 0}]}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Server)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


def test_request_logs_and_refusals_show_no_login(
    server: str, caplog: pytest.LogCaptureFixture
) -> None:
    from mmdemo.logs import quiet_library_logs

    quiet_library_logs()  # what the app and the CLI run first
    caplog.set_level(logging.DEBUG)
    ok = RemoteClient(RemoteEndpoint("box", f"http://bob:{SECRET}@{server}/v1", "m"))
    assert [m["id"] for m in ok.models()] == ["m"]
    assert f"GET http://***@{server}/v1/models" in caplog.text  # the client logged it
    denied = RemoteClient(RemoteEndpoint("box", f"http://bob:{SECRET}@{server}/deny/v1", "m"))
    with pytest.raises(RemoteError) as caught:
        denied.models()
    assert "answered 401: no access for http://***@" in str(caught.value)
    assert caught.value.fix == "check the API key"
    assert SECRET not in str(caught.value) and SECRET not in caplog.text
