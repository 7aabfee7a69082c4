#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer check of the C++ extension sparse3d._C.
#
# Builds an instrumented copy of the extension in a separate directory (never touches the checkout's
# sparse3d/_C*.so or build/), then runs the engine tests and the fuzz tests against it with libasan
# preloaded into the (uninstrumented) python.  Any ASan/UBSan report ends up in $DIR/logs and fails
# the script.
#
#   scripts/asan_check.sh                 # build (incremental) + tests
#   S3D_ASAN_DIR=/tmp/x scripts/asan_check.sh tests/test_conv.py   # other dir / chosen tests
#   S3D_ASAN_TESTS_ONLY=1 scripts/asan_check.sh ...   # reuse the last build; copy only tests/ again
#
# Slow: the instrumented build (-O1, S3D_CXX_OPT to change it) takes several minutes and the tests run ~2-5x
# slower. Run it with nice.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${S3D_ASAN_DIR:-/tmp/s3d_asan}
PY=${PYTHON:-$REPO/.venv/bin/python}
TREE=$DIR/tree
LOGS=$DIR/logs
mkdir -p "$TREE" "$LOGS"
case "$TREE" in "$REPO"|"$REPO"/*) echo "asan_check: S3D_ASAN_DIR must be outside $REPO" >&2; exit 2;; esac

if [ -n "${S3D_ASAN_TESTS_ONLY:-}" ]; then
    ls "$TREE"/sparse3d/_C*.so > /dev/null || { echo "asan_check: no instrumented build in $TREE yet" >&2; exit 2; }
    echo "asan_check: reusing the build in $TREE; copying tests/ only"
    rm -rf "$TREE/tests"
    tar -C "$REPO" --exclude='__pycache__' -cf - tests | tar -C "$TREE" -xf -
else
# 1. a copy of the sources (no compiled extension, no caches); the build dir persists for ninja
# A source that changed gets the time of this copy, an unchanged one keeps its old time: ninja rebuilds exactly
# the objects whose sources changed since the last instrumented build. (Extracting with the checkout's own
# times would not do: a file edited before the last build's copy but after it was taken would look older than
# its stale object.)
echo "asan_check: copying sources to $TREE"
STAGE=$DIR/stage
rm -rf "$STAGE" "$TREE/sparse3d" "$TREE/data_tools" "$TREE/tests"
mkdir -p "$STAGE"
tar -C "$REPO" --exclude='*.so' --exclude='__pycache__' -cf - \
    setup.py pyproject.toml csrc sparse3d data_tools tests | tar -C "$STAGE" -xf -
(cd "$STAGE" && find . -type f) | while read -r f; do
    if ! cmp -s "$STAGE/$f" "$TREE/$f"; then mkdir -p "$(dirname "$TREE/$f")"; cp "$STAGE/$f" "$TREE/$f"; fi
done
(cd "$TREE/csrc" && find . -type f) | while read -r f; do  # sources deleted from the checkout
    [ -e "$STAGE/csrc/$f" ] || rm -f "$TREE/csrc/$f"
done
rm -rf "$STAGE"

# 2. the instrumented build (flags through CFLAGS/LDFLAGS, which torch's ninja build appends)
SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=address -g"
echo "asan_check: building the instrumented extension (build dir $DIR/build)"
(cd "$TREE" && FORCE_CPU=1 MAX_JOBS=${MAX_JOBS:-2} S3D_CXX_OPT=${S3D_CXX_OPT:--O1} CFLAGS="$SAN" LDFLAGS="$SAN" \
    "$PY" setup.py -q build_ext --inplace --build-temp "$DIR/build") > "$LOGS/build.log" 2>&1 \
    || { tail -40 "$LOGS/build.log"; echo "asan_check: build failed (log $LOGS/build.log)" >&2; exit 1; }
fi
SO=$(ls "$TREE"/sparse3d/_C*.so)
if ! nm -D "$SO" | grep __asan_ > /dev/null; then  # no -q: an early exit would SIGPIPE nm (pipefail)
    echo "asan_check: $SO is not instrumented (no __asan_ symbols): the CFLAGS did not reach the compiler" >&2
    exit 1
fi

# 3. the tests, with the sanitizer runtimes preloaded
LIBASAN=$(g++ -print-file-name=libasan.so)
LIBUBSAN=$(g++ -print-file-name=libubsan.so)
TESTS=("$@")
if [ ${#TESTS[@]} -eq 0 ]; then
    TESTS=(tests/test_conv.py tests/test_conv_pairs.py tests/test_kernel_maps.py tests/test_ops.py
           tests/test_errors.py tests/test_implicit_gemm.py tests/test_data_fusion.py tests/test_tensor.py
           tests/test_conv_direct.py tests/test_backproject.py tests/test_octree.py tests/test_octree_ops.py)
    for f in tests/test_fuzz_native.py tests/test_fuzz_readers.py; do
        [ -f "$TREE/$f" ] && TESTS+=("$f")
    done
fi
rm -f "$LOGS"/asan.* "$LOGS"/ubsan.*
echo "asan_check: running ${TESTS[*]}"
export PYTHONPATH="$TREE" OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} S3D_ASAN=1
export LD_PRELOAD="$LIBASAN $LIBUBSAN"
# detect_leaks=0: CPython and torch keep allocations until exit by design; the check is for memory errors.
# allocator_may_return_null=1: a too-large request fails as in a normal build (torch raises), not as a report
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:log_path=$LOGS/asan:verify_asan_link_order=0:handle_segv=1"
export UBSAN_OPTIONS="print_stacktrace=1:log_path=$LOGS/ubsan"
cd "$TREE"
"$PY" -c "import sparse3d; assert sparse3d.__file__.startswith('$TREE'), sparse3d.__file__"
set +e
"$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}" 2>&1 | tee "$LOGS/pytest.log" | tail -25
rc=${PIPESTATUS[0]}
set -e
unset LD_PRELOAD
reports=$(ls "$LOGS"/asan.* "$LOGS"/ubsan.* 2>/dev/null || true)
if [ -n "$reports" ]; then
    echo "asan_check: sanitizer reports:"
    for r in $reports; do echo "== $r"; grep -E "ERROR|runtime error|SUMMARY|#[0-9] " "$r" | head -30; done
    exit 1
fi
echo "asan_check: no sanitizer reports; pytest exit code $rc"
exit $rc
