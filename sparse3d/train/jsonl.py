"""``metrics.jsonl``: one JSON object per training step (``{"step": int, <name>: float, ...}``),
appended before each checkpoint, cut back to the checkpoint's steps on resume. A partial last line
(a kill during an append) is tolerated everywhere: dropped when read, cut before the next append."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Sequence

from sparse3d.utils.atomic_io import atomic_write_text


def append_jsonl(path: str, rows: Sequence[Dict[str, Any]]) -> None:
    """Append ``rows`` (one JSON object per line). A partial last line left by a killed writer is cut
    off first, so it never ends up in the middle of the file."""
    if not rows:
        return
    with open(path, "ab+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                f.seek(0)
                data = f.read()
                f.truncate(data.rfind(b"\n") + 1)
        f.write("".join(json.dumps(r) + "\n" for r in rows).encode())


def read_jsonl(path: str) -> List[Dict[str, Any]]:
    """Rows in step order, the last row kept where a step was logged twice; a last line that is not
    valid JSON (cut by a kill during an append) is dropped. A bad line before the last raises
    ValueError naming the file and line."""
    with open(path, "rb") as f:
        lines = f.read().decode("utf-8", errors="replace").split("\n")
    numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip()]
    rows: Dict[int, Dict[str, Any]] = {}
    for k, (lineno, ln) in enumerate(numbered):
        try:
            r = json.loads(ln)
        except json.JSONDecodeError as e:
            if k == len(numbered) - 1:
                break  # partial trailing line
            raise ValueError(f"{path}: line {lineno} is not valid JSON ({e})") from e
        if not isinstance(r, dict) or not isinstance(r.get("step"), int):
            raise ValueError(f"{path}: line {lineno} is not a metrics row (a JSON object with an int 'step')")
        rows[r["step"]] = r
    return [rows[k] for k in sorted(rows)]


def truncate_jsonl(path: str, before_step: int) -> None:
    """Keep the rows of steps < ``before_step`` (those in the checkpoint being resumed), atomically."""
    if not os.path.isfile(path):
        return
    rows = [r for r in read_jsonl(path) if r["step"] < before_step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
