"""Every file argument must be an upload: an outside caller, over Gradio's REST API, can never
make an endpoint read a file of the server's.

The endpoints with file parameters are read from the running app's own API description, so a
new endpoint is attacked without anyone listing it; ``CASES`` must hold a good request for each
(the test fails on a missing row), and that good request, uploaded properly, must work.
Both a local and a hosted app are attacked.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bad_inputs import mp4_file, png_bytes
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[1]
PIRATE = REPO / "assets" / "adapters" / "pirate"
GESTURES = REPO / "assets" / "images" / "gestures"
META = {"_type": "gradio.FileData"}
FILE = object()  # where a case's file argument goes
# Refusals of a file input that is not an upload: ours, and Gradio's own (no FileData marker,
# a path outside its upload folder, a string where a file object belongs)
FILE_REFUSALS = (
    "uploaded to this server",  # ours
    "'meta' field must",
    "not uploaded by a user",
    "valid dictionary",
    "valid list",
)


def serve(settings: Any) -> Any:
    from mmdemo.ui.app import build_app

    app = build_app(settings)
    app.demo.queue(default_concurrency_limit=settings.concurrency)
    app.launch(
        prevent_thread_lock=True,
        server_name="127.0.0.1",
        server_port=free_port(),
        quiet=True,
        show_error=True,
    )
    return app


@pytest.fixture(scope="module", params=["local", "hosted"])
def served(request: Any, tiny_settings: Any, tmp_path_factory: Any) -> Iterator[Any]:
    """The app with its own data folder, in local or hosted mode (no rate limit here:
    the limits have their own tests)."""
    home = tmp_path_factory.mktemp(f"sec-{request.param}")
    (home / "models").mkdir()
    (home / "models" / "tiny").symlink_to(tiny_settings.models_dir / "tiny")
    hosted = request.param == "hosted"
    budget = 100_000 if hosted else 0
    settings = tiny_settings.replace(
        home=home, hosted=hosted, rate_limit=budget, rate_limit_total=budget
    )
    app = serve(settings)
    # an index for /clip_search to search (made through the service, not an endpoint)
    image = home / "seed.png"
    image.write_bytes(png_bytes(color="blue"))
    app.services.index.add("sec", [str(image)], create=True, copy=True)
    yield app
    app.close()


@pytest.fixture(scope="module")
def media(tmp_path_factory: Any, librivox: list[tuple[Path, str]]) -> dict[str, Path]:
    """Files a user would upload, and the server file and folder an attacker names."""
    root = tmp_path_factory.mktemp("sec-media")
    image = root / "red.png"
    image.write_bytes(png_bytes(color="red"))
    audio = librivox[0][0]  # recorded speech: the voice assistant refuses silence
    secret = root / "server-secret.png"  # a readable picture that nobody uploaded
    secret.write_bytes(png_bytes(color="green"))
    folder = root / "server-folder"
    folder.mkdir()
    (folder / "inside.png").write_bytes(png_bytes())
    dataset = root / "data.zip"
    import zipfile

    line = {"image": "a.png", "question": "What colour is it?", "answer": "red"}
    with zipfile.ZipFile(dataset, "w") as zf:
        zf.writestr("a.png", png_bytes())
        zf.writestr("data.jsonl", "\n".join(json.dumps(line) for _ in range(4)) + "\n")
    return {
        "image": image,
        "audio": audio,
        "video": mp4_file(root / "clip.mp4", 2.0),
        "adapter": Path(shutil.make_archive(str(root / "pirate-upload"), "zip", PIRATE)),
        "hand": GESTURES / "open-palm.png",
        "dataset": dataset,
        "secret": secret,
        "folder": folder,
    }


# endpoint -> (file parameter -> media kind; a good request with FILE where the file goes)
CASES: dict[str, tuple[dict[str, str], Any]] = {
    "adapter_upload": ({"files": "adapter"}, lambda n: [[FILE], f"sec-{n}"]),
    "chat": ({"images": "image"}, lambda n: ["What colour?", [FILE], "base", 4, True]),
    "ground": ({"image": "image"}, lambda n: [FILE, "Where is the red square?", "base", 16]),
    "arena": ({"image": "image"}, lambda n: [FILE, "What colour?", ["base"]]),
    "arena_models": ({"image": "image"}, lambda n: [FILE, "What colour?", ["base"]]),
    "arena_blind": ({"image": "image"}, lambda n: [FILE, "What colour?", ["base", "pirate"]]),
    "clip_add": ({"files": "image"}, lambda n: ["sec", "", [FILE]]),
    "clip_search": ({"query_image": "image"}, lambda n: ["sec", "", FILE, 3, 0.5, None]),
    "clip_classify": ({"image": "image"}, lambda n: [FILE, "red, blue", ""]),
    "voice": (
        {"question_audio": "audio", "image": "image"},
        lambda n: [FILE, FILE, "default", "auto", 1.0, "base"],
    ),
    "voice_audio_llm": ({"question_audio": "audio"}, lambda n: [FILE, "default", 1.0]),
    "gestures": ({"image": "hand"}, lambda n: [FILE]),
    "gestures_video": ({"video": "video"}, lambda n: [FILE, 4, 5]),
    "gesture_teach": ({"example_images": "hand"}, lambda n: [f"sec {n}", [FILE] * 5, False]),
    "video_summary": ({"video": "video"}, lambda n: [FILE]),
    "video_ask": ({"video": "video"}, lambda n: [FILE, "What happens?"]),
    "video_search": ({"video": "video"}, lambda n: [FILE, "a grey frame", 2]),
    "train_dataset": ({"files": "dataset"}, lambda n: [[FILE], "vqa"]),
    "how_image_tokens": ({"image": "image"}, lambda n: [FILE]),
    "how_contrastive": (
        {"images": "image"},
        lambda n: [[FILE, FILE], "a red square\na blue square", False, False, 0],
    ),
    "how_fewshot": (
        {"images": "image"},
        lambda n: [[FILE] * 4, "red, red, blue, blue", "", "1", 1, 0, False],
    ),
    "how_audio_units": (
        {"audio": "audio", "compare_audio": "audio"},
        lambda n: [FILE, 8, 0, FILE],
    ),
}


def file_parameters(app: Any) -> dict[str, list[str]]:
    """Public endpoints -> their file parameters, as Gradio describes them to clients."""
    info = app.demo.get_api_info()["named_endpoints"]
    found: dict[str, list[str]] = {}
    for name, endpoint in info.items():
        for p in endpoint["parameters"]:
            if "filepath" in str(p["python_type"]["type"]):
                found.setdefault(name.strip("/"), []).append(p["parameter_name"])
    return found


def call(app: Any, endpoint: str, data: list[Any]) -> tuple[str, Any]:
    """POST to ``/gradio_api/call/<endpoint>`` as a raw HTTP client: ("complete", output) or
    ("error", message). Each call is its own session, as an outside caller's would be."""
    base = app.demo.local_url.rstrip("/")
    with httpx.Client(timeout=120) as http:
        r = http.post(f"{base}/gradio_api/call/{endpoint}", json={"data": data})
        r.raise_for_status()
        event_id = r.json()["event_id"]
        body = http.get(f"{base}/gradio_api/call/{endpoint}/{event_id}").text
    event, last = "", None
    for line in body.splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            payload = line.split(":", 1)[1].strip()
            last = json.loads(payload) if payload not in ("", "null") else None
            if event in ("complete", "error"):
                return event, last
    return "none", body


def upload(app: Any, path: Path) -> dict[str, Any]:
    """Upload ``path`` as handle_file does; the FileData a client then sends."""
    base = app.demo.local_url.rstrip("/")
    with open(path, "rb") as f:
        r = httpx.post(f"{base}/gradio_api/upload", files={"files": (path.name, f)}, timeout=60)
    r.raise_for_status()
    return {"path": r.json()[0], "orig_name": path.name, "meta": META}


def fill(template: list[Any], params: dict[str, str], order: list[str], values: dict) -> list:
    """The request with each FILE replaced, in parameter order, by ``values[param]``."""
    files = iter([values[p] for p in order if p in params])
    out = []
    for item in template:
        if item is FILE:
            out.append(next(files))
        elif isinstance(item, list) and item and item[0] is FILE:
            value = next(files)
            out.append([value] * len(item))
        else:
            out.append(item)
    return out


def attacks(media: dict[str, Path]) -> dict[str, Any]:
    """The ways an outside caller names a server file: every one must be refused."""
    from mmdemo.ui.gradio_compat import upload_folder

    link_dir = upload_folder() / f"sec-{uuid.uuid4().hex}"
    link_dir.mkdir(parents=True)
    link = link_dir / "innocent.png"
    link.symlink_to(media["secret"])
    return {
        "bare string": str(media["secret"]),
        "path dict": {"path": str(media["secret"])},
        "path dict with orig_name": {"path": str(media["secret"]), "orig_name": "cat.png"},
        "folder": {"path": str(media["folder"])},
        "link out of the upload folder": {"path": str(link)},
        "dotdot out of the upload folder": {
            "path": str(upload_folder() / ".." / media["secret"].relative_to("/"))
        },
        "relative path": {"path": "assets/images/cat.jpg"},
    }


def widget_value(component: Any) -> Any:
    """What the browser would send for a widget left as it is (JSON; None for a computed one)."""
    value = getattr(component, "value", None)
    try:
        json.dumps(value)
    except TypeError:
        return None
    return value


def test_every_file_endpoint_has_a_case(served: Any) -> None:
    found = file_parameters(served)
    assert found, "the app describes no file parameters: the discovery is broken"
    missing = {e: p for e, p in found.items() if e not in CASES or set(p) != set(CASES[e][0])}
    assert not missing, f"add these endpoints' file parameters to CASES: {missing}"


@pytest.mark.parametrize("endpoint", sorted(CASES))
def test_server_files_are_refused_and_uploads_work(
    served: Any, media: dict[str, Path], endpoint: str
) -> None:
    params, template = CASES[endpoint]
    order = file_parameters(served)[endpoint]
    good = {p: upload(served, media[kind]) for p, kind in params.items()}
    mode = "hosted" if served.settings.hosted else "local"
    for target in order:
        for form, bad in attacks(media).items():
            values = {**good, target: bad}
            state, message = call(served, endpoint, fill(template(mode), params, order, values))
            where = f"{endpoint}.{target} given a {form} ({mode})"
            assert state == "error", f"{where} was accepted: {message}"
            text = str(message)
            assert "upload" in text.lower() and "handle_file" in text, f"{where}: {text}"
        # Gradio's own FileData marker does not make a server path an upload either
        values = {**good, target: {"path": str(media["secret"]), "meta": META}}
        state, message = call(served, endpoint, fill(template(mode), params, order, values))
        assert state == "error" and "upload" in str(message).lower(), (endpoint, message)
    state, output = call(served, endpoint, fill(template(mode), params, order, good))
    if mode == "hosted" and state == "error":
        # a hosted server may refuse the action itself (training, shared state), never the file
        assert "uploaded to this server" not in str(output), output
        assert "hosted" in str(output) or "turned off" in str(output), output
    else:
        assert state == "complete", f"{endpoint} refused a proper upload: {output}"


def test_ui_events_refuse_server_files_too(served: Any, media: dict[str, Path]) -> None:
    """The tabs' own events are callable by any client through the queue (that is how the
    browser calls them): a file input there refuses a server path in every form."""
    import gradio as gr

    kinds = (gr.File, gr.Image, gr.Audio, gr.Video, gr.MultimodalTextbox)
    events = [
        (i, fn)
        for i, fn in served.demo.fns.items()
        if fn.fn is not None and any(isinstance(c, kinds) for c in fn.inputs)
    ]
    assert len(events) >= 10, "the file-taking UI events were not found"
    secret = str(media["secret"])
    forms = [secret, {"path": secret}, {"path": secret, "meta": META}]
    base = served.demo.local_url.rstrip("/")
    for index, fn in events:
        slot = next(i for i, c in enumerate(fn.inputs) if isinstance(c, kinds))
        component = fn.inputs[slot]
        for form in forms:
            session = uuid.uuid4().hex
            # every other input holds its widget's own value, so only the file can be refused
            data: list[Any] = [widget_value(c) for c in fn.inputs]
            if isinstance(component, gr.MultimodalTextbox):
                data[slot] = {"text": "hi", "files": [form]}
            elif isinstance(component, gr.Video):
                data[slot] = {"video": form, "subtitles": None}
            elif isinstance(component, gr.File) and component.file_count != "single":
                data[slot] = [form]
            else:
                data[slot] = form
            body = {"data": data, "fn_index": index, "session_hash": session}
            with httpx.Client(timeout=60) as http:
                http.post(f"{base}/gradio_api/queue/join", json=body).raise_for_status()
                stream = http.get(f"{base}/gradio_api/queue/data?session_hash={session}").text
            done = [
                json.loads(line[5:])
                for line in stream.splitlines()
                if line.startswith("data:") and "process_completed" in line
            ]
            assert done, f"event {fn.name} gave no result: {stream[:300]}"
            assert done[-1]["success"] is False, f"event {fn.name} took {form!r}"
            error = str(done[-1].get("output", {}).get("error"))
            assert any(m in error for m in FILE_REFUSALS), f"{fn.name} {form!r}: {error}"


def test_the_upload_check_refuses_what_is_not_a_regular_uploaded_file(tmp_path: Path) -> None:
    import os

    from mmdemo.errors import BadInputError
    from mmdemo.ui.gradio_compat import upload_folder
    from mmdemo.ui.uploads import upload_path

    folder = upload_folder() / f"sec-unit-{uuid.uuid4().hex}"
    folder.mkdir(parents=True)
    good = folder / "ok.png"
    good.write_bytes(png_bytes())
    fifo = folder / "pipe.png"
    os.mkfifo(fifo)
    outside = tmp_path / "outside.png"
    outside.write_bytes(png_bytes())
    (folder / "inner-link.png").symlink_to(good)  # a link that stays inside is still an upload
    assert upload_path({"path": str(good)}, "image") == str(good.resolve())
    assert upload_path(str(folder / "inner-link.png"), "image") == str(good.resolve())
    assert upload_path(None, "image") is None
    for bad, why in (
        (str(fifo), "not a regular file"),
        (str(folder), "is a folder"),
        (str(outside), "not an upload"),
        (str(folder / "gone.png"), "does not exist"),
        ("ok.png", "not the path of an upload"),
        (str(good) + "\x00.png", "NUL"),
        ({"url": "http://169.254.169.254/latest"}, "a URL was sent"),
        (42, "got int"),
    ):
        with pytest.raises(BadInputError, match=why) as caught:
            upload_path(bad, "image")
        assert "handle_file" in str(caught.value)
    shutil.rmtree(folder)


def test_an_adapter_upload_deletes_only_the_folder_it_made(
    tmp_path: Path, tiny_settings: Any
) -> None:
    """A folder named like a zip is refused and left alone; after an install only the staging
    copy is gone, never the uploaded files."""
    from mmdemo.errors import BadInputError
    from mmdemo.ui.tabs.chat.api import install_upload

    class Store:  # stands in for the chat service: records what it was asked to install
        def __init__(self) -> None:
            self.seen: list[Path] = []
            self.settings = tiny_settings  # local mode: adding adapters is allowed

        def install_adapter(self, source: Path, name: str) -> Any:
            self.seen.append(source)
            assert source.is_file() and source.read_bytes() == b"PK zip", source
            raise BadInputError("not a real adapter")

    victim = tmp_path / "precious.zip"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    scratch = tmp_path / "session"
    store = Store()
    with pytest.raises(BadInputError, match="not a file"):
        install_upload(store, [str(victim)], "", scratch)  # type: ignore[arg-type]
    assert (victim / "keep.txt").read_text() == "mine"
    upload = tmp_path / "adapter.zip"
    upload.write_bytes(b"PK zip")
    with pytest.raises(BadInputError, match="not a real adapter"):
        install_upload(store, [str(upload)], "", scratch)  # type: ignore[arg-type]
    assert upload.read_bytes() == b"PK zip", "the upload itself is never deleted"
    assert store.seen and not store.seen[0].exists(), "the staging copy is removed"
    assert list(scratch.iterdir()) == [], "nothing is left in the session folder"
