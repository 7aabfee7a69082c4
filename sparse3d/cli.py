"""The `sparse3d` command.

Each area registers its own sub-commands; this file only lists where they live, so
adding a command never means editing another area's code.

    sparse3d --version
    sparse3d preprocess | generate | train <task> | predict | eval | view | demo

Every (sub)parser gets :class:`sparse3d.utils.argtypes.HelpFormatter` (defaults shown in ``--help``)
and a description (its one-line help where it has none);
tests/test_cli.py walks the whole tree: help text, defaults, and a bad value per command.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional, Tuple

from sparse3d.utils.argtypes import polish_help

# (module, function): function(subparsers) adds top-level commands, listed in `sparse3d --help` in this
# order (the order of the work: data, training, use, pictures, the whole demo); ("train", None) marks
# where the `train` group goes.
_TOP_LEVEL: List[Tuple[str, Optional[str]]] = [
    ("data_tools.cli", "register"),
    ("train", None),
    ("sparse3d.tasks.completion.cli", "register"),
    ("sparse3d.vis.cli", "register"),
    ("sparse3d.tasks.completion.demo", "register"),
]
# (module, function): function(train_subparsers) adds `sparse3d train <task>`.
_TRAIN_TASKS: List[Tuple[str, str]] = [
    ("sparse3d.tasks.completion.cli", "register_train"),
    ("sparse3d.gen2d.cli", "register_train"),
]


def _load(module: str, func: str):
    """The registration function ``func`` of ``module`` (an import error propagates: no area is skipped)."""
    return getattr(importlib.import_module(module), func)


def _version() -> str:
    from sparse3d import __version__
    return f"sparse3d {__version__}"


def _add_train(sub) -> None:
    train = sub.add_parser("train", help="train a model: sparse3d train <task> ...",
                           description="Train a model; `sparse3d train <task> --help` lists the options of a task.")
    tsub = train.add_subparsers(dest="task", required=True, metavar="<task>")
    for module, func in _TRAIN_TASKS:
        _load(module, func)(tsub)


def build_parser() -> argparse.ArgumentParser:
    """The whole ``sparse3d`` command tree, every (sub)parser with defaults shown in its ``--help``."""
    parser = argparse.ArgumentParser(
        prog="sparse3d",
        description="Sparse 3D deep learning on real scans: preprocess scans, train models, look at the "
                    "results. `sparse3d demo` runs the whole pipeline on synthetic scenes; "
                    "`sparse3d <command> --help` describes each command.")
    parser.add_argument("--version", action="version", version=_version(), help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for module, func in _TOP_LEVEL:
        if func is None:
            _add_train(sub)
        else:
            _load(module, func)(sub)
    return polish_help(parser)


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code = args.func(args)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
