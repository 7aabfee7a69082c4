"""Atomic file writes: every file sparse3d writes goes to a temp file in the same folder and is
moved into place with ``os.replace``, so a reader (or a resumed run) never sees a half-written file.

    with atomic_open("out/a.bin") as f: f.write(...)   # any writer that takes a binary file object
    atomic_write_text(path, text); atomic_write_json(path, obj); atomic_save_npz(path, a=arr)
    atomic_torch_save(path, state_dict)                  # checkpoints
    atomic_savefig(fig, "loss.png", dpi=90)             # matplotlib figures

The temp file is ``.<name>.<random>.tmp`` next to ``path`` (same file system, so the rename is atomic;
its name never ends in the target's suffix, so globs like ``*.npz`` do not pick it up); it is removed
when the writer raises. Parent folders are created. A process killed mid-write (SIGKILL, out of memory)
cannot remove it: a job that resumes in a folder it alone writes calls ``remove_stale_temps`` first.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import IO, Any, Dict, Iterator, List, Optional, Sequence, Union, cast

import numpy as np

PathLike = Union[str, os.PathLike]

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_save_npz",
           "atomic_torch_save", "atomic_savefig", "is_atomic_temp", "remove_stale_temps"]


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temp file next to ``path`` (``mode`` "wb" or "w"); on success it replaces ``path``
    atomically (with the permissions a new file would get), on error it is removed."""
    if mode not in ("wb", "w"):
        raise ValueError(f"mode: expected 'wb' or 'w', got {mode!r}")
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


def is_atomic_temp(name: str, target: Optional[str] = None) -> bool:
    """Whether the file name ``name`` is a temp file of :func:`atomic_open` (of the file ``target`` when given)."""
    prefix = "." + target + "." if target is not None else "."
    return name.startswith(prefix) and name.endswith(".tmp") and len(name) > len(prefix) + len(".tmp")


def remove_stale_temps(folder: PathLike, targets: Optional[Sequence[str]] = None) -> List[str]:
    """Remove the temp files that :func:`atomic_open` left in ``folder`` (not its subfolders) when its process
    was killed mid-write; only those of the file names ``targets`` when given. Returns the removed names.

    Call it only where no other process is writing into ``folder`` at the same time (e.g. a job resuming in
    its own output folder): a live writer's temp file looks the same."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        return []
    removed = []
    for entry in os.scandir(folder):
        name = entry.name
        if entry.is_file(follow_symlinks=False) and (
                any(is_atomic_temp(name, t) for t in targets) if targets is not None else is_atomic_temp(name)):
            with contextlib.suppress(FileNotFoundError):
                os.remove(entry.path)
                removed.append(name)
    return sorted(removed)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: PathLike, text: str) -> None:
    """UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, obj: Any, indent: int = 1) -> None:
    """``obj`` as JSON (``indent`` spaces, key order kept) with a trailing newline."""
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def atomic_save_npz(path: PathLike, **arrays: np.ndarray) -> None:
    """``np.savez_compressed`` of ``arrays`` (the file name is used as given: no ``.npz`` is appended)."""
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, **cast(Dict[str, Any], arrays))


def atomic_torch_save(path: PathLike, obj: Any) -> None:
    """``torch.save(obj)`` (a checkpoint: a dict of tensors, numbers, strings, lists, dicts)."""
    import torch
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def atomic_savefig(fig: Any, path: PathLike, **savefig_kwargs: Any) -> None:
    """``fig.savefig`` of a matplotlib Figure; the format is taken from ``path``'s suffix (e.g. ``.png``)."""
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    if not fmt:
        raise ValueError(f"path: expected a file name with an image suffix (.png, .pdf, .svg), got {path!r}")
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format=savefig_kwargs.pop("format", fmt), **savefig_kwargs)
