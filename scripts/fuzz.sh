#!/usr/bin/env bash
# The long fuzzing run (issue 23): the cases of tests/test_fuzz_native.py and tests/test_fuzz_readers.py,
# drawn by hypothesis for N minutes instead of the test suite's short seeded run, each case in a child
# process (tests/fuzz_long.py). Prints how many inputs of each kind were tried and what happened;
# exits 1 on any crash (signal), hang, huge allocation or error that does not name its argument / file.
#
#   scripts/fuzz.sh                          # 10 minutes, native ops and file readers
#   scripts/fuzz.sh --minutes 60 --seed 7    # longer, other seeds
#   scripts/fuzz.sh --native --minutes 5     # only the sparse3d._C entry points (or --readers)
#   scripts/fuzz.sh --atheris 300            # coverage-guided (atheris/libFuzzer) run of the file readers,
#                                            # 300 s; needs `pip install atheris` (a manylinux wheel for 3.11)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
cd "$REPO"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if [ "${1:-}" = "--atheris" ]; then
    secs=${2:-300}
    work=$(mktemp -d /tmp/s3d_atheris_run.XXXXXX)  # crash-<sha1> inputs land here
    echo "fuzz.sh: atheris for ${secs}s, artifacts in $work"
    cd "$work"
    exec "$PY" "$REPO/scripts/fuzz_atheris.py" -max_total_time="$secs" -rss_limit_mb=6144 -timeout=30
fi
if [ $# -eq 0 ]; then set -- --minutes 10; fi
exec "$PY" tests/fuzz_long.py "$@"
