"""The whole pipeline on tiny models (real embedded ASR): what a user gets, that a second
question recomputes nothing, that cancelling or a failing model keeps what finished, and
that questions and searches answer from the cached result."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from mmdemo.bench.videogen import Scene, palette, place, write_video
from mmdemo.config import Settings
from mmdemo.errors import BadInputError, ModelUnavailableError
from mmdemo.flows.audio import read_audio
from mmdemo.flows.video.types import Progress, VideoResult
from mmdemo.flows.wer import word_errors
from mmdemo.models.manager import LOADERS, ModelManager
from tests.video_helpers import REAL_ASR, boundaries, final, service_for

STAGES = ["shots", "vectors", "speech", "captions", "summary"]


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory, librivox: list) -> dict[str, Any]:
    """Three scenes; one LibriVox clip spoken in the first, another in the third."""
    folder = tmp_path_factory.mktemp("talk")
    (first, text1), (second, text2) = librivox[1], librivox[4]
    a, b = read_audio(first).samples, read_audio(second).samples
    scenes = [Scene(s, c) for s, c in zip((5.0, 5.0, 6.0), palette(3, 2), strict=True)]
    audio = place([(1.0, a), (11.0, b)], 16.0)
    path = write_video(folder / "talk.mp4", scenes, audio=audio)
    return {"path": path, "cuts": [5.0, 10.0], "texts": (text1, text2), "said_at": (1.0, 11.0)}


@pytest.fixture
def settings(isolated_settings: Settings) -> Settings:
    return isolated_settings.replace(asr=REAL_ASR)


@pytest.fixture
def manager(settings: Settings) -> Iterator[ModelManager]:
    manager = ModelManager(settings)
    yield manager
    manager.unload_all()


def test_a_video_gives_chapters_key_frames_transcript_and_summary(
    talk: dict[str, Any], settings: Settings, manager: ModelManager
) -> None:
    service = service_for(settings, manager)
    seen: list[Any] = list(service.run(talk["path"]))
    result = seen[-1]
    assert isinstance(result, VideoResult) and result.complete
    assert len(boundaries(result)) == 2
    assert all(abs(b - c) <= 1.0 for b, c in zip(boundaries(result), talk["cuts"], strict=True))
    said = " ".join(s.text for s in result.transcript)
    assert word_errors(" ".join(talk["texts"]), said).rate <= 0.3
    assert result.chapters[0].start == 0.0
    assert result.chapters[-1].end == pytest.approx(result.info.duration, abs=0.2)
    assert all(c.title and c.bullets for c in result.chapters)
    assert result.summary
    # progress comes step by step, and a partial result shows key frames before the words
    steps = [m.step for m in seen if isinstance(m, Progress)]
    assert steps == sorted(steps)
    partial = [m for m in seen[:-1] if isinstance(m, VideoResult)]
    assert any(p.key_frames and not p.transcript for p in partial)
    assert {"shots", "speech", "captions", "summary"} <= set(result.stages)


def test_a_second_run_and_questions_load_no_model_and_recompute_nothing(
    talk: dict[str, Any], settings: Settings, manager: ModelManager
) -> None:
    final(service_for(settings, manager), talk["path"])
    fresh = ModelManager(settings)  # a new process: nothing loaded
    again = final(service_for(settings, fresh), talk["path"])
    assert again.reused == STAGES
    assert not any(fresh.is_loaded(name) for name in fresh.backends)
    by_id = service_for(settings, fresh).load(again.video_id)
    assert by_id.to_json() == again.to_json()


def test_questions_are_answered_from_the_transcript_citing_when_it_was_said(
    talk: dict[str, Any], settings: Settings, manager: ModelManager
) -> None:
    service = service_for(settings, manager)
    result = final(service, talk["path"])
    answer = service.ask(result.video_id, "What is said about the young man?")
    assert answer.citations
    spoken = next(s for s in result.transcript if "young man" in s.text.lower())
    assert any(abs(t - spoken.start) <= 1.0 for t in answer.citations)
    assert answer.text
    hits = service.search(result, "a plain coloured background", k=2)
    assert len(hits) == 2 and {h.frame.time for h in hits} <= {k.time for k in result.key_frames}
    with pytest.raises(BadInputError, match="question is empty"):
        service.ask(result, "   ")


def test_cancelling_keeps_the_finished_steps_and_the_next_run_continues(
    talk: dict[str, Any], settings: Settings, manager: ModelManager
) -> None:
    service = service_for(settings, manager)
    stop = threading.Event()
    seen = []
    for message in service.run(talk["path"], stop):
        seen.append(message)
        if isinstance(message, VideoResult) and message.transcript:
            stop.set()  # the words are in: cancel during the captions
    partial = seen[-1]
    assert not partial.complete and any("cancelled while" in n for n in partial.notes)
    assert partial.key_frames and partial.transcript, "finished steps are shown"
    again = final(service, talk["path"])
    assert again.complete
    assert {"shots", "speech"} <= set(again.reused)
    assert "summary" not in again.reused


def failing(backend: str) -> Any:
    def load(ctx: Any) -> Any:
        raise ModelUnavailableError(
            f"the {backend} model is not available", backend=backend, model_id="missing"
        )

    return load


def test_a_failing_speech_model_keeps_the_pictures_and_says_what_failed(
    talk: dict[str, Any], settings: Settings
) -> None:
    broken = ModelManager(settings, {**LOADERS, "asr": failing("asr")})
    result = final(service_for(settings, broken), talk["path"])
    assert not result.complete
    assert any("transcribing the sound failed" in n for n in result.notes)
    assert len(result.key_frames) == 3 and result.chapters and result.summary
    working = ModelManager(settings)
    try:
        fixed = final(service_for(settings, working), talk["path"])
    finally:
        working.unload_all()
    assert fixed.complete and fixed.transcript, "a failed step is tried again next time"
    assert "speech" not in fixed.reused


def test_without_vlm_and_llm_clip_labels_and_extracts_stand_in(
    talk: dict[str, Any], settings: Settings
) -> None:
    broken = ModelManager(settings, {**LOADERS, "vlm": failing("vlm"), "llm": failing("llm")})
    try:
        result = final(service_for(settings, broken), talk["path"])
    finally:
        broken.unload_all()
    assert result.complete
    assert any("VLM is unavailable" in n for n in result.notes)
    assert any("LLM is unavailable" in n for n in result.notes)
    assert all(k.source == "clip" and k.caption for k in result.key_frames)
    spoken = {w for s in result.transcript for w in s.text.lower().split()}
    assert spoken & set(result.summary.lower().replace("\u201c", " ").split())


def test_two_runs_of_one_file_at_once_compute_it_once(
    talk: dict[str, Any], settings: Settings, manager: ModelManager
) -> None:
    service = service_for(settings, manager)
    results: list[VideoResult] = []
    threads = [
        threading.Thread(target=lambda: results.append(final(service, talk["path"])))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert len(results) == 2 and all(r.complete for r in results)
    assert sorted(len(r.reused) for r in results) == [0, len(STAGES)]


def test_an_unknown_video_id_is_refused_with_a_fix(settings: Settings, manager: Any) -> None:
    service = service_for(settings, manager)
    with pytest.raises(BadInputError, match="has been summarised here") as info:
        service.load("ab" * 32)
    assert info.value.fix
    with pytest.raises(BadInputError, match="not a video id"):
        service.load("../../etc/passwd")


def test_frames_summarised_without_clip_can_be_searched_once_clip_is_back(
    talk: dict[str, Any], settings: Settings, manager: ModelManager
) -> None:
    no_clip = ModelManager(settings, {**LOADERS, "clip": failing("clip")})
    result = final(service_for(settings, no_clip), talk["path"])
    assert any("CLIP is unavailable" in n for n in result.notes)
    service = service_for(settings, manager)
    assert not (service.root / result.video_id / "vectors").exists()
    hits = service.search(result, "a coloured wall", k=2)  # ranked by IndexService.rank_images
    assert [h.rank for h in hits] == [1, 2]
    assert hits[0].score >= hits[1].score
