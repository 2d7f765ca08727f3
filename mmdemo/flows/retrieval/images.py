"""Finding image files and decoding them defensively: nothing a user drops in aborts a build."""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.errors import BadInputError
from mmdemo.flows.retrieval.types import Skipped

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class ImageLimits:
    """What a single file may cost before it is refused."""

    # refuse images with more pixels than this (decompression bombs, scans of posters)
    max_pixels: int = 100_000_000
    # refuse files larger than this many bytes (read fully into memory for hashing)
    max_bytes: int = 512 * 2**20


class ImageProblem(Exception):
    """A file cannot be used as an image; the message says why in words."""


@dataclass(frozen=True)
class Scan:
    """Files found under the sources the user gave."""

    files: tuple[Path, ...]
    skipped: tuple[Skipped, ...]  # missing or unreadable paths and folders
    ignored: int  # files whose extension is not an image type (inside folders only)


def scan_sources(
    sources: Sequence[str | Path], extensions: Iterable[str] = IMAGE_EXTENSIONS
) -> Scan:
    """Image files under folders (recursively, sorted) plus files named directly.

    A file named directly is always tried, whatever its extension; inside folders only image
    extensions count. A folder that cannot be listed is reported, not fatal, unless nothing
    usable was given at all.
    """
    exts = tuple(e.lower() for e in extensions)
    files: list[Path] = []
    skipped: list[Skipped] = []
    ignored = 0
    usable = 0
    for raw in sources:
        if not str(raw).strip():
            continue
        path = Path(str(raw).strip()).expanduser()
        if path.is_dir():
            usable += 1
            found, bad, skipped_ext = _walk(path, exts)
            files += found
            skipped += bad
            ignored += skipped_ext
        elif path.is_file():
            usable += 1
            files.append(path)
        elif path.exists():
            skipped.append(Skipped(str(path), "not a regular file or folder"))
        else:
            skipped.append(Skipped(str(path), "does not exist"))
    if not usable:
        if not skipped:
            raise BadInputError(
                "no folder or files given", fix="give a folder path or upload images"
            )
        first = skipped[0]
        raise BadInputError(
            f"cannot use {first.path}: {first.reason}",
            fix="check the path (it is read on the machine that runs mmdemo)",
        )
    return Scan(tuple(dict.fromkeys(files)), tuple(skipped), ignored)


def _walk(root: Path, exts: tuple[str, ...]) -> tuple[list[Path], list[Skipped], int]:
    files: list[Path] = []
    bad: list[Skipped] = []
    ignored = 0

    def onerror(exc: OSError) -> None:
        bad.append(
            Skipped(str(exc.filename or root), f"folder not readable: {exc.strerror or exc}")
        )

    for folder, dirs, names in os.walk(root, onerror=onerror):
        dirs.sort()
        for name in sorted(names):
            if name.startswith("."):
                continue
            if name.lower().endswith(exts):
                files.append(Path(folder) / name)
            else:
                ignored += 1
    return files, bad, ignored


def read_file(path: Path, limits: ImageLimits) -> tuple[bytes, os.stat_result]:
    """The file's bytes and stat, refusing empty and oversized files."""
    try:
        st = path.stat()
        if st.st_size == 0:
            raise ImageProblem("empty file (0 bytes)")
        if st.st_size > limits.max_bytes:
            raise ImageProblem(
                f"file too large ({st.st_size / 2**20:.0f} MB > {limits.max_bytes / 2**20:.0f} MB)"
            )
        return path.read_bytes(), st
    except OSError as exc:
        raise ImageProblem(f"cannot read file: {exc.strerror or exc}") from None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode(data: bytes | Path | Any, min_side: int, limits: ImageLimits) -> tuple[Any, int, int]:
    """(RGB PIL image, original width, original height), or ImageProblem.

    JPEGs are decoded at a reduced scale when that still leaves ``min_side`` pixels (libjpeg's
    DCT scaling via ``draft``): a 12-megapixel photo then costs about a sixteenth of a full
    decode. EXIF orientation is applied, so the model sees what a viewer shows.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(data, Image.Image):
        image = data
    else:
        if isinstance(data, bytes | bytearray) and not data:
            raise ImageProblem("empty file (0 bytes)")
        source = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
        try:
            image = Image.open(source)
        except Image.DecompressionBombError as exc:  # PIL's own guard, at twice its warning size
            raise ImageProblem(f"image too large: {exc}") from None
        except UnidentifiedImageError:
            raise ImageProblem("not an image (unrecognised format)") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageProblem(f"not a readable image: {exc}") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageProblem(f"image has no pixels ({width}x{height})")
    if width * height > limits.max_pixels:
        raise ImageProblem(
            f"image too large: {width}x{height} ({width * height / 1e6:.0f} MP, "
            f"limit {limits.max_pixels / 1e6:.0f} MP)"
        )
    try:
        with warnings.catch_warnings():
            # our own pixel limit above is the guard; PIL's bomb warning would only repeat it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if image.format == "JPEG" and min_side > 0:
                image.draft("RGB", (min_side, min_side))
            image = ImageOps.exif_transpose(image)
            if image.mode != "RGB":
                image = _to_rgb(image)
            image.load()
    except ImageProblem:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise ImageProblem(f"corrupt or truncated image: {exc}") from None
    return image, width, height


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


def thumbnail(path: str | Path, side: int = 256, limits: ImageLimits | None = None) -> Any:
    """A small RGB copy for galleries (cheap for big JPEGs thanks to draft decoding)."""
    image, _, _ = decode(Path(path), side, limits or ImageLimits())
    image = image.copy()
    image.thumbnail((side, side))
    return image
