"""Image encode/decode helpers of the readers and writers (atomic writes: `sparse3d.utils.atomic_io`)."""
from __future__ import annotations

import io
import os
from typing import Union

import numpy as np
from PIL import Image

PathLike = Union[str, os.PathLike]


def encode_image(img: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    """Encode uint8 [H,W,3] / [H,W] or uint16 [H,W] (png only) to 'png' or 'jpeg' bytes."""
    img = np.asarray(img)
    if fmt not in ("png", "jpeg"):
        raise ValueError(f"fmt: expected 'png' or 'jpeg', got {fmt!r}")
    if img.dtype == np.uint16:
        if fmt != "png" or img.ndim != 2:
            raise ValueError(f"img: uint16 images must be [H,W] and png, got {list(img.shape)} {fmt}")
        pil = Image.fromarray(np.ascontiguousarray(img.astype("<u2")))
    elif img.dtype == np.uint8:
        pil = Image.fromarray(img)
    else:
        raise TypeError(f"img: expected uint8 or uint16, got {img.dtype}")
    b = io.BytesIO()
    if fmt == "jpeg":
        pil.save(b, format="JPEG", quality=quality)
    else:
        pil.save(b, format="PNG", compress_level=1)
    return b.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    """Decode png/jpeg bytes to a numpy array (uint8 [H,W,3]/[H,W] or uint16 [H,W])."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            return np.asarray(im, dtype=np.int64).astype(np.uint16) if im.mode == "I" else np.array(im).astype(np.uint16)
        if im.mode not in ("RGB", "L"):
            im = im.convert("RGB")
        return np.array(im)


def read_image(path: PathLike) -> np.ndarray:
    """Read a png/jpeg file (see decode_image); errors name the file."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            return decode_image(f.read())
    except FileNotFoundError:
        raise
    except Exception as e:
        raise ValueError(f"{path}: cannot decode image: {e}") from e
