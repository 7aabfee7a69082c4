"""Wall time and peak memory of one call: ``result, cost = measure(fn)``.

Peak memory is the peak resident set size during the call (Linux: ``VmHWM`` of /proc/self/status, reset
through /proc/self/clear_refs before the call) minus the RSS at the reset, so it counts every allocation of
the process, torch's included (tracemalloc sees only Python's). Memory the process already holds and
reuses during the call (allocator caches) does not count: compare runs in the same state.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional, Tuple

MEMORY_METHOD = ("peak resident set size (Linux /proc/self/status VmHWM, reset through /proc/self/clear_refs "
                 "before the call) minus the RSS at the reset: every allocation of the process, torch's included")


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> int:
    """Reset the process's peak RSS (VmHWM) to its current RSS (Linux); returns the current RSS in KiB.
    OSError where /proc/self is not available."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kib("VmRSS")


def peak_rss_kib() -> int:
    """The process's peak RSS (VmHWM) since the last :func:`reset_peak_rss`, KiB (Linux)."""
    return _status_kib("VmHWM")


def measure(fn: Callable[[], Any]) -> Tuple[Any, Dict[str, Any]]:
    """(fn(), {"seconds": wall time, "peak_rss_mib": peak RSS growth during the call (None where
    /proc/self is not available), "memory": how it was measured})."""
    try:
        base: Optional[int] = reset_peak_rss()
    except OSError:
        base = None
    t0 = time.perf_counter()
    out = fn()
    secs = time.perf_counter() - t0
    peak = None if base is None else round((peak_rss_kib() - base) / 1024, 1)
    return out, {"seconds": round(secs, 3), "peak_rss_mib": peak, "memory": MEMORY_METHOD}
