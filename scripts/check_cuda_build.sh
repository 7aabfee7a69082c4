#!/usr/bin/env bash
# The whole CUDA build without a GPU: build sparse3d._C with FORCE_CUDA=1 against the CUDA build of
# torch that the device tool's GPU machine has (2.11.0 + CUDA 13), link it, import it, and run the
# test suite with it (the CUDA cases skip: no device). Needs nvcc; no GPU.
#
# What it checks beyond scripts/check_cuda_compile.sh (nvcc -c per file against the CPU torch):
# setup.py's CUDA branch as a whole (the flags and C++ standard torch's cpp_extension adds: C++17
# for torch 2.11), the link against cudart / libtorch_cuda, every symbol resolving at import, and
# the Python code on the GPU machine's torch version.
#
# Downloads torch $TORCH_VERSION and its CUDA libraries from PyPI once (about 5 GB) into
# build/cuda-check/venv; builds in a copy of the tree (build/cuda-check/main), so the CPU build's
# sparse3d/_C*.so in the working tree is left as it is. About 15 min on 2 cores.
# Usage: bash scripts/check_cuda_build.sh [pytest args, default: tests]
#   TORCH_VERSION (2.11.0), TORCH_CUDA_ARCH_LIST (9.0), MAX_JOBS (cores)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
TORCH_VERSION=${TORCH_VERSION:-2.11.0}
WORK=$REPO/build/cuda-check
VENV=$WORK/venv
TREE=$WORK/main
# pip's exit status is kept (pipefail); only the notes on the machine's local wheel folders are dropped
pip_install() { "$VENV/bin/pip" install -q "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }; }
command -v nvcc > /dev/null || { echo "[check_cuda_build] nvcc is not on PATH" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION' or torch.version.cuda is None)" 2> /dev/null; then
  echo "[check_cuda_build] venv with torch==$TORCH_VERSION (CUDA build, from PyPI) in $VENV"
  python3 -m venv "$VENV"
  pip_install "torch==$TORCH_VERSION"
  pip_install -r requirements.txt setuptools wheel
fi
"$VENV/bin/python" -c 'import torch; print("[check_cuda_build] torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 \
  | grep -v -i numpy || true

echo "[check_cuda_build] copying the tree to $TREE"
rm -rf "$TREE" && mkdir -p "$TREE"
git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -C "$TREE" -xf -
# the tests find the sample data at <repo>/../shared/data
[ -d "$REPO/../shared" ] && ln -sfn "$(cd "$REPO/.." && pwd)/shared" "$WORK/shared"

cd "$TREE"
echo "[check_cuda_build] FORCE_CUDA=1 build (log: $WORK/build.log)"
t0=$SECONDS
if ! FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-$(nproc)} \
  "$VENV/bin/python" setup.py build_ext --inplace > "$WORK/build.log" 2>&1; then
  grep -n -i -E "error|undefined" "$WORK/build.log" | head -n 20
  echo "[check_cuda_build] build FAILED after $((SECONDS - t0)) s" >&2
  exit 1
fi
echo "[check_cuda_build] built in $((SECONDS - t0)) s"
"$VENV/bin/python" -c '
import sparse3d._C as C
assert C.with_cuda, "sparse3d._C was built without CUDA"
print("[check_cuda_build] import ok, with_cuda =", C.with_cuda)
'
[ $# -gt 0 ] || set -- tests
# the package is built in place, not installed: the benchmark scripts' subprocesses import it from here
export PYTHONPATH="$TREE${PYTHONPATH:+:$PYTHONPATH}"
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
