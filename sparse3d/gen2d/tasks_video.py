"""pix2pix and vid2vid training tasks.

* ``pix2pix``: edges -> photo crops of scikit-image's images.
* ``pix2pix_video``: the per-frame baseline on the moving-shapes videos (label map -> frame).
* ``vid2vid``: the sequential generator on the same videos.

Video metrics (test videos, images scaled to [0, 1]): per-frame L1 (mean absolute
error) and the flow-warping error: masked MSE between each output frame and the
previous output frame warped with the ground-truth flow, occluded pixels excluded.
"""
from __future__ import annotations

import os
from typing import Callable, Dict

import torch
import torch.nn.functional as F

from sparse3d.train.epochs import FitConfig, batches, fit, mean_dicts
from sparse3d.train.plots import plot_history

from .data import N_VIDEO_CLASSES, image_pairs, moving_shapes
from .flow import flow_warping_error
from .options import TaskOptions
from .pix2pix import UNetGenerator, make_discriminator, pix2pix_step
from .plots import save_grid
from .vid2vid import Vid2Vid, one_hot_labels

_LABEL_COLORS = torch.tensor([[0.2, 0.6, 0.2], [0.7, 0.3, 0.2], [1.0, 0.85, 0.2], [0.2, 0.45, 1.0]])


def _adam(params, lr):
    return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))


def _fit_cfg(opts: TaskOptions, patience: int = 10) -> FitConfig:
    return FitConfig(opts.out_dir, opts.get("epochs", 1000), opts.get("patience", patience),
                     opts.get("max_minutes", 5.0), opts.seed, opts.resume, opts.progress)


def _gan_parts(opts: TaskOptions):
    n_scales = int(opts.extra.get("n_scales", 1))
    d_layers = int(opts.extra.get("d_layers", 3 if n_scales == 1 else 2))
    lambda_fm = float(opts.extra.get("lambda_fm", 0.0))
    return n_scales, d_layers, lambda_fm


def run_pix2pix(opts: TaskOptions) -> dict:
    """pix2pix on scikit-image crops (edges -> RGB, 32x32). Returns test L1 and times."""
    torch.manual_seed(opts.seed)
    n_train = opts.get("n_train", 512)
    tr, va, te = image_pairs(n_train, seed=opts.seed), image_pairs(64, seed=opts.seed + 1), \
        image_pairs(128, seed=opts.seed + 2)
    n_scales, d_layers, lambda_fm = _gan_parts(opts)
    ngf = opts.get("hidden", 32)
    G = UNetGenerator(1, 3, ngf, 5)
    D = make_discriminator(4, ngf, d_layers, n_scales)
    lr = opts.get("lr", 2e-4)
    og, od = _adam(G.parameters(), lr), _adam(D.parameters(), lr)
    bs = opts.get("batch_size", 16)

    def train_epoch(epoch, tick):
        out = []
        for idx in batches(n_train, bs, opts.seed * 1000 + epoch):
            out.append(pix2pix_step(G, D, og, od, tr["src"][idx], tr["tgt"][idx], 100.0, lambda_fm))
            tick()
        return mean_dicts(out)

    def l1(d):
        return float(F.l1_loss(G(d["src"]), d["tgt"])) / 2  # in [0, 1] units

    hist = fit({"G": G, "D": D}, {"G": og, "D": od}, train_epoch, lambda: l1(va), _fit_cfg(opts))
    with torch.no_grad():
        test_l1 = l1(te)
        fake = G(te["src"][:8])
    plot_history(hist, os.path.join(opts.out_dir, "loss.png"), "pix2pix", "val L1 ([0,1] units)")
    if opts.samples:
        rows = torch.cat([te["src"][:8].expand(-1, 3, -1, -1), fake, te["tgt"][:8]])
        save_grid((rows + 1) / 2, 8, os.path.join(opts.out_dir, "samples.png"),
                  "pix2pix: edges / generated / real")
    return {"task": "pix2pix", "data": "skimage_edges2photo", "n_scales": n_scales, "lambda_fm": lambda_fm,
            "test_l1": test_l1, "epochs_run": len(hist["val"]), "best_epoch": hist["best_epoch"],
            "train_time_s": hist["elapsed_s"], "stopped": hist["stopped"], "n_train": n_train}


def _video_data(opts: TaskOptions):
    n_train = opts.get("n_train", 256)
    T = int(opts.extra.get("frames", 6))
    return (moving_shapes(n_train, T, seed=opts.seed), moving_shapes(32, T, seed=opts.seed + 1),
            moving_shapes(64, T, seed=opts.seed + 2))


def video_metrics(frames_out: torch.Tensor, data: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """frames_out [B, T, 3, H, W] in [-1, 1] vs data -> {"l1", "warp_error"} in [0, 1] units."""
    out01 = (frames_out + 1) / 2
    return {"l1": float((out01 - (data["frames"] + 1) / 2).abs().mean()),
            "warp_error": float(flow_warping_error(out01, data["flows"], data["occlusion"]))}


def _label_rgb(labels: torch.Tensor) -> torch.Tensor:
    return _LABEL_COLORS[labels].permute(0, 3, 1, 2)


def _save_video_grid(rows, path: str, title: str) -> None:
    T = rows[0].shape[0]
    save_grid(torch.cat(rows), T, path, title)


def run_pix2pix_video(opts: TaskOptions) -> dict:
    """Per-frame pix2pix baseline on the moving-shapes videos (label map -> frame)."""
    torch.manual_seed(opts.seed)
    tr, va, te = _video_data(opts)
    B, T, C, H, W = tr["frames"].shape
    src = one_hot_labels(tr["labels"], N_VIDEO_CLASSES).flatten(0, 1)
    tgt = tr["frames"].flatten(0, 1)
    n_scales, d_layers, lambda_fm = _gan_parts(opts)
    ngf = opts.get("hidden", 32)
    G = UNetGenerator(N_VIDEO_CLASSES, 3, ngf, 5)
    D = make_discriminator(N_VIDEO_CLASSES + 3, ngf, d_layers, n_scales)
    lr = opts.get("lr", 2e-4)
    og, od = _adam(G.parameters(), lr), _adam(D.parameters(), lr)
    bs = opts.get("batch_size", 8) * T  # same number of frames per step as vid2vid

    def train_epoch(epoch, tick):
        out = []
        for idx in batches(len(src), bs, opts.seed * 1000 + epoch):
            out.append(pix2pix_step(G, D, og, od, src[idx], tgt[idx], 100.0, lambda_fm))
            tick()
        return mean_dicts(out)

    def gen(d, dropout: bool = False):
        G.eval()
        if dropout:  # pix2pix's test-time noise: dropout stays on
            for m in G.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.train()
        with torch.no_grad():
            s = one_hot_labels(d["labels"], N_VIDEO_CLASSES)
            out = G(s.flatten(0, 1)).view(s.shape[0], s.shape[1], 3, H, W)
        G.eval()
        return out

    hist = fit({"G": G, "D": D}, {"G": og, "D": od}, train_epoch, lambda: video_metrics(gen(va), va)["l1"],
               _fit_cfg(opts))
    torch.manual_seed(opts.seed)
    m = video_metrics(gen(te), te)
    md = video_metrics(gen(te, dropout=True), te)
    plot_history(hist, os.path.join(opts.out_dir, "loss.png"), "pix2pix per-frame", "val L1 ([0,1] units)")
    if opts.samples:
        out = gen(te)
        rows = []
        for k in range(2):
            rows += [_label_rgb(te["labels"][k]), (te["frames"][k] + 1) / 2, (out[k] + 1) / 2]
        _save_video_grid(rows, os.path.join(opts.out_dir, "samples.png"),
                         "pix2pix per frame: labels / real / generated (2 videos)")
    return {"task": "pix2pix_video", "data": "moving_shapes", "lr": lr, "test_l1": m["l1"], "test_warp_error": m["warp_error"],
            "test_l1_dropout": md["l1"], "test_warp_error_dropout": md["warp_error"],
            "gt_warp_error": video_metrics(te["frames"], te)["warp_error"],
            "epochs_run": len(hist["val"]), "best_epoch": hist["best_epoch"], "train_time_s": hist["elapsed_s"],
            "stopped": hist["stopped"], "n_train": B, "frames": T,
            "params_G": sum(p.numel() for p in G.parameters())}


def run_vid2vid(opts: TaskOptions) -> dict:
    """vid2vid on the moving-shapes videos; returns test L1, flow-warping error, times."""
    torch.manual_seed(opts.seed)
    tr, va, te = _video_data(opts)
    B, T, C, H, W = tr["frames"].shape
    n_scales, d_layers, lambda_fm = _gan_parts(opts)
    ngf = opts.get("hidden", 32)
    model = Vid2Vid(N_VIDEO_CLASSES, 3, past=2, ngf=ngf, ndf=ngf, n_down=4, n_scales=n_scales,
                    d_layers=d_layers, lambda_fm=lambda_fm,
                    lambda_flow=float(opts.extra.get("lambda_flow", 30.0)),
                    lambda_mask=float(opts.extra.get("lambda_mask", 3.0)),
                    mask_bias=float(opts.extra.get("mask_bias", -2.0)))
    lr = opts.get("lr", 1e-3)
    og = _adam(model.G.parameters(), lr)
    od = _adam(list(model.D_I.parameters()) + list(model.D_V.parameters()), lr)
    bs = opts.get("batch_size", 8)

    def train_epoch(epoch, tick):
        out = []
        for idx in batches(B, bs, opts.seed * 1000 + epoch):
            batch = {k: tr[k][idx] for k in ("labels", "frames", "flows", "occlusion")}
            out.append(model.train_step(batch, og, od))
            tick()
        return mean_dicts(out)

    def gen(d):
        model.eval()
        with torch.no_grad():
            return model.generate(d["labels"])

    hist = fit({"vid2vid": model}, {"G": og, "D": od}, train_epoch,
               lambda: video_metrics(gen(va)["frames"], va)["l1"], _fit_cfg(opts))
    g = gen(te)
    m = video_metrics(g["frames"], te)
    flow_epe = float((g["flows"][:, 1:] - te["flows"][:, 1:]).norm(dim=2).mean())
    plot_history(hist, os.path.join(opts.out_dir, "loss.png"), "vid2vid", "val L1 ([0,1] units)")
    if opts.samples:
        rows = []
        for k in range(2):
            mag = g["flows"][k].norm(dim=1, keepdim=True) / 4.0
            rows += [_label_rgb(te["labels"][k]), (te["frames"][k] + 1) / 2, (g["frames"][k] + 1) / 2,
                     g["masks"][k].expand(-1, 3, -1, -1), mag.clamp(0, 1).expand(-1, 3, -1, -1)]
        _save_video_grid(rows, os.path.join(opts.out_dir, "samples.png"),
                         "vid2vid: labels / real / generated / mask / |flow| (2 videos)")
    return {"task": "vid2vid", "data": "moving_shapes", "lr": lr, "lambda_flow": model.lambda_flow,
            "lambda_mask": model.lambda_mask, "test_l1": m["l1"], "test_warp_error": m["warp_error"],
            "test_flow_epe": flow_epe, "mean_mask": float(g["masks"][:, 1:].mean()),
            "gt_warp_error": video_metrics(te["frames"], te)["warp_error"],
            "epochs_run": len(hist["val"]), "best_epoch": hist["best_epoch"], "train_time_s": hist["elapsed_s"],
            "stopped": hist["stopped"], "n_train": B, "frames": T,
            "params_G": sum(p.numel() for p in model.G.parameters())}
