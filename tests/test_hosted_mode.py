"""Hosted unless told otherwise: a server strangers can reach (a Space, a share link, a
non-loopback address) runs in hosted mode, says so when it starts, and the Docker image runs
as a user of its own."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import pytest

from mmdemo.config import HOSTED_RATE_LIMIT, HOSTED_TOTAL_RATE_LIMIT, Settings
from mmdemo.errors import SettingsError
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[1]
LOCAL_HINT = "pass --local or MMDEMO_HOSTED=false for local mode"


@pytest.mark.parametrize(
    ("environ", "overrides", "why"),
    [
        ({"MMDEMO_HOST": "0.0.0.0"}, {}, "bound to 0.0.0.0"),
        ({"GRADIO_SERVER_NAME": "0.0.0.0"}, {}, "bound to 0.0.0.0"),  # Docker, a PaaS
        ({}, {"host": "192.168.1.20"}, "bound to 192.168.1.20"),  # serve --host
        ({}, {"host": "::"}, "bound to ::"),
        ({"MMDEMO_SHARE": "true"}, {}, "a public share link"),
        ({}, {"share": True}, "a public share link"),  # serve --share
        ({"SPACE_ID": "someone/mmdemo"}, {}, "on a Hugging Face Space"),
    ],
)
def test_a_server_strangers_can_reach_is_hosted(
    environ: dict[str, str], overrides: dict[str, Any], why: str
) -> None:
    s = Settings.load(environ=environ, **overrides)
    assert s.hosted and why in s.mode_reason and LOCAL_HINT in s.mode_reason
    assert not s.allow_training  # hosted trains only when told to
    assert (s.requests_per_minute, s.total_requests_per_minute) == (
        HOSTED_RATE_LIMIT,
        HOSTED_TOTAL_RATE_LIMIT,
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.5"])
def test_a_loopback_server_is_local(host: str) -> None:
    s = Settings.load(environ={"MMDEMO_HOST": host})
    assert not s.hosted and s.allow_training and "this machine only" in s.mode_reason
    assert s.requests_per_minute == 0 and s.total_requests_per_minute == 0


def test_local_mode_is_kept_when_asked_for() -> None:
    told = Settings.load(environ={"MMDEMO_HOST": "0.0.0.0", "MMDEMO_HOSTED": "false"})
    flag = Settings.load(environ={"GRADIO_SERVER_NAME": "0.0.0.0"}, hosted=False)  # --local
    for s in (told, flag):
        assert not s.hosted and s.allow_training and "set by" in s.mode_reason
    assert Settings.load(environ={}, hosted=True).hosted  # --hosted on a laptop


def test_only_a_space_or_the_operator_names_trusted_proxies(tmp_path: Path) -> None:
    assert Settings.load(environ={"MMDEMO_HOST": "0.0.0.0"}).trusted_proxies == ""
    assert Settings.load(environ={"SPACE_ID": "x/y"}).trusted_proxies == "private"
    mine = {"SPACE_ID": "x/y", "MMDEMO_TRUSTED_PROXIES": "10.1.2.3, 10.9.0.0/16"}
    assert Settings.load(environ=mine).trusted_proxies == "10.1.2.3, 10.9.0.0/16"
    with pytest.raises(SettingsError, match=r"trusted_proxies 'proxy\.example'"):
        Settings.load(environ={"MMDEMO_TRUSTED_PROXIES": "proxy.example"})
    # why the mode is on is worked out, never configured
    assert "set by" not in Settings.load(environ={"MMDEMO_MODE_REASON": "set by me"}).mode_reason
    toml = tmp_path / "mmdemo.toml"
    toml.write_text("mode_reason = 'x'", encoding="utf-8")
    with pytest.raises(SettingsError, match="unknown setting"):
        Settings.load(environ={}, config_file=toml)


def test_upload_cache_cleanup_is_checked() -> None:
    assert Settings(hosted=True).cache_cleanup == (3600, 3600)
    assert Settings().cache_cleanup is None
    assert Settings(upload_cache_cleanup="0,0", hosted=True).cache_cleanup is None
    for bad in ("hourly", "10", "-1,5"):
        with pytest.raises(SettingsError, match="upload_cache_cleanup"):
            Settings(upload_cache_cleanup=bad)


def test_serve_on_a_public_address_starts_hosted(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmdemo.cli import build_parser

    started: list[Settings] = []
    monkeypatch.setattr("mmdemo.ui.app.launch", started.append)
    for env in ("SPACE_ID", "GRADIO_SERVER_NAME", "MMDEMO_HOST", "MMDEMO_HOSTED"):
        monkeypatch.delenv(env, raising=False)
    for argv, hosted in (
        (["serve", "--host", "0.0.0.0"], True),
        (["serve", "--share"], True),
        (["serve", "--host", "0.0.0.0", "--local"], False),
        (["serve"], False),
    ):
        args: argparse.Namespace = build_parser().parse_args(argv)
        assert args.func(args) == 0
        assert started[-1].hosted is hosted, argv


def test_the_start_up_log_says_which_mode_and_why(
    tiny_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmdemo.ui.app import launch

    settings = Settings.load(
        environ={"MMDEMO_HOST": "0.0.0.0"}, profile="tiny", device="cpu", home=tmp_path
    )
    app = launch(
        settings,
        tabs=(("System", "mmdemo.ui.tabs.system.layout", "tab-system"),),
        prevent_thread_lock=True,
        server_name="127.0.0.1",  # this test listens on loopback all the same
        server_port=free_port(),
        quiet=True,
    )
    app.close()
    lines = capsys.readouterr().out.splitlines()
    assert f"hosted mode: on (bound to 0.0.0.0; {LOCAL_HINT})" in lines


def test_the_docker_image_runs_as_a_user_of_its_own() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users, "the Dockerfile has no USER line: the app would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    user = users[-1].split(":")[0]
    assert re.search(rf"useradd\b[^\n]*\b{user}\b", text)
    home = re.search(r"MMDEMO_HOME=(\S+)", text).group(1)  # type: ignore[union-attr]
    chown = re.search(rf"chown -R {user}:{user} ([^\n]+)", text)
    assert chown and any(home.startswith(p) for p in chown.group(1).split()), chown
    assert re.search(rf"ENV HOME=/home/{user}", text)
    # what follows USER must not switch back
    assert text.rfind("USER") > text.rfind("RUN ")
