"""Images to a model's input tensor: resize (shorter side), centre-crop, scale, normalise, lay out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from edgeq.data import InputSignature
from edgeq.errors import InputError
from edgeq.frontend.inspect import shape_text


@dataclass(frozen=True)
class ImageOptions:
    """How a picture becomes one sample; None fields are read from the model input's shape."""

    size: int | None = None  # shorter side after resizing (default: the crop's longer side)
    crop: tuple[int, int] | None = None  # (height, width) of the centre crop
    layout: Literal["nchw", "nhwc"] | None = None
    channels: Literal["rgb", "bgr", "gray"] | None = None
    scale: float = 255.0  # pixels are divided by this first (0..255 → 0..1)
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)


@dataclass(frozen=True)
class ImagePlan:
    """The options made definite for one model input."""

    height: int
    width: int
    size: int
    layout: Literal["nchw", "nhwc"]
    channels: Literal["rgb", "bgr", "gray"]


def plan_images(options: ImageOptions, signature: InputSignature) -> ImagePlan:
    """Layout, channels and crop from the options, else from a 4-D model input ([N,C,H,W] or [N,H,W,C])."""
    shape = signature.shape
    if len(shape) != 4:
        raise InputError(
            f"model input {signature.name!r} has {len(shape)} dims; images need a 4-D input "
            "([N, C, H, W] or [N, H, W, C])"
        )
    layout = options.layout or ("nhwc" if shape[3] in (1, 3) and shape[1] not in (1, 3) else "nchw")
    c, h, w = (shape[1], shape[2], shape[3]) if layout == "nchw" else (shape[3], shape[1], shape[2])
    channels = options.channels or ("gray" if c == 1 else "rgb")
    if c is not None and c != (1 if channels == "gray" else 3):
        raise InputError(
            f"model input {signature.name!r} has {c} channels; --channels {channels} gives another"
        )
    height, width = options.crop or (h, w)
    if height is None or width is None:
        raise InputError(
            f"model input {signature.name!r} has dynamic height/width {shape_text(list(shape))}: "
            "pass --crop H,W"
        )
    return ImagePlan(height, width, options.size or max(height, width), layout, channels)


def read_image(path: Path, plan: ImagePlan, options: ImageOptions, dtype: np.dtype) -> np.ndarray:
    """One image as an array in the plan's layout: float (scaled, normalised) or raw uint8 pixels."""
    from PIL import Image, UnidentifiedImageError  # the `images` extra

    try:
        with Image.open(path) as opened:
            image = opened.convert("L" if plan.channels == "gray" else "RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read image {path}: {exc}") from None
    scale = plan.size / min(image.size)
    resized = (max(plan.width, round(image.width * scale)), max(plan.height, round(image.height * scale)))
    image = image.resize(resized, Image.Resampling.BILINEAR)
    left, top = (image.width - plan.width) // 2, (image.height - plan.height) // 2
    pixels = np.asarray(image.crop((left, top, left + plan.width, top + plan.height)))
    pixels = (
        pixels[..., None] if pixels.ndim == 2 else pixels[..., ::-1] if plan.channels == "bgr" else pixels
    )
    if dtype.kind == "f":
        pixels = (pixels.astype(np.float32) / options.scale - np.float32(options.mean)) / np.float32(
            options.std
        )
    return (pixels.transpose(2, 0, 1) if plan.layout == "nchw" else pixels).astype(dtype)


def folder_labels(paths: list[Path]) -> tuple[np.ndarray, list[str]]:
    """Class ids from each image's parent folder name (folder/class/image.jpg), classes sorted."""
    classes = sorted({p.parent.name for p in paths})
    index = {name: i for i, name in enumerate(classes)}
    return np.array([index[p.parent.name] for p in paths], np.int64), classes
