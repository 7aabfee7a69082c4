"""argparse helpers shared by every ``sparse3d`` sub-command.

``type=`` converters raise :class:`argparse.ArgumentTypeError` naming what was expected and what came,
so a bad value ends in a one-line usage error (exit code 2), never a traceback::

    p.add_argument("--steps", type=positive_int, default=2000, help="optimizer steps")
    # sparse3d train completion --steps 0  ->  error: argument --steps: expected an integer >= 1, got 0

:class:`HelpFormatter` shows every option's default; ``sparse3d.cli`` gives it to every (sub)parser
with :func:`polish_help`.
"""
from __future__ import annotations

import argparse
from typing import Callable, Optional, Tuple, Type, TypeVar

_N = TypeVar("_N", int, float)

__all__ = ["HelpFormatter", "default_worth_showing", "device", "fraction", "int_triple", "nonneg_float", "nonneg_int",
           "polish_help", "positive_float", "positive_int", "probability", "unit_fraction"]


def _number(s: str, kind: Callable[[str], _N], expected: str) -> _N:
    try:
        return kind(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {s!r}") from None


def positive_int(s: str) -> int:
    """An integer >= 1."""
    v = _number(s, int, "an integer >= 1")
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {v}")
    return v


def nonneg_int(s: str) -> int:
    """An integer >= 0."""
    v = _number(s, int, "an integer >= 0")
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v}")
    return v


def positive_float(s: str) -> float:
    """A finite number > 0."""
    v = _number(s, float, "a number > 0")
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {v}")
    return v


def nonneg_float(s: str) -> float:
    """A finite number >= 0."""
    v = _number(s, float, "a number >= 0")
    if not 0 <= v < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {v}")
    return v


def fraction(s: str) -> float:
    """A number in [0, 1)."""
    v = _number(s, float, "a number in [0, 1)")
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {v}")
    return v


def unit_fraction(s: str) -> float:
    """A number in (0, 1] (e.g. a fraction of frames: some, up to all)."""
    v = _number(s, float, "a number in (0, 1]")
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {v}")
    return v


def device(s: str) -> str:
    """A torch device string ("cpu", "cuda", "cuda:1"); checked by torch's parser, no device is queried."""
    import torch
    try:
        torch.device(s)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a torch device such as cpu, cuda or cuda:1, got {s!r}") from None
    return s


def probability(s: str) -> float:
    """A number in [0, 1]."""
    v = _number(s, float, "a number in [0, 1]")
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {v}")
    return v


def int_triple(s: str) -> Tuple[int, int, int]:
    """Three integers >= 1 written ``X,Y,Z`` or ``XxYxZ`` (e.g. a crop size in voxels)."""
    parts = s.replace("x", ",").split(",")
    try:
        v = tuple(int(x) for x in parts)
    except ValueError:
        v = ()
    if len(v) != 3 or min(v) < 1:
        raise argparse.ArgumentTypeError(f"expected three integers >= 1 like 32,32,64, got {s!r}")
    return v[0], v[1], v[2]


def default_worth_showing(default: object) -> bool:
    """False for the defaults that say nothing in ``--help``: None, False, an empty list/tuple, SUPPRESS."""
    if default is None or default is False or default is argparse.SUPPRESS:
        return False
    return not (isinstance(default, (list, tuple)) and len(default) == 0)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` to an option's help unless the help already states its default or the
    default says nothing (None, False); a description or epilog with line breaks keeps them (examples),
    one without is wrapped to the terminal."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> Optional[str]:
        help = action.help or ""
        if not default_worth_showing(action.default):
            return help
        if "default" in help.lower():
            return help
        return super()._get_help_string(action)


def polish_help(parser: argparse.ArgumentParser,
                formatter: Type[argparse.HelpFormatter] = HelpFormatter) -> argparse.ArgumentParser:
    """Give ``parser`` and every sub-parser below it ``formatter``, and a sub-parser without a description
    the one-line help it is listed with (so ``sparse3d <command> --help`` says what the command does);
    returns ``parser``."""
    parser.formatter_class = formatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            listed = {a.dest: a.help for a in action._get_subactions()}
            for name, sub in action.choices.items():
                line = listed.get(name)
                if not sub.description and line:
                    sub.description = line[:1].upper() + line[1:] + "."
                polish_help(sub, formatter)
    return parser


def report_failures(failed: "dict[str, str]") -> int:
    """Print each failed item and its message to stderr ("failed scenes:"); 1 when any failed, else 0:
    the exit code of a command that goes on past failing scenes."""
    import sys
    if not failed:
        return 0
    print("failed scenes:", file=sys.stderr)
    for sid, msg in sorted(failed.items()):
        print(f"  {sid}: {msg}", file=sys.stderr)
    return 1
