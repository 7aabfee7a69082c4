"""Benchmark: the completion network against a classical reference, on synthetic held-out rooms and on the real
7-Scenes scan.

Rows per scene: the raw input; ``diffusion_fill`` (sparse3d/tasks/completion/baselines.py: normalised Gaussian
convolution of the observed distances, sigma 1 voxel, min weight 0.05, band 1 voxel; no learning); the network
with 1 and with ``--tta`` test-time views at the 0.5 decision (and a second, e.g. fine-tuned, checkpoint with
``--checkpoint2``). Scenes: every whole-scene sample under ``--samples`` (the demo's ``out/demo/samples/test``) and
the ``--rgbd`` folder fused with the completion recipe for each of ``--seeds`` (input from a seeded 30 % of the
frames, target from all, ``--align-up``). Columns: IoU, L1, chamfer distance (m), precision / recall of the surface in
unobserved space. Prints one table and writes benchmarks/results/completion_baselines.json.

    python benchmarks/bm_completion_baselines.py --checkpoint out/demo/run/last.pt \\
        --samples out/demo/samples/test [--checkpoint2 out/7scenes/finetune/last.pt]     # ~3 min on 2 cores
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from benchmarks.common import machine_info, print_table, write_json  # noqa: E402
from benchmarks.completion_scenes import completion_scenes  # noqa: E402
from sparse3d.tasks.completion.baselines import diffusion_fill  # noqa: E402
from sparse3d.tasks.completion.checkpoint import load_model  # noqa: E402
from sparse3d.tasks.completion.predict import predict_sample, score_prediction  # noqa: E402

KEYS = ("iou", "l1", "chamfer_m", "precision_unobserved", "recall_unobserved")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a completion checkpoint (the demo's out/demo/run/last.pt)")
    p.add_argument("--checkpoint2", default=None, help="a second checkpoint (e.g. eval_7scenes.sh's fine-tuned one)")
    p.add_argument("--samples", default=None, help="a sparse3d.crops folder of whole-scene samples")
    p.add_argument("--rgbd", default=os.path.join(ROOT, "..", "shared", "data", "rgbd", "7scenes-sample"),
                   help="an RGB-D folder (default: the 7-Scenes sample); '' for none")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="input frame subsets of --rgbd")
    p.add_argument("--tta", type=int, default=8, help="test-time views of the second network row")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    nets = [("network", *load_model(args.checkpoint, "cpu"))]
    if args.checkpoint2:
        nets.append(("network 2", *load_model(args.checkpoint2, "cpu")))
    cfg0 = nets[0][2]
    rows: Dict[str, Dict[str, Dict[str, float]]] = {}
    table = []
    voxel_size, trunc = float(nets[0][1].config.voxel_size), float(cfg0.model.trunc)
    for name, sample in completion_scenes(args.samples, args.rgbd, args.seeds, voxel_size, trunc):
        preds = {"diffusion fill": diffusion_fill(sample, occ_thresh=cfg0.occ_thresh)}
        for label, net, cfg in nets:
            for tta in sorted({1, args.tta}):
                preds[f"{label}, {tta} view{'s' if tta > 1 else ''}"] = predict_sample(
                    net, sample, "cpu", cfg.frontier, True, cfg.occ_thresh, 0.5, tta)
        rows[name] = {}
        for method, pred in preds.items():
            report = score_prediction(sample, pred, cfg0.occ_thresh)[0]
            if not rows[name]:
                rows[name]["input"] = report["input"]
                table.append([name, "input"] + [f"{report['input'].get(k, float('nan')):.4f}" for k in KEYS])
            rows[name][method] = report["prediction"]
            table.append([name, method] + [f"{report['prediction'].get(k, float('nan')):.4f}" for k in KEYS])
        print(f"scored {name}", file=sys.stderr, flush=True)
    print_table(["scene", "method", "IoU", "L1", "CD (m)", "P unobs", "R unobs"], table)
    path = write_json("completion_baselines", {
        "machine": machine_info(), "checkpoint": args.checkpoint, "checkpoint2": args.checkpoint2,
        "samples": args.samples, "rgbd": args.rgbd, "seeds": args.seeds, "tta": args.tta, "threshold": 0.5,
        "diffusion": {"sigma": 1.0, "min_weight": 0.05, "band": 1.0}, "scenes": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
