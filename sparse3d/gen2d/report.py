"""Train every gen2d model to its reported number and write the results tables.

    python -m sparse3d.gen2d.report [--groups digits2 digits17 wavenet video pix2pix]
                                    [--out runs/gen2d_report] [--threads 1]

Each group writes benchmarks/results/gen2d_<group>.json (atomically) and prints a
markdown table. Run by hand, never by the tests.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Dict, List

import torch

from sparse3d.utils.atomic_io import atomic_write_json

from .options import TaskOptions
from .tasks import run_task

GROUPS: Dict[str, List[tuple]] = {
    # (run name, model, TaskOptions overrides)
    "digits2": [(m, m, {"levels": 2, "max_minutes": 4.0, "patience": 6})
                for m in ("pixelcnn", "gated_pixelcnn", "cond_gated_pixelcnn", "row_lstm", "diagonal_bilstm")],
    "digits17": [(m, m, {"levels": 17, "max_minutes": 4.0, "patience": 6})
                 for m in ("pixelcnn", "gated_pixelcnn", "cond_gated_pixelcnn", "row_lstm", "diagonal_bilstm")],
    "wavenet": [("wavenet", "wavenet", {"max_minutes": 5.0, "patience": 4}),
                ("wavenet_uncond", "wavenet", {"max_minutes": 5.0, "patience": 4,
                                               "extra": {"conditional": False}})],
    # same wall-clock budget for both, early stopping effectively off so both use it
    "video": [("pix2pix_video", "pix2pix_video", {"max_minutes": 6.0, "patience": 1000}),
              ("pix2pix_video_lr1e-3", "pix2pix_video", {"max_minutes": 6.0, "patience": 1000, "lr": 1e-3}),
              ("vid2vid", "vid2vid", {"max_minutes": 6.0, "patience": 1000})],
    # vid2vid at the lower learning rate (the lr 1e-3 run peaks at epoch 3)
    "video_lr5e-4": [("vid2vid_lr5e-4", "vid2vid", {"max_minutes": 6.0, "patience": 1000, "lr": 5e-4})],
    "pix2pix": [("pix2pix", "pix2pix", {"max_minutes": 3.0, "patience": 1000}),
                ("pix2pixhd_options", "pix2pix", {"max_minutes": 3.0, "patience": 1000,
                                                  "extra": {"n_scales": 2, "lambda_fm": 10.0}})],
}


def table(group: str, rows: List[dict]) -> str:
    """Markdown table of one group's results."""
    if group.startswith("digits"):
        lines = ["| model | test NLL (nats/image) | bits/dim | baseline nats (bits/dim) | params | epochs (best) | train time |",
                 "|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['run']} | {r['test_nll_nats']:.2f} | {r['test_bits_per_dim']:.4f} | "
                         f"{r['baseline_nll_nats']:.2f} ({r['baseline_bits_per_dim']:.4f}) | {r['params']} | "
                         f"{r['epochs_run']} ({r['best_epoch']}) | {r['train_time_s']:.0f} s |")
    elif group == "wavenet":
        lines = ["| model | test bits/sample | marginal baseline | receptive field | epochs (best) | train time |",
                 "|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['run']} | {r['test_bits_per_sample']:.3f} | {r['baseline_bits_per_sample']:.3f} | "
                         f"{r['receptive_field']} | {r['epochs_run']} ({r['best_epoch']}) | {r['train_time_s']:.0f} s |")
    elif group.startswith("video"):
        lines = ["| model | per-frame L1 | flow-warping error | epochs (best) | train time |", "|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['run']} | {r['test_l1']:.4f} | {r['test_warp_error']:.5f} | "
                         f"{r['epochs_run']} ({r['best_epoch']}) | {r['train_time_s']:.0f} s |")
            if "test_l1_dropout" in r:
                lines.append(f"| {r['run']} (test-time dropout) | {r['test_l1_dropout']:.4f} | "
                             f"{r['test_warp_error_dropout']:.5f} | | |")
        if group == "video":
            lines.append(f"| ground-truth video | 0 | {rows[0]['gt_warp_error']:.1e} | | |")
    else:
        lines = ["| model | test L1 | epochs (best) | train time |", "|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['run']} | {r['test_l1']:.4f} | {r['epochs_run']} ({r['best_epoch']}) | "
                         f"{r['train_time_s']:.0f} s |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sparse3d.gen2d.report")
    p.add_argument("--groups", nargs="+", default=list(GROUPS), choices=list(GROUPS))
    p.add_argument("--out", default="runs/gen2d_report")
    p.add_argument("--results", default="benchmarks/results")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes-scale", type=float, default=1.0, help="multiply every time budget")
    p.add_argument("--tables-only", action="store_true",
                   help="print the markdown tables of the stored JSON results, train nothing")
    args = p.parse_args(argv)
    if args.tables_only:
        for g in args.groups:
            path = os.path.join(args.results, f"gen2d_{g}.json")
            if os.path.isfile(path):
                with open(path) as f:
                    meta = json.load(f)
                print(f"### {g}\n\n`{meta['command']}`\n\n{table(g, meta['results'])}\n")
        return 0
    torch.set_num_threads(args.threads)
    for g in args.groups:
        rows = []
        for run, model, over in GROUPS[g]:
            over = dict(over)
            over["max_minutes"] = over["max_minutes"] * args.minutes_scale
            opts = TaskOptions(out_dir=os.path.join(args.out, g, run), seed=args.seed, progress=False, **over)
            t = time.perf_counter()
            res = run_task(model, opts)
            res["run"], res["wall_s"] = run, time.perf_counter() - t
            print(json.dumps(res), flush=True)
            rows.append(res)
        meta = {"group": g, "command": "python -m sparse3d.gen2d.report " + " ".join(sys.argv[1:] if argv is None else argv),
                "threads": args.threads, "torch": torch.__version__, "machine": platform.machine(),
                "cpu_count": os.cpu_count(), "results": rows}
        atomic_write_json(os.path.join(args.results, f"gen2d_{g}.json"), meta, indent=2)
        print(table(g, rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
