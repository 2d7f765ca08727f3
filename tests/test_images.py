"""The house image decoder (mmdemo/images.py): every refusal names the file, the cause and a
fix; what it accepts comes out as the RGB picture a viewer would show."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest

from mmdemo.errors import BadInputError
from mmdemo.images import ImageLimits, ImageProblem, decode, load_image
from tests.retrieval_helpers import png_header_only, truncated_jpeg


def _wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(800))
    return buffer.getvalue()


# file name -> (its bytes, None for a missing file; the cause in the message)
BAD = {
    "missing.png": (None, "file not found"),
    "empty.png": (b"", "empty file (0 bytes)"),
    "notes.jpg": (b"meeting notes\n" * 10, "not an image (unrecognised format)"),
    "song.wav": (_wav(), "not an image (unrecognised format)"),
    "cut.jpg": (truncated_jpeg(), "corrupt or truncated image"),
    "bomb.png": (png_header_only(40_000, 40_000), "image too large"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_file_is_refused_with_its_name_cause_and_fix(tmp_path: Path, name: str) -> None:
    data, cause = BAD[name]
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(ImageProblem) as info:
        decode(path)
    err = info.value
    assert isinstance(err, BadInputError) and err.fix
    assert str(err).startswith(f"{name}: {cause}") and cause in err.reason
    assert err.of("the query image").message.startswith(f"the query image cannot be used: {name}")


def test_an_upload_is_named_by_its_original_name(tmp_path: Path) -> None:
    stored = tmp_path / "0f3a9c" / "upload.bin"
    stored.parent.mkdir()
    stored.write_bytes(b"")
    with pytest.raises(ImageProblem, match=r"^holiday\.jpg: empty file"):
        decode({"path": str(stored), "orig_name": "holiday.jpg"})


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (np.zeros((4,), np.uint8), "needs shape"),
        (np.zeros((0, 5, 3), np.uint8), "needs shape"),
        (np.zeros((4, 4, 2), np.uint8), "needs shape"),
        (3.5, "float is not an image"),
    ],
)
def test_values_that_are_not_pictures_are_refused(value: object, words: str) -> None:
    with pytest.raises(ImageProblem, match=words):
        decode(value)


def test_the_pixel_limit_counts_what_is_decoded(tmp_path: Path) -> None:
    from PIL import Image

    big = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), "navy").save(big, quality=60)
    limits = ImageLimits(max_pixels=2_000_000)
    with pytest.raises(ImageProblem, match=r"4000x3000 \(12 MP, limit 2 MP\)"):
        decode(big, 0, limits)  # decoded in full: 12 MP
    image, width, height = decode(big, 224, limits)  # decoded at 1/8 scale: 0.19 MP
    assert (width, height) == (4000, 3000) and image.size == (500, 375)


def test_orientation_transparency_and_16_bit_come_out_as_a_viewer_shows_them(
    tmp_path: Path,
) -> None:
    from PIL import Image

    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    Image.new("RGB", (60, 20), "red").save(rotated, exif=exif)
    assert decode(rotated)[0].size == (20, 60)

    clear = tmp_path / "clear.png"
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(clear)  # fully transparent red
    assert decode(clear)[0].getpixel((1, 1)) == (255, 255, 255)

    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 4000, dtype=np.uint16)).save(deep)
    assert decode(deep)[0].getpixel((0, 0)) == (255, 255, 255)  # scaled, not clipped to 255


def test_load_image_fits_the_longest_side() -> None:
    from PIL import Image

    image = load_image(Image.new("RGB", (3000, 1000), "teal"), max_side=600)
    assert image.size == (600, 200) and image.mode == "RGB"
    floats = load_image(np.ones((10, 20, 3), dtype=np.float32))  # 0..1 floats
    assert floats.size == (20, 10) and floats.getpixel((0, 0)) == (255, 255, 255)
