"""The `sparse3d` command.

Each area registers its own sub-commands; this file only lists where they live, so
adding a command never means editing another area's code.

    sparse3d preprocess | train <task> | predict | eval | view | demo | bench
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

# (module, function): function(subparsers) adds top-level commands.
_TOP_LEVEL = [
    ("sparse3d.cli_demo", "register"),
    ("data_tools.cli", "register"),
    ("sparse3d.train.cli", "register"),
    ("sparse3d.vis.cli", "register"),
]
# (module, function): function(train_subparsers) adds `sparse3d train <task>`.
_TRAIN_TASKS = [
    ("sparse3d.train.cli", "register_train"),
    ("sparse3d.gen2d.cli", "register_train"),
]


def _load(module: str, func: str):
    """The registration function ``func`` of ``module`` (an import error propagates: no area is skipped)."""
    return getattr(importlib.import_module(module), func)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparse3d", description="sparse 3D deep learning toolkit")
    sub = parser.add_subparsers(dest="command", required=True)
    for module, func in _TOP_LEVEL:
        _load(module, func)(sub)
    train = sub.add_parser("train", help="train a model: sparse3d train <task> ...")
    tsub = train.add_subparsers(dest="task", required=True)
    for module, func in _TRAIN_TASKS:
        _load(module, func)(tsub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code = args.func(args)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
