#!/usr/bin/env bash
# Scene completion on real data: the 7-Scenes sample in ../shared/data/rgbd/7scenes-sample.
# Input = TSDF fused from ~30% of the frames, target = TSDF fused from all of them (5 cm voxels).
#  1. the synthetic-trained model of the main job (out/demo/run/last.pt, from `bash scripts/demo.sh`);
#  2. the same model fine-tuned self-supervised on pairs fused from *other* frame subsets of the scan
#     (target = a random 60% of the frames, input = 30% drawn from those; seeds differ from the test pair).
#     It never sees the all-frames target, but it does adapt to this scene (test-time adaptation).
# Writes out/7scenes/metrics_{synthetic,finetuned}.json, out/7scenes/{synthetic,finetuned}/ (meshes and the
# input / prediction / target / errors picture) and benchmarks/results/completion_7scenes.json.
#   bash scripts/eval_7scenes.sh            # CKPT=..., DATA=..., OUT=..., STEPS=..., THRESHOLD=..., TTA=... to override
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT=${CKPT:-out/demo/run/last.pt}
DATA=${DATA:-../shared/data/rgbd/7scenes-sample}
OUT=${OUT:-out/7scenes}
STEPS=${STEPS:-300}
S=.venv/bin/sparse3d
[ -f "$CKPT" ] || { echo "error: no checkpoint $CKPT; run bash scripts/demo.sh first (or set CKPT=...)" >&2; exit 1; }
[ -d "$DATA" ] || { echo "error: no RGB-D folder $DATA (see ../shared/data/SOURCES.md)" >&2; exit 1; }
THRESHOLD=${THRESHOLD:-0.5}   # the finest level's occupancy threshold (tune: sparse3d eval completion --tune-threshold)
TTA=${TTA:-8}   # test-time views (1 = one run); on this scan 8 views cut the chamfer penalty (docs/completion.md)
# the test pair: input fused from a seeded 30% of the frames, target from all (eval --rgbd fuses both)
$S eval completion --rgbd "$DATA" --align-up --seed 0 --checkpoint "$CKPT" --threshold "$THRESHOLD" --tta "$TTA" \
    --out "$OUT/synthetic" --json "$OUT/metrics_synthetic.json"
$S preprocess "$DATA" "$OUT/selfsup_crops" --recipe completion --pairs 8 --target-fraction 0.6 --seed 1 \
    --crops-per-scene 24 --align-up --val-fraction 0
$S train completion --data "$OUT/selfsup_crops" --out "$OUT/finetune" --init "$CKPT" --steps "$STEPS" \
    --lr 5e-4 --threads 1 --val-every 0   # no held-out split: every pair is of the test scan
$S eval completion --rgbd "$DATA" --align-up --seed 0 --checkpoint "$OUT/finetune/last.pt" --threshold "$THRESHOLD" --tta "$TTA" \
    --out "$OUT/finetuned" --json "$OUT/metrics_finetuned.json"
.venv/bin/python - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
res = {k: json.load(open(os.path.join(out, f"metrics_{k}.json"))) for k in ("synthetic", "finetuned")}
dst = "benchmarks/results/completion_7scenes.json"
with open(dst + ".tmp", "w") as f:
    json.dump(res, f, indent=1)
os.replace(dst + ".tmp", dst)
print("wrote", dst)
PY
