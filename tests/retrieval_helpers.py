"""Real photos (scikit-image's bundled data) and broken files for the retrieval tests."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np

# name -> skimage.data function; colour photos as JPEG, the rest as PNG
PHOTOS = {
    "astronaut": "astronaut",
    "cat": "chelsea",
    "coffee": "coffee",
    "rocket": "rocket",
    "horse": "horse",
    "camera": "camera",
    "retina": "retina",
}


def photo_array(name: str) -> np.ndarray:
    import skimage.data

    image = np.asarray(getattr(skimage.data, PHOTOS[name])())
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    return image


def write_photos(folder: Path, names: tuple[str, ...] = tuple(PHOTOS)) -> dict[str, Path]:
    """Save the named photos into ``folder``; returns name -> path."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in names:
        image = photo_array(name)
        path = folder / (f"{name}.jpg" if image.ndim == 3 else f"{name}.png")
        Image.fromarray(image).save(path, quality=92)
        out[name] = path
    return out


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a huge size and holds almost no data (a decompression bomb shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def truncated_jpeg(name: str = "coffee") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(photo_array(name)).save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    return data[: len(data) // 3]
