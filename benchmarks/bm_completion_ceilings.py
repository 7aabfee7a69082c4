"""Benchmark: how much IoU scene completion can win on a scene, and where: observed or unobserved space.

Rows per scene (IoU overall / on observed / on unobserved space, all on known target space;
sparse3d/tasks/completion/oracles.py):
- ``input``: the raw partial scan;
- ``oracle: observed``: observed voxels take the target's occupancy (what fixing the measurement alone gives);
- ``oracle: fill <= d``: the measurement plus every target surface voxel within d voxels of observed space
  (a perfect gap filler of reach d), for each ``--reach``;
- with ``--checkpoint``: the network as ``eval`` decides (observed voxels keep the measurement), and its output
  alone (``--network-only``: the network decides observed space too), at each of ``--thresholds``: does the
  network know the observed surface better than the partial measurement?

Scenes: every whole-scene sample under ``--samples`` (the demo's ``out/demo/samples/test``) and the ``--rgbd`` folder
fused with the completion recipe for each of ``--seeds`` (input from a seeded 30 % of the frames, target from all,
``--align-up``). Writes benchmarks/results/completion_ceilings.json.

    python benchmarks/bm_completion_ceilings.py --samples out/demo/samples/test \\
        [--checkpoint out/demo/run/last.pt]                                         # ~1-2 min on 2 cores
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
from data_tools.recipes import RECIPES  # noqa: E402
from sparse3d.tasks.completion.checkpoint import load_model  # noqa: E402
from sparse3d.tasks.completion.oracles import near_fill_oracle, observed_oracle  # noqa: E402
from sparse3d.tasks.completion.predict import (Prediction, decide, input_prediction, run_network,  # noqa: E402
                                               score_prediction)

KEYS = ("iou", "iou_observed", "iou_unobserved", "precision_observed", "recall_observed")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", default=None, help="a sparse3d.crops folder of whole-scene samples")
    p.add_argument("--rgbd", default=os.path.join(ROOT, "..", "shared", "data", "rgbd", "7scenes-sample"),
                   help="an RGB-D folder (default: the 7-Scenes sample); '' for none")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="input frame subsets of --rgbd")
    p.add_argument("--reach", type=float, nargs="+", default=[1.0, 2.0, 4.0, 8.0],
                   help="reaches (voxels) of the gap-filling oracle")
    p.add_argument("--checkpoint", default=None, help="a completion checkpoint: add the network's rows")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.5], help="the network's decision thresholds")
    p.add_argument("--tta", type=int, default=1, help="test-time views of the network")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rec = RECIPES["completion"]
    voxel_size, trunc, occ_thresh, net, cfg = float(rec["voxel_size"]), float(rec["trunc_voxels"]), 1.0, None, None
    if args.checkpoint:
        net, cfg = load_model(args.checkpoint, "cpu")
        voxel_size, trunc, occ_thresh = float(net.config.voxel_size), float(cfg.model.trunc), float(cfg.occ_thresh)
    rows: Dict[str, Dict[str, Dict[str, float]]] = {}
    table = []
    for name, sample in completion_scenes(args.samples, args.rgbd, args.seeds, voxel_size, trunc):
        preds: Dict[str, Prediction] = {"input": input_prediction(sample, occ_thresh),
                                        "oracle: observed": observed_oracle(sample, occ_thresh)}
        for d in args.reach:
            preds[f"oracle: fill <= {d:g}"] = near_fill_oracle(sample, d, occ_thresh)
        if net is not None:
            raw = run_network(net, sample, "cpu", cfg.frontier, args.tta)
            for t in args.thresholds:
                preds[f"network @{t:g}"] = decide(sample, raw, t, True, occ_thresh)
                preds[f"network @{t:g}, network only"] = decide(sample, raw, t, False, occ_thresh)
        rows[name] = {}
        for method, pred in preds.items():
            m = score_prediction(sample, pred, occ_thresh, with_chamfer=False)[0]["prediction"]
            rows[name][method] = m
            table.append([name, method] + [f"{m.get(k, float('nan')):.4f}" for k in KEYS])
        print(f"scored {name}", file=sys.stderr, flush=True)
    print_table(["scene", "method", "IoU", "IoU obs", "IoU unobs", "P obs", "R obs"], table)
    path = write_json("completion_ceilings", {
        "machine": machine_info(), "samples": args.samples, "rgbd": args.rgbd, "seeds": args.seeds,
        "reach": args.reach, "checkpoint": args.checkpoint, "thresholds": args.thresholds, "tta": args.tta,
        "scenes": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
