"""Turn whatever the user gave (a path, bytes, a PIL image, an array) into a safe RGB image.

Refuses non-images, empty and corrupt files with a clear message; downscales huge images while
decoding (JPEG draft mode) instead of allocating them in full.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

from mmdemo.errors import BadInputError

# Above this many pixels an image is refused outright (a 20,000 x 20,000 photo is 400 MP).
MAX_PIXELS = 400_000_000


def load_image(source: Any, max_side: int = 2048, max_bytes: int | None = None) -> Any:
    """An RGB ``PIL.Image`` no larger than ``max_side`` on its longest side."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    name = "image"
    if isinstance(source, Image.Image):
        image = source
    else:
        if hasattr(source, "shape"):  # numpy array
            import numpy as np

            arr = np.asarray(source)
            if arr.ndim not in (2, 3) or arr.size == 0:
                raise BadInputError(
                    f"an image array needs 2 or 3 dimensions, got shape {arr.shape}"
                )
            if arr.dtype != np.uint8:
                arr = np.clip(arr * (255 if arr.max() <= 1.0 else 1), 0, 255).astype(np.uint8)
            return _fit(Image.fromarray(arr).convert("RGB"), max_side)
        if isinstance(source, dict) and "path" in source:  # Gradio FileData
            source = source["path"]
        if isinstance(source, (bytes, bytearray)):
            data = io.BytesIO(source)
            size = len(source)
        else:
            path = Path(str(source))
            name = path.name
            if not path.is_file():
                raise BadInputError(f"{name}: file not found")
            size = path.stat().st_size
            data = path
        if size == 0:
            raise BadInputError(f"{name} is empty (0 bytes)", fix="upload the image again")
        if max_bytes is not None and size > max_bytes:
            raise BadInputError(
                f"{name} is {size / 2**20:.0f} MB; the limit is {max_bytes / 2**20:.0f} MB"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(data)
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise BadInputError(
                        f"{name} is {width} x {height} pixels; the limit is "
                        f"{MAX_PIXELS // 1_000_000} megapixels"
                    )
                if image.format == "JPEG":
                    image.draft("RGB", (max_side, max_side))  # decode at reduced scale
                image.load()
        except UnidentifiedImageError:
            raise BadInputError(
                f"{name} is not an image PIL can read", fix="use a JPEG, PNG, WebP, GIF or BMP file"
            ) from None
        except Image.DecompressionBombError as exc:
            raise BadInputError(f"{name} is too large to decode safely: {exc}") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise BadInputError(
                f"{name} is corrupt or truncated ({exc})", fix="re-export or re-upload the image"
            ) from None
    image = ImageOps.exif_transpose(image)
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.split()[-1])
        image = background
    elif image.mode != "RGB":
        image = image.convert("RGB")
    return _fit(image, max_side)


def _fit(image: Any, max_side: int) -> Any:
    if max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side))
    return image
