"""An image on its way into the VLM: resized, cut into tiles (Idefics3 / SmolVLM, InternVL),
sized to a pixel budget (Qwen2-VL, Qwen2.5-VL, GLM-4.1V) or to the vision tower's one input
size (LLaVA-1.5), cut into patches, patches merged into image tokens.

The numbers come from the very processor the VLM backend uses (its image-splitting setting
included) and from the model's config; the image tokens are counted in the processor's own
``input_ids``, so what is shown is what the model is given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mmdemo.flows.how import plain
from mmdemo.models.backends.vlm import PIXEL_BUDGET_FAMILIES, SPLITTING_FAMILIES

PROMPT = "Describe the image."


@dataclass(frozen=True)
class ImageTokens:
    family: str
    original_size: tuple[int, int]  # (width, height) as uploaded
    resized_size: tuple[int, int]  # (width, height) the processor cut into tiles or patches
    tile_size: tuple[int, int]  # (width, height) of one tile ((0, 0): no tiles)
    grid: tuple[int, int]  # (rows, cols) of tiles or of patches
    tiles: int  # pictures the vision encoder sees (tiles + the global view; 1 without)
    patch_size: int  # pixels per patch side
    patches: int  # patches in all
    merge: int  # patches merged per side into one token (pixel shuffle / spatial merge)
    tokens_per_tile: int
    image_tokens: int  # image placeholder tokens in the prompt the model gets
    prompt_tokens: int  # the whole prompt: image tokens, markers and the text
    splitting: bool
    steps: tuple[str, ...]  # the path, in words
    pixel_values_shape: tuple[int, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return plain(asdict(self))


def _image_token_id(processor: Any, config: Any) -> int | None:
    for source in (config, processor):
        value = getattr(source, "image_token_id", None)
        if isinstance(value, int):
            return value
    token = getattr(processor, "image_token", None)
    return processor.tokenizer.convert_tokens_to_ids(token) if token else None


def processed(processor: Any, image: Any) -> tuple[dict[str, Any], int]:
    """(the processor's output for a one-image prompt, the prompt's length in tokens)."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    out = processor(text=[prompt], images=[[image]], return_tensors="pt")
    return dict(out), int(out["input_ids"].shape[-1])


def image_tokens(processor: Any, config: Any, image: Any, family: str = "") -> ImageTokens:
    """The path of ``image`` (an RGB PIL image) through ``processor`` into tokens for a model
    with ``config``."""
    family = family or getattr(config, "model_type", "")
    out, length = processed(processor, image)
    token_id = _image_token_id(processor, config)
    ids = out["input_ids"][0]
    counted = int((ids == token_id).sum()) if token_id is not None else 0
    pixels = out.get("pixel_values")
    shape = tuple(int(s) for s in pixels.shape) if pixels is not None else ()
    size = (int(image.width), int(image.height))
    if family in SPLITTING_FAMILIES and hasattr(processor.image_processor, "crop_to_patches"):
        return _cropped(processor, config, family, size, counted, length, shape)
    if family in SPLITTING_FAMILIES:
        return _tiled(processor, config, image, family, size, counted, length, shape)
    if family in PIXEL_BUDGET_FAMILIES:
        return _budget(processor, out, family, size, counted, length, shape)
    if len(shape) == 4 and hasattr(getattr(config, "vision_config", None), "patch_size"):
        return _fixed(processor, config, family, size, counted, length, shape)
    return ImageTokens(
        family=family,
        original_size=size,
        resized_size=size,
        tile_size=(0, 0),
        grid=(0, 0),
        tiles=1,
        patch_size=0,
        patches=0,
        merge=1,
        tokens_per_tile=counted,
        image_tokens=counted,
        prompt_tokens=length,
        splitting=False,
        steps=(f"the {family} processor turns the image into {counted} image tokens",),
        pixel_values_shape=shape,
    )


def _tiled(
    processor: Any,
    config: Any,
    image: Any,
    family: str,
    size: tuple[int, int],
    counted: int,
    length: int,
    shape: tuple[int, ...],
) -> ImageTokens:
    ip = processor.image_processor
    info = ip([[image]], return_row_col_info=True, return_tensors="pt")
    rows, cols = int(info["rows"][0][0]), int(info["cols"][0][0])
    tile_h, tile_w = (int(s) for s in info["pixel_values"].shape[-2:])
    patch = int(config.vision_config.patch_size)
    scale = int(getattr(config, "scale_factor", 1) or 1)
    per_tile_patches = (tile_h // patch) * (tile_w // patch)
    per_tile = per_tile_patches // (scale * scale)
    split = rows * cols > 0
    tiles = rows * cols + 1 if split else 1
    resized = (cols * tile_w, rows * tile_h) if split else (tile_w, tile_h)
    steps = [f"uploaded {size[0]}x{size[1]} px"]
    if split:
        steps += [
            f"resized to {resized[0]}x{resized[1]} px and cut into {rows}x{cols} tiles of "
            f"{tile_w}x{tile_h} px, plus the whole image shrunk to one more tile: {tiles} tiles",
        ]
    else:
        steps += [f"image splitting off: the whole image shrunk to one {tile_w}x{tile_h} px tile"]
    steps += [
        f"each tile cut into {tile_h // patch}x{tile_w // patch} = {per_tile_patches} patches "
        f"of {patch}x{patch} px; the vision encoder makes one vector per patch",
        f"pixel shuffle merges {scale}x{scale} neighbouring patches into one token: "
        f"{per_tile} tokens per tile",
        f"{tiles} x {per_tile} = {tiles * per_tile} image tokens "
        f"({counted} counted in the prompt, {length} prompt tokens in all)",
    ]
    return ImageTokens(
        family=family,
        original_size=size,
        resized_size=resized,
        tile_size=(tile_w, tile_h),
        grid=(rows, cols),
        tiles=tiles,
        patch_size=patch,
        patches=tiles * per_tile_patches,
        merge=scale,
        tokens_per_tile=per_tile,
        image_tokens=counted,
        prompt_tokens=length,
        splitting=split,
        steps=tuple(steps),
        pixel_values_shape=shape,
    )


def _budget(
    processor: Any,
    out: dict[str, Any],
    family: str,
    size: tuple[int, int],
    counted: int,
    length: int,
    shape: tuple[int, ...],
) -> ImageTokens:
    ip = processor.image_processor
    t, h, w = (int(v) for v in out["image_grid_thw"][0])
    patch = int(ip.patch_size)
    merge = int(getattr(ip, "merge_size", 2))
    patches = t * h * w
    tokens = patches // (merge * merge)
    resized = (w * patch, h * patch)
    steps = (
        f"uploaded {size[0]}x{size[1]} px",
        f"resized to {resized[0]}x{resized[1]} px: each side a multiple of {patch * merge} px, "
        "the pixel count inside the processor's budget (no tiles)",
        f"cut into {h}x{w} = {h * w} patches of {patch}x{patch} px"
        + (f" (x{t} frames)" if t > 1 else ""),
        f"the merger joins {merge}x{merge} neighbouring patches into one token: "
        f"{patches} / {merge * merge} = {tokens} image tokens "
        f"({counted} counted in the prompt, {length} prompt tokens in all)",
    )
    return ImageTokens(
        family=family,
        original_size=size,
        resized_size=resized,
        tile_size=(0, 0),
        grid=(h, w),
        tiles=1,
        patch_size=patch,
        patches=patches,
        merge=merge,
        tokens_per_tile=tokens,
        image_tokens=counted,
        prompt_tokens=length,
        splitting=False,
        steps=steps,
        pixel_values_shape=shape,
    )


def _side(value: Any) -> int:
    """A config's patch or image size: an int, or [height, width] (InternVL)."""
    return int(value[0]) if isinstance(value, list | tuple) else int(value)


def _cropped(
    processor: Any,
    config: Any,
    family: str,
    size: tuple[int, int],
    counted: int,
    length: int,
    shape: tuple[int, ...],
) -> ImageTokens:
    """InternVL: the image cut into a grid of ViT-sized tiles closest to its aspect ratio,
    plus a thumbnail; pixel shuffle merges patches into tokens."""
    from transformers.models.got_ocr2.image_processing_got_ocr2 import get_optimal_tiled_canvas

    ip = processor.image_processor
    tiles, tile_h, tile_w = shape[0], shape[-2], shape[-1]
    split = bool(ip.crop_to_patches) and tiles > 1
    cols, rows = (
        get_optimal_tiled_canvas(
            (size[1], size[0]), (tile_h, tile_w), ip.min_patches, ip.max_patches
        )
        if split
        else (1, 1)
    )
    patch = _side(config.vision_config.patch_size)
    merge = round(1 / float(config.downsample_ratio))
    per_tile_patches = (tile_h // patch) * (tile_w // patch)
    per_tile = per_tile_patches // (merge * merge)
    steps = [f"uploaded {size[0]}x{size[1]} px"]
    if split:
        steps.append(
            f"resized to {cols * tile_w}x{rows * tile_h} px and cut into {rows}x{cols} tiles of "
            f"{tile_w}x{tile_h} px (the grid closest to its aspect ratio), plus the whole image "
            f"as a thumbnail tile: {tiles} tiles"
        )
    else:
        steps.append(f"tiling off: the whole image resized to one {tile_w}x{tile_h} px tile")
    steps += [
        f"each tile cut into {tile_h // patch}x{tile_w // patch} = {per_tile_patches} patches "
        f"of {patch}x{patch} px; the vision encoder makes one vector per patch",
        f"pixel shuffle merges {merge}x{merge} neighbouring patches into one token: "
        f"{per_tile} tokens per tile",
        f"{tiles} x {per_tile} = {tiles * per_tile} image tokens "
        f"({counted} counted in the prompt, {length} prompt tokens in all)",
    ]
    return ImageTokens(
        family=family,
        original_size=size,
        resized_size=(cols * tile_w, rows * tile_h),
        tile_size=(tile_w, tile_h),
        grid=(rows, cols),
        tiles=tiles,
        patch_size=patch,
        patches=tiles * per_tile_patches,
        merge=merge,
        tokens_per_tile=per_tile,
        image_tokens=counted,
        prompt_tokens=length,
        splitting=split,
        steps=tuple(steps),
        pixel_values_shape=shape,
    )


def _fixed(
    processor: Any,
    config: Any,
    family: str,
    size: tuple[int, int],
    counted: int,
    length: int,
    shape: tuple[int, ...],
) -> ImageTokens:
    """LLaVA-1.5: every image resized and cropped to the vision tower's input size; one token
    per patch (the CLS vector dropped)."""
    height, width = shape[-2], shape[-1]
    patch = _side(config.vision_config.patch_size)
    grid = (height // patch, width // patch)
    patches = grid[0] * grid[1]
    steps = (
        f"uploaded {size[0]}x{size[1]} px",
        f"resized and centre-cropped to {width}x{height} px, the vision tower's input size "
        "(every image costs the same)",
        f"cut into {grid[0]}x{grid[1]} = {patches} patches of {patch}x{patch} px; the vision "
        "encoder makes one vector per patch",
        f"the projector maps each patch vector to one token: {patches} image tokens "
        f"({counted} counted in the prompt, {length} prompt tokens in all)",
    )
    return ImageTokens(
        family=family,
        original_size=size,
        resized_size=(width, height),
        tile_size=(0, 0),
        grid=grid,
        tiles=1,
        patch_size=patch,
        patches=patches,
        merge=1,
        tokens_per_tile=counted,
        image_tokens=counted,
        prompt_tokens=length,
        splitting=False,
        steps=steps,
        pixel_values_shape=shape,
    )
