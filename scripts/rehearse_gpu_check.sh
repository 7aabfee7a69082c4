#!/usr/bin/env bash
# A rehearsal of a GPU session on this machine (nvcc, no GPU): scripts/gpu_check.sh run the way the
# device tool's GPU machine runs it, with that machine's Python and torch, so a lent GPU's 30 minutes
# go to the kernels and not to fixing the build or the scripts.
#
# What it mimics (device tool, KINDS.md): python 3.12, torch 2.11.0 + CUDA 13, the image's packages
# that the tests need, and no Open3D, trimesh or spconv; spconv comes from the carried bundle
# (.gpu/site-py312.tar.xz, scripts/gpu_bundle.sh), unpacked afresh as gpu_check.sh unpacks it there.
# What it runs:
#   1. `scripts/gpu_check.sh build test` in a copy of the tree: the FORCE_CUDA=1 build (setup.py's
#      CUDA branch, the link against cudart / libtorch_cuda), the import with with_cuda = True, and
#      the GPU test list (the CUDA cases skip: no device);
#   2. bm_conv.py (with the U-Net), bm_gather.py and bm_backends.py on the CPU at small sizes, with
#      the bundled spconv: the benchmark code against the spconv version the GPU run will compare to.
# What it cannot check: anything that needs the GPU (the kernels, sanitizer, timings).
#
# Downloads torch 2.11.0 and its CUDA libraries from PyPI once (about 5 GB) into
# build/gpu-rehearsal/venv. About 8.5 min on 2 cores (the build is 6.5 of them).
# Usage: bash scripts/rehearse_gpu_check.sh
#   PYTHON312 (a Python 3.12 interpreter; default: python3.12 on PATH, else pyenv's), MAX_JOBS (cores)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=$REPO/build/gpu-rehearsal
VENV=$WORK/venv
TREE=$WORK/main
OUTDIR=$WORK/out
TORCH_VERSION=2.11.0  # what the GPU machine has (KINDS.md)
say() { echo "[rehearse_gpu_check] $*"; }
die() { echo "[rehearse_gpu_check] $*" >&2; exit 1; }

command -v nvcc > /dev/null || die "nvcc is not on PATH (the CUDA build needs it)"
[ -f .gpu/site-py312.tar.xz ] || die ".gpu/site-py312.tar.xz is missing: run bash scripts/gpu_bundle.sh first"

find_py312() {
  local c
  for c in "${PYTHON312:-}" "$(command -v python3.12 || true)" "$HOME"/.pyenv/versions/3.12*/bin/python3.12; do
    [ -n "$c" ] && [ -x "$c" ] && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2> /dev/null &&
      { echo "$c"; return 0; }
  done
  return 1
}

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import torch, sys; sys.exit(sys.version_info[:2] != (3, 12) or torch.__version__.split('+')[0] != '$TORCH_VERSION' or torch.version.cuda is None)" 2> /dev/null; then
  PY312=$(find_py312) || die "no Python 3.12 found (set PYTHON312=/path/to/python3.12): the GPU machine's python is 3.12 and the spconv bundle is built for it"
  say "venv with $PY312, torch==$TORCH_VERSION (CUDA build, from PyPI) in $VENV"
  rm -rf "$VENV"
  "$PY312" -m venv "$VENV"
  # the image's packages that the GPU test list and the benchmarks import (no open3d, trimesh, spconv)
  "$VENV/bin/pip" install -q "torch==$TORCH_VERSION" numpy scipy pytest pybind11 ninja tqdm scikit-image pillow \
    scikit-learn matplotlib pyyaml setuptools wheel 2>&1 | { grep -v "^WARNING: Location" || true; }
fi

say "copying the tree and .gpu/ to $TREE"
rm -rf "$TREE" "$OUTDIR" && mkdir -p "$TREE" "$OUTDIR"
git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -C "$TREE" -xf -
cp -r .gpu "$TREE/"
# the tests find the sample data at <repo>/../shared/data
[ -d "$REPO/../shared" ] && ln -sfn "$(cd "$REPO/.." && pwd)/shared" "$WORK/shared"

cd "$TREE"
SITE=$WORK/site  # unpacked afresh, as on a cold GPU machine
rm -rf "$SITE"
rc=0
SPARSE3D_SITE=$SITE OUT=$OUTDIR PYTHON=$VENV/bin/python MAX_JOBS=${MAX_JOBS:-$(nproc)} \
  bash scripts/gpu_check.sh build test || rc=$?
[ $rc -eq 0 ] || die "gpu_check.sh build test: $rc stage(s) failed (logs in $OUTDIR)"

say "benchmarks on the CPU with the bundled spconv (small sizes; the code path, not timings)"
export PYTHONPATH="$TREE:$SITE"
PYV=$VENV/bin/python
"$PYV" -c 'import spconv; print("[rehearse_gpu_check] spconv", spconv.__version__, "from", spconv.__file__)'
"$PYV" benchmarks/bm_conv.py --device cpu --sizes 5000 --channels 16 --dtypes float32 float16 --unet --repeats 1 \
  --out "$OUTDIR/bench" > "$OUTDIR/bm_conv_cpu.log" 2>&1 || die "bm_conv.py failed (log: $OUTDIR/bm_conv_cpu.log)"
"$PYV" benchmarks/bm_gather.py --device cpu --voxels 5000 --channels 16 --repeats 1 --out "$OUTDIR/bench" \
  > "$OUTDIR/bm_gather_cpu.log" 2>&1 || die "bm_gather.py failed (log: $OUTDIR/bm_gather_cpu.log)"
"$PYV" benchmarks/bm_backends.py --device cpu --voxels 5000 --small-voxels 2000 --repeats 1 \
  --out "$OUTDIR/bench/bm_backends_cpu.json" > "$OUTDIR/bm_backends_cpu.log" 2>&1 \
  || die "bm_backends.py failed (log: $OUTDIR/bm_backends_cpu.log)"
ls "$OUTDIR/bench"
say "passed: the GPU session's build, tests and benchmark scripts run with python 3.12, torch $TORCH_VERSION and the bundle"
