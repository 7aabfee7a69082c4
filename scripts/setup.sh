#!/usr/bin/env bash
# One-step setup on a fresh Debian machine with Python 3.11: Debian libraries that Open3D
# needs (import + headless rendering), a virtual environment in .venv, torch 2.13.0 (CPU),
# the Python dependencies, and sparse3d itself with its C++ extension.
# Idempotent: a second run only checks and rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

deb_pkgs=(libusb-1.0-0 libgl1 libegl1 libvulkan1 mesa-vulkan-drivers libgomp1)
missing=()
for p in "${deb_pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
$VPY -m pip install -q --upgrade pip >/dev/null 2>&1 || true
echo "[setup] installing torch==2.13.0 and dependencies"
$VPY -m pip install -q torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
$VPY -m pip install -q -r requirements.txt 2>&1 | grep -v "^WARNING: Location" || true
# pip builds an editable install from scratch every time (minutes): skip it when the extension is newer
# than every source it is built from (and, with FORCE_CUDA=1, was built with CUDA).
so=$(ls sparse3d/_C*.so 2>/dev/null | head -n 1 || true)
cuda_ok() { [ "${FORCE_CUDA:-0}" != "1" ] || [ "$($VPY -c 'import sparse3d._C as C; print(C.with_cuda)' 2>/dev/null)" = "True" ]; }
if [ -n "$so" ] && [ -x .venv/bin/sparse3d ] && [ -z "$(find csrc setup.py -newer "$so" -print -quit)" ] && cuda_ok; then
  echo "[setup] sparse3d C++ extension is up to date ($so)"
else
  echo "[setup] building sparse3d (C++ extension)"
  log=$(mktemp)
  if ! $VPY -m pip install -q --no-build-isolation --no-deps -e . >"$log" 2>&1; then
    cat "$log" >&2
    echo "[setup] error: building sparse3d failed (pip's output above)" >&2
    exit 1
  fi
  rm -f "$log"
fi
[ -x .venv/bin/sparse3d ] || { echo "[setup] error: the sparse3d command was not installed in .venv/bin" >&2; exit 1; }
$VPY -c "import sparse3d, sparse3d._C; print('[setup] sparse3d', sparse3d.__version__, 'ready')"
