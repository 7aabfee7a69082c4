"""``sparse3d train gen2d <model> [options]``: train one gen2d model on built-in data.

Writes to --out: last.pt (resume with --resume), best.pt, loss.png, samples.png,
results.json.
"""
from __future__ import annotations

import argparse
import json

from sparse3d.utils.argtypes import nonneg_float, polish_help, positive_float, positive_int

from .tasks import MODELS
from .tasks_digits import DIGIT_MODELS

# Options that only some models read (every model reads the others): model -> the ones it reads.
# An option set on the command line for a model that does not read it is an error, not ignored.
_GAN = ("n_scales", "feature_matching")
_APPLIES = {**{m: ("levels", "layers") for m in DIGIT_MODELS},
            "wavenet": ("n_train", "layers", "unconditional"),
            "pix2pix": ("n_train",) + _GAN,
            "pix2pix_video": ("n_train",) + _GAN,
            "vid2vid": ("n_train", "lambda_flow", "lambda_mask") + _GAN}
_SPECIFIC = {"levels": 2, "layers": None, "n_train": None, "unconditional": False, "n_scales": 1,
             "feature_matching": 0.0, "lambda_flow": None, "lambda_mask": None}  # option -> its "not set" value


def check_options(args: argparse.Namespace) -> None:
    """Raise ValueError naming every model-specific option that was set but that ``args.model`` does not read."""
    unused = [k for k, unset in _SPECIFIC.items()
              if getattr(args, k) != unset and k not in _APPLIES[args.model]]
    if unused:
        flags = ", ".join("--" + k.replace("_", "-") for k in unused)
        raise ValueError(f"{flags} do(es) not apply to model {args.model!r} (it reads "
                         f"{', '.join('--' + k.replace('_', '-') for k in _APPLIES[args.model])} of the "
                         "model-specific options)")


def register_train(train_subparsers) -> None:
    """Add the ``gen2d`` task to the ``sparse3d train`` sub-parsers."""
    p = train_subparsers.add_parser("gen2d", help="dense 2D/video generative models on built-in data",
                                    description="Train a gen2d model on built-in data (digits, tones, "
                                                "scikit-image crops, moving-shapes videos).")
    p.add_argument("model", choices=MODELS, help="the model to train (its built-in data comes with it)")
    p.add_argument("--out", default=None, help="output folder (default: runs/gen2d/<model>)")
    p.add_argument("--levels", type=int, default=2, choices=(2, 17), help="digit levels (digit models)")
    p.add_argument("--epochs", type=positive_int, default=None, help="maximum epochs (default: the model's own)")
    p.add_argument("--patience", type=positive_int, default=None,
                   help="early stopping patience, epochs (default: the model's own)")
    p.add_argument("--max-minutes", type=positive_float, default=None,
                   help="wall-clock budget, minutes (default: the model's own)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="batch size (default: the model's own)")
    p.add_argument("--lr", type=positive_float, default=None, help="learning rate (default: the model's own)")
    p.add_argument("--hidden", type=positive_int, default=None, help="channels of the model (default: the model's own)")
    p.add_argument("--layers", type=positive_int, default=None,
                   help="layers (WaveNet: dilation stacks) (default: the model's own)")
    p.add_argument("--n-train", type=positive_int, default=None,
                   help="training set size (synthetic data) (default: the model's own)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data split, initial weights and batches")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    p.add_argument("--no-samples", action="store_true", help="skip sampling")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--n-scales", type=positive_int, default=1, help="pix2pixHD multi-scale discriminators")
    p.add_argument("--feature-matching", type=nonneg_float, default=0.0, help="pix2pixHD feature matching weight")
    p.add_argument("--lambda-flow", type=nonneg_float, default=None,
                   help="vid2vid flow + warp loss weight (default: the model's own, 30)")
    p.add_argument("--lambda-mask", type=nonneg_float, default=None,
                   help="vid2vid occlusion-mask loss weight; 0 = unsupervised mask as in the paper "
                        "(default: the model's own, 3)")
    p.add_argument("--unconditional", action="store_true", help="WaveNet without global conditioning")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from .options import TaskOptions
    from .tasks import run_task

    check_options(args)
    if args.n_scales < 1:
        raise ValueError(f"--n-scales: expected >= 1, got {args.n_scales}")
    extra = {"n_scales": args.n_scales, "lambda_fm": args.feature_matching}
    for k in ("lambda_flow", "lambda_mask"):
        if getattr(args, k) is not None:
            extra[k] = getattr(args, k)
    if args.unconditional:
        extra["conditional"] = False
    opts = TaskOptions(out_dir=args.out or f"runs/gen2d/{args.model}", levels=args.levels, epochs=args.epochs,
                       patience=args.patience, max_minutes=args.max_minutes, batch_size=args.batch_size,
                       lr=args.lr, hidden=args.hidden, layers=args.layers, n_train=args.n_train, seed=args.seed,
                       resume=args.resume, progress=not args.quiet, samples=not args.no_samples, extra=extra)
    res = run_task(args.model, opts)
    print(json.dumps(res, indent=2))
    return 0


def main(argv=None) -> int:
    """Stand-alone entry, same options: ``python -m sparse3d.gen2d <model> [options]``."""
    parser = argparse.ArgumentParser(prog="python -m sparse3d.gen2d")
    sub = parser.add_subparsers(dest="task", required=True)
    register_train(sub)
    args = polish_help(parser).parse_args(["gen2d"] + list(argv if argv is not None else __import__("sys").argv[1:]))
    return int(args.func(args) or 0)
