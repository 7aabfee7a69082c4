"""The `sparse3d` command.

Each area registers its own sub-commands; this file only lists where they live, so
adding a command never means editing another area's code.

    sparse3d --version
    sparse3d preprocess | generate | export-gt | train <task> | predict <task> | eval <task> | view <task> | demo <task>

Every (sub)parser gets :class:`sparse3d.utils.argtypes.HelpFormatter` (defaults shown in ``--help``)
and a description (its one-line help where it has none);
tests/test_cli.py walks the whole tree: help text, defaults, and a bad value per command.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Dict, List, Optional, Tuple

from sparse3d.utils.argtypes import polish_help

# (module, function): function(subparsers) adds top-level commands, listed in `sparse3d --help` in this
# order (the order of the work: data, training, use, pictures, the whole demo); (group, None) marks where
# the task group `sparse3d <group> <task>` goes.
_TOP_LEVEL: List[Tuple[str, Optional[str]]] = [
    ("data_tools.cli", "register"),
    ("data_tools.benchmark_cli", "register"),
    ("train", None),
    ("sparse3d.tasks.completion.cli", "register"),
    ("predict", None),
    ("eval", None),
    ("view", None),
    ("demo", None),
]
# group -> (help, [(module, function)]): function(group_subparsers) adds `sparse3d <group> <task>`.
_TASK_GROUPS: Dict[str, Tuple[str, List[Tuple[str, str]]]] = {
    "train": ("train a model", [
        ("sparse3d.tasks.completion.cli", "register_train"),
        ("sparse3d.tasks.segmentation.cli", "register_train"),
        ("sparse3d.tasks.segmentation.window_cli", "register_train"),
        ("sparse3d.tasks.threedmv.cli", "register_train"),
        ("sparse3d.gen2d.cli", "register_train")]),
    "predict": ("run a trained model on whole scenes", [
        ("sparse3d.tasks.completion.cli", "register_predict"),
        ("sparse3d.tasks.segmentation.benchmark_cli", "register_predict"),
        ("sparse3d.tasks.threedmv.cli", "register_predict")]),
    "eval": ("score predictions against the ground truth", [
        ("sparse3d.tasks.completion.cli", "register_eval"),
        ("sparse3d.tasks.segmentation.benchmark_cli", "register_eval")]),
    "view": ("look at results in an Open3D window or a headless PNG", [
        ("sparse3d.vis.cli", "register_completion"),
        ("sparse3d.tasks.segmentation.view_cli", "register_view"),
        ("sparse3d.tasks.threedmv.view_cli", "register_view"),
        ("sparse3d.octree.cli", "register_view")]),
    "demo": ("a task end to end on built-in synthetic scenes: data, training, metrics, pictures", [
        ("sparse3d.tasks.completion.demo", "register"),
        ("sparse3d.tasks.segmentation.demo", "register")]),
}
# groups whose task word was optional before segmentation arrived: `sparse3d predict --checkpoint ...`
# still means `sparse3d predict completion --checkpoint ...` (with a notice on stderr)
_OLD_DEFAULT_TASK = {"predict": "completion", "eval": "completion", "view": "completion", "demo": "completion"}


def _load(module: str, func: str):
    """The registration function ``func`` of ``module`` (an import error propagates: no area is skipped)."""
    return getattr(importlib.import_module(module), func)


def _version() -> str:
    from sparse3d import __version__
    return f"sparse3d {__version__}"


def _add_group(sub, group: str) -> None:
    help_text, registrations = _TASK_GROUPS[group]
    parser = sub.add_parser(group, help=f"{help_text}: sparse3d {group} <task> ...",
                            description=f"{help_text[0].upper()}{help_text[1:]}; `sparse3d {group} <task> --help` "
                                        f"lists the options of a task.")
    tsub = parser.add_subparsers(dest="task", required=True, metavar="<task>")
    for module, func in registrations:
        _load(module, func)(tsub)


def _with_task_word(argv: List[str]) -> List[str]:
    """argv with the task word inserted after an old-style `predict` / `eval` / `demo` that has none."""
    if not argv or argv[0] not in _OLD_DEFAULT_TASK:
        return argv
    if len(argv) > 1 and (argv[1] in ("-h", "--help") or not argv[1].startswith("-")):
        return argv
    task = _OLD_DEFAULT_TASK[argv[0]]
    print(f"sparse3d {argv[0]}: no task given, running `sparse3d {argv[0]} {task}` (the task word is needed "
          f"since `{argv[0]}` serves several tasks)", file=sys.stderr)
    return [argv[0], task] + argv[1:]


def build_parser() -> argparse.ArgumentParser:
    """The whole ``sparse3d`` command tree, every (sub)parser with defaults shown in its ``--help``."""
    parser = argparse.ArgumentParser(
        prog="sparse3d",
        description="Sparse 3D deep learning on real scans: preprocess scans, train models, look at the "
                    "results. `sparse3d demo completion` (the main job) and `sparse3d demo segmentation` run a task end to end on synthetic scenes; "
                    "`sparse3d <command> --help` describes each command.")
    parser.add_argument("--version", action="version", version=_version(), help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for module, func in _TOP_LEVEL:
        if func is None:
            _add_group(sub, module)
        else:
            _load(module, func)(sub)
    return polish_help(parser)


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_with_task_word(list(sys.argv[1:] if argv is None else argv)))
    code = args.func(args)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
