"""Fuzzing harness of sparse3d: the child-process worker, the outcome rule and the long run.

Every risky call runs in a child process (:class:`Worker`), so a crash of the C++ extension (a
signal) or a hang becomes a failure of the parent instead of killing it. The child reads one JSON
case per line on stdin and answers one JSON line per case:

    {"outcome": "ok" | "error", "call": <the call that raised>, "names": <its argument names>,
     "type": <exception class>, "msg": <first line of the message>}

and announces each case on stderr before running it, so a crash names the case that caused it.

Cases are plain JSON made by hypothesis strategies in the parent (the native ops' cases and their runner
are in tests/fuzz_native_cases.py, the file readers' in tests/test_fuzz_readers.py).

The rule every case is checked against (:func:`check_outcome`): the call succeeds, or raises one of
ALLOWED_ERRORS whose message names one of the arguments of the call that raised (or the file).

Long run (scripts/fuzz.sh)::

    python tests/fuzz_long.py --minutes 10 [--seed 0] [--native] [--readers]

prints how many inputs of each kind were tried and what happened (ok / which exception), and exits 1
on any crash, hang or unnamed error.
"""
from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from hypothesis import strategies as st

ALLOWED_ERRORS = ("RuntimeError", "ValueError", "TypeError", "IndexError", "FileNotFoundError",
                  "NotImplementedError", "OSError", "EOFError", "MemoryError", "KeyError",
                  "UnpicklingError", "IsADirectoryError", "PermissionError", "BadZipFile", "UnicodeDecodeError",
                  "JSONDecodeError", "OverflowError")
CASE_TIMEOUT_S = 60.0  # a case running longer than this counts as a hang
START_TIMEOUT_S = 600.0  # the worker's start-up (imports torch; slow on a loaded machine)



# ---- child side: run one case ---------------------------------------------------------------------
class _Raised(Exception):
    """An exception of a named call, with that call's argument names."""

    def __init__(self, call: str, names: List[str], exc: BaseException) -> None:
        super().__init__(call)
        self.call, self.names, self.exc = call, names, exc


_SUCCEEDED: List[str] = []  # calls of the current case that returned (child side; reported per case)
_RAISED: List[Dict[str, Any]] = []  # every call of the current case that raised, also those caught later


def _describe(call: str, names: List[str], exc: BaseException) -> Dict[str, Any]:
    msg = str(exc).strip().splitlines()
    # the allowed built-in class it derives from (SensFormatError -> ValueError), or None
    base = next((c.__name__ for c in type(exc).__mro__ if c.__name__ in ALLOWED_ERRORS), None)
    return {"call": call, "names": names, "type": type(exc).__name__, "base": base, "msg": msg[0][:300] if msg else ""}


def _call(call: str, names: str, fn: Callable, *args, **kwargs):
    try:
        out = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - classified by the parent
        _RAISED.append(_describe(call, names.split(), exc))
        raise _Raised(call, names.split(), exc) from exc
    _SUCCEEDED.append(call)
    return out


def run_case(case: Dict[str, Any]) -> Dict[str, Any]:
    """Runs one case in this process; the outcome as a JSON-able dict (child side)."""
    kind = case.get("kind", "native")
    _SUCCEEDED.clear()
    _RAISED.clear()
    try:
        if kind == "native":
            import fuzz_native_cases  # beside this file

            fuzz_native_cases.run_native(case)
        elif kind == "selftest":  # the harness's own test: a real segfault in the child
            import ctypes

            ctypes.string_at(0)
        else:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            import test_fuzz_readers  # the readers' cases live beside their tests

            test_fuzz_readers.run_reader_case(case)
    except _Raised as r:
        call, names, exc = r.call, r.names, r.exc
    except Exception as e:  # noqa: BLE001 - outside any named call: reported with no argument names
        call, names, exc = "harness", [], e
    else:
        return {"outcome": "ok", "succeeded": list(_SUCCEEDED), "raised": list(_RAISED)}
    raised = list(_RAISED) if call != "harness" else [*_RAISED, _describe(call, names, exc)]
    return {"outcome": "error", **_describe(call, names, exc), "succeeded": list(_SUCCEEDED), "raised": raised}


ADDRESS_SPACE_HEADROOM_GB = 6  # the worker may map this much more than it had at start


def _limit_address_space() -> None:
    """Caps the child's address space a few GB above its size at start, so a huge allocation fails with
    MemoryError (which the readers' rule rejects) instead of swapping the machine. Not under ASan, whose
    shadow memory needs terabytes of address space."""
    if os.environ.get("S3D_ASAN"):
        return
    import importlib
    import resource

    importlib.import_module("torch")  # loaded first: its libraries are part of the baseline

    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    limit = vm + ADDRESS_SPACE_HEADROOM_GB * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def worker_main() -> None:
    """The child loop: one JSON case per stdin line -> one JSON outcome per stdout line."""
    import faulthandler

    faulthandler.enable()  # a crash prints the native and Python stacks on stderr
    _limit_address_space()
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints must not break the protocol
    import importlib

    for mod in ("sparse3d", "data_tools.scannet"):  # imported before READY: case timeouts exclude start-up
        importlib.import_module(mod)

    out.write("READY\n")
    out.flush()
    for line in sys.stdin:
        case = json.loads(line)
        sys.stderr.write(f"fuzz case: {line}")
        sys.stderr.flush()
        out.write(json.dumps(run_case(case)) + "\n")
        out.flush()


# ---- parent side ----------------------------------------------------------------------------------
class Worker:
    """A child process running cases; restarted after a crash or a hang."""

    def __init__(self, env: Optional[Dict[str, str]] = None) -> None:
        self.env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), **(env or {}))
        self.proc: Optional[subprocess.Popen] = None
        self.stderr_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"s3d_fuzz_worker_{os.getpid()}.log"

    def _start(self) -> None:
        self._err = open(self.stderr_path, "w")
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._err, text=True, env=self.env,
                                     cwd=str(Path(__file__).resolve().parents[1]))
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT_S)
        line = self.proc.stdout.readline() if ready else ""
        if line != "READY\n":
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"fuzz worker did not start (got {line!r}); its stderr: "
                               f"{self.stderr_path.read_text(errors='replace')[-2000:]}")

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self._err.close()
            self.proc = None

    def _died(self, what: str) -> Dict[str, Any]:
        self.proc.kill()
        rc = self.proc.wait()
        self._err.close()
        tail = self.stderr_path.read_text(errors="replace")[-3000:]
        self.proc = None
        return {"outcome": what, "returncode": rc, "stderr": tail}

    def run(self, case: Dict[str, Any], timeout: float = CASE_TIMEOUT_S) -> Dict[str, Any]:
        if self.proc is None:
            self._start()
        try:
            self.proc.stdin.write(json.dumps(case) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return self._died("crash")
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return self._died("hang")
        line = self.proc.stdout.readline()
        if not line:
            return self._died("crash")
        return json.loads(line)


def check_outcome(case: Dict[str, Any], res: Dict[str, Any], extra_names=(), reader: bool = False) -> Optional[str]:
    """None when the outcome follows the rule, else what is wrong. ``reader``: a file reader, for which
    a MemoryError also fails (it tried a huge allocation instead of checking the file first)."""
    if res["outcome"] in ("crash", "hang"):
        return (f"{res['outcome']} (exit code {res['returncode']}) on case {json.dumps(case)}\n"
                f"child stderr:\n{res['stderr']}")
    for r in res.get("raised", [res]):  # every call that raised, also those the case caught and went on
        if reader and r["base"] == "MemoryError":
            return f"{r['call']} ran out of memory (a huge allocation): {r['msg']} on {json.dumps(case)}"
        if r["base"] is None:
            return f"{r['call']} raised {r['type']}: {r['msg']} (not one of ALLOWED_ERRORS) on {json.dumps(case)}"
        names = list(r.get("names", [])) + list(extra_names)
        if not any(n.lower() in r["msg"].lower() for n in names if n):
            return (f"{r['call']} raised {r['type']} whose message names none of {names}: {r['msg']!r} "
                    f"on {json.dumps(case)}")
    return None


class Tally:
    """Counts of cases by kind and outcome, for the long run's report."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.calls: Counter = Counter()  # (call, "returned" | exception type)
        self.failures: List[str] = []

    def add(self, kind: str, res: Dict[str, Any], problem: Optional[str]) -> None:
        what = "ok" if res["outcome"] == "ok" else res.get("type", res["outcome"])
        self.counts[(kind, what)] += 1
        for call in res.get("succeeded", []):
            self.calls[(call, "returned")] += 1
        for r in res.get("raised", []):
            self.calls[(r["call"], r["type"])] += 1
        if problem:
            self.failures.append(problem)

    def report(self) -> str:
        kinds = sorted({k for k, _ in self.counts})
        lines = [f"{'kind':<24} {'tried':>7}  outcomes"]
        for kind in kinds:
            row = {w: n for (k, w), n in self.counts.items() if k == kind}
            lines.append(f"{kind:<24} {sum(row.values()):>7}  " +
                         ", ".join(f"{w} {n}" for w, n in sorted(row.items(), key=lambda x: -x[1])))
        lines.append(f"{'total':<24} {sum(self.counts.values()):>7}  problems (crash/hang/unnamed error): "
                     f"{len(self.failures)}")
        lines.append("")
        lines.append(f"{'call':<36} {'calls':>7}  outcomes")
        for call in sorted({c for c, _ in self.calls}):
            row = {w: n for (c, w), n in self.calls.items() if c == call}
            lines.append(f"{call:<36} {sum(row.values()):>7}  " +
                         ", ".join(f"{w} {n}" for w, n in sorted(row.items(), key=lambda x: -x[1])))
        return "\n".join(lines)


def _case_kind(case: Dict[str, Any]) -> str:
    return case.get("op") if case.get("kind", "native") == "native" else f"file:{case.get('reader')}"


def long_run(minutes: float, seed: int, native: bool, readers: bool, batch: int = 200) -> Tally:
    """Draws cases with hypothesis until ``minutes`` have passed; each round is one seeded hypothesis run."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed

    strategies = []
    if native:
        import fuzz_native_cases

        strategies.append(fuzz_native_cases.native_cases())
    if readers:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import test_fuzz_readers

        strategies.append(test_fuzz_readers.reader_cases())
    strategy = st.one_of(*strategies)
    tally, worker = Tally(), Worker()
    end = time.monotonic() + 60 * minutes
    rnd = seed

    def body(case):
        if time.monotonic() > end:
            return
        reader = case.get("kind") == "reader"
        res = worker.run(case, timeout=30 if reader else CASE_TIMEOUT_S)
        tally.add(_case_kind(case), res, check_outcome(case, res, reader=reader))

    try:
        while time.monotonic() < end:
            run = settings(max_examples=batch, deadline=None, database=None,
                           suppress_health_check=list(HealthCheck))(hseed(rnd)(given(strategy)(body)))
            run()
            rnd += 1
            print(f"[{time.strftime('%H:%M:%S')}] round {rnd - seed}: {sum(tally.counts.values())} cases, "
                  f"{len(tally.failures)} problems", flush=True)
    finally:
        worker.close()
    return tally


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--minutes", type=float, default=5.0, help="how long to fuzz (default 5)")
    ap.add_argument("--seed", type=int, default=0, help="first hypothesis seed (one per round)")
    ap.add_argument("--native", action="store_true", help="only the native ops (default: both)")
    ap.add_argument("--readers", action="store_true", help="only the file readers (default: both)")
    args = ap.parse_args(argv)
    if args.worker:
        worker_main()
        return 0
    both = not (args.native or args.readers)
    tally = long_run(args.minutes, args.seed, args.native or both, args.readers or both)
    print(tally.report())
    for f in tally.failures[:20]:
        print("PROBLEM:", f[:2000])
    return 1 if tally.failures else 0


if __name__ == "__main__":
    # run as the importable module (not __main__), so the readers' cases (test_fuzz_readers imports
    # fuzz_long) and this loop share one _Raised class
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import fuzz_long

    sys.exit(fuzz_long.main())
