"""Shared helpers of the benchmarks: timing (medians), peak memory in a child process, GEMM rate,
tables and JSON results. Benchmarks are run by hand, never collected by pytest."""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def gemm_rate(n: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """Measured dense GEMM rate of this machine (FLOP/s) for an n x n x n matrix product."""
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    t = median_time(lambda: a @ b, repeats)
    return 2 * n**3 / t


RESET_PEAK = """
def _status(field):
    for line in open('/proc/self/status'):
        if line.startswith(field):
            return int(line.split()[1])
open('/proc/self/clear_refs', 'w').write('5')  # Linux: reset the peak RSS (VmHWM) to the current RSS
print('BASE', _status('VmRSS'))
"""


def peak_rss_mb(code: str) -> float:
    """Run python ``code`` in a fresh process; return its peak RSS growth in MiB (Linux).

    ``code`` must contain the line ``RESET_PEAK`` where setup ends and the measured work begins.
    """
    code = code.replace("RESET_PEAK", RESET_PEAK)
    wrapped = code + "\nprint('PEAK', _status('VmHWM'))\n"
    out = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True, check=True,
                         env=dict(os.environ)).stdout
    vals = {line.split()[0]: float(line.split()[1]) for line in out.splitlines() if line[:4] in ("BASE", "PEAK")}
    return (vals["PEAK"] - vals["BASE"]) / 1024


def machine_info() -> Dict[str, object]:
    return {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def print_table(headers: Sequence[str], rows: List[Sequence[object]]) -> None:
    cols = [[str(h)] + [f"{r[i]:.4g}" if isinstance(r[i], float) else str(r[i]) for r in rows]
            for i, h in enumerate(headers)]
    widths = [max(len(c) for c in col) for col in cols]
    for j in range(len(rows) + 1):
        print("  ".join(col[j].rjust(w) for col, w in zip(cols, widths)))
        if j == 0:
            print("  ".join("-" * w for w in widths))


def write_json(name: str, payload: Dict[str, object]) -> Path:
    """Write ``benchmarks/results/<name>.json`` atomically; return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    with tempfile.NamedTemporaryFile("w", dir=RESULTS, delete=False, suffix=".tmp") as f:
        json.dump(payload, f, indent=2)
    os.replace(f.name, path)
    return path
