"""`sparse3d eval completion` on a dataset: every sample scored under a progress bar; a sample that cannot be
scored is reported by name and skipped (the summary counts the skips by reason); the finest level's decision
threshold tuned on a split.

    result = evaluate_dataset(net, "samples", split=None, threshold=0.5)     # EvalResult
    print(result.summary());  write_json("metrics.json", result.to_json())
    tuned = tune_threshold(net, "crops", split="val", thresholds=(0.3, 0.4, 0.5, 0.6, 0.7))

A sample is skipped when its target has no surface voxels (nothing to score) or when marching cubes finds no
surface in one of its meshes (:class:`~sparse3d.tasks.completion.predict.NoSurfaceError`; e.g. a crop whose
only sign changes touch unknown voxels). A prediction without surface voxels is scored (IoU 0, recall 0,
chamfer n/a), not skipped.
"""
from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from sparse3d.tasks.completion.dataset import CompletionDataset, Sample, surface
from sparse3d.tasks.completion.model import CompletionNet
from sparse3d.tasks.completion.predict import (NoSurfaceError, decide, run_network, score_prediction,
                                               threshold_logit)
from sparse3d.utils.test_time_views import tta_views

Report = Dict[str, Dict[str, float]]  # {"input": metrics, "prediction": metrics}
NO_TARGET_SURFACE = "the target has no surface voxels (nothing to score)"
# candidate thresholds of `sparse3d eval completion --tune-threshold` (occupancy probabilities)
DEFAULT_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


@dataclass
class EvalResult:
    """rows: {sample name: Report} of the scored samples; skipped: {sample name: reason}; settings: how
    they were scored (threshold, keep_observed, ...), recorded in the JSON."""

    rows: Dict[str, Report] = field(default_factory=dict)
    skipped: Dict[str, str] = field(default_factory=dict)
    settings: Dict[str, Any] = field(default_factory=dict)

    def means(self) -> Report:
        """{"input" | "prediction": {metric: mean over the scored samples where it is finite}}."""
        return mean_reports(self.rows.values())

    def summary(self) -> str:
        """One line: how many samples were scored and how many were skipped, by reason."""
        n = len(self.rows) + len(self.skipped)
        text = f"scored {len(self.rows)} of {n} samples"
        if self.skipped:
            why = Counter(self.skipped.values())
            text += f"; skipped {len(self.skipped)}: " + "; ".join(f"{c} x {r}" for r, c in why.most_common())
        return text

    def to_json(self) -> Dict[str, Any]:
        return {"settings": self.settings, "samples": self.rows, "mean": self.means(), "skipped": self.skipped,
                "summary": self.summary()}


def mean_reports(reports: Iterable[Report]) -> Report:
    """Mean of every numeric metric over ``reports`` (non-finite values such as a 0 / 0 precision or the
    inf chamfer of an empty mesh are left out of a mean; a metric never finite is absent)."""
    sums: Dict[str, Dict[str, List[float]]] = {}
    for r in reports:
        for who, m in r.items():
            for k, v in m.items():
                if isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v):
                    sums.setdefault(who, {}).setdefault(k, []).append(float(v))
    return {who: {k: float(np.mean(v)) for k, v in ms.items()} for who, ms in sums.items()}


def why_unscorable(sample: Sample, occ_thresh: float = 1.0) -> Optional[str]:
    """The reason ``sample`` cannot be scored before running the network (None when it can)."""
    if not surface(sample.target_tsdf, sample.target_known, occ_thresh).any():
        return NO_TARGET_SURFACE
    return None


def sample_name(path: str, root: str) -> str:
    """A crop's name in tables and JSON: its path under the dataset folder without ``.npz``."""
    return os.path.splitext(os.path.relpath(path, root))[0]


def evaluate_dataset(net: CompletionNet, data: str, split: Optional[str] = None, device: str | torch.device = "cpu",
                     occ_thresh: float = 1.0, frontier: bool = True, keep_observed: bool = True,
                     threshold: float = 0.5, with_chamfer: bool = True, progress: bool = True,
                     tta: int = 1) -> EvalResult:
    """Score every crop of the ``split`` of the sparse3d.crops dataset ``data`` (None: every split) against
    its target (:func:`~sparse3d.tasks.completion.predict.score_prediction`), the raw input beside the
    prediction (``tta`` test-time views, :func:`~sparse3d.tasks.completion.predict.run_network`); skipped samples
    are printed (above the progress bar) with their reason."""
    threshold_logit(threshold)  # checks the values before any work
    tta_views(tta)
    ds = CompletionDataset(data, split=split)
    result = EvalResult(settings={"threshold": float(threshold), "keep_observed": bool(keep_observed),
                                  "occ_thresh": float(occ_thresh), "split": split, "chamfer": bool(with_chamfer),
                                  "tta": int(tta)})
    bar = tqdm(ds.paths, desc="eval completion", unit="sample", disable=not progress, dynamic_ncols=True)
    for i, path in enumerate(bar):
        name = sample_name(path, data)
        sample = ds[i]
        reason = why_unscorable(sample, occ_thresh)
        if reason is None:
            try:
                pred = decide(sample, run_network(net, sample, device, frontier, tta), threshold, keep_observed,
                              occ_thresh)
                result.rows[name] = score_prediction(sample, pred, occ_thresh, with_chamfer)[0]
            except NoSurfaceError as e:
                reason = str(e)
        if reason is not None:
            result.skipped[name] = reason
            tqdm.write(f"skipped {name}: {reason}")
        bar.set_postfix_str(f"skipped={len(result.skipped)}")
    return result


def tune_threshold(net: CompletionNet, data: str, split: Optional[str] = "val",
                   thresholds: Sequence[float] = DEFAULT_THRESHOLDS, device: str | torch.device = "cpu",
                   occ_thresh: float = 1.0, frontier: bool = True, keep_observed: bool = True,
                   progress: bool = True, tta: int = 1) -> Dict[str, Any]:
    """Pick the finest level's occupancy threshold on a split: the network runs once per sample and each
    threshold re-decides its output; the choice is the threshold with the highest mean IoU among those whose
    mean chamfer distance is <= the raw input's (the prediction must not add surface that is not there).
    When no threshold meets that bound, the one with the lowest mean chamfer distance is chosen and
    ``"met_bound"`` is false. ``tta``: test-time views of each run (the threshold applies to their mean
    probability).

    Returns {"chosen": t, "met_bound": bool, "rule": text, "input": input means, "by_threshold":
    {t: prediction means}, "skipped": {name: reason}, "samples": n}."""
    ts = sorted({float(t) for t in thresholds})
    if not ts:
        raise ValueError("thresholds: expected at least one occupancy probability, got none")
    for t in ts:
        threshold_logit(t)
    tta_views(tta)
    ds = CompletionDataset(data, split=split)
    per_t: Dict[float, List[Report]] = {t: [] for t in ts}
    skipped: Dict[str, str] = {}
    bar = tqdm(ds.paths, desc="tune threshold", unit="sample", disable=not progress, dynamic_ncols=True)
    for i, path in enumerate(bar):
        name = sample_name(path, data)
        sample = ds[i]
        reason = why_unscorable(sample, occ_thresh)
        if reason is None:
            raw = run_network(net, sample, device, frontier, tta)
            try:
                reports = [score_prediction(sample, decide(sample, raw, t, keep_observed, occ_thresh), occ_thresh)[0]
                           for t in ts]
            except NoSurfaceError as e:
                reason = str(e)
            else:
                for t, r in zip(ts, reports):
                    per_t[t].append(r)
        if reason is not None:
            skipped[name] = reason
            tqdm.write(f"skipped {name}: {reason}")
    if not per_t[ts[0]]:
        raise ValueError(f"{data}: no sample of split {split!r} could be scored to tune the threshold "
                         f"(skipped: {skipped})")
    means = {t: mean_reports(per_t[t]) for t in ts}
    base = means[ts[0]]["input"]
    bound = base.get("chamfer_m", math.inf)
    ok = [t for t in ts if means[t]["prediction"].get("chamfer_m", math.inf) <= bound]
    if ok:
        chosen = max(ok, key=lambda t: (means[t]["prediction"]["iou"], -abs(t - 0.5)))
    else:
        chosen = min(ts, key=lambda t: means[t]["prediction"].get("chamfer_m", math.inf))
    return {"chosen": chosen, "met_bound": bool(ok),
            "rule": "highest mean IoU with mean chamfer distance <= the input's; else the lowest chamfer distance",
            "input": base, "by_threshold": {str(t): means[t]["prediction"] for t in ts}, "skipped": skipped,
            "samples": len(per_t[ts[0]]), "split": split, "keep_observed": bool(keep_observed),
            "tta": int(tta)}


def format_tuning(tuned: Dict[str, Any]) -> str:
    """A text table of :func:`tune_threshold`'s result: mean IoU, precision, recall and chamfer per threshold."""
    inp = tuned["input"]
    lines = [f"{'threshold':>9} {'IoU':>7} {'P':>7} {'R':>7} {'CD (m)':>8}",
             f"{'input':>9} {inp['iou']:7.3f} {inp.get('precision', math.nan):7.3f} {inp.get('recall', math.nan):7.3f} "
             f"{inp.get('chamfer_m', math.nan):8.4f}"]
    for t, m in tuned["by_threshold"].items():
        mark = "  <- chosen" if float(t) == tuned["chosen"] else ""
        lines.append(f"{float(t):>9.2f} {m['iou']:7.3f} {m.get('precision', math.nan):7.3f} "
                     f"{m.get('recall', math.nan):7.3f} {m.get('chamfer_m', math.nan):8.4f}{mark}")
    lines.append(f"chosen threshold {tuned['chosen']:.2f} on {tuned['samples']} samples of split {tuned['split']!r} "
                 f"({'meets' if tuned['met_bound'] else 'NO threshold meets'} chamfer <= input's; rule: {tuned['rule']})")
    return "\n".join(lines)
