"""Command line: `sparse3d export-gt SCANNET_ROOT OUT` (the ScanNet benchmark's ground-truth label files)."""
from __future__ import annotations

import argparse
import sys

from sparse3d.utils.argtypes import report_failures

from .scannet.benchmark_export import LABEL_TSV, SOURCES


def _cmd_export_gt(args: argparse.Namespace) -> int:
    from .scannet.benchmark_export import export_gt
    try:
        s = export_gt(args.root, args.out, label_tsv=args.label_tsv, source=args.source, scenes=args.scenes,
                      overwrite=args.overwrite, progress=not args.quiet)
    except (OSError, ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"export-gt: {len(s['done'])} written, {len(s['skipped'])} skipped (already there), "
          f"{len(s['failed'])} failed; label files in {args.out}")
    return report_failures(s["failed"])


def register(subparsers: "argparse._SubParsersAction") -> None:
    """Hook for sparse3d/cli.py: adds `export-gt`."""
    p = subparsers.add_parser(
        "export-gt", help="export ScanNet ground truth as benchmark label files (<scene_id>.txt, nyu40 per vertex)",
        description="Write <OUT>/<scene_id>.txt for every scene folder under ROOT: one nyu40 id per line, one line "
                    "per vertex of <scene_id>_vh_clean_2.ply (the ScanNet semantic-label benchmark format, scored by "
                    "`sparse3d eval segmentation`). Labels come from <scene_id>_vh_clean_2.labels.ply or from the "
                    "segs + aggregation json through the label tsv. Resumable; exits 1 if any scene failed.")
    p.add_argument("root", help="ScanNet root (scene folders or scans/) or one scene folder")
    p.add_argument("out", help="output folder for the <scene_id>.txt files")
    p.add_argument("--source", choices=SOURCES, default="auto",
                   help="labels.ply, the segs + aggregation json, or auto (labels.ply when present)")
    p.add_argument("--label-tsv", default=None,
                   help=f"{LABEL_TSV} for --source aggregation (default: <root>/{LABEL_TSV} if present)")
    p.add_argument("--scenes", nargs="+", default=None, help="only these scene ids (default: all)")
    p.add_argument("--overwrite", action="store_true", help="rewrite label files that exist already")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_export_gt)
