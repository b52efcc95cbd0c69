"""Image files read the way the datamodules hold their images: Pillow decodes any format it knows, the
image becomes greyscale or RGB as the dataset is, its short side is resized to the dataset's stored size
and the central square kept, as uint8 (C, S, S). `src.predict` classifies files read this way."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from src.utils.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def square(image: Image.Image, channels: int, size: int) -> np.ndarray:
    """`image` as uint8 (channels, size, size): greyscale (1) or RGB (3), short side resized to `size`
    (bilinear; Pillow antialiases when shrinking), the central square kept."""
    image = image.convert("L" if channels == 1 else "RGB")
    scale = size / min(image.size)
    width, height = (max(size, round(side * scale)) for side in image.size)
    if (width, height) != image.size:
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    left, top = (width - size) // 2, (height - size) // 2
    pixels = np.asarray(image.crop((left, top, left + size, top + size)))
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)  # HW(C) -> CHW


def read_image(path: Path, channels: int, size: int) -> np.ndarray:
    """One file as `square` makes it; OSError / ValueError (with Pillow's reason) when it is no image."""
    with Image.open(path) as image:
        image.load()  # decode now: a truncated file fails here, not later
        return square(image, channels, size)


def image_files(paths: Iterable[Path]) -> list[Path]:
    """The files named, and the image files inside the folders named (recursively, sorted); a path that
    does not exist or a folder with no image is a UserError."""
    found = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not inside:
                raise UserError(f"{path} holds no image file ({', '.join(IMAGE_SUFFIXES)})")
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise UserError(f"{path} does not exist")
    return found
