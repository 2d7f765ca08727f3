"""The audio LLM (tiny Qwen2-Audio, random weights) as a second way for the voice assistant
to answer: it hears the recorded question itself (no ASR), the TTS speaks its answer, and
the latency splits model time and TTS time. The weights are random, so the tests check that
the audio reaches the model and changes the answer, not what the answer says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mmdemo.errors import BadInputError
from mmdemo.flows.assistant import AUDIO_LLM, Conversation, VoiceAssistant, VoiceOptions
from mmdemo.flows.audio import SAMPLE_RATE, Clip, read_audio
from mmdemo.flows.chat import ChatService
from mmdemo.flows.responders import Responders
from mmdemo.ui.sessions import SessionFolders
from mmdemo.ui.tabs.voice.actions import VoiceActions
from mmdemo.ui.tabs.voice.view import LATENCY_HEADERS, MODE_LABELS, options_from
from tests.voice_helpers import ANSWER, ScriptedResponder

AUDIO_LLM_LABEL = "Audio LLM (hears the audio directly)"
PIPELINE_LABEL = "Pipeline (ASR -> LLM -> TTS)"


@pytest.fixture(scope="module")
def clips(librivox: list[tuple[Path, str]]) -> list[Clip]:
    return [read_audio(path) for path, _ in librivox[:2]]


def cut(clip: Clip, seconds: float) -> Clip:
    samples = clip.samples[: int(seconds * SAMPLE_RATE)]
    return Clip(samples, SAMPLE_RATE, 1, len(samples) / SAMPLE_RATE)


def ask(assistant: VoiceAssistant, clip: Clip) -> Any:
    *_, done = assistant.turn(Conversation(), clip, options=VoiceOptions(mode=AUDIO_LLM))
    return done


def test_the_audio_reaches_the_model_at_its_length(shared_manager: Any, clips: list) -> None:
    assistant = VoiceAssistant(shared_manager, Responders(ScriptedResponder(), ScriptedResponder()))
    bundle = shared_manager.get("alm")
    assert type(bundle.model).__name__ == "Qwen2AudioForConditionalGeneration"
    audio_id = bundle.tokenizer.convert_tokens_to_ids("<|AUDIO|>")
    for seconds in (2.0, 3.0):
        inputs = assistant.audio_llm.inputs([], cut(clips[0], seconds))
        # Whisper features: one frame per 10 ms; Qwen2-Audio: one audio token per 40 ms
        assert int(inputs["feature_attention_mask"].sum()) == seconds * 100
        assert int((inputs["input_ids"] == audio_id).sum()) == seconds * 25


def test_the_audio_llm_answers_and_the_answer_follows_the_audio(
    manager: Any, clips: list[Clip]
) -> None:
    assistant = VoiceAssistant(manager, Responders(ScriptedResponder(), ScriptedResponder()))
    first, again, other = (
        ask(assistant, clips[0]),
        ask(assistant, clips[0]),
        ask(assistant, clips[1]),
    )
    assert first.done and first.answer.strip()
    assert first.answer == again.answer  # greedy: the same audio, the same answer
    assert other.answer != first.answer  # another question, another answer
    m = first.metrics
    assert m.responder == "audio-llm" and m.transcript_s is None and m.asr_compute_s == 0
    assert 0 < m.first_token_s <= m.model_s <= m.total_s
    assert m.tts_s > 0 and m.answer_audio_s > 0 and first.audio is None
    stages = dict(m.rows())
    assert stages["audio LLM (speech end -> whole answer)"] == m.model_s
    assert stages["TTS compute"] == m.tts_s
    assert not manager.is_loaded("asr") and not manager.is_loaded("llm")  # no pipeline ran


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(BadInputError, match="mode"):
        VoiceOptions(mode="telepathy")
    with pytest.raises(BadInputError, match="mode"):
        options_from("default", "auto", 1.0, "base", "telepathy")
    assert set(MODE_LABELS) == {AUDIO_LLM_LABEL, PIPELINE_LABEL}


def test_the_tab_choice_routes_the_turn(
    manager: Any, librivox: list[tuple[Path, str]], tmp_path: Path
) -> None:
    scripted = ScriptedResponder()
    assistant = VoiceAssistant(manager, Responders(scripted, scripted))
    actions = VoiceActions(
        assistant, ChatService.standalone(manager), SessionFolders(tmp_path), streaming=False
    )
    from mmdemo.ui.tabs.voice.view import VoiceSession

    sess = VoiceSession()
    question = str(librivox[0][0])
    col = {h: i for i, h in enumerate(LATENCY_HEADERS)}

    def turn(label: str) -> tuple[list, list]:
        outputs = list(
            actions.respond(question, None, "default", "auto", 1.0, "base", label, sess, None)
        )
        chat, _, rows, *_ = next(o for o in reversed(outputs) if isinstance(o[2], list))
        return chat, rows

    chat, rows = turn(AUDIO_LLM_LABEL)
    assert rows[-1][col["answered by"]] == "audio-llm"
    assert rows[-1][col["audio LLM s"]] and rows[-1][col["TTS s"]]
    assert rows[-1][col["transcript s"]] == ""
    assert scripted.calls == [] and not manager.is_loaded("asr")
    assert "heard by the audio LLM" in chat[-2]["content"]

    chat, rows = turn(PIPELINE_LABEL)
    assert rows[-1][col["answered by"]] == "scripted" and rows[-1][col["audio LLM s"]] == ""
    assert len(scripted.calls) == 1 and manager.is_loaded("asr")
    assert chat[-1]["content"] == ANSWER.format(n=1)  # the audio LLM's turn is in the history


def test_the_endpoint_answers_an_uploaded_question(app_url: str, librivox: list) -> None:
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    data = client.predict(
        question_audio=handle_file(str(librivox[0][0])),
        voice="default",
        speed=1.0,
        api_name="/voice_audio_llm",
    )
    assert data["mode"] == AUDIO_LLM and data["answered_by"] == "audio-llm"
    assert data["transcript"] is None and data["answer"]
    assert data["latency_s"]["model_s"] > 0 and data["latency_s"]["tts_s"] > 0
    assert Path(data["answer_audio"]).stat().st_size > 44  # a WAV with samples in it


def test_models_lists_the_audio_llm_per_profile(
    tiny_settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmdemo.cli import main

    assert main(["--home", str(tiny_settings.home), "models", "list"]) == 0
    out = capsys.readouterr().out
    assert "alm:" in out and "tiny:qwen2audio" in out and "Qwen/Qwen2-Audio-7B-Instruct" in out
    args = ["--profile", "tiny", "--home", str(tiny_settings.home), "models", "status"]
    assert main([*args, "alm", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["model"] == "tiny:qwen2audio" and row["available"]
