#!/usr/bin/env bash
# Here (a machine with internet access to PyPI): pack what the GPU machine lacks into .gpu/, which
# the device tool carries (`carry: [".gpu"]`) and scripts/gpu_check.sh unpacks there.
#
# The GPU machine has python 3.12 with torch (CUDA 13), nvcc and ninja, but no spconv and no way to
# download it. spconv's cp312 wheel alone is 70 MB, over the 64 MiB a device call carries, so the
# wheels are unpacked and re-packed as one tar.xz (45 MB): spconv-cu126 2.3.8 (the newest with cp312
# wheels; CUDA 12 runtime, which the CUDA 13 driver runs), cumm-cu126 0.7.x and their pure-Python
# needs (pccm, ccimport, fire, termcolor, lark); numpy, pybind11, sympy, ninja, requests and
# portalocker are already there (KINDS.md of the device tool lists its packages).
#
#   bash scripts/gpu_bundle.sh          # -> .gpu/site-py312.tar.xz
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qxF '/.gpu/' .gitignore || { echo ".gitignore must list /.gpu/ (the bundle is never committed)" >&2; exit 1; }
PY=${PYTHON:-python3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform any)
WHEELS=("spconv-cu126==2.3.8" "cumm-cu126>=0.7.11,<0.8" "pccm>=0.4.16" "ccimport>=0.4.4" fire termcolor "lark>=1.0")
echo "[gpu_bundle] downloading ${WHEELS[*]} for cp312"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d "$TMP/whl" "${WHEELS[@]}"
mkdir -p "$TMP/site"
for w in "$TMP"/whl/*.whl; do
  "$PY" -m zipfile -e "$w" "$TMP/site"  # a wheel is a zip laid out as site-packages
done
mkdir -p .gpu
echo "[gpu_bundle] packing (xz, about a minute)"
tar -C "$TMP/site" -cf - . | xz -T0 -6 > .gpu/site-py312.tar.xz.tmp
mv .gpu/site-py312.tar.xz.tmp .gpu/site-py312.tar.xz
ls "$TMP/whl" > .gpu/WHEELS.txt
size=$(stat -c %s .gpu/site-py312.tar.xz)
echo "[gpu_bundle] .gpu/site-py312.tar.xz: $((size / 1024 / 1024)) MiB (from: $(tr '\n' ' ' < .gpu/WHEELS.txt))"
[ "$size" -lt $((60 * 1024 * 1024)) ] || { echo "[gpu_bundle] too large to carry (64 MiB per call with the repo)" >&2; exit 1; }
