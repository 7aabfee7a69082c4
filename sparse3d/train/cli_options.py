"""Command-line options that override a task's training config (``sparse3d train <task> --steps 100 ...``).

Every option's parser default is None (= "not given": the YAML file's or the dataclass's value stays), and
its help ends with the dataclass default, read from the dataclass itself so the two cannot drift apart.
The options every step-trained task shares are in :data:`LOOP_OPTIONS`; a task adds its own.

    add_overrides(parser, SegmentationTrainConfig, LOOP_OPTIONS + SEGMENTATION_OPTIONS)
    overrides = given_overrides(args, LOOP_OPTIONS + SEGMENTATION_OPTIONS)
"""
from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from sparse3d.utils.argtypes import device, nonneg_int, positive_int

# (config field, argparse type, choices or None, help without the default)
Option = Tuple[str, Callable[[str], Any], Optional[Sequence[str]], str]

AMP_MODES = ("off", "bf16", "fp16")

LOOP_OPTIONS: List[Option] = [
    ("out", str, None, "output folder: last.pt, metrics.jsonl, loss.png, config.json"),
    ("init", str, None, "fine-tune: start from this checkpoint's weights with a fresh optimizer; ignored when "
                        "resuming"),
    ("seed", nonneg_int, None, "seed of the initial weights, batches and augmentation"),
    ("steps", positive_int, None, "optimizer steps in all, counting resumed ones"),
    ("device", device, None, "cpu, cuda or cuda:N; under torchrun cuda uses LOCAL_RANK"),
    ("checkpoint_every", positive_int, None, "steps between checkpoints and loss.png updates"),
    ("threads", nonneg_int, None, "torch threads for this run; 0 = torch's default"),
    ("amp", str, AMP_MODES, "mixed precision: bf16 = autocast, fp16 = autocast + gradient scaling (for GPUs)"),
]


def field_defaults(cls: type) -> Dict[str, Any]:
    """{field: default value} of a dataclass (default_factory called)."""
    out: Dict[str, Any] = {}
    for f in fields(cls):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    return out


def _shown(value: Any) -> str:
    if value in ("", None):
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def add_overrides(parser: argparse.ArgumentParser, cls: type, options: Sequence[Option], dest_prefix: str = "",
                  metavar_upper: bool = False) -> None:
    """Add ``--<field>`` for each option (dest ``dest_prefix + field``); the help ends with the default of
    that field of the dataclass ``cls``. A field ``cls`` lacks is a KeyError (a typo in a task's table)."""
    defaults = field_defaults(cls)
    for name, typ, choices, help_text in options:
        if name not in defaults:
            raise KeyError(f"{cls.__name__} has no field {name!r} (an option of its command line)")
        parser.add_argument("--" + name.replace("_", "-"), dest=dest_prefix + name, type=typ, choices=choices,
                            default=None, metavar=name.upper() if metavar_upper else None,
                            help=f"{help_text} (default: {_shown(defaults[name])})")


def given_overrides(args: argparse.Namespace, options: Sequence[Option], dest_prefix: str = "") -> Dict[str, Any]:
    """{field: value} of the options given on the command line (the ones left at None are not given)."""
    return {name: getattr(args, dest_prefix + name) for name, *_ in options
            if getattr(args, dest_prefix + name) is not None}


def run_train_command(args: argparse.Namespace, load_config: Callable[[Optional[str], Dict[str, Any]], Any],
                      train: Callable[..., Dict[str, Any]], overrides: Dict[str, Any]) -> int:
    """The body of every `sparse3d train <task>`: the config from ``args.config`` + ``overrides`` (a bad one is
    a one-line error, exit 2), a check that it names training data, ``train(cfg, resume=not args.no_resume)``,
    and (process 0) a summary line: steps, seconds, last loss, the held-out mIoU when the task reports one
    (``val_miou``), the checkpoint."""
    import os
    import sys
    import time
    try:
        cfg = load_config(args.config, overrides)
    except (TypeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not cfg.data:
        print("error: no training data: pass --data DIR or set data: in the config", file=sys.stderr)
        return 2
    t0 = time.time()
    logs = train(cfg, resume=not args.no_resume)
    if int(os.environ.get("RANK", "0")) == 0:
        val = (f"; held-out mIoU {logs['val_miou']:.4f} ({os.path.join(cfg.out, 'metrics.json')})"
               if "val_miou" in logs else "")
        print(f"trained {cfg.steps} steps in {time.time() - t0:.1f}s; last loss {logs.get('loss', float('nan')):.4f}"
              f"{val}; checkpoint {os.path.join(cfg.out, 'last.pt')}")
    return 0
