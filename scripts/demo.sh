#!/usr/bin/env bash
# The main job: set up, then generate synthetic ScanNet-layout rooms, fuse partial (input) and
# complete (target) TSDFs, train sparse scene completion, predict held-out rooms, print the IoU
# table (raw input vs target, prediction vs target) and write meshes + PNG pictures to out/demo.
#   bash scripts/demo.sh                          # synthetic rooms (~7 min on 2 CPU cores after the set-up)
#   bash scripts/demo.sh --quick                  # tiny check (~2-3 min)
#   bash scripts/demo.sh --scannet-root /data/scannet/scans   # real ScanNet scenes instead
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/sparse3d demo completion "$@"
