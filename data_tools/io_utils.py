"""Small I/O helpers: atomic writes (temp file + os.replace) and image encode/decode."""
from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from typing import Any, BinaryIO, Iterator, Union

import numpy as np
from PIL import Image

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb") -> Iterator[BinaryIO]:
    """Open a temp file next to `path`; on success it replaces `path` atomically, on error it is removed."""
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")


def atomic_save_npz(path: PathLike, **arrays: np.ndarray) -> None:
    """np.savez_compressed to a temp file, then rename (the name keeps its .npz suffix)."""
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


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
