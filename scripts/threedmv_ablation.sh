#!/usr/bin/env bash
# The 3DMV ablation tables of docs/threedmv.md (resumable: rerun to continue; finished rows are skipped).
# Usage: scripts/threedmv_ablation.sh [OUT]   (default out/threedmv_ablation; about an hour of one core per table)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/threedmv_ablation}
PY=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
JSON=benchmarks/results/threedmv_ablation.json
# table "default": every row, 200 steps per 3D row, the 2D net pre-trained 500 steps
nice "$PY" -m sparse3d.tasks.threedmv.ablation --out "$OUT" --steps 200 --steps-2d 500 --json "$JSON"
# table "steps400": every row, 400 steps per 3D row, the 2D net pre-trained 1000 steps with median-frequency
# class weights
nice "$PY" -m sparse3d.tasks.threedmv.ablation --out "$OUT" --tag steps400 --steps 400 --steps-2d 1000 \
    --class-weighting-2d median_freq --json "$JSON"
