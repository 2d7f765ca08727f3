"""Limits a client cannot dodge on a hosted server: request budgets keyed on the client's
address (not on a session hash it picks, nor on a header it forges), a server-wide cap,
every model event classified where it is wired, and what visitors share left alone."""

from __future__ import annotations

import json
import re
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mmdemo.config import Settings
from mmdemo.errors import BadInputError, NotAllowedError, RateLimitedError
from mmdemo.flows.limits import RateLimiter, client_address, client_key
from tests.conftest import free_port

SYSTEM_TAB = (("System", "mmdemo.ui.tabs.system.layout", "tab-system"),)


# who the client is ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "client"),
    [
        ("203.0.113.7", "198.51.100.4", "", "203.0.113.7"),  # no proxy trusted: the peer
        ("203.0.113.7", "198.51.100.4", "private", "203.0.113.7"),  # a stranger forging it
        ("10.16.3.80", "198.51.100.4", "private", "198.51.100.4"),  # a Space's proxy
        ("10.16.3.80", "6.6.6.6, 198.51.100.4", "private", "198.51.100.4"),  # forged hop
        ("10.16.3.80", "198.51.100.4, 10.0.0.3", "private", "198.51.100.4"),  # inner hop
        ("10.16.3.80", "", "private", "10.16.3.80"),  # nothing forwarded
        ("192.0.2.10", "198.51.100.4", "192.0.2.10", "198.51.100.4"),  # a named proxy
        ("192.0.2.11", "198.51.100.4", "192.0.2.10", "192.0.2.11"),  # not that proxy
        ("::ffff:10.0.0.1", "198.51.100.4:5555", "private", "198.51.100.4"),
    ],
)
def test_forwarded_addresses_are_believed_only_from_trusted_proxies(
    peer: str, forwarded: str, trusted: str, client: str
) -> None:
    assert client_address(peer, forwarded, trusted) == client
    assert client_address(peer, "", trusted) == client_address(peer, "", "")


def test_an_ipv6_client_cannot_dodge_by_changing_its_interface_id() -> None:
    settings = Settings()

    def request(host: str) -> Any:
        return types.SimpleNamespace(client=types.SimpleNamespace(host=host), headers={})

    one, same_block = request("2001:db8:1:2::10"), request("2001:db8:1:2:aaaa::99")
    other_block = request("2001:db8:1:3::10")
    assert client_key(one, settings) == client_key(same_block, settings)
    assert client_key(one, settings) != client_key(other_block, settings)


# budgets ----------------------------------------------------------------------------------
def test_the_server_wide_cap_refuses_when_all_clients_together_exceed_it() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=100, total_per_minute=4, clock=lambda: now[0])
    limiter.take("client:a")
    limiter.take("client:b")  # half a minute's worth at once: 2
    with pytest.raises(RateLimitedError, match=r"server is busy.*wait 15 s") as err:
        limiter.take("client:c")
    assert "4 heavy requests a minute in all" in (err.value.fix or "")
    now[0] = 15.0
    limiter.take("client:c")  # one came back after 15 s
    per_client = RateLimiter(per_minute=1, total_per_minute=6, clock=lambda: now[0])
    per_client.take("client:a")
    with pytest.raises(RateLimitedError, match="too many requests"):
        per_client.take("client:a")  # refused by its own budget: the server's (3) is not spent
    per_client.take("client:b")
    per_client.take("client:c")


def test_a_stream_chunk_spends_a_fraction_of_a_request() -> None:
    from mmdemo.ui.hosting import STREAM_CHUNKS_PER_REQUEST

    limiter = RateLimiter(per_minute=60, burst=1, clock=lambda: 0.0)
    for _ in range(STREAM_CHUNKS_PER_REQUEST):
        limiter.take("client:a", 1 / STREAM_CHUNKS_PER_REQUEST)
    with pytest.raises(RateLimitedError):
        limiter.take("client:a", 1 / STREAM_CHUNKS_PER_REQUEST)


# every event classified where it is wired -------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The whole app in hosted mode, built (not served)."""
    from mmdemo.ui.app import create_ui

    home = tmp_path_factory.mktemp("classify-home")
    return create_ui(Settings(profile="tiny", device="cpu", home=home, hosted=True))


def value_initialiser(fn: Any) -> bool:
    """Gradio's own event that fills a gr.State from its callable initial value."""
    import gradio as gr

    return bool(fn.outputs) and all(
        isinstance(o, gr.State) and (o.load_event_to_attach or (None,))[0] is fn.fn
        for o in fn.outputs
    )


def test_every_queued_event_is_marked_heavy_or_light_where_it_is_wired(built: Any) -> None:
    from mmdemo.ui.hosting import load_of

    unmarked, marks = [], {}
    for fn in built.fns.values():
        if fn.fn is None or value_initialiser(fn):
            continue
        mark = load_of(fn.fn)
        marks[fn.api_name] = (mark, fn)
        if fn.queue and mark is None:
            unmarked.append(fn.api_name)
        if mark is not None and mark[0] == "light":
            assert len(mark[1]) > 10, f"{fn.api_name}: say why it is light"
        if mark is not None and mark[0] == "heavy":
            assert fn.queue, f"{fn.api_name} is heavy but skips the queue and its limits"
    assert not unmarked, f"queued events neither heavy nor light: {unmarked}"
    must_be_heavy = {
        "video_search": 1.0,
        "listen": "stream",  # the live microphone
        "respond_live": 1.0,
        "voice_audio_llm": 1.0,
        "webcam": "stream",
        "train_dataset": 1.0,
        "train": 1.0,
        "evaluate": 1.0,
        "import_set": 1.0,
        "speak": 1.0,
        "gesture_speak": 1.0,
        "show_adapter": 1.0,  # it warms the adapter on the shared VLM
        "chat": 1.0,
        "arena_blind": 1.0,
        "arena_models": 1.0,
        "arena_vote": 1.0,  # not model work, but each vote spends from the budget
        "adapter_upload": 1.0,
        "how_parts": 1.0,  # it loads the VLM
        "how_method": 1.0,
        "how_contrastive": 1.0,
        "how_fewshot": 1.0,
        "how_audio_units": 1.0,
    }
    for api_name, cost in must_be_heavy.items():
        mark, _ = marks[api_name]
        assert mark is not None and mark[0] == "heavy", api_name
        assert mark[1] < 1.0 if cost == "stream" else mark[1] == cost, (api_name, mark)
    # evaluation waits for a job: in the queue, one at a time, tab and API alike
    for api_name in ("evaluate", "evaluate_1"):
        _, fn = marks[api_name]
        assert fn.queue and fn.concurrency_limit == 1 and fn.concurrency_id == "evaluate"


def test_gradio_deletes_old_uploads(built: Any, tmp_path: Path) -> None:
    from mmdemo.ui.app import create_ui

    assert built.delete_cache == (3600, 3600)  # hosted: hourly, files older than an hour
    local = Settings(profile="tiny", device="cpu", home=tmp_path)
    assert create_ui(local, tabs=SYSTEM_TAB).delete_cache is None
    told = local.replace(upload_cache_cleanup="60,600")
    assert create_ui(told, tabs=SYSTEM_TAB).delete_cache == (60, 600)


# served: raw HTTP, fresh sessions, forged headers -----------------------------------------
@pytest.fixture
def serve(tiny_settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start a hosted app with the System tab only (its /load_model is heavy and refused
    when hosted, so calls are quick and load nothing); closed after the test."""
    from mmdemo.ui.app import launch

    started: list[Any] = []

    def start(environ: dict[str, str], tabs: Any = SYSTEM_TAB, **changes: Any) -> Any:
        home = tmp_path / f"home-{len(started)}"
        (home / "models").mkdir(parents=True)
        (home / "models" / "tiny").symlink_to(tiny_settings.models_dir / "tiny")
        settings = Settings.load(
            environ=environ, profile="tiny", device="cpu", home=home, **changes
        )
        app = launch(
            settings,
            tabs=tabs,
            prevent_thread_lock=True,
            server_name="127.0.0.1",
            server_port=free_port(),
            quiet=True,
        )
        started.append(app)
        return app

    yield start
    for app in started:
        app.close()


def call(url: str, api: str, data: list, session: str | None = None, ip: str = "") -> str:
    """POST /gradio_api/call/<api> (with a session hash of its own), then read the result:
    the error message, or "" when it succeeded."""
    headers = {"X-Forwarded-For": ip} if ip else {}
    body: dict[str, Any] = {"data": data}
    if session:
        body["session_hash"] = session
    event = httpx.post(f"{url}/gradio_api/call/{api}", json=body, headers=headers, timeout=30)
    event_id = event.json()["event_id"]
    text = httpx.get(f"{url}/gradio_api/call/{api}/{event_id}", headers=headers, timeout=60).text
    if "event: error" not in text:
        return ""
    return json.loads(text.split("data:", 1)[1].strip())["error"]


def join(url: str, fn_index: int, data: list, session: str) -> str:
    """What a browser does: POST /gradio_api/queue/join, then read the session's stream."""
    body = {"data": data, "fn_index": fn_index, "session_hash": session}
    assert httpx.post(f"{url}/gradio_api/queue/join", json=body, timeout=30).status_code == 200
    with httpx.stream(
        "GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}, timeout=60
    ) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    return "" if msg.get("success") else str(msg["output"].get("error"))
    raise AssertionError("the event never completed")


def fresh() -> str:
    return uuid.uuid4().hex[:11]


REFUSED = "loading models by hand is turned off"  # the call got through the budget
LIMITED = "too many requests, wait"


def test_new_sessions_private_events_and_forged_headers_share_one_budget(serve: Any) -> None:
    app = serve({"MMDEMO_HOST": "0.0.0.0"}, rate_limit=2)  # hosted by its address alone
    url = app.demo.local_url.rstrip("/")
    assert app.settings.trusted_proxies == ""
    assert REFUSED in call(url, "load_model", ["clip"], session=fresh())
    assert REFUSED in call(url, "load_model", ["clip"], session=fresh())
    # every further call is refused, whatever session hash or forwarded address it brings
    assert LIMITED in call(url, "load_model", ["clip"], session=fresh())
    assert LIMITED in call(url, "load_model", ["clip"], session=fresh(), ip="198.51.100.77")
    private = next(i for i, fn in app.demo.fns.items() if fn.api_name == "load")
    assert app.demo.fns[private].api_visibility == "private"
    assert LIMITED in join(url, private, ["clip"], session=fresh())
    # /v1 keys its budget on the same address: a new bearer string is no new budget
    for bearer in ("one", "two"):
        answer = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {bearer}"})
        assert answer.status_code == 429 and LIMITED in answer.json()["error"]["message"]


def test_on_a_space_each_forwarded_client_has_its_own_budget(serve: Any) -> None:
    app = serve({"SPACE_ID": "someone/mmdemo"}, rate_limit=2)
    url = app.demo.local_url.rstrip("/")
    for _ in range(2):
        assert REFUSED in call(url, "load_model", ["clip"], session=fresh(), ip="198.51.100.1")
    assert LIMITED in call(url, "load_model", ["clip"], session=fresh(), ip="198.51.100.1")
    # a forged left-most hop changes nothing: the proxy's own entry is the right-most one
    forged = "203.0.113.50, 198.51.100.1"
    assert LIMITED in call(url, "load_model", ["clip"], session=fresh(), ip=forged)
    assert REFUSED in call(url, "load_model", ["clip"], session=fresh(), ip="198.51.100.2")
    v1 = httpx.get(f"{url}/v1/models", headers={"X-Forwarded-For": "198.51.100.3"})
    assert v1.status_code == 200
    spent = httpx.get(f"{url}/v1/models", headers={"X-Forwarded-For": "198.51.100.1"})
    assert spent.status_code == 429


def test_many_addresses_together_meet_the_server_wide_cap(serve: Any) -> None:
    app = serve({"SPACE_ID": "someone/mmdemo"}, rate_limit=100, rate_limit_total=2)
    url = app.demo.local_url.rstrip("/")
    assert REFUSED in call(url, "load_model", ["clip"], ip="198.51.100.10")
    busy = call(url, "load_model", ["clip"], ip="198.51.100.11")
    assert "server is busy: too many requests from all visitors" in busy


# training runs belong to their session ----------------------------------------------------
def test_training_runs_have_random_ids_and_only_their_session_sees_them(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    app = serve(
        {"SPACE_ID": "someone/mmdemo", "MMDEMO_ALLOW_TRAINING": "true"},
        tabs=(("Fine-tune", "mmdemo.ui.tabs.train.layout", "tab-train"),),
        rate_limit=100,
    )
    service = app.services.train
    monkeypatch.setattr(service, "_ensure_worker", lambda: None)  # runs stay queued
    mine, other = (
        Client(app.demo.local_url, verbose=False),
        Client(app.demo.local_url, verbose=False),
    )
    first = mine.predict(api_name="/train")["id"]
    second = mine.predict(api_name="/train")["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first != second
    assert mine.predict(first, api_name="/train_status")["state"] == "queued"
    for api in ("/train_status", "/train_stop"):
        with pytest.raises(AppError, match=f"no training run with id '{first}'"):
            other.predict(first, api_name=api)
    assert service.status(first, mine.session_hash)["state"] == "queued"  # not stopped
    assert mine.predict(first, api_name="/train_stop")["state"] == "stopped"
    local = service.__class__(app.settings.replace(hosted=False))
    monkeypatch.setattr(local, "_ensure_worker", lambda: None)
    run = local.submit({"steps": 1}, owner="someone")
    assert local.status(run)["state"] == "queued"  # local mode: the id is enough (the CLI)


# blind votes belong to their session and spend from its budget -----------------------------
ARENA_TAB = (("Arena", "mmdemo.ui.tabs.arena.layout", "tab-arena"),)


def test_hosted_votes_are_rate_limited_and_one_per_session_per_comparison(serve: Any) -> None:
    from gradio_client import Client, handle_file

    app = serve({"SPACE_ID": "someone/mmdemo"}, tabs=ARENA_TAB, rate_limit=100)
    url = app.demo.local_url.rstrip("/")
    mine, other = Client(url, verbose=False), Client(url, verbose=False)
    image = handle_file(str(Path(__file__).parents[1] / "assets/images/red-circle.png"))
    blind = mine.predict(image, "What colour?", ["base", "pirate"], api_name="/arena_blind")
    comparison = blind["comparison_id"]
    with pytest.raises(Exception, match="no open comparison"):
        other.predict(comparison, "A", api_name="/arena_vote")  # not its comparison
    assert mine.predict(comparison, "B", api_name="/arena_vote")["winner"] == "B"
    with pytest.raises(Exception, match="already voted"):
        mine.predict(comparison, "A", api_name="/arena_vote")
    assert len(app.services.votes.votes()) == 1
    leaderboard = mine.predict("", False, api_name="/leaderboard")
    assert leaderboard["boards"][0]["votes"] == 1
    # votes spend from the client's budget like model work: forged ones too
    limited = serve({"SPACE_ID": "someone/mmdemo"}, tabs=ARENA_TAB, rate_limit=2)
    url = limited.demo.local_url.rstrip("/")
    forged = [uuid.uuid4().hex, "A"]
    for _ in range(2):
        assert "no open comparison" in call(url, "arena_vote", forged, fresh(), "198.51.100.9")
    assert LIMITED in call(url, "arena_vote", forged, fresh(), "198.51.100.9")


# what every visitor shares ----------------------------------------------------------------
def taught_set(home: Path, name: str) -> None:
    """A taught-gesture set with one gesture, written as the app keeps it."""
    rng = np.random.default_rng(0)
    examples = rng.uniform(-1, 1, size=(5, 21, 3)).round(4).tolist()
    path = home / "gestures" / "custom.json"
    path.parent.mkdir(parents=True)
    body = {"format": "mmdemo-gestures", "version": 1, "gestures": []}
    body["gestures"].append({"name": name, "examples": examples})
    path.write_text(json.dumps(body), encoding="utf-8")


def test_hosted_visitors_cannot_overwrite_import_or_add_taught_gestures(tmp_path: Path) -> None:
    from mmdemo.flows.gestures.service import GestureService

    taught_set(tmp_path, "Peace Out")
    before = (tmp_path / "gestures" / "custom.json").read_bytes()
    hosted = GestureService(None, tmp_path, hosted=True, allow_training=False)
    for name in ("Peace Out", "peace  out", " PEACE OUT "):
        for replace in (True, False):
            with pytest.raises(NotAllowedError, match="replacing a shared taught gesture"):
                hosted.teach(name, [], replace=replace)
    with pytest.raises(NotAllowedError, match="teaching a new gesture is turned off"):
        hosted.teach("wave hello", [])
    upload = tmp_path / "set.json"
    upload.write_text(before.decode().replace("Peace Out", "Evil Twin"), encoding="utf-8")
    with pytest.raises(NotAllowedError, match="importing gestures"):
        hosted.import_set(upload)
    assert (tmp_path / "gestures" / "custom.json").read_bytes() == before
    # where the operator allows training, a new name may be taught (it gets to the examples)
    allowed = GestureService(None, tmp_path, hosted=True, allow_training=True)
    with pytest.raises(BadInputError, match="0 example"):
        allowed.teach("wave hello", [])
    with pytest.raises(NotAllowedError, match="replacing"):
        allowed.teach("peace out", [], replace=True)


def test_refused_uploads_are_not_copied_anywhere(tmp_path: Path) -> None:
    from mmdemo.ui.tabs.chat.api import install_upload
    from mmdemo.ui.tabs.train.actions import UPLOAD, TrainActions

    hosted = Settings(home=tmp_path / "home", hosted=True, allow_training=False)
    files = [tmp_path / "adapter_config.json", tmp_path / "adapter_model.safetensors"]
    for f in files:
        f.write_text("{}")
    scratch = tmp_path / "session"
    scratch.mkdir()
    chat = types.SimpleNamespace(settings=hosted)
    with pytest.raises(NotAllowedError, match="adding an adapter is turned off"):
        install_upload(chat, [str(f) for f in files], "mine", scratch)  # type: ignore[arg-type]
    assert list(scratch.iterdir()) == []
    act = TrainActions(hosted, service=None, current_model=lambda: "")  # type: ignore[arg-type]
    knobs = ("vqa", "language", 1, 1, 0.0, 8, 0, 1.0, "parallel", "")
    with pytest.raises(NotAllowedError, match="training is turned off"):
        act.config_of("", "lora", UPLOAD, [str(f) for f in files], "", *knobs)
    assert not hosted.runs_dir.exists()
