"""The loss plot of every trainer: logged values against the step (or epoch), one panel per group.

Drawn with matplotlib's object API (Figure + FigureCanvasAgg): the global backend that pyplot and
notebooks use is left alone. The PNG is written atomically.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from sparse3d.utils.atomic_io import atomic_savefig
from sparse3d.train.jsonl import read_jsonl

# keys of a metrics.jsonl row that are not losses (the trainer's bookkeeping)
NOT_PLOTTED = ("step", "lr", "time_s")


def save_loss_plot(path: str, rows: Sequence[Mapping[str, float]], x: str = "step",
                   panels: Optional[Sequence[Tuple[str, Sequence[str]]]] = None, title: str = "",
                   log_y: bool = False, exclude: Sequence[str] = (), dpi: int = 90) -> None:
    """Plot ``rows`` (dicts with the number ``x`` and logged values) to the PNG ``path``.

    panels: ``[(panel title, [keys])]``; default one untitled panel with every key of the last row but
    ``x`` and ``exclude``. A key a row lacks is a gap. Figure 7 x 4 inches for one panel, 4.5 x 3.2 per
    panel otherwise. Nothing is written when ``rows`` is empty.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    if not rows:
        return
    if panels is None:
        panels = [("", [k for k in rows[-1] if k != x and k not in exclude])]
    if not panels:
        raise ValueError("panels: expected at least one (title, keys) pair, got none")
    fig = Figure(figsize=(7, 4) if len(panels) == 1 else (4.5 * len(panels), 3.2))
    FigureCanvasAgg(fig)
    xs = [r[x] for r in rows]
    for j, (name, keys) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), j + 1)
        for k in keys:
            ax.plot(xs, [r.get(k, np.nan) for r in rows], "o-" if len(rows) < 30 and len(keys) == 1 else "-",
                    label=k, ms=3)
        ax.set_xlabel(x)
        if log_y:
            ax.set_yscale("log")
        if name:
            ax.set_title(name, fontsize=9)
        if len(keys) > 1 or not name:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=dpi)


def plot_metrics(jsonl: str, png: str, exclude: Sequence[str] = ()) -> None:
    """Plot every logged loss term of ``metrics.jsonl`` against the step, log scale (the step loop's plot).
    exclude: further keys that are not losses (e.g. a task's voxel count)."""
    save_loss_plot(png, read_jsonl(jsonl), x="step", log_y=True, exclude=tuple(NOT_PLOTTED) + tuple(exclude))


def plot_history(history: Dict, path: str, title: str = "", val_label: str = "validation") -> None:
    """Plot the epoch loop's history (:func:`sparse3d.train.epochs.fit`): training losses and the validation
    metric per epoch, side by side."""
    train = history["train"]
    rows = [{"epoch": e, **t, val_label: v} for e, (t, v) in enumerate(zip(train, history["val"]))]
    keys = list(train[0]) if train else []
    save_loss_plot(path, rows, x="epoch", panels=[("training losses", keys), (val_label, [val_label])],
                   title=title, dpi=100)
