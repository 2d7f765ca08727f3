"""Sizes a caller controls, refused from what a header or a count says, before the work:
conversations and images in the chat, audio headers that claim hours or a thousand channels,
dataset files, problem lists and image paths in datasets, and video lengths."""

from __future__ import annotations

import io
import json
import os
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from mmdemo.config import Settings
from mmdemo.errors import BadInputError
from mmdemo.finetune.formats import MAX_PROBLEMS_KEPT, load_dataset
from mmdemo.flows.audio import read_audio
from mmdemo.flows.chat import MAX_IMAGES_IN_CONTEXT, ChatService, ChatSession, ChatTurn

# -- the chat (tab, /chat, voice) ---------------------------------------------------------------


@pytest.fixture
def small_chat(isolated_settings: Settings) -> ChatService:
    """A chat whose conversations may hold 1,000 characters (no model is loaded by refusals)."""
    from mmdemo.models.manager import ModelManager

    return ChatService.standalone(
        ModelManager(isolated_settings.replace(max_conversation_chars=1000))
    )


def test_the_chat_caps_the_whole_conversation_with_cause_and_fix(small_chat: ChatService) -> None:
    session = ChatSession()
    session.turns.append(ChatTurn("tell me " * 60, [], [], answer="sure " * 60))  # 780 characters
    with pytest.raises(BadInputError, match="limit is 1,000") as refused:
        list(small_chat.stream(session, "x" * 300, []))
    assert "conversation has 1,080 characters" in refused.value.message
    assert "new conversation" in refused.value.fix
    assert not small_chat.manager.is_loaded("vlm")  # refused before any work
    session.system = "s" * 990  # a system prompt counts too
    session.turns.clear()
    with pytest.raises(BadInputError, match="conversation has 1,001"):
        list(small_chat.stream(session, "x" * 11, []))


def test_the_chat_refuses_more_images_than_a_prompt_shows_before_opening_any(
    small_chat: ChatService, tmp_path: Path
) -> None:
    missing = [str(tmp_path / f"{i}.png") for i in range(MAX_IMAGES_IN_CONTEXT + 1)]
    with pytest.raises(BadInputError, match=f"at most {MAX_IMAGES_IN_CONTEXT}") as refused:
        list(small_chat.stream(ChatSession(), "Compare them", missing))
    assert "images with one question" in refused.value.fix  # not "file not found": none opened


# -- audio headers ---------------------------------------------------------------------------------


def wav_header(channels: int, rate: int, bits: int, data_bytes: int, payload: bytes) -> bytes:
    """A PCM WAV whose header claims what it is told to (the payload may be shorter)."""
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * align, align, bits)
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", data_bytes)
    return b"RIFF" + struct.pack("<I", len(body) + len(payload)) + body + payload


def flac_claiming(frames: int) -> bytes:
    """A one-second FLAC whose STREAMINFO claims ``frames`` samples."""
    import soundfile as sf

    buf = io.BytesIO()
    noise = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    sf.write(buf, noise, 16000, format="FLAC")
    data = bytearray(buf.getvalue())
    at = 8 + 10  # "fLaC", the block header, then 10 bytes to rate|channels|bits|samples
    packed = int.from_bytes(data[at : at + 8], "big")
    packed = (packed & ~((1 << 36) - 1)) | frames
    data[at : at + 8] = packed.to_bytes(8, "big")
    return bytes(data)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("1000 channels", wav_header(1000, 16000, 16, 2**31, b"\0" * 64000), "1000 channels"),
        ("a million Hz", wav_header(1, 1_000_000, 16, 2**31, b"\0" * 64000), "1000000 Hz"),
        ("2^31 frames (74 h)", flac_claiming(2**31), "minutes long"),
    ],
    ids=["channels", "rate", "frames"],
)
def test_absurd_audio_headers_are_refused_without_allocating(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / ("upload.flac" if content.startswith(b"fLaC") else "upload.wav")
    path.write_bytes(content)
    tracemalloc.start()
    try:
        with pytest.raises(BadInputError, match=message) as refused:
            read_audio(path, longest_s=3600)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"{name}: {peak / 2**20:.0f} MB allocated before refusing"
    assert refused.value.fix


def test_a_long_but_sane_recording_is_still_read_up_to_the_limit(tmp_path: Path) -> None:
    import soundfile as sf

    path = tmp_path / "speech.wav"
    noise = np.random.default_rng(1).standard_normal((8000 * 3, 2)).astype(np.float32) * 0.1
    sf.write(path, noise, 8000)
    clip = read_audio(path, max_seconds=1, longest_s=60)
    assert clip.source_channels == 2 and clip.truncated and clip.seconds == pytest.approx(1, 0.01)
    with pytest.raises(BadInputError, match="MMDEMO_MAX_AUDIO_MINUTES"):
        read_audio(path, max_seconds=1, longest_s=2)


# -- datasets --------------------------------------------------------------------------------------


def write_png(path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), (200, 30, 30)).save(path)
    return path


def row(image: str) -> str:
    return json.dumps({"image": image, "question": "Red?", "answer": "yes"})


def test_dataset_files_over_the_setting_are_refused_before_reading(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png")
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join([row("a.png")] * 20_000), encoding="utf-8")  # about 1 MB
    with pytest.raises(BadInputError, match="limit is 1 MB") as refused:
        load_dataset(str(path), "vqa", max_mb=1)
    assert "MMDEMO_MAX_DATASET_MB" in refused.value.fix
    assert sum(len(s) for s in load_dataset(str(path), "vqa", max_mb=2).splits.values())


def test_problems_are_listed_up_to_a_cap_then_counted(tmp_path: Path) -> None:
    from mmdemo.flows.train_data import checked_upload

    write_png(tmp_path / "up" / "a.png")
    lines = [row("a.png")] + ["{broken"] * 300
    (tmp_path / "up" / "data.jsonl").write_text("\n".join(lines), encoding="utf-8")
    data = load_dataset(str(tmp_path / "up" / "data.jsonl"), "vqa")
    assert data.report.skipped == 300 and len(data.report.problems) == MAX_PROBLEMS_KEPT
    assert data.report.describe().endswith("and 292 more")
    uploaded = checked_upload(
        [str(tmp_path / "up" / "data.jsonl"), str(tmp_path / "up" / "a.png")],
        tmp_path / "runs",
        10,
        "vqa",
    )
    skipped = uploaded["skipped"]
    assert len(skipped) == MAX_PROBLEMS_KEPT + 1
    assert skipped[0].startswith("data.jsonl line 2: not valid JSON")
    assert skipped[-1] == f"and {300 - MAX_PROBLEMS_KEPT} more"


def test_dataset_images_must_stay_inside_the_dataset_folder(tmp_path: Path) -> None:
    secret = write_png(tmp_path / "secret.png")  # outside the dataset
    root = tmp_path / "data"
    write_png(root / "img" / "ok.png")
    os.symlink(secret, root / "img" / "link.png")
    lines = [
        row("img/ok.png"),
        row("../secret.png"),
        row(str(secret)),
        row("img/../../secret.png"),
        row("img/link.png"),
        row("..\\secret.png"),
    ]
    (root / "d.jsonl").write_text("\n".join(lines), encoding="utf-8")
    data = load_dataset(str(root / "d.jsonl"), "vqa")
    assert [e.image for s in data.splits.values() for e in s] == [str(root / "img" / "ok.png")]
    problems = sorted(data.report.problems)  # links are found after the rows are read
    assert problems == [
        "d.jsonl line 2: image '../secret.png' is outside the dataset folder",
        f"d.jsonl line 3: image '{str(secret)[:80]}' is outside the dataset folder",  # cut at 80
        "d.jsonl line 4: image 'img/../../secret.png' is outside the dataset folder",
        "d.jsonl line 5: image link.png: it is a link that leads outside the dataset folder",
        "d.jsonl line 6: image '..\\\\secret.png' is outside the dataset folder",
    ]


def test_vqa_rad_and_slake_image_names_stay_inside_too(tmp_path: Path) -> None:
    write_png(tmp_path / "secret.png")
    rad = tmp_path / "rad"
    write_png(rad / "images" / "ok.png")
    items = [
        {"qid": 1, "image_name": "ok.png", "question": "Q?", "answer": "yes"},
        {"qid": 2, "image_name": "../../secret.png", "question": "Q?", "answer": "yes"},
    ]
    (rad / "VQA_RAD.json").write_text(json.dumps(items), encoding="utf-8")
    data = load_dataset(str(rad), "vqa")
    assert data.report.problems == [
        "VQA_RAD.json item 1: image '../../secret.png' is outside the folder"
    ]
    slake = tmp_path / "slake"
    write_png(slake / "imgs" / "a" / "ok.png")
    rows = [
        {"qid": 1, "img_name": "a/ok.png", "question": "Q?", "answer": "Lung", "q_lang": "en"},
        {"qid": 2, "img_name": "../../secret.png", "question": "Q?", "answer": "x"},
    ]
    (slake / "train.json").write_text(json.dumps(rows), encoding="utf-8")
    data = load_dataset(str(slake), "vqa")
    assert data.report.problems == [
        "train.json item 1: image '../../secret.png' is outside the folder"
    ]
    assert sum(len(s) for s in data.splits.values()) == 1


# -- video length ----------------------------------------------------------------------------------


def sparse_video(path: Path, seconds: int) -> Path:
    """Two tiny frames ``seconds`` apart: a long video in a few kilobytes."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=1)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.time_base = Fraction(1, 1)
        for t in (0, seconds):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts = t
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def test_a_video_longer_than_the_setting_is_refused_before_decoding(
    tmp_path: Path, tiny_settings: Settings
) -> None:
    from mmdemo.flows.video.service import VideoService

    path = sparse_video(tmp_path / "long.mp4", 150)
    service = VideoService(tiny_settings.replace(max_video_minutes=2), manager=None)
    with pytest.raises(BadInputError, match="takes videos up to 02:00") as refused:
        next(iter(service.run(path)))
    assert "MMDEMO_MAX_VIDEO_MINUTES" in refused.value.fix
    roomy = VideoService(tiny_settings.replace(max_video_minutes=3), manager=None)
    assert roomy.config.max_hours == pytest.approx(3 / 60)


def test_gestures_refuse_to_analyse_more_video_than_the_setting(tmp_path: Path) -> None:
    from mmdemo.flows.gestures.service import GestureService
    from mmdemo.flows.gestures.types import VideoOptions

    service = GestureService(None, tmp_path, max_video_s=60)
    never_opened = tmp_path / "does-not-exist.mp4"
    with pytest.raises(BadInputError, match="limit of 1 minutes") as refused:
        next(service.analyse_video(never_opened, VideoOptions(max_seconds=600)))
    assert "max_seconds=60" in refused.value.fix


def test_video_limits_follow_the_mode() -> None:
    assert Settings().video_seconds == 12 * 3600
    assert Settings(hosted=True).video_seconds == 3600
    assert Settings(hosted=True, max_video_minutes=5).video_seconds == 300
