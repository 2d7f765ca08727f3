"""The bad-input corpus (tests/bad_inputs.py) against every file-taking endpoint of a live
app, through gradio_client as a user's script would call it.

Every refusal must be ours: it names the cause (the corpus entry's words) and a fix, and is
never Gradio's generic "Could not preprocess input component" or a bare "Error". After each
endpoint's bad files, a good request to it still succeeds.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bad_inputs import (
    ADAPTER_CASES,
    AUDIO_CASES,
    DATASET_CASES,
    IMAGE_CASES,
    VIDEO_CASES,
    Bad,
    corpus,
    is_generic,
    mp4_file,
    png_bytes,
)
from tests.conftest import free_port

LIMIT_MB = 2  # the app's upload limit here, so the oversized file stays small
CAT = Path(__file__).parents[1] / "assets" / "images" / "cat.jpg"
BUILTIN = Path(__file__).parents[1] / "assets" / "adapters"


@pytest.fixture(scope="module")
def served(tiny_settings: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The whole app with a 2 MB upload limit, launched as ``mmdemo.ui.app.launch`` does."""
    from mmdemo.ui.app import build_app

    home = tmp_path_factory.mktemp("bad-home")
    (home / "models").mkdir()
    (home / "models" / "tiny").symlink_to(tiny_settings.models_dir / "tiny")
    settings = tiny_settings.replace(home=home, max_upload_mb=LIMIT_MB)
    app = build_app(settings)
    app.demo.queue(default_concurrency_limit=settings.concurrency)
    app.launch(
        prevent_thread_lock=True,
        server_name="127.0.0.1",
        server_port=free_port(),
        quiet=True,
        show_error=True,
        max_file_size=f"{LIMIT_MB}mb",
    )
    yield app
    app.close()


@pytest.fixture(scope="module")
def client(served: Any) -> Any:
    from gradio_client import Client

    return Client(served.demo.local_url, verbose=False)


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Bad]:
    return corpus(tmp_path_factory.mktemp("bad"), LIMIT_MB * 2**20)


def refusal(call: Any) -> str:
    """Run ``call`` and return the error message it raised (or what it wrongly returned)."""
    try:
        result = call()
    except Exception as exc:  # AppError, or an upload refused by gradio_client
        return str(exc)
    return f"ACCEPTED: {str(result)[:200]}"


def check_refusals(
    bad: dict[str, Bad],
    cases: tuple[str, ...],
    call: Any,
    causes: dict[str, str] | None = None,
) -> dict[str, str]:
    """Each case must be refused with our message: the cause's words and a fix.
    Returns the messages that fall short (empty when all pass)."""
    from gradio_client import handle_file

    wrong: dict[str, str] = {}
    for name in cases:
        case = bad[name]
        message = refusal(lambda case=case: call(handle_file(str(case.path))))
        # an oversized file is stopped by gradio_client before it is sent, naming the limit
        too_big = re.search(r"exceeds the maximum file size of \d+ bytes", message)
        ours = (not is_generic(message) and "Fix:" in message) or bool(too_big)
        cause = (causes or {}).get(name, case.cause)  # the same file, another endpoint's words
        if not (ours and re.search(cause, message, re.IGNORECASE)):
            wrong[name] = message[:300]
    return wrong


def test_image_endpoints_refuse_bad_images_with_cause_and_fix(
    client: Any, bad: dict[str, Bad]
) -> None:
    from gradio_client import handle_file

    client.predict("bad", "", [handle_file(str(CAT))], api_name="/clip_add")
    endpoints = {
        "/chat": lambda f: client.predict("What is it?", [f], "base", 4, True, api_name="/chat"),
        "/arena": lambda f: client.predict(f, "What is it?", ["base"], api_name="/arena"),
        "/clip_search": lambda f: client.predict("bad", "", f, 3, api_name="/clip_search"),
        "/clip_classify": lambda f: client.predict(f, "cat, dog", "", api_name="/clip_classify"),
        "/gestures": lambda f: client.predict(f, api_name="/gestures"),
    }
    wrong = {
        (endpoint, name): message
        for endpoint, call in endpoints.items()
        for name, message in check_refusals(bad, IMAGE_CASES, call).items()
    }
    assert wrong == {}
    # the app still works: good requests to the same endpoints succeed
    cat = handle_file(str(CAT))
    assert client.predict("What is it?", [cat], "base", 4, True, api_name="/chat") is not None
    assert client.predict(cat, "What?", ["base"], api_name="/arena")["columns"]
    assert client.predict("bad", "", cat, 3, api_name="/clip_search")["hits"]
    assert client.predict(cat, "cat, dog", "", api_name="/clip_classify")["labels"]
    assert "hands" in client.predict(cat, api_name="/gestures")


def test_clip_add_lists_each_bad_image_with_its_reason(client: Any, bad: dict[str, Bad]) -> None:
    from gradio_client import handle_file

    files = [handle_file(str(bad[n].path)) for n in IMAGE_CASES if n != "oversized"]
    report = client.predict("mixed", "", [*files, handle_file(str(CAT))], api_name="/clip_add")
    assert report["added"] == 1
    reasons = {s["file"]: s["reason"] for s in report["skipped"]}
    for name in IMAGE_CASES:
        if name == "oversized":
            continue
        case = bad[name]
        assert re.search(case.cause, reasons[case.path.name], re.IGNORECASE), (name, reasons)


def test_gesture_teach_refuses_bad_examples_with_the_reason(
    client: Any, bad: dict[str, Bad]
) -> None:
    from gradio_client import handle_file

    examples = [handle_file(str(bad[n].path)) for n in ("empty file", "WAV as image")] * 3
    message = refusal(lambda: client.predict("junk", examples, False, api_name="/gesture_teach"))
    assert "Fix:" in message and re.search(r"empty|not an image", message), message


def test_voice_refuses_bad_audio_and_images(
    client: Any, served: Any, bad: dict[str, Bad], librivox: list[tuple[Path, str]]
) -> None:
    from gradio_client import handle_file

    from mmdemo.flows.responders import Responders
    from tests.voice_helpers import ANSWER, ScriptedResponder

    assistant = served.services.voice
    responder = ScriptedResponder()
    assistant.responders = Responders(responder, ScriptedResponder())
    question = handle_file(str(librivox[1][0]))

    def ask(audio: Any, image: Any = None) -> dict:
        return client.predict(audio, image, "default", "auto", 1.0, "base", api_name="/voice")

    as_audio = {"text renamed .png": r"no audio track|not audio"}
    wrong = check_refusals(bad, AUDIO_CASES, ask, as_audio)
    wrong |= {
        f"image: {k}": v
        for k, v in check_refusals(bad, IMAGE_CASES, lambda f: ask(question, f)).items()
    }
    assert wrong == {}
    assert ask(question)["answer"] == ANSWER.format(n=0)


def test_how_it_works_endpoints_refuse_bad_images_and_audio(
    client: Any, bad: dict[str, Bad], librivox: list[tuple[Path, str]]
) -> None:
    """The How-it-works views that take files: each bad image in each image parameter (alone
    or beside a good image), each bad audio file in the audio one."""
    from gradio_client import handle_file

    cat, red = handle_file(str(CAT)), handle_file(str(CAT.parent / "red-circle.png"))

    def tokens(f: Any) -> dict:
        return client.predict(f, api_name="/how_image_tokens")

    def contrastive(f: Any) -> dict:
        return client.predict(
            [cat, f], "a cat\na circle", False, False, 0, api_name="/how_contrastive"
        )

    def fewshot(f: Any) -> dict:
        return client.predict(
            [cat, f, cat, red], "a, a, b, b", "", "1", 1, 0, False, api_name="/how_fewshot"
        )

    def units(f: Any) -> dict:
        return client.predict(f, 8, 0, api_name="/how_audio_units")

    endpoints = {
        "/how_image_tokens": tokens,
        "/how_contrastive": contrastive,
        "/how_fewshot": fewshot,
    }
    wrong = {
        (endpoint, name): message
        for endpoint, call in endpoints.items()
        for name, message in check_refusals(bad, IMAGE_CASES, call).items()
    }
    # a picture or a video without sound is no speech: refused as not audio, saying what it is
    as_audio = {
        "text renamed .png": r"no audio track .*not an audio recording",
        "truncated JPEG": r"no audio track \(it holds a still jpeg image\)",
        "MP4 as image": r"no audio track \(it holds video\)",
    }
    audio_cases = (*AUDIO_CASES, "truncated JPEG", "MP4 as image")
    wrong |= {
        ("/how_audio_units", name): message
        for name, message in check_refusals(bad, audio_cases, units, as_audio).items()
    }
    assert wrong == {}
    # the endpoints still work: good requests succeed
    assert tokens(cat)["image_tokens"] > 0
    assert len(contrastive(red)["logits"]) == 2
    assert [r["shots"] for r in fewshot(red)["results"]] == [1]
    speech = units(handle_file(str(librivox[1][0])))
    assert speech["units"] and speech["seconds"] > 1


def test_video_endpoints_refuse_bad_videos(
    client: Any, bad: dict[str, Bad], tmp_path: Path
) -> None:
    from gradio_client import handle_file

    endpoints = {
        "/video_summary": lambda f: client.predict(f, api_name="/video_summary"),
        "/gestures_video": lambda f: client.predict(f, 8, 60, api_name="/gestures_video"),
    }
    wrong = {
        (endpoint, name): message
        for endpoint, call in endpoints.items()
        for name, message in check_refusals(bad, VIDEO_CASES, call).items()
    }
    assert wrong == {}
    good = handle_file(str(mp4_file(tmp_path / "good.mp4", 2.0)))
    assert client.predict(good, 8, 60, api_name="/gestures_video")["frames"]


def good_dataset(folder: Path) -> Path:
    folder.mkdir()
    line = {"image": "a.png", "question": "What colour is it?", "answer": "red"}
    with zipfile.ZipFile(folder / "data.zip", "w") as zf:
        zf.writestr("a.png", png_bytes())
        zf.writestr("data.jsonl", "\n".join(json.dumps(line) for _ in range(4)) + "\n")
    return folder / "data.zip"


def test_train_dataset_refuses_bad_uploads(
    client: Any, served: Any, bad: dict[str, Bad], tmp_path: Path
) -> None:
    from gradio_client import handle_file

    def upload(f: Any) -> dict:
        return client.predict([f], "vqa", api_name="/train_dataset")

    assert check_refusals(bad, DATASET_CASES, upload) == {}
    uploads = served.settings.runs_dir / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == [], "refusals leave nothing"
    escaped = [p for p in tmp_path.parents[2].rglob("evil.txt")]
    assert escaped == [], "a zip entry escaped its folder"
    result = upload(handle_file(str(good_dataset(tmp_path / "good"))))
    assert result["examples"]["train"] >= 1 and Path(result["dataset"]).is_dir()


def test_adapter_upload_refuses_pickles_links_and_other_models(
    client: Any, bad: dict[str, Bad], tmp_path: Path
) -> None:
    from gradio_client import handle_file

    before = {a["name"] for a in client.predict(api_name="/adapters")}

    def upload(f: Any) -> dict:
        return client.predict([f], "", api_name="/adapter_upload")

    assert check_refusals(bad, ADAPTER_CASES, upload) == {}
    assert {a["name"] for a in client.predict(api_name="/adapters")} == before
    good = Path(shutil.make_archive(str(tmp_path / "again"), "zip", BUILTIN / "pirate"))
    added = client.predict([handle_file(str(good))], "pirate-again", api_name="/adapter_upload")
    assert added["name"] == "pirate-again"
    client.predict("pirate-again", api_name="/adapter_delete")
