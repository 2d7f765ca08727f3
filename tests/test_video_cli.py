"""``python -m mmdemo video``: summarize writes JSON, Markdown, SRT and VTT; ask and search
work on the video_id it prints; a bad file is an error with a fix."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mmdemo.cli import main
from mmdemo.config import Settings
from tests.video_helpers import colour_video


@pytest.fixture
def home(isolated_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MMDEMO_PROFILE", "tiny")
    monkeypatch.setenv("MMDEMO_DEVICE", "cpu")
    monkeypatch.setenv("MMDEMO_HOME", str(isolated_settings.home))
    return isolated_settings.home


def test_summarize_writes_json_markdown_and_subtitles(
    home: Path, tmp_path: Path, capsys: Any
) -> None:
    video, cuts = colour_video(tmp_path / "in.mp4")
    out = tmp_path / "out"
    assert main(["video", "summarize", str(video), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    data = json.loads((out / "summary.json").read_text())
    assert len(data["key_frames"]) == len(cuts) + 1 and data["chapters"] and data["summary"]
    markdown = (out / "summary.md").read_text()
    assert "## Chapters" in markdown and "## Key frames" in markdown
    for frame in re.findall(r"\]\((key_frames/[^)]+)\)", markdown):
        assert (out / frame).is_file(), "the Markdown's pictures are beside it"
    assert (out / "transcript.srt").exists()
    assert (out / "transcript.vtt").read_text().startswith("WEBVTT")
    video_id = re.search(r"video_id ([0-9a-f]{64})", printed).group(1)
    assert video_id == data["video_id"]

    assert main(["video", "ask", video_id, "What is shown first?", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["answer"] and all(0 <= t <= data["duration"] for t in answer["citations"])
    assert main(["video", "search", video_id, "a red square", "-k", "2"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2


def test_a_bad_file_is_an_error_with_a_fix(home: Path, tmp_path: Path, capsys: Any) -> None:
    bad = tmp_path / "bad.mov"
    bad.write_text("not a video")
    assert main(["video", "summarize", str(bad), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot be read as a video" in err and "Fix:" in err
    assert not (tmp_path / "o").exists()
