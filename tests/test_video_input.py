"""Bad and awkward input: every refusal names cause and fix; damaged, partial, audio-only,
video-only, rotated, variable-rate and 3-hour files give what can be had, with a note."""

from __future__ import annotations

import threading
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmdemo.bench.videogen import Scene, place, write_video
from mmdemo.config import Settings
from mmdemo.errors import BadInputError
from mmdemo.flows.video.config import VideoConfig
from mmdemo.flows.video.probe import probe
from mmdemo.flows.video.shots import shots_stage
from mmdemo.flows.video.types import Progress, VideoResult
from tests.video_helpers import (  # noqa: F401 (real_asr_manager is a fixture)
    boundaries,
    colour_video,
    drain,
    final,
    real_asr_manager,
    service_for,
)


@pytest.fixture
def service(isolated_settings: Settings, shared_manager: Any) -> Any:
    return service_for(isolated_settings, shared_manager)


def refusals(tmp: Path) -> dict[str, tuple[Path, str]]:
    from PIL import Image

    good, _ = colour_video(tmp / "good.mp4")
    (tmp / "empty.mp4").write_bytes(b"")
    (tmp / "notes.mp4").write_text("these are my notes, not a video\n" * 20)
    Image.new("RGB", (64, 48), "red").save(tmp / "photo.png")
    Image.new("RGB", (64, 48), "red").save(tmp / "photo-named.mp4", format="PNG")
    data = good.read_bytes()
    (tmp / "cut-short.mp4").write_bytes(data[: len(data) // 2])  # MP4 index is at the end
    write_video(tmp / "zero.mkv", [Scene(0.0)])
    write_video(tmp / "zero.mov", [Scene(0.0)])
    return {
        "missing file": (tmp / "nowhere.mp4", "does not exist"),
        "empty file": (tmp / "empty.mp4", "is empty (0 bytes)"),
        "text named .mp4": (tmp / "notes.mp4", "cannot be read as a video"),
        "photo": (tmp / "photo.png", "is a still image, not a video"),
        "photo named .mp4": (tmp / "photo-named.mp4", "is a still image, not a video"),
        "truncated MP4": (tmp / "cut-short.mp4", "corrupt, truncated"),
        "0-second MKV": (tmp / "zero.mkv", "empty (0 seconds) or cut off"),
        "0-second MOV": (tmp / "zero.mov", "empty (0 seconds)"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "empty file",
        "text named .mp4",
        "photo",
        "photo named .mp4",
        "truncated MP4",
        "0-second MKV",
        "0-second MOV",
    ],
)
def test_unusable_files_are_refused_with_cause_and_fix(tmp_path: Path, case: str) -> None:
    path, expected = refusals(tmp_path)[case]
    with pytest.raises(BadInputError) as info:
        probe(path, VideoConfig())
    assert expected in str(info.value)
    assert info.value.fix, "every refusal says what to do"


def test_a_file_over_the_upload_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    path, _ = colour_video(tmp_path / "v.mp4")
    with pytest.raises(BadInputError, match=r"uploads are limited to"):
        probe(path, VideoConfig(), max_bytes=path.stat().st_size - 1)
    assert probe(path, VideoConfig(), max_bytes=path.stat().st_size).has_video


def test_a_truncated_webm_is_summarised_up_to_the_damage(tmp_path: Path, service: Any) -> None:
    path, _ = colour_video(tmp_path / "v.webm", (3.0, 3.0, 3.0, 3.0))
    data = path.read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: len(data) // 2])
    result = final(service, cut)
    assert result.key_frames, "what came before the damage is kept"
    last = max(k.end for k in result.key_frames)
    assert last < 10.0
    assert any("truncated or damaged" in n for n in result.notes)
    assert result.chapters and result.summary


def test_audio_only_gives_a_transcript_and_says_there_is_no_picture(
    tmp_path: Path,
    isolated_settings: Settings,
    real_asr_manager: Any,  # noqa: F811 (the fixture imported above)
    librivox: list,
) -> None:
    from mmdemo.flows.audio import read_audio

    speech = read_audio(librivox[1][0]).samples
    path = write_video(tmp_path / "talk.m4a", [], audio=place([(1.0, speech)], 6.0))
    result = final(service_for(isolated_settings, real_asr_manager), path)
    assert not result.key_frames
    assert any("no picture" in n for n in result.notes)
    assert "young man" in " ".join(s.text for s in result.transcript).lower()
    assert result.chapters and result.complete


def test_video_without_sound_gives_key_frames_and_says_so(tmp_path: Path, service: Any) -> None:
    path, cuts = colour_video(tmp_path / "mute.mp4", audio=None)
    result = final(service, path)
    assert not result.transcript
    assert any("no sound track" in n for n in result.notes)
    assert all(min(abs(c - b) for b in boundaries(result)) <= 1.0 for c in cuts)


def test_variable_frame_rate_keeps_cut_times(tmp_path: Path, service: Any) -> None:
    path, cuts = colour_video(tmp_path / "vfr.mp4", variable_rate=True)
    result = final(service, path)
    found = boundaries(result)
    assert len(found) == len(cuts)
    assert all(abs(c - b) <= 1.0 for c, b in zip(cuts, found, strict=True))


def test_rotated_phone_video_is_shown_upright(tmp_path: Path, service: Any) -> None:
    from PIL import Image

    path, _ = colour_video(tmp_path / "phone.mp4", size=(320, 180), rotation=90)
    result = final(service, path)
    with Image.open(result.key_frames[0].path) as frame:
        assert frame.height > frame.width, "a landscape-encoded phone video stands upright"
    assert result.info.width < result.info.height
    assert any("turned by 90" in n for n in result.notes)


@pytest.fixture(scope="module")
def three_hours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-hour video (tiny and at 1 fps, so it is quick to make), scenes of 20 minutes."""
    folder = tmp_path_factory.mktemp("long")
    scenes = [Scene(1200.0, c) for c in ((200, 40, 40), (40, 200, 40), (40, 40, 200))] * 3
    return write_video(folder / "three-hours.mp4", scenes, size=(64, 48), fps=1)


def test_a_three_hour_video_is_decoded_in_bounded_memory(three_hours: Path, tmp_path: Path) -> None:
    config = VideoConfig(keyframes_only_after_s=1e9)  # decode every frame: the worst case
    info = probe(three_hours, config)
    assert info.duration == pytest.approx(3 * 3600, abs=2)
    tracemalloc.start()
    try:
        result = drain(shots_stage(three_hours, info, config, tmp_path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.stats.sampled >= 2000, "thousands of frames were looked at"
    # holding the sampled frames would take over 1 GB; the detector keeps a few at a time
    assert peak < 48 * 2**20, f"peak traced memory {peak / 2**20:.0f} MB"
    assert len(result.key_frames) <= config.max_key_frames
    cuts = [s.start for s in result.shots if not s.soft and s.start > 0]
    assert cuts == pytest.approx([1200.0 * k for k in range(1, 9)], abs=5.0)


def test_a_three_hour_video_can_be_cancelled_and_nothing_half_done_is_kept(
    three_hours: Path, isolated_settings: Settings, shared_manager: Any
) -> None:
    service = service_for(isolated_settings, shared_manager, keyframes_only_after_s=1e9)
    stop = threading.Event()
    seen: list[Any] = []
    for message in service.run(three_hours, stop):
        seen.append(message)
        if isinstance(message, Progress) and message.stage == "shots":
            stop.set()
    last = seen[-1]
    assert isinstance(last, VideoResult) and not last.complete
    assert any("cancelled while" in n for n in last.notes)
    assert not (service.root / last.video_id / "shots" / "stage.json").exists()


def test_a_long_silent_sound_track_is_read_in_bounded_blocks(
    tmp_path: Path, isolated_settings: Settings, shared_manager: Any
) -> None:
    from mmdemo.flows.video.speech import audio_blocks

    minutes = 12
    path = write_video(tmp_path / "quiet.m4a", [], audio=np.zeros(minutes * 60 * 16000, "f4"))
    info = probe(path, VideoConfig())
    sizes = [len(block) / 16000 for _, block in audio_blocks(path, info, 60.0)]
    assert sum(sizes) == pytest.approx(minutes * 60, abs=1)
    assert max(sizes) <= 63.0, "no block holds more than a minute and the cut search window"
    result = final(service_for(isolated_settings, shared_manager), path)
    assert not result.transcript
    assert any("silent" in n for n in result.notes)
