"""The house image decoder: whatever a user gave (a path, an upload, bytes, a PIL image, an
array) becomes a safe RGB image, or an ``ImageProblem`` that names the cause and the fix.

Every tab, the CLIP index and fine-tuning decode through here, so a WAV, an empty file, a
truncated JPEG or a decompression bomb gets the same clear message everywhere. Big JPEGs are
decoded at reduced size (libjpeg's DCT scaling via ``draft``): a 12-megapixel photo then costs
about a sixteenth of a full decode. EXIF orientation is applied, so models see what a viewer
shows; transparent pixels become white.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.errors import BadInputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
FORMATS_FIX = "use a JPEG, PNG, WebP, GIF, BMP or TIFF image"
# file signatures: a file that starts like an image but does not open is a damaged image
MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF8", "GIF"),
    (b"RIFF", "WebP"),
    (b"BM", "BMP"),
)
REEXPORT_FIX = "re-export the image (or upload it again) and retry"


@dataclass(frozen=True)
class ImageLimits:
    """What a single image may cost before it is refused."""

    # refuse images that would decode to more pixels than this (decompression bombs, scans of
    # posters); a JPEG counts at the reduced size it is decoded to
    max_pixels: int = 100_000_000
    # refuse files larger than this many bytes (they are read fully into memory)
    max_bytes: int = 512 * 2**20


class ImageProblem(BadInputError):
    """A file or value cannot be used as an image. ``reason`` is the cause alone (for lists of
    skipped files); the message adds the file's name, and ``fix`` says what to do."""

    def __init__(self, reason: str, *, name: str = "", fix: str | None = REEXPORT_FIX) -> None:
        self.reason = reason
        self.name = name
        super().__init__(f"{name}: {reason}" if name else reason, fix=fix)

    def of(self, what: str) -> BadInputError:
        """The same problem said of a role: "the query image cannot be used: x.wav: ..."."""
        return BadInputError(f"{what} cannot be used: {self.message}", fix=self.fix)


def source_name(source: Any) -> str:
    """What the user calls ``source``: a file's name, an upload's original name, or ''."""
    if isinstance(source, dict):
        return str(source.get("orig_name") or Path(str(source.get("path") or "")).name)
    if hasattr(source, "path") and hasattr(source, "orig_name"):  # gradio FileData
        return str(source.orig_name or Path(str(source.path)).name)
    if isinstance(source, str | os.PathLike):
        return Path(source).name
    return ""


def _path_of(source: Any) -> Path | None:
    if isinstance(source, dict):
        return Path(str(source.get("path") or ""))
    if hasattr(source, "path") and hasattr(source, "orig_name"):
        return Path(str(source.path))
    if isinstance(source, str | os.PathLike):
        return Path(source).expanduser()
    return None


def read_file(path: Path, limits: ImageLimits, name: str = "") -> tuple[bytes, os.stat_result]:
    """The file's bytes and stat, refusing missing, empty and oversized files."""
    try:
        st = path.stat()
        if st.st_size == 0:
            raise ImageProblem("empty file (0 bytes)", name=name)
        if st.st_size > limits.max_bytes:
            mb, limit = st.st_size / 2**20, limits.max_bytes / 2**20
            raise ImageProblem(
                f"file too large ({mb:.0f} MB > {limit:.0f} MB)",
                name=name,
                fix=f"use a file under {limit:.0f} MB",
            )
        return path.read_bytes(), st
    except OSError as exc:
        raise ImageProblem(
            f"cannot read file: {exc.strerror or exc}",
            name=name,
            fix="check that the file exists and is readable",
        ) from None


def decode(
    source: Any, min_side: int = 0, limits: ImageLimits | None = None
) -> tuple[Any, int, int]:
    """(RGB PIL image, original width, original height) of ``source``, or ``ImageProblem``.

    ``source``: a path, a gradio upload (FileData or its dict), bytes, a PIL image or a numpy
    array. JPEGs are decoded at the smallest DCT scale that still leaves ``min_side`` pixels
    on each side (0: full size).
    """
    from PIL import Image

    limits = limits or ImageLimits()
    name = source_name(source)
    if isinstance(source, Image.Image):
        image = source
    elif hasattr(source, "shape") and hasattr(source, "dtype"):
        image = _from_array(source)
    else:
        path = _path_of(source)
        if path is not None:
            if not path.is_file():
                raise ImageProblem(
                    "file not found" if not path.exists() else "not a regular file",
                    name=name or str(path),
                    fix="check the path (it is read on the machine that runs mmdemo)",
                )
            source, _ = read_file(path, limits, name)
        if not isinstance(source, bytes | bytearray):
            raise ImageProblem(
                f"{type(source).__name__} is not an image", fix="give a file path or an upload"
            )
        if not source:
            raise ImageProblem("empty file (0 bytes)", name=name)
        image = _open(bytes(source), name)
    return _convert(image, min_side, limits, name)


def _open(data: bytes, name: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # our own pixel limit is the guard; PIL's bomb warning would only repeat it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:  # PIL's own guard, at twice its warning size
        raise ImageProblem(f"image too large: {exc}", name=name, fix="downscale it") from None
    except UnidentifiedImageError:
        kind = next((k for magic, k in MAGIC if data.startswith(magic)), None)
        if kind == "WebP" and data[8:12] != b"WEBP":  # RIFF is also WAV's and AVI's header
            kind = None
        if kind is not None:  # the right header, then nothing usable: cut short or damaged
            raise ImageProblem(f"corrupt or truncated {kind} image", name=name) from None
        raise ImageProblem(
            "not an image (unrecognised format)", name=name, fix=FORMATS_FIX
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageProblem(f"not a readable image: {exc}", name=name, fix=FORMATS_FIX) from None


def _convert(image: Any, min_side: int, limits: ImageLimits, name: str) -> tuple[Any, int, int]:
    from PIL import Image, ImageOps

    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageProblem(f"image has no pixels ({width}x{height})", name=name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if image.format == "JPEG" and min_side > 0:
                image.draft("RGB", (min_side, min_side))
            w, h = image.size
            if w * h > limits.max_pixels:
                raise ImageProblem(
                    f"image too large: {width}x{height} ({width * height / 1e6:.0f} MP, "
                    f"limit {limits.max_pixels / 1e6:.0f} MP)",
                    name=name,
                    fix=f"downscale it below {limits.max_pixels / 1e6:.0f} megapixels",
                )
            image = ImageOps.exif_transpose(image)
            if image.mode != "RGB":
                image = _to_rgb(image)
            image.load()
    except ImageProblem:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise ImageProblem(f"corrupt or truncated image: {exc}", name=name) from None
    return image, width, height


def _from_array(array: Any) -> Any:
    import numpy as np
    from PIL import Image

    arr = np.asarray(array)
    if arr.ndim not in (2, 3) or arr.size == 0 or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ImageProblem(
            f"an image array needs shape (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}",
            fix="pass an RGB picture",
        )
    if arr.dtype != np.uint8:
        if arr.dtype.kind == "f" and float(np.nanmax(arr)) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return Image.fromarray(arr)


def _to_rgb(image: Any) -> Any:
    """RGB for any mode; transparent pixels become white (not the hidden colour under them)."""
    from PIL import Image

    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits instead of clipping
        import numpy as np

        arr = np.asarray(image, dtype=np.float32)
        top = float(arr.max()) or 1.0
        return Image.fromarray((arr * (255.0 / top)).astype("uint8")).convert("RGB")
    return image.convert("RGB")


def load_image(source: Any, max_side: int = 2048, max_bytes: int | None = None) -> Any:
    """An RGB ``PIL.Image`` no larger than ``max_side`` on its longest side (for models that
    take whole pictures: the VLM, hand tracking, fine-tuning)."""
    limits = ImageLimits(max_bytes=max_bytes) if max_bytes else ImageLimits()
    image, _, _ = decode(source, max_side, limits)
    if max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side))
    return image


def thumbnail(source: Any, side: int = 256, limits: ImageLimits | None = None) -> Any:
    """A small RGB copy for galleries (cheap for big JPEGs thanks to draft decoding)."""
    image, _, _ = decode(source, side, limits)
    image = image.copy()
    image.thumbnail((side, side))
    return image
