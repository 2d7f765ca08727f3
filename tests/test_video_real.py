"""A video made from real material (scikit-image photos cut at known times, LibriVox speech
with a known transcript) through the real embedded ASR and LLM (offline; the VLM and CLIP
stay random-weight): cuts, transcript, and a summary and answers that use what was said."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mmdemo.config import Settings
from mmdemo.flows.video.service import VideoService
from mmdemo.flows.video.text import content_words
from mmdemo.flows.wer import word_errors
from mmdemo.models.manager import ModelManager
from tests.video_helpers import boundaries


@pytest.fixture(scope="module")
def real(
    tmp_path_factory: pytest.TempPathFactory, test_home: Path, librivox: list
) -> Iterator[dict[str, Any]]:
    from mmdemo.bench.videogen import real_material

    folder = tmp_path_factory.mktemp("real")
    material = real_material(folder / "real.mp4")
    home = folder / "home"
    (home / "models").mkdir(parents=True)
    # share the model builds (the LLM's is made once) and the text LLM's traced OpenVINO step
    for name in ("tiny", "embedded", "openvino-steps"):
        (test_home / "models" / name).mkdir(parents=True, exist_ok=True)
        (home / "models" / name).symlink_to(test_home / "models" / name)
    settings = Settings(
        profile="cpu", vlm="tiny:smolvlm", clip="tiny:clip", home=home, device="cpu"
    )
    manager = ModelManager(settings)
    service = VideoService(settings, manager)
    result = service.summarize(material["path"])
    yield {**material, "result": result, "service": service}
    manager.unload_all()


def test_shot_boundaries_are_within_a_second_of_the_true_cuts(real: dict[str, Any]) -> None:
    found = boundaries(real["result"])
    assert len(found) == len(real["cuts"]), f"found {found}, true {real['cuts']}"
    assert all(abs(a - b) <= 1.0 for a, b in zip(found, real["cuts"], strict=True))


def test_the_transcript_matches_what_was_said_and_when(real: dict[str, Any]) -> None:
    segments = real["result"].transcript
    heard = " ".join(s.text for s in segments)
    assert word_errors(real["transcript"], heard).rate <= 0.15
    for start, end, text in real["spoken"]:
        during = [s for s in segments if start - 1.0 <= s.start <= end]
        assert during, f"nothing heard while {text[:30]!r} was said at {start:.1f} s"
        assert word_errors(text, " ".join(s.text for s in during)).rate <= 0.3


def test_the_summary_and_chapters_use_the_words_that_were_spoken(real: dict[str, Any]) -> None:
    result = real["result"]
    spoken = set(content_words(real["transcript"]))
    summary = content_words(result.summary)
    used = [w for w in summary if w in spoken]
    assert len(set(used)) >= 3 and len(used) >= 0.4 * len(summary), result.summary
    with_speech = [
        c for c in result.chapters if any(c.start <= s.start < c.end for s in result.transcript)
    ]
    assert with_speech
    for chapter in with_speech:
        words = set(content_words(chapter.title + " " + " ".join(chapter.bullets)))
        assert words & spoken, chapter


def test_a_question_is_answered_from_what_was_said_citing_when(real: dict[str, Any]) -> None:
    service, result = real["service"], real["result"]
    answer = service.ask(result.video_id, "What did John Dashwood have leisure to consider?")
    first_start = real["spoken"][0][0]
    assert any(abs(t - first_start) <= 1.5 for t in answer.citations), answer
    assert "dashwood" in answer.text.lower() or "power" in answer.text.lower()
