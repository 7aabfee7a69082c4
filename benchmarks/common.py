"""Shared helpers of the benchmarks: timing (medians; synchronized on CUDA), peak memory (CPU: in a
child process; CUDA: the caching allocator's peak), GEMM rate, tables and JSON results. Benchmarks are
run by hand, never collected by pytest."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch

from sparse3d.utils.atomic_io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"


def _sync(device: Optional[Union[str, torch.device]]) -> None:
    """Wait for the queued work of ``device`` (CUDA); nothing on the CPU, where calls return when done."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1,
                device: Optional[Union[str, torch.device]] = None) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs after ``warmup`` runs.

    ``device``: where ``fn`` queues its work; for a CUDA device the device is synchronized before
    each start and after each run, so a time covers the kernels ``fn`` launched, not just their
    launch (None or a CPU device: plain wall time)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def gemm_rate(n: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32,
              device: Union[str, torch.device] = "cpu", warmup: int = 1) -> float:
    """Measured dense GEMM rate (FLOP/s) of an n x n x n matrix product in ``dtype`` on ``device``.

    On CUDA float32 the rate depends on the TF32 setting (``torch.set_float32_matmul_precision``);
    the caller states which it used."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    t = median_time(lambda: a @ b, repeats, warmup, device)
    return 2 * n**3 / t


def cuda_peak_mib(fn: Callable[[], object], device: Union[str, torch.device] = "cuda") -> float:
    """Peak CUDA memory allocated while ``fn()`` runs, above what was allocated before it, in MiB
    (PyTorch's caching allocator: torch.cuda.reset_peak_memory_stats / max_memory_allocated)."""
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


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


def machine_info(device: Union[str, torch.device] = "cpu") -> Dict[str, object]:
    """Platform, CPU count, torch version and threads; for a CUDA ``device`` also the GPU's name,
    compute capability and memory, and the CUDA version torch was built with."""
    info: Dict[str, object] = {"platform": platform.platform(), "processor": platform.processor(),
                               "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    if torch.device(device).type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=torch.cuda.get_device_name(device), gpu_capability=f"{props.major}.{props.minor}",
                    gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
    return info


def print_table(headers: Sequence[str], rows: List[Sequence[object]]) -> None:
    cols = [[str(h)] + [f"{r[i]:.4g}" if isinstance(r[i], float) else str(r[i]) for r in rows]
            for i, h in enumerate(headers)]
    widths = [max(len(c) for c in col) for col in cols]
    for j in range(len(rows) + 1):
        print("  ".join(col[j].rjust(w) for col, w in zip(cols, widths)))
        if j == 0:
            print("  ".join("-" * w for w in widths))


def write_json(name: str, payload: Dict[str, object], out_dir: Optional[Union[str, Path]] = None) -> Path:
    """Write ``<out_dir>/<name>.json`` atomically (temp file in the same folder, then rename); return
    its path. ``out_dir`` defaults to ``benchmarks/results`` and is created if missing."""
    out = Path(out_dir) if out_dir is not None else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    atomic_write_json(path, payload, indent=2)
    return path
