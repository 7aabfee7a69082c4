#!/usr/bin/env bash
# On the GPU machine lent by the device tool (python3 3.12, torch with CUDA, nvcc, ninja; no internet):
# build sparse3d with its CUDA kernels, run the CUDA tests, compute-sanitizer and the GPU benchmarks.
#
# Here, once: bash scripts/gpu_bundle.sh   (spconv and its needs -> .gpu/, carried to the GPU machine)
# There, each call from the repository root, with carry [".gpu"] (a device call may run 10 minutes):
#   bash scripts/gpu_check.sh build test        # build (minutes) + the tests that need no Open3D
#   bash scripts/gpu_check.sh build sanitize    # compute-sanitizer memcheck + racecheck
#   bash scripts/gpu_check.sh build bench       # benchmarks/bm_conv.py, bm_backends.py, bm_gather.py on CUDA
#   bash scripts/gpu_check.sh build implicit    # bm_conv.py --gather implicit (the implicit-GEMM kernels)
# (docs/gpu.md has the whole procedure)
# `build` is skipped when the machine still holds a CUDA build of the same sources (a warm machine).
# Logs and JSON results go to $OUT (the device tool's folder that comes back), else out/gpu/.
#
# Stages: build | test | sanitize | bench | implicit | all (= build test sanitize bench implicit). Exit status: the
# number of failed stages (0 = all passed).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEST=${OUT:-out/gpu}
mkdir -p "$DEST"
STAGES=("$@")
[ ${#STAGES[@]} -gt 0 ] || STAGES=(all)
[ "${STAGES[*]}" = "all" ] && STAGES=(build test sanitize bench implicit)
for s in "${STAGES[@]}"; do
  case "$s" in
    build|test|sanitize|bench|implicit) ;;
    *) echo "[gpu_check] unknown stage '$s' (expected build, test, sanitize, bench, implicit or all)" >&2; exit 64 ;;
  esac
done

# spconv and its pure-Python needs, from the carried bundle (scripts/gpu_bundle.sh; built for cp312),
# unpacked into $SPARSE3D_SITE (scripts/rehearse_gpu_check.sh points it at a fresh folder)
SITE=${SPARSE3D_SITE:-/tmp/sparse3d-site}
PYV=$($PY -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")' 2>/dev/null || echo "?")
if [ "$PYV" != "3.12" ]; then
  echo "[gpu_check] $PY is Python $PYV, the spconv bundle is for 3.12: not used (spconv tests use what $PY has)"
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  if [ -f .gpu/site-py312.tar.xz ] && [ ! -d "$SITE/spconv" ]; then
    echo "[gpu_check] unpacking .gpu/site-py312.tar.xz ($(tr '\n' ' ' < .gpu/WHEELS.txt 2>/dev/null))"
    mkdir -p "$SITE" && xz -dc .gpu/site-py312.tar.xz | tar -C "$SITE" -xf -
  fi
  [ -d "$SITE/spconv" ] || echo "[gpu_check] no spconv bundle (.gpu/site-py312.tar.xz): spconv comparisons will be skipped"
  export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "no nvidia-smi"; } \
  | tee "$DEST/gpu.txt"
$PY -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)' \
  | tee -a "$DEST/gpu.txt"

# The tree is sent anew on every device call (fresh mtimes), so "is the build current" is decided by
# a hash of the sources, stored beside the build (build/ is git-ignored and kept on a warm machine).
STAMP=build/cuda_sources.sha256
sources_hash() { find csrc setup.py -type f | sort | xargs sha256sum | sha256sum | cut -d' ' -f1; }

cuda_build_current() {
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(sources_hash)" ] && ls sparse3d/_C*.so >/dev/null 2>&1 &&
    [ "$($PY -c 'import sparse3d._C as C; print(C.with_cuda)' 2>/dev/null)" = "True" ]
}

stage_build() {
  if cuda_build_current; then echo "[gpu_check] CUDA build is current"; return 0; fi
  echo "[gpu_check] building sparse3d._C with CUDA (sm_90)"
  local t0=$SECONDS
  rm -f sparse3d/_C*.so "$STAMP"
  FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-16} \
    $PY setup.py build_ext --inplace > "$DEST/build.log" 2>&1
  local rc=$?
  tail -n 5 "$DEST/build.log"
  echo "[gpu_check] build exit $rc after $((SECONDS - t0)) s"
  [ $rc -eq 0 ] || return $rc
  $PY -c 'import sparse3d._C as C; assert C.with_cuda, "built without CUDA"; print("[gpu_check] with_cuda = True")' \
    && mkdir -p build && sources_hash > "$STAMP"
}

stage_test() {
  # the test files that need neither Open3D nor trimesh (absent on the GPU machine); the CUDA cases
  # are in test_cuda.py and the device-parametrized tests of the others
  # (a test file that cannot be imported, e.g. spconv broken on this torch, must not stop the others)
  $PY -m pytest -q -p no:cacheprovider -rs --continue-on-collection-errors tests/test_dense_reference.py tests/test_cuda.py tests/test_implicit_gemm.py \
    tests/test_mixed_precision.py tests/test_backends.py tests/test_conv.py tests/test_kernel_maps.py tests/test_ops.py \
    tests/test_tensor.py tests/test_errors.py tests/test_import.py tests/test_completion_train.py tests/test_backproject.py tests/test_conv_direct.py 2>&1 | tee "$DEST/pytest.log"
}

stage_sanitize() {
  local rc=0 tool gather
  for gather in ${SANITIZE_GATHERS:-auto implicit}; do  # e.g. SANITIZE_GATHERS=implicit
    for tool in memcheck racecheck; do
      echo "[gpu_check] compute-sanitizer --tool $tool, convs gather=$gather"
      compute-sanitizer --tool "$tool" --error-exitcode 1 $PY scripts/cuda_smoke.py --voxels 3000 --gather "$gather" \
        > "$DEST/sanitize_${tool}_$gather.log" 2>&1 || rc=1
      tail -n 3 "$DEST/sanitize_${tool}_$gather.log"
    done
  done
  return $rc
}

stage_bench() {
  local rc=0
  # JSON and the printed tables in $DEST (the device tool returns at most 8 files per call and only
  # the last 12,000 characters of output)
  $PY benchmarks/bm_conv.py --device cuda --out "$DEST" 2>&1 | tee "$DEST/bm_conv_cuda.log" || rc=1
  $PY benchmarks/bm_backends.py --device cuda --out "$DEST/bm_backends_cuda.json" 2>&1 \
    | tee "$DEST/bm_backends_cuda.log" || rc=1
  $PY benchmarks/bm_gather.py --device cuda --out "$DEST" || rc=1  # tables vs pair lists vs implicit GEMM
  return $rc
}

stage_implicit() {
  # the spconv comparison again with sparse3d on the implicit-GEMM kernels (bm_conv_cuda_implicit.json)
  $PY benchmarks/bm_conv.py --device cuda --gather implicit --out "$DEST" 2>&1 | tee "$DEST/bm_conv_cuda_implicit.log"
}

failed=0
for s in "${STAGES[@]}"; do
  t0=$SECONDS
  if "stage_$s"; then echo "[gpu_check] $s: passed ($((SECONDS - t0)) s)"; else
    echo "[gpu_check] $s: FAILED ($((SECONDS - t0)) s)"; failed=$((failed + 1)); fi
done
exit $failed
