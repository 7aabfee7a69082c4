"""Coverage-guided fuzzing of the file readers with atheris (libFuzzer for Python).

Each input picks a reader (`.sens`, PLY, labels PLY, segs / aggregation JSON, label tsv, crop `.npz`,
checkpoint) and a list of byte edits (truncate, overwrite, insert) applied to a valid seed file written
by the project's writers (tests/test_fuzz_readers.make_seed_files). The reader must succeed or raise an
exception deriving from one of tests/fuzz_long.ALLOWED_ERRORS whose message names the file; any other
outcome (another exception, a MemoryError, a signal) stops libFuzzer, which saves the input as
crash-<sha1> in the working folder. libFuzzer options pass through, e.g.::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/fuzz_atheris.py -max_total_time=300 -rss_limit_mb=4096

At exit it prints the inputs tried per reader and their outcomes. (The native ops are fuzzed by
hypothesis in tests/fuzz_long.py: their inputs are structured tensors, not bytes.)
"""
from __future__ import annotations

import atexit
import importlib
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import atheris

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

for _lib in ("numpy", "PIL.Image", "torch"):  # the libraries first, uninstrumented (torch would take minutes)
    importlib.import_module(_lib)

with atheris.instrument_imports(include=["data_tools"]):  # coverage of the readers guides the mutations
    from data_tools import chunks as _chunks
    from data_tools.scannet import labels as _labels, ply as _ply, sens as _sens

INSTRUMENTED = (_chunks, _labels, _ply, _sens)

import fuzz_long  # noqa: E402
import test_fuzz_readers  # noqa: E402

READERS = [r for r in test_fuzz_readers.READERS if r != "rgbd"]  # single files only
COUNTS: Counter = Counter()
SEEDS = test_fuzz_readers.make_seed_files(Path(tempfile.mkdtemp(prefix="s3d_atheris_seeds_")))
SEED_BYTES = {r: Path(SEEDS[r]).read_bytes() for r in READERS}
WORK = Path(tempfile.mkdtemp(prefix="s3d_atheris_"))


def _edit(data: bytearray, fdp: "atheris.FuzzedDataProvider") -> bytearray:
    for _ in range(fdp.ConsumeIntInRange(0, 8)):
        op = fdp.ConsumeIntInRange(0, 3)
        pos = fdp.ConsumeIntInRange(0, max(len(data), 1) - 1) if data else 0
        if op == 0:
            del data[pos:]
        elif op == 1:
            chunk = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 8))
            data[pos:pos + len(chunk)] = chunk
        elif op == 2:
            data[pos:pos] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 16))
        elif data:
            data[pos] ^= 1 << fdp.ConsumeIntInRange(0, 7)
    return data


def test_one_input(raw: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(raw)
    reader = READERS[fdp.ConsumeIntInRange(0, len(READERS) - 1)]
    data = _edit(bytearray(SEED_BYTES[reader]), fdp)
    path = WORK / Path(SEEDS[reader]).name
    path.write_bytes(bytes(data))
    try:
        test_fuzz_readers._read(reader, path)
        COUNTS[(reader, "ok")] += 1
    except Exception as exc:  # noqa: BLE001 - classified below
        base = next((c.__name__ for c in type(exc).__mro__ if c.__name__ in fuzz_long.ALLOWED_ERRORS), None)
        COUNTS[(reader, type(exc).__name__)] += 1
        if base is None or base == "MemoryError" or (str(path) not in str(exc) and path.name not in str(exc)):
            raise  # libFuzzer reports it and saves the input


def _report() -> None:
    print(f"{'reader':<14} {'tried':>8}  outcomes")
    for r in READERS:
        row = {w: n for (k, w), n in COUNTS.items() if k == r}
        print(f"{r:<14} {sum(row.values()):>8}  " + ", ".join(f"{w} {n}" for w, n in sorted(row.items())))
    print(f"{'total':<14} {sum(COUNTS.values()):>8}")


if __name__ == "__main__":
    atexit.register(_report)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
