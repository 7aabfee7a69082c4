#!/usr/bin/env bash
# The 3DMV ablation tables of docs/threedmv.md (resumable: rerun to continue; finished rows are skipped).
# Usage: scripts/threedmv_ablation.sh [OUT]   (default out/threedmv_ablation; about 3 hours of one core on an
# idle machine)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/threedmv_ablation}
PY=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
JSON=benchmarks/results/threedmv_ablation.json
# table "translate400": every row, 400 steps per 3D row (boxes translated, docs/segmentation.md), the 2D net
# pre-trained 1000 steps with median-frequency class weights
nice "$PY" -m sparse3d.tasks.threedmv.ablation --out "$OUT" --tag translate400 --steps 400 --steps-2d 1000 \
    --class-weighting-2d median_freq --json "$JSON"
# table "translate1000": the rows of the issue's target, 1000 steps per 3D row
nice "$PY" -m sparse3d.tasks.threedmv.ablation --out "$OUT" --tag translate1000 --steps 1000 --steps-2d 1000 \
    --class-weighting-2d median_freq --rows 2d_3views geometry joint_3views_fixed --json "$JSON"
# repeats of the target's rows: a 2D net pre-trained 3000 steps, and other rooms (--seed 1, under OUT_seed1)
nice "$PY" -m sparse3d.tasks.threedmv.ablation --out "$OUT" --tag seed0_2d3000 --steps 400 --steps-2d 3000 \
    --class-weighting-2d median_freq --rows 2d_3views geometry joint_3views_fixed --json "$JSON"
nice "$PY" -m sparse3d.tasks.threedmv.ablation --out "${OUT}_seed1" --seed 1 --tag seed1_translate400 --steps 400 \
    --steps-2d 1000 --class-weighting-2d median_freq --rows 2d_3views geometry geometry_color joint_3views_fixed \
    --json "$JSON"
nice "$PY" -m sparse3d.tasks.threedmv.ablation --out "${OUT}_seed1" --seed 1 --tag seed1_2d3000 --steps 400 \
    --steps-2d 3000 --class-weighting-2d median_freq --rows 2d_3views geometry joint_3views_fixed --json "$JSON"
# the segmentation default's wider U-Net, and the segmentation protocol's training (2000 steps of 4 boxes)
for S in 0 1; do
    D=$OUT; [ "$S" = 1 ] && D=${OUT}_seed1
    nice "$PY" -m sparse3d.tasks.threedmv.ablation --out "$D" --seed $S --tag seed${S}_wide --steps 400 \
        --steps-2d 1000 --class-weighting-2d median_freq --widths 32 64 96 128 \
        --rows 2d_3views geometry joint_3views_fixed --json "$JSON"
    nice "$PY" -m sparse3d.tasks.threedmv.ablation --out "$D" --seed $S --tag seed${S}_2000x4 --steps 2000 \
        --batch-size 4 --steps-2d 1000 --class-weighting-2d median_freq \
        --rows 2d_3views geometry joint_3views_fixed --json "$JSON"
done
# the issue's target rows with the segmentation demo's 60 training rooms (under OUT_60rooms_seedS), the segmentation
# protocol's training, geometry + voxel colour beside them, every trained row also with 8 test-time views; seed 0
# with every row of the ablation, seed 1 also with 5 views and with the 2D net trained end to end
for S in 0 1 2 3; do
    ROWS="2d_3views geometry joint_3views_fixed geometry_color"
    [ "$S" = 0 ] && ROWS="2d_1view 2d_3views geometry geometry_color joint_1view_fixed joint_3views_fixed \
joint_5views_fixed joint_1view_e2e joint_3views_e2e joint_5views_e2e"
    [ "$S" = 1 ] && ROWS="$ROWS joint_5views_fixed joint_3views_e2e"
    # shellcheck disable=SC2086
    nice "$PY" -m sparse3d.tasks.threedmv.ablation --out "${OUT}_60rooms_seed$S" --seed $S --train-scenes 60 \
        --tag seed${S}_60rooms --steps 2000 --batch-size 4 --steps-2d 1000 --class-weighting-2d median_freq --tta 8 \
        --rows $ROWS --json "$JSON"
done
