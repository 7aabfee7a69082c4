"""The loss plot of every trainer: logged values against the step (or epoch), one panel per group.

Drawn with matplotlib's object API (Figure + FigureCanvasAgg): the global backend that pyplot and
notebooks use is left alone. The PNG is written atomically.
"""
from __future__ import annotations

import os
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from sparse3d.utils.atomic_io import atomic_savefig
from sparse3d.train.jsonl import read_jsonl

# keys of a metrics.jsonl row that are not losses (the trainer's bookkeeping)
NOT_PLOTTED = ("step", "lr", "time_s")


def save_loss_plot(path: str, rows: Sequence[Mapping[str, float]], x: str = "step",
                   panels: Optional[Sequence[Tuple[str, Sequence[str]]]] = None, title: str = "",
                   log_y: Union[bool, Sequence[bool]] = False, exclude: Sequence[str] = (), dpi: int = 90,
                   panel_rows: Optional[Sequence[Sequence[Mapping[str, float]]]] = None) -> None:
    """Plot ``rows`` (dicts with the number ``x`` and logged values) to the PNG ``path``.

    panels: ``[(panel title, [keys])]``; default one untitled panel with every key of the last row but
    ``x`` and ``exclude``. A key a row lacks is a gap. Figure 7 x 4 inches for one panel, 4.5 x 3.2 per
    panel otherwise. Nothing is written when ``rows`` is empty. log_y: one flag for every panel or one per
    panel; panel_rows: each panel's own rows (e.g. validation rows at other steps; default ``rows``).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    if not rows:
        return
    if panels is None:
        panels = [("", [k for k in rows[-1] if k != x and k not in exclude])]
    if not panels:
        raise ValueError("panels: expected at least one (title, keys) pair, got none")
    logs = [bool(log_y)] * len(panels) if isinstance(log_y, bool) else [bool(v) for v in log_y]
    per_panel = [rows] * len(panels) if panel_rows is None else list(panel_rows)
    if len(logs) != len(panels) or len(per_panel) != len(panels):
        raise ValueError(f"log_y and panel_rows: expected one entry per panel ({len(panels)}), got "
                         f"{len(logs)} and {len(per_panel)}")
    fig = Figure(figsize=(7, 4) if len(panels) == 1 else (4.5 * len(panels), 3.2))
    FigureCanvasAgg(fig)
    for j, (name, keys) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), j + 1)
        prow = per_panel[j]
        xs = [r[x] for r in prow]
        for k in keys:
            ax.plot(xs, [r.get(k, np.nan) for r in prow], "o-" if len(prow) < 30 and (len(keys) == 1 or prow is not rows)
                    else "-", label=k, ms=3)
        ax.set_xlabel(x)
        if logs[j]:
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


def plot_metrics(jsonl: str, png: str, exclude: Sequence[str] = (), val_jsonl: Optional[str] = None) -> None:
    """Plot every logged loss term of ``metrics.jsonl`` against the step, log scale (the step loop's plot).
    exclude: further keys that are not losses (e.g. a task's voxel count). val_jsonl: the validation rows
    (``val.jsonl`` of the step loop); where it has rows, a second panel shows them (linear scale)."""
    rows = read_jsonl(jsonl)
    val = read_jsonl(val_jsonl) if val_jsonl and os.path.isfile(val_jsonl) else []
    if not val:
        save_loss_plot(png, rows, x="step", log_y=True, exclude=tuple(NOT_PLOTTED) + tuple(exclude))
        return
    if not rows:
        return
    skip = set(NOT_PLOTTED) | set(exclude)
    train_keys = [k for k in rows[-1] if k != "step" and k not in skip]
    val_keys = [k for k in val[-1] if k != "step" and k not in NOT_PLOTTED]
    save_loss_plot(png, rows, x="step", panels=[("training losses", train_keys), ("validation", val_keys)],
                   log_y=[True, False], panel_rows=[rows, val])


def plot_history(history: Dict, path: str, title: str = "", val_label: str = "validation") -> None:
    """Plot the epoch loop's history (:func:`sparse3d.train.epochs.fit`): training losses and the validation
    metric per epoch, side by side."""
    train = history["train"]
    rows = [{"epoch": e, **t, val_label: v} for e, (t, v) in enumerate(zip(train, history["val"]))]
    keys = list(train[0]) if train else []
    save_loss_plot(path, rows, x="epoch", panels=[("training losses", keys), (val_label, [val_label])],
                   title=title, dpi=100)
