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


# -- a CLIP stand-in whose embeddings can be computed by hand ------------------------------

COLOUR_DIM = 4
# word -> its text embedding before normalisation (any other text: the fourth axis)
COLOUR_WORDS = {
    "red": (1, 0, 0, 0),
    "green": (0, 1, 0, 0),
    "blue": (0, 0, 1, 0),
    "yellow": (1, 1, 0, 0),
    "white": (1, 1, 1, 0),
}


def colour_clip_loader(ctx: object) -> object:
    """A model manager loader for a "CLIP" that embeds an image as its mean RGB colour and a
    text as the sum of its colour words (4-d). Expected scores are then plain arithmetic: a red
    picture and "red" have cosine 1, yellow and "red" 1/sqrt(2), white and "red" 1/sqrt(3)."""
    import torch

    from mmdemo.models.backends.clip import ClipBundle
    from mmdemo.models.manager import LoadedModel

    class ColourClip(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.logit_scale = torch.nn.Parameter(torch.tensor(float(np.log(100.0))))

        def encode_image(self, pixels: torch.Tensor, normalize: bool = False) -> torch.Tensor:
            mean = pixels.float().mean(dim=(2, 3))  # (B, 3)
            out = torch.cat([mean, torch.zeros(len(mean), 1)], dim=1)
            return torch.nn.functional.normalize(out, dim=-1) if normalize else out

        def encode_text(self, vectors: torch.Tensor, normalize: bool = False) -> torch.Tensor:
            out = vectors.float()
            return torch.nn.functional.normalize(out, dim=-1) if normalize else out

    def tokenize(texts: list[str]) -> torch.Tensor:
        rows = []
        for text in texts:
            words = [
                COLOUR_WORDS[w] for w in text.lower().replace(".", " ").split() if w in COLOUR_WORDS
            ]
            rows.append(np.sum(words, axis=0) if words else (0, 0, 0, 1))
        return torch.tensor(np.asarray(rows, dtype=np.float32))

    def preprocess(image: object) -> torch.Tensor:
        small = np.asarray(image.convert("RGB").resize((8, 8)), dtype=np.float32) / 255.0
        return torch.from_numpy(small).permute(2, 0, 1)

    model = ColourClip().eval()
    bundle = ClipBundle(model, preprocess, tokenize, "colour-clip", COLOUR_DIM, 8, "cpu", "colour")
    return LoadedModel(handle=bundle, device="cpu", dtype="float32")


def write_colours(folder: Path, colours: dict[str, tuple[int, int, int]]) -> dict[str, Path]:
    """Solid-colour PNGs, name -> path."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, rgb in colours.items():
        out[name] = folder / f"{name}.png"
        Image.new("RGB", (32, 24), rgb).save(out[name])
    return out
