#!/usr/bin/env bash
# Semantic segmentation on real data, qualitatively: the 7-Scenes sample (../shared/data/rgbd/7scenes-sample,
# no labels) fused at 5 cm from every frame, labelled by the synthetic-trained U-Net of
# `sparse3d demo segmentation`, rendered to a PNG with the ScanNet palette.
# 7-Scenes' world is not z-up: --align-up rotates it so the cameras' mean up is +z. Its z = 0 is not the floor
# (the synthetic rooms' is): --floor lowest measures the U-Net's height feature from the scan's lowest voxels
# (their 1st percentile), which are the floor only where the floor was scanned.
#   bash scripts/segment_7scenes.sh            # CKPT=..., DATA=..., OUT=... to override
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT=${CKPT:-out/segmentation_demo/runs/unet/last.pt}
DATA=${DATA:-../shared/data/rgbd/7scenes-sample}
OUT=${OUT:-out/7scenes_segmentation}
S=.venv/bin/sparse3d
[ -f "$CKPT" ] || { echo "error: no checkpoint $CKPT; run sparse3d demo segmentation first (or set CKPT=...)" >&2; exit 1; }
[ -d "$DATA" ] || { echo "error: no RGB-D folder $DATA (see ../shared/data/SOURCES.md)" >&2; exit 1; }
SCAN=$(basename "$DATA")
$S preprocess "$DATA" "$OUT/crops" --recipe segmentation --align-up --val-fraction 0
$S predict segmentation "$CKPT" "$OUT/crops" --out "$OUT/pred" --floor lowest
$S view segmentation "$OUT/pred" --scene "$SCAN" --png "$OUT/$SCAN.png"
echo "picture: $OUT/$SCAN.png"
