"""The Voice assistant tab as users reach it: the ``/voice`` API (gradio_client), several
users at once, bad uploads, and a real browser."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmdemo.flows.responders import Responders
from tests.conftest import screenshot_dir
from tests.voice_helpers import ANSWER, ScriptedResponder, write_audio


@pytest.fixture
def scripted(app: Any) -> Iterator[ScriptedResponder]:
    """The app's assistant answers with a known text (tiny LLMs answer with blank lines).

    Yields the text responder; the one standing in for the VLM is its ``vision``, so a test
    sees which of the two answered."""
    assistant = app.services.voice
    saved, responder, vision = assistant.responders, ScriptedResponder(), ScriptedResponder()
    vision.name = "scripted-vision"
    responder.vision = vision
    assistant.responders = Responders(responder, vision)
    yield responder
    assistant.responders = saved


@pytest.fixture(scope="module")
def question(librivox: list[tuple[Path, str]]) -> str:
    return str(librivox[1][0])


def ask(
    client: Any,
    audio: str | None,
    language: str = "auto",
    image: str | None = None,
    adapter: str = "base",
) -> tuple[str, str, Any]:
    from gradio_client import handle_file

    result = client.predict(
        question_audio=handle_file(audio) if audio else None,
        image=handle_file(image) if image else None,
        voice="default",
        language=language,
        speed=1.0,
        adapter=adapter,
        api_name="/voice",
    )
    return result["transcript"], result["answer"], result["answer_audio"]


def test_voice_api_answers_in_text_and_speech_and_remembers_the_session(
    app_url: str, scripted: ScriptedResponder, question: str
) -> None:
    import soundfile as sf
    from gradio_client import Client

    alice, bob = Client(app_url, verbose=False), Client(app_url, verbose=False)
    transcript, answer, audio = ask(alice, question)
    assert transcript and answer == ANSWER.format(n=0)
    info = sf.info(audio)
    assert info.duration > 0.5 and info.channels == 1
    assert ask(alice, question)[1] == ANSWER.format(n=1)  # alice's second question
    assert ask(bob, question)[1] == ANSWER.format(n=0)  # bob starts fresh


def test_users_at_the_same_time_keep_their_own_conversations(
    app_url: str, scripted: ScriptedResponder, question: str
) -> None:
    from gradio_client import Client

    answers: dict[int, list[str]] = {}

    def user(i: int) -> None:
        client = Client(app_url, verbose=False)
        answers[i] = [ask(client, question)[1] for _ in range(2)]

    threads = [threading.Thread(target=user, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert answers == {i: [ANSWER.format(n=0), ANSWER.format(n=1)] for i in range(3)}


def test_a_question_with_an_image_goes_to_the_vision_model(
    app_url: str, scripted: ScriptedResponder, question: str
) -> None:
    from gradio_client import Client

    cat = str(Path(__file__).parents[1] / "assets" / "images" / "cat.jpg")
    client = Client(app_url, verbose=False)
    ask(client, question, image=cat)
    assert [call[2] for call in scripted.vision.calls] == [True] and scripted.calls == []
    ask(client, question)
    assert len(scripted.vision.calls) == 1
    assert [call[2] for call in scripted.calls] == [False]


def bad_files(tmp: Path) -> dict[str, tuple[str | None, str, str]]:
    rng = np.random.default_rng(0)
    (tmp / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt " + bytes(200))
    return {
        "corrupt file": (str(tmp / "corrupt.wav"), "auto", "corrupt or not audio"),
        "silence": (
            str(write_audio(tmp / "silence.wav", np.zeros(32000, "f4"), 16000)),
            "auto",
            "silent",
        ),
        "noise only": (
            str(write_audio(tmp / "noise.wav", rng.standard_normal(48000) * 0.05, 16000)),
            "auto",
            "no speech was heard",
        ),
        "no audio": (None, "auto", "no question to answer"),
        "unsupported language": ("QUESTION", "fr", "does not know the language 'fr'"),
    }


def test_bad_input_gives_a_clear_error_and_keeps_the_conversation(
    app_url: str, scripted: ScriptedResponder, question: str, tmp_path: Path
) -> None:
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False)
    assert ask(client, question)[1] == ANSWER.format(n=0)
    for name, (path, language, message) in bad_files(tmp_path).items():
        with pytest.raises(AppError, match=message):
            ask(client, question if path == "QUESTION" else path, language)
        assert scripted.calls[-1][0] == 0, name
    assert ask(client, question)[1] == ANSWER.format(n=1), "the first turn must be remembered"


def test_odd_but_valid_audio_is_understood(
    app_url: str, scripted: ScriptedResponder, question: str, tmp_path: Path
) -> None:
    import soundfile as sf
    import torch
    import torchaudio.functional as AF
    from gradio_client import Client

    speech, rate = sf.read(question, dtype="float32")
    loud = AF.resample(torch.from_numpy(speech), rate, 44100).numpy()
    stereo_8bit = write_audio(tmp_path / "q.wav", np.stack([loud, loud], 1), 44100, "PCM_U8")
    transcript, answer, _ = ask(Client(app_url, verbose=False), str(stereo_8bit))
    assert transcript and answer == ANSWER.format(n=0)


@pytest.mark.browser
def test_browser_upload_a_question_hear_and_read_the_answer(
    page: Any, app: Any, scripted: ScriptedResponder, question: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Voice assistant").click()
    page.locator("#voice-input").get_by_label("Upload file").click()
    page.locator("#voice-input input[type=file]").set_input_files(question)
    chat, status = page.locator("#voice-chat"), page.locator("#voice-status")
    expect(status).to_contain_text("done in", timeout=180_000)
    expect(chat).to_contain_text("You asked 0 questions before this one.")
    expect(chat).to_contain_text("to be spoken last.")
    expect(page.locator("#voice-latency")).to_contain_text("scripted")
    expect(status).to_contain_text("first audio after")
    player = page.locator("#voice-answer audio")
    expect(player).to_have_attribute("src", re.compile(r"^(blob|https?):"))  # the answer streamed
    page.screenshot(path=str(screenshot_dir(tmp_path) / "voice-scripted.png"), full_page=True)

    scripted.delay = 0.5  # a slow answer, cut by Stop while it is being spoken
    page.locator("#voice-send").click()
    expect(chat).to_contain_text("You asked 1 questions", timeout=180_000)
    page.locator("#voice-stop").click()
    expect(status).to_contain_text("interrupted after", timeout=60_000)
    expect(chat).to_contain_text("(interrupted)")
    assert scripted.words_sent < len(ANSWER.split())
    page.locator("#voice-clear").click()
    expect(chat).not_to_contain_text("You asked", timeout=30_000)
    expect(status).to_contain_text("Conversation cleared")


@pytest.fixture
def mic_page(
    browser: Any, app_url: str, librivox: list[tuple[Path, str]], tmp_path: Path
) -> Iterator[Any]:
    """A second Chromium (same Playwright) whose microphone plays a LibriVox question once."""
    import soundfile as sf

    from tests.conftest import CHROMIUM, CHROMIUM_ARGS

    speech, rate = sf.read(str(librivox[1][0]), dtype="int16")
    wav = tmp_path / "mic.wav"
    sf.write(str(wav), np.concatenate([np.zeros(rate // 2, "int16"), speech]), rate)
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}%noloop",
    ]
    mic_browser = browser.browser_type.launch(executable_path=CHROMIUM, args=args, headless=True)
    try:
        context = mic_browser.new_context(viewport={"width": 1400, "height": 1000})
        context.grant_permissions(["microphone"])
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(app_url)
        page.wait_for_selector("#app-title", state="visible")
        page.get_by_role("tab", name="Voice assistant").click()
        yield page
    finally:
        mic_browser.close()


@pytest.mark.browser
def test_browser_push_to_talk_answers_when_recording_stops(
    mic_page: Any, scripted: ScriptedResponder
) -> None:
    from playwright.sync_api import expect

    page = mic_page
    page.locator("#voice-input").get_by_role("button", name="Record", exact=True).click()
    page.wait_for_timeout(4500)  # the question plays into the microphone
    page.locator("#voice-input").get_by_role("button", name="Stop", exact=True).first.click()
    expect(page.locator("#voice-status")).to_contain_text("done in", timeout=180_000)
    expect(page.locator("#voice-chat")).to_contain_text("You asked 0 questions")
    assert len(scripted.calls) == 1, "one recording must start exactly one turn"


# Gradio 6.31's streaming microphone (the hands-free one) starts importing its WAV recorder
# (extendable-media-recorder) when the component mounts, i.e. when the hands-free section
# opens, and its Record button does not wait for it: pressed before the recorder module has
# loaded and registered its WAV encoder, Record throws in the page ("... is not a
# constructor"), shows Stop and streams nothing. A person takes longer than that to reach the
# button; the test waits for the condition itself: the recorder module says it can record WAV
# (its static isTypeSupported turns true once the encoder is registered; Chromium's own
# MediaRecorder cannot record WAV). Each module the page loaded is imported once (the same
# instance the component uses) and checked on every poll.
WAV_RECORDER_READY = """() => {
  const seen = (window.__wavRecorderModules ??= new Map());
  const urls = [
    ...performance.getEntriesByType('resource').map((e) => e.name),
    ...[...document.querySelectorAll('link[rel=modulepreload]')].map((l) => l.href),
  ].filter((u) => /\\/assets\\/module-[^/?]*\\.js$/.test(u));
  for (const url of urls) {
    if (!seen.has(url)) {
      seen.set(url, null);
      import(url).then((m) => seen.set(url, m), () => {});
    }
  }
  return [...seen.values()].some((m) => m?.MediaRecorder?.isTypeSupported?.('audio/wav') === true);
}"""


@pytest.mark.browser
def test_browser_hands_free_answers_at_the_pause(
    mic_page: Any, scripted: ScriptedResponder
) -> None:
    from playwright.sync_api import expect

    page = mic_page
    page.get_by_text("Hands-free: answer when I stop talking").click()
    page.wait_for_function(WAV_RECORDER_READY)  # see its comment: Gradio's Record races it
    page.locator("#voice-live").get_by_role("button", name="Record", exact=True).click()
    expect(page.locator("#voice-status")).to_contain_text("end of speech detected", timeout=180_000)
    expect(page.locator("#voice-chat")).to_contain_text("You asked 0 questions")
    expect(page.locator("#voice-latency")).to_contain_text("scripted")


def test_voice_api_passes_the_chosen_adapter_to_the_vlm(
    app: Any, app_url: str, scripted: ScriptedResponder, question: str
) -> None:
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    ask(client, question, adapter="pirate")
    assert scripted.vision.adapters == ["pirate"] and scripted.adapters == []
    ask(client, question)
    assert scripted.vision.adapters == ["pirate"] and scripted.adapters == [None]
