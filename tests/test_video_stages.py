"""Each video stage on its own: shots and key frames, speech with timestamps, chapters, the
LLM's token budget (map-reduce), captions without a VLM, questions, subtitle files."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmdemo.bench.videogen import Scene, cut_times, music, photo, place, write_video
from mmdemo.errors import ModelUnavailableError
from mmdemo.flows.video.ask import cited_times, notes_of, retrieve
from mmdemo.flows.video.captions import caption_stage
from mmdemo.flows.video.chapters import chapter_spans
from mmdemo.flows.video.config import VideoConfig
from mmdemo.flows.video.export import srt, vtt
from mmdemo.flows.video.probe import probe
from mmdemo.flows.video.shots import shots_stage, strongest
from mmdemo.flows.video.speech import speech_stage
from mmdemo.flows.video.summary import summary_stage
from mmdemo.flows.video.types import Chapter, KeyFrame, Segment, Shot, VideoInfo, VideoResult
from mmdemo.flows.video.vectors import refine
from tests.video_helpers import drain

CONFIG = VideoConfig()
A, B, C, WHITE = (200, 40, 40), (30, 160, 60), (40, 60, 200), (255, 255, 255)


def shots_of(tmp: Path, scenes: list[Scene], config: VideoConfig = CONFIG, **kw: Any) -> Any:
    path = write_video(tmp / "v.mp4", scenes, **kw)
    return drain(shots_stage(path, probe(path, config), config, tmp, None)), cut_times(scenes)


SHOT_CASES = {
    "colour scenes": ([Scene(3, A), Scene(4, B), Scene(3, C), Scene(4, A)], None),
    "fast montage": ([Scene(1.5, c) for c in (A, B, C, A, B, C)], None),
    "photos slowly zoomed": (
        [Scene(4, image=photo(n)) for n in ("astronaut", "coffee", "rocket")],
        None,
    ),
}


@pytest.mark.parametrize("case", list(SHOT_CASES))
def test_cuts_are_found_within_a_second_with_a_key_frame_inside_each_shot(
    tmp_path: Path, case: str
) -> None:
    scenes, _ = SHOT_CASES[case]
    result, cuts = shots_of(tmp_path, scenes)
    found = [s.start for s in result.shots[1:]]
    assert len(found) == len(cuts), f"found {found}, true cuts {cuts}"
    assert all(abs(a - b) <= 1.0 for a, b in zip(found, cuts, strict=True))
    for shot in result.key_frames:
        assert shot.start <= shot.key_time <= shot.end
        assert (tmp_path / shot.key_file).is_file()


def test_a_flash_is_not_a_cut(tmp_path: Path) -> None:
    result, _ = shots_of(tmp_path, [Scene(3, A), Scene(0.5, WHITE), Scene(3, A), Scene(3, C)])
    found = [s.start for s in result.shots[1:]]
    assert len(found) == 1 and abs(found[0] - 6.5) <= 1.0, found


def test_a_long_static_shot_is_split_so_key_frames_cover_it(tmp_path: Path) -> None:
    config = VideoConfig(max_shot_s=10)
    result, _ = shots_of(tmp_path, [Scene(41, A)], config, size=(96, 64), fps=5)
    assert len(result.key_frames) == 5
    assert all(s.soft for s in result.key_frames[1:])
    times = [s.key_time for s in result.key_frames]
    assert times == sorted(times) and times[-1] - times[0] >= 30


def test_too_many_shots_keep_the_strongest_cuts_and_the_longest_shots_frame() -> None:
    shots = [
        Shot(0, 2, 0.0, 1, "a"),
        Shot(2, 9, 0.4, 5, "b"),  # weak cut, long shot
        Shot(9, 10, 0.9, 9.5, "c"),  # strong cut
        Shot(10, 11, 0.35, 10.5, "d"),
    ]
    kept = strongest(shots, 2)
    assert [(s.start, s.end) for s in kept] == [(0, 9), (9, 11)]
    assert [s.key_file for s in kept] == ["b", "c"]


def test_clip_joins_only_borderline_cuts_it_sees_as_one_scene() -> None:
    frames = [
        Shot(0, 5, 0.0, 2, "a"),
        Shot(5, 9, 0.35, 7, "b"),  # borderline colour change, same scene for CLIP: joined
        Shot(9, 12, 0.95, 10, "c"),  # a strong cut stays, however similar
        Shot(12, 30, 0.0, 20, "d", soft=True),  # a split of a long shot stays
    ]
    same = np.array([1.0, 0.0])
    vectors = np.stack([same, same, same, same])
    joined, vecs = refine(frames, vectors, VideoConfig(cut_threshold=0.3))
    assert [(s.start, s.end) for s in joined] == [(0, 9), (9, 12), (12, 30)]
    assert joined[0].key_file == "a" and len(vecs) == 3
    different = np.stack([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    assert len(refine(frames, different, VideoConfig(cut_threshold=0.3))[0]) == 4


def speech_info(path: Path) -> VideoInfo:
    return probe(path, CONFIG)


def test_speech_is_transcribed_at_the_times_it_is_spoken(
    tmp_path: Path, real_asr: Any, librivox: list[tuple[Path, str]]
) -> None:
    from mmdemo.flows.audio import read_audio
    from mmdemo.flows.wer import word_errors

    (first, text1), (second, text2) = librivox[1], librivox[4]
    a, b = read_audio(first).samples, read_audio(second).samples
    audio = place([(2.0, a), (9.0, b)], 14.0)
    path = write_video(tmp_path / "talk.mp4", [Scene(14.0, A)], audio=audio)
    result = drain(speech_stage(path, speech_info(path), lambda: real_asr, block_s=60.0))
    early = [s for s in result.segments if s.start < 6.0]
    late = [s for s in result.segments if s.start >= 6.0]
    assert early and late
    assert abs(early[0].start - 2.0) <= 0.6 and abs(late[0].start - 9.0) <= 0.6
    assert early[-1].end <= 2.0 + len(a) / 16000 + 0.6, "the silence between is not speech"
    assert word_errors(text1, " ".join(s.text for s in early)).rate <= 0.3
    assert word_errors(text2, " ".join(s.text for s in late)).rate <= 0.3
    assert len(result.spans) >= 2 and result.spans[0][0] < 3.0


def test_music_gives_no_transcript_and_a_note(tmp_path: Path, real_asr: Any) -> None:
    path = write_video(tmp_path / "song.mp4", [Scene(12.0, B)], audio=music(12.0))
    result = drain(speech_stage(path, speech_info(path), lambda: real_asr))
    assert not result.segments
    assert any("no speech was recognised" in n for n in result.notes)


def test_chapters_prefer_a_cut_at_a_pause_over_a_cut_in_mid_sentence() -> None:
    shots = [Shot(0, 10, 0, 5, "a"), Shot(10, 20, 0.9, 15, "b"), Shot(20, 40, 0.9, 30, "c")]
    speech = [(1.0, 9.5), (11.0, 25.0), (26.0, 39.0)]  # a pause near 10, none at 20
    spans = chapter_spans(40.0, shots, speech, VideoConfig(max_chapters=2))
    assert spans == [(0.0, 10.0), (10.0, 40.0)]
    assert chapter_spans(40.0, [], [], CONFIG) == [(0.0, 40.0)], "nothing to cut at: one chapter"


def test_chapters_cover_the_video_and_are_never_too_short() -> None:
    shots = [Shot(float(t), float(t + 2), 0.8, t + 1.0, str(t)) for t in range(0, 60, 2)]
    spans = chapter_spans(60.0, shots, [], VideoConfig(min_chapter_s=5))
    assert spans[0][0] == 0.0 and spans[-1][1] == 60.0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert all(end - start >= 5.0 for start, end in spans)


def test_long_material_is_condensed_so_no_prompt_overflows_the_context(shared_manager: Any) -> None:
    config = VideoConfig(llm_context=320, chapter_tokens=24, summary_tokens=32, max_chapters=2)
    words = ["the", "committee", "discussed", "budget", "for", "new", "harbour", "bridge", "cost"]
    rng = np.random.default_rng(0)
    segments = [
        Segment(i * 3.0, i * 3.0 + 2.0, " ".join(rng.choice(words, 14)) + ".") for i in range(80)
    ]
    result = drain(
        summary_stage(240.0, [], [], segments, [], lambda: shared_manager.get("llm"), config, None)
    )
    assert result.calls, "the LLM was asked"
    assert all(c.prompt_tokens + c.new_tokens <= 320 for c in result.calls)
    assert any("condensed first" in n for n in result.notes)
    assert len(result.chapters) == 2 and result.summary


def test_without_a_vlm_clip_labels_caption_the_frames_and_the_result_says_so(
    tmp_path: Path,
) -> None:
    from PIL import Image

    paths = []
    for i, colour in enumerate((A, B)):
        Image.new("RGB", (64, 48), colour).save(tmp_path / f"{i}.jpg")
        paths.append(str(tmp_path / f"{i}.jpg"))

    def no_vlm() -> Any:
        raise ModelUnavailableError(
            "the vlm model 'x' is not available", backend="vlm", model_id="x"
        )

    labels = ["Looks like a cat (CLIP)", "Looks like snow (CLIP)"]
    result = drain(caption_stage(paths, no_vlm, labels))
    assert result.captions == labels and result.sources == ["clip", "clip"]
    assert any("VLM is unavailable" in n for n in result.notes)
    assert not result.vlm_ok
    bare = drain(caption_stage(paths, no_vlm, None))
    assert bare.captions == ["", ""] and any("no captions" in n for n in bare.notes)


def toy_result() -> VideoResult:
    info = VideoInfo("toy.mp4", 1, 60.0, True, True)
    return VideoResult(
        "0" * 64,
        info,
        key_frames=[KeyFrame(40.0, 35, 50, "k.jpg", "a red bicycle leaning on a wall", "vlm")],
        transcript=[
            Segment(3.0, 6.0, "Welcome to the harbour tour."),
            Segment(20.0, 24.0, "The lighthouse was built in 1890 by the harbour board."),
            Segment(45.0, 48.0, "We end at the fish market."),
        ],
        chapters=[Chapter(0, 30, "Harbour tour", ("The tour starts.",))],
    )


def test_questions_find_the_lines_that_answer_them_and_cite_their_times() -> None:
    result = toy_result()
    notes = notes_of(result)
    best = retrieve("When was the lighthouse built?", notes)[0][0]
    assert best.time == 20.0 and "1890" in best.text
    assert retrieve("what colour is the bicycle?", notes)[0][0].time == 40.0
    assert cited_times("Built in 1890 [00:20], see also 00:45.", notes) == [20.0, 45.0]
    assert cited_times("At [09:59] nothing happened.", notes) == []


def test_subtitles_are_valid_srt_and_vtt() -> None:
    segments = [Segment(0.5, 2.25, "Hello there."), Segment(3661.0, 3662.5, "An hour later.")]
    text = srt(segments)
    cues = re.findall(r"(\d+)\n(\d\d:\d\d:\d\d,\d{3}) --> (\d\d:\d\d:\d\d,\d{3})\n(.+)\n", text)
    assert cues == [
        ("1", "00:00:00,500", "00:00:02,250", "Hello there."),
        ("2", "01:01:01,000", "01:01:02,500", "An hour later."),
    ]
    web = vtt(segments)
    assert web.startswith("WEBVTT\n\n")
    assert "01:01:01.000 --> 01:01:02.500\nAn hour later." in web


@pytest.fixture(scope="module")
def real_asr(tiny_settings: Any) -> Any:
    from mmdemo.models.manager import ModelManager
    from tests.video_helpers import REAL_ASR

    manager = ModelManager(tiny_settings.replace(asr=REAL_ASR))
    yield manager.get("asr")
    manager.unload_all()
