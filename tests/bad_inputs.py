"""A corpus of bad files, written into a folder at test time: what a new user, a broken
upload or a hostile client sends. Each entry says what it is and which words a good refusal
names (its cause), so tests can run the corpus against every file-taking endpoint.

Nothing here is big on disk: the oversized file is sparse and the decompression bomb is a
few kilobytes of zlib that would inflate to 400 megapixels.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Bad:
    """One bad file: ``path``, and a regular expression the refusal must match (its cause)."""

    path: Path
    cause: str


def png_bytes(size: tuple[int, int] = (64, 48), color: str = "red") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(size: tuple[int, int] = (160, 120)) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
        buf, "JPEG", quality=90
    )
    return buf.getvalue()


def bomb_png(side: int = 20000) -> bytes:
    """A valid 1-bit ``side`` x ``side`` PNG of zeros: tiny on disk, huge when decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    row = b"\0" * (1 + (side + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def wav_file(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    import soundfile as sf

    sf.write(str(path), samples, rate, subtype="FLOAT")
    return path


def mp4_file(path: Path, seconds: float = 1.0) -> Path:
    """A short silent MP4 (coloured frames) written with PyAV."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(int(seconds * 8)):
            frame = np.full((48, 64, 3), (i * 30) % 255, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def zip_with(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    """A zip of ``members``; ``symlink`` adds an entry that is a symbolic link to it."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo("link")
            info.external_attr = (0o120777 << 16) | 0x10  # S_IFLNK | rwx
            zf.writestr(info, symlink)
    return path


def lora_config(base: str = "gpt2", targets: tuple[str, ...] = ("c_attn",)) -> bytes:
    return json.dumps(
        {
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "r": 4,
            "lora_alpha": 8,
            "target_modules": list(targets),
            "base_model_name_or_path": base,
        }
    ).encode()


def wrong_base_weights() -> bytes:
    """LoRA weights for GPT-2's ``transformer.h.0.attn.c_attn`` (no such module in a VLM)."""
    import torch
    from safetensors.torch import save

    key = "base_model.model.transformer.h.0.attn.c_attn"
    return save(
        {
            f"{key}.lora_A.weight": torch.zeros(4, 768),
            f"{key}.lora_B.weight": torch.zeros(2304, 4),
        }
    )


def corpus(folder: Path, limit_bytes: int) -> dict[str, Bad]:
    """Write every bad file into ``folder``; ``limit_bytes`` is the app's upload limit."""
    import pickle

    folder.mkdir(parents=True, exist_ok=True)
    jpeg, png = jpeg_bytes(), png_bytes()

    def write(name: str, data: bytes) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    oversized = folder / "huge.png"
    with open(oversized, "wb") as f:
        f.write(png)
        f.truncate(limit_bytes + 2**20)  # sparse: costs no disk
    rate = 16000
    nan = np.full(rate, np.nan, np.float32)
    good_line = {"image": "a.png", "question": "What colour?", "answer": "red"}
    return {
        "empty file": Bad(write("empty.png", b""), r"empty"),
        "truncated JPEG": Bad(write("cut.jpg", jpeg[: len(jpeg) // 2]), r"truncated|corrupt"),
        "truncated PNG": Bad(write("cut.png", png[: len(png) // 2]), r"truncated|corrupt|readable"),
        "empty PNG": Bad(write("blank.png", b"\x89PNG\r\n\x1a\n"), r"readable|truncated|corrupt"),
        "WAV as image": Bad(
            wav_file(folder / "speech.wav", np.zeros(rate, np.float32)), r"not an image"
        ),
        "MP4 as image": Bad(mp4_file(folder / "clip.mp4"), r"not an image"),
        "text renamed .png": Bad(write("notes.png", b"just some notes\n" * 20), r"not an image"),
        "oversized": Bad(oversized, r"too large|maximum file size"),
        "decompression bomb": Bad(write("bomb.png", bomb_png()), r"too large"),
        "truncated MP4": Bad(
            write("cut.mp4", mp4_file(folder / "whole.mp4", 2.0).read_bytes()[:600]),
            r"truncated|corrupt|cannot be read|no video|not a video|unreadable",
        ),
        "text renamed .mp4": Bad(
            write("notes.mp4", b"just some notes\n" * 20),
            r"corrupt|cannot be read|not a video|no video|unreadable",
        ),
        "photo as video": Bad(write("photo.mp4", jpeg), r"still image|not a video"),
        "NaN audio": Bad(wav_file(folder / "nan.wav", nan), r"not a number|NaN|no sound|corrupt"),
        "silent audio": Bad(
            wav_file(folder / "silent.wav", np.zeros(2 * rate, np.float32)), r"silent|no sound"
        ),
        "zip-slip archive": Bad(
            zip_with(folder / "slip.zip", {"../../evil.txt": b"x", "data.jsonl": b""}),
            r"outside its folder",
        ),
        "symlink in archive": Bad(
            zip_with(folder / "link.zip", {"data.jsonl": b""}, symlink="/etc/passwd"),
            r"symbolic link",
        ),
        "pickled checkpoint": Bad(
            zip_with(
                folder / "pickled.zip",
                {
                    "adapter_config.json": lora_config(),
                    "adapter_model.bin": pickle.dumps({"weights": [1, 2, 3]}),
                },
            ),
            r"pickle",
        ),
        "adapter for another model": Bad(
            zip_with(
                folder / "gpt2-lora.zip",
                {
                    "adapter_config.json": lora_config(),
                    "adapter_model.safetensors": wrong_base_weights(),
                },
            ),
            r"does not\s+have|made for|trained for",
        ),
        "malformed JSONL": Bad(
            write("broken.jsonl", b'{"image": "a.png", "question": \n{not json}\n[1, 2\n'),
            r"no usable|not valid JSON|JSON",
        ),
        "non-UTF-8 JSONL": Bad(
            write("latin1.jsonl", (json.dumps(good_line) + "\n").encode() + b"\xff\xfe caf\xe9\n"),
            r"UTF-8",
        ),
    }


IMAGE_CASES = (
    "empty file",
    "truncated JPEG",
    "truncated PNG",
    "empty PNG",
    "WAV as image",
    "MP4 as image",
    "text renamed .png",
    "oversized",
    "decompression bomb",
)
AUDIO_CASES = ("empty file", "NaN audio", "silent audio", "text renamed .png", "oversized")
VIDEO_CASES = ("empty file", "truncated MP4", "text renamed .mp4", "photo as video", "oversized")
DATASET_CASES = (
    "empty file",
    "zip-slip archive",
    "symlink in archive",
    "malformed JSONL",
    "non-UTF-8 JSONL",
    "oversized",
)
ADAPTER_CASES = (
    "empty file",
    "zip-slip archive",
    "symlink in archive",
    "pickled checkpoint",
    "adapter for another model",
    "oversized",
)

# what Gradio says when a request fails before (or outside) our code: never good enough
GENERIC = (
    "Could not preprocess input component",
    "Expected ImageData",
    "Error",
    "None",
    "",
)


def is_generic(message: str) -> bool:
    return message.strip() in GENERIC or "Could not preprocess" in message
