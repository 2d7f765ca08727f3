"""Gestures without a browser: real hand pictures (emoji shipped in assets), constructed
landmark sequences for moving gestures and fingerspelling, videos made from hand pictures,
and the bad inputs a user may give."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmdemo.errors import BadInputError
from tests.gesture_helpers import GESTURE_IMAGES, hand_sprite, swipe, wave, write_video

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, tiny_settings: Any) -> Any:
    from mmdemo.flows.gestures.service import GestureService
    from mmdemo.models.manager import ModelManager

    manager = ModelManager(tiny_settings)
    yield GestureService(manager, tmp_path_factory.mktemp("gestures-home"))
    manager.unload_all()


@pytest.mark.parametrize(
    ("picture", "gesture"),
    [
        ("thumbs-up", "thumbs_up"),
        ("thumbs-down", "thumbs_down"),
        ("call-me", "call_me"),
        ("i-love-you", "i_love_you"),
    ],
)
def test_a_hand_picture_gets_its_gesture_and_a_skeleton(
    service: Any, picture: str, gesture: str
) -> None:
    result = service.analyse_image(GESTURE_IMAGES / f"{picture}.png")
    assert [h.gesture for h in result.hands] == [gesture]
    hand = result.hands[0]
    assert hand.confidence >= service.threshold
    assert hand.landmarks.shape == (21, 3) and hand.handedness in ("Left", "Right")
    # the skeleton is drawn: the annotated picture differs from the input around the hand
    before = np.asarray(hand_picture(picture), dtype=int)
    after = np.asarray(result.annotated, dtype=int)
    assert after.shape == before.shape and np.abs(after - before).sum() > 0


def hand_picture(name: str) -> Any:
    from PIL import Image

    return Image.open(GESTURE_IMAGES / f"{name}.png").convert("RGB")


def test_a_picture_without_a_hand_says_so_and_how_to_fix_it(service: Any) -> None:
    result = service.analyse_image(REPO / "assets" / "images" / "cat.jpg")
    assert result.hands == ()
    assert any("no hand" in n and "show one hand" in n for n in result.notes)


def canvas(size: tuple[int, int], *placed: tuple[str, int, tuple[int, int]]) -> Any:
    from PIL import Image

    image = Image.new("RGB", size, (236, 233, 226))
    for name, side, (x, y) in placed:
        sprite = hand_sprite(name, side)
        image.paste(sprite, (x, y), sprite)
    return image


def test_a_tiny_hand_in_a_big_picture_is_found_by_zooming_in(service: Any) -> None:
    big = canvas((1600, 1200), ("call-me", 110, (200, 150)))
    assert service.manager.get("hands").detect(np.asarray(big)) == []  # the plain pass misses it
    result = service.analyse_image(big)
    assert [h.gesture for h in result.hands] == ["call_me"]
    assert any("zooming" in n for n in result.notes)


def test_several_hands_are_each_classified(service: Any) -> None:
    two = canvas((800, 400), ("thumbs-down", 180, (80, 110)), ("call-me", 180, (500, 110)))
    result = service.analyse_image(two)
    assert sorted(h.gesture for h in result.hands) == ["call_me", "thumbs_down"]
    assert any("2 hands" in n for n in result.notes)


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        (b"", "empty"),
        (b"this is text, not a picture", "not an image"),
        (b"\x89PNG\r\n\x1a\n\0\0", ""),
    ],
)
def test_a_bad_image_file_is_refused_with_cause_and_fix(
    service: Any, tmp_path: Path, content: bytes, cause: str
) -> None:
    bad = tmp_path / "hand.png"
    bad.write_bytes(content)
    with pytest.raises(BadInputError) as err:
        service.analyse_image(bad)
    assert "hand.png" in str(err.value) and cause in str(err.value) and err.value.fix


# --- fingerspelling: constructed per-frame decisions -------------------------------------


def spell(frames: list[str | None], **config: Any) -> str:
    from mmdemo.flows.gestures.spelling import SpellingConfig, Transcriber

    t = Transcriber(SpellingConfig(**config))
    for f in frames:
        t.feed(f)
    return t.text


def test_a_letter_counts_only_when_held_for_the_set_number_of_frames() -> None:
    assert spell(["A"] * 3 + ["B"] * 3, hold_frames=4) == ""
    assert spell(["A"] * 4 + ["B"] * 4, hold_frames=4) == "AB"
    assert spell(["A"] * 40, hold_frames=4) == "A"  # holding longer does not repeat it
    # a flicker of another letter in between does not count
    assert spell(["A"] * 4 + ["X"] + ["A"] * 4 + ["B"] * 4, hold_frames=4) == "AB"


def test_a_repeated_letter_needs_a_release_and_no_hand_ends_the_word() -> None:
    hello = ["H"] * 4 + ["E"] * 4 + ["L"] * 4 + ["none"] * 2 + ["L"] * 4 + ["O"] * 4
    assert spell(hello) == "HELLO"
    assert spell(["L"] * 4 + ["none"] + ["L"] * 4) == "L"  # one frame is not a release
    word_gap = ["H"] * 4 + ["I"] * 4 + [None] * 8 + ["call_me"] * 4 + ["O"] * 4
    assert spell(word_gap, gap_frames=8) == "HI YO"
    assert spell(["H"] * 4 + ["I"] * 4 + ["open_palm"] * 4 + ["O"] * 4) == "HI O"


def test_gestures_add_words_and_mode_names_them() -> None:
    frames = ["victory"] * 4 + ["thumbs_up"] * 4
    assert spell(frames) == "V (thumbs up)"
    assert spell(frames, mode="gestures") == "(victory) (thumbs up)"
    with pytest.raises(BadInputError):
        spell([], mode="semaphore")


# --- moving gestures: constructed landmark sequences ------------------------------------


def open_hand() -> np.ndarray:
    """An open right hand from the kinematic model, in image units around (0, 0)."""
    from mmdemo.flows.gestures.handmodel import forward, rotation, to_image
    from mmdemo.flows.gestures.poses import sample_pose

    pose = sample_pose(np.random.default_rng(1), ("ext",) * 4, "out", 1, (0.5, 0.5))
    zero = np.zeros(1)
    return to_image(forward(pose), rotation(zero, zero, zero))[0] * 0.012


def motions(path: Any, seconds: float = 4.0, fps: float = 12.0, seed: int = 0) -> list[str]:
    from mmdemo.flows.gestures.motion import MotionTracker

    rng = np.random.default_rng(seed)
    hand, tracker, found = open_hand(), MotionTracker(), []
    for i in range(round(seconds * fps)):
        t = i / fps
        dx, dy = path(t)
        lm = hand + np.array([0.5 + dx, 0.6 + dy, 0.0]) + rng.normal(0, 0.002, hand.shape)
        event = tracker.feed(t, lm, 640, 480)
        if event is not None:
            found.append(event.gesture)
    return found


def slide(dx: float = 0.0, dy: float = 0.0, t0: float = 1.0, dur: float = 0.5) -> Any:
    def path(t: float) -> tuple[float, float]:
        u = min(max((t - t0) / dur, 0.0), 1.0)
        return dx * u, dy * u

    return path


@pytest.mark.parametrize("fps", [8.0, 15.0, 30.0])
def test_moving_gestures_from_landmark_sequences(fps: float) -> None:
    assert motions(lambda t: (0.08 * np.sin(2 * np.pi * 2.0 * t), 0.0), fps=fps) == ["wave"]
    assert motions(slide(dx=0.35), fps=fps) == ["swipe_right"]
    assert motions(slide(dx=-0.35), fps=fps) == ["swipe_left"]
    assert motions(lambda t: (0.0, 0.0), fps=fps) == []  # a still hand
    assert motions(slide(dy=-0.35), fps=fps) == []  # up is not a swipe
    assert motions(lambda t: (0.01 * t, 0.0), fps=fps) == []  # a slow drift


def test_one_swipe_after_another_gives_two_events() -> None:
    both = lambda t: (slide(dx=-0.3)(t)[0] + slide(dx=0.3, t0=2.5)(t)[0], 0.0)  # noqa: E731
    assert motions(both, seconds=5.0) == ["swipe_left", "swipe_right"]


# --- videos made from a hand picture ----------------------------------------------------


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gesture-videos")
    return {
        "swipe": write_video(folder / "swipe.mp4", swipe(0.25, 0.75)),
        "wave": write_video(folder / "wave.mp4", wave()),
        "call": write_video(folder / "call.mp4", lambda t: (0.5, 0.5), 2.0, sprite="call-me"),
    }


def run_video(service: Any, path: Path, **options: Any) -> Any:
    from mmdemo.flows.gestures.types import VideoOptions

    *_, last = service.analyse_video(path, VideoOptions(**options))
    return last.result


def test_a_video_gives_frames_moving_gestures_and_a_transcript(
    service: Any, videos: dict[str, Path]
) -> None:
    swiped = run_video(service, videos["swipe"], fps=10)
    # a 3 s video at 15 frames/s read at 10 frames/s: the first frame at or after each 0.1 s
    grid = [t for t, _ in swiped.frames]
    assert len(grid) == 30 and all(-1e-6 <= t - k / 10 < 1 / 15 for k, t in enumerate(grid))
    assert [m.gesture for m in swiped.motions] == ["swipe_right"]
    assert "(swipe right)" in swiped.transcript
    times = [t for t, _ in swiped.frames]
    assert times == sorted(times) and len(times) >= 25  # 3 s at 10 frames/s
    assert sum(1 for _, hands in swiped.frames if hands) >= 0.8 * len(times)
    assert [m.gesture for m in run_video(service, videos["wave"], fps=10).motions] == ["wave"]
    held = run_video(service, videos["call"], fps=10)
    assert held.transcript == "Y"  # call me held = the letter Y, once
    data = held.to_json()
    assert data["transcript"] == "Y" and len(data["frames"][0]["hands"][0]["landmarks"]) == 21


def test_a_long_video_is_bounded_and_can_be_cancelled(
    service: Any, videos: dict[str, Path]
) -> None:
    import threading

    bounded = run_video(service, videos["swipe"], fps=10, max_seconds=1.0)
    assert bounded.analysed_s <= 1.0 and len(bounded.frames) <= 11
    assert any("only the first" in n for n in bounded.notes)
    from mmdemo.flows.gestures.types import VideoOptions

    stop = threading.Event()
    updates = service.analyse_video(videos["swipe"], VideoOptions(fps=10), stop, every_s=0.0)
    next(updates)
    stop.set()
    *_, last = updates
    assert last.result.cancelled and len(last.result.frames) < 30


def test_a_two_hour_video_is_read_as_a_stream(service: Any, tmp_path: Path) -> None:
    import av

    path = tmp_path / "two-hours.mp4"
    with av.open(str(path), "w") as container:  # 2 h at 1 frame/s, tiny frames
        stream = container.add_stream("libx264", rate=1)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        frame = av.VideoFrame(64, 48, "yuv420p")
        for i in range(7200):
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    result = run_video(service, path, fps=1, max_seconds=30)
    assert len(result.frames) <= 31 and result.duration_s > 7000
    assert any("120 min long" in n and "only the first" in n for n in result.notes)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "audio-only"])
def test_a_broken_video_gets_a_clear_message(
    service: Any, videos: dict[str, Path], tmp_path: Path, damage: str
) -> None:
    bad = tmp_path / "clip.mp4"
    if damage == "garbage":
        bad.write_bytes(b"\x00\x01not a video" * 100)
    elif damage == "truncated":
        data = videos["swipe"].read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        bad.write_bytes(b"")
    else:
        import av

        with av.open(str(bad), "w") as container:
            stream = container.add_stream("aac", rate=16000)
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp", "mono")
            frame.sample_rate = 16000
            for packet in [*stream.encode(frame), *stream.encode()]:
                container.mux(packet)
    try:
        result = run_video(service, bad)
    except BadInputError as exc:
        assert "clip.mp4" in str(exc) and exc.fix
        return
    # a truncated file may still decode part-way: then the result says it is incomplete
    assert damage == "truncated"
    assert any("truncated" in n and "complete file" in n for n in result.notes)


# --- teach a gesture ---------------------------------------------------------------------


def vulcan_examples(folder: Path, count: int) -> list[Path]:
    """Pictures of a Vulcan salute (Noto emoji), a shape the built-in set does not name."""
    from PIL import Image

    src = Image.open(Path(__file__).parent / "data" / "vulcan-noto-64.png").convert("RGBA")
    paths = []
    for i, (side, tilt) in enumerate(
        [(150, 0), (170, 8), (190, -8), (160, 14), (180, -14), (200, 4), (140, -4)][:count]
    ):
        hand = src.resize((side, side), Image.LANCZOS).rotate(tilt, Image.BICUBIC, expand=True)
        image = Image.new("RGB", (480, 360), (236, 233, 226))
        image.paste(hand, ((480 - hand.width) // 2, (360 - hand.height) // 2), hand)
        paths.append(folder / f"vulcan-{i}.png")
        image.save(paths[-1])
    return paths


def test_teach_a_gesture_then_it_is_recognised_and_round_trips_as_a_file(
    tmp_path: Path, tiny_settings: Any
) -> None:
    from mmdemo.flows.gestures.service import GestureService
    from mmdemo.models.manager import ModelManager

    manager = ModelManager(tiny_settings)
    service = GestureService(manager, tmp_path / "home")
    examples = vulcan_examples(tmp_path, 7)
    gestures, _ = service.teach("vulcan", examples[:6])
    assert [(g.name, g.examples) for g in gestures] == [("vulcan", 6)]
    assert gestures[0].train_accuracy >= 0.8
    assert [h.gesture for h in service.analyse_image(examples[6]).hands] == ["vulcan"]
    # taught gestures persist, export and import into another server's set
    again = GestureService(manager, tmp_path / "home")
    assert [g.name for g in again.custom.gestures()] == ["vulcan"]
    other = GestureService(manager, tmp_path / "other-home")
    other.custom.import_json(service.custom.export_json(), "gestures.json")
    assert [h.gesture for h in other.analyse_image(examples[6]).hands] == ["vulcan"]
    manager.unload_all()


def test_bad_teaching_sets_get_cause_and_fix(service: Any, tmp_path: Path) -> None:
    examples = vulcan_examples(tmp_path, 6)
    with pytest.raises(BadInputError, match="needs 5-20") as err:
        service.teach("salute", examples[:1])
    assert err.value.fix
    with pytest.raises(BadInputError, match="built-in"):
        service.teach("Thumbs_Up", examples)
    service.teach("salute", examples)
    with pytest.raises(BadInputError, match="already called") as err:
        service.teach("salute", examples)
    assert "replace" in err.value.fix
    no_hands = [REPO / "assets" / "images" / "cat.jpg"] * 3 + examples[:3]
    with pytest.raises(BadInputError, match="only 3 of 6 examples") as err:
        service.teach("other-salute", no_hands)
    assert "cat.jpg: no hand found" in str(err.value)
    with pytest.raises(BadInputError, match="not an mmdemo gesture set"):
        service.custom.import_json('{"format": "something else"}', "x.json")
    service.custom.delete("salute")


# --- the landmarker bundle ----------------------------------------------------------------


def test_the_landmarker_ships_and_a_path_override_is_checked(
    tiny_settings: Any, tmp_path: Path
) -> None:
    import zipfile

    from mmdemo.errors import ModelUnavailableError
    from mmdemo.models.backends.hands import EMBEDDED_TASK
    from mmdemo.models.manager import ModelManager
    from mmdemo.models.sources import availability

    assert availability("hands", "embedded:hand-landmarker", tiny_settings)[0]
    copy = tmp_path / "mine.task"  # another bundle by path works
    copy.write_bytes(EMBEDDED_TASK.read_bytes())
    manager = ModelManager(tiny_settings.replace(hands=str(copy)))
    assert manager.get("hands").detect(np.asarray(hand_picture("call-me")))
    manager.unload_all()
    squeezed = tmp_path / "compressed.task"  # MediaPipe reads only uncompressed bundles
    with (
        zipfile.ZipFile(EMBEDDED_TASK) as src,
        zipfile.ZipFile(squeezed, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for name in src.namelist():
            dst.writestr(name, src.read(name))
    for bad, cause in ((squeezed, "uncompressed"), (tmp_path / "missing.task", "no .task file")):
        with pytest.raises(ModelUnavailableError) as err:
            ModelManager(tiny_settings.replace(hands=str(bad))).get("hands")
        assert cause in str(err.value) and "MMDEMO_HANDS" in err.value.fix
