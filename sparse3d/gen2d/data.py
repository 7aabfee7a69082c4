"""Built-in data for gen2d, no downloads: scikit-learn's 8x8 digits (binarised or
17-level), crops of the images scikit-image ships, synthetic tones for WaveNet, and
synthetic videos of moving shapes over a panning texture with label maps, exact
flows and occlusion masks. Every random choice takes a seed.
"""
from __future__ import annotations

import math
from typing import Dict

import numpy as np
import torch

from sparse3d.utils.checks import require_choice, require_int

Split = Dict[str, torch.Tensor]


def split_indices(n: int, seed: int, val_frac: float = 0.1, test_frac: float = 0.2) -> Dict[str, np.ndarray]:
    """Shuffle range(n) with ``seed`` into disjoint train / val / test index arrays."""
    require_int(n, "n", low=1)
    if not (0 < val_frac < 1 and 0 < test_frac < 1 and val_frac + test_frac < 1):
        raise ValueError(f"val_frac, test_frac: expected fractions summing below 1, got {val_frac}, {test_frac}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test, n_val = int(round(n * test_frac)), int(round(n * val_frac))
    return {"test": perm[:n_test], "val": perm[n_test:n_test + n_val], "train": perm[n_test + n_val:]}


def digits(levels: int = 2, seed: int = 0) -> Dict[str, Split]:
    """scikit-learn 8x8 digits (1797 images, values 0..16).

    levels=17 keeps the raw values; levels=2 binarises at value >= 8.
    Returns {"train"|"val"|"test": {"x": int64 [N, 1, 8, 8], "y": int64 [N]}}
    (about 70 / 10 / 20 %, split with ``seed``).
    """
    require_choice(levels, "levels", (2, 17))
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.int64)).view(-1, 1, 8, 8)
    if levels == 2:
        x = (x >= 8).long()
    y = torch.from_numpy(d.target.astype(np.int64))
    return {k: {"x": x[torch.from_numpy(v)], "y": y[torch.from_numpy(v)]}
            for k, v in split_indices(len(y), seed).items()}


def independent_pixel_nll(train: torch.Tensor, test: torch.Tensor, n_levels: int, alpha: float = 1.0) -> float:
    """Baseline: a separate categorical per sub-pixel fitted on ``train`` (add-alpha
    smoothing); mean test NLL in nats per image. train, test: int [N, C, H, W]."""
    counts = torch.nn.functional.one_hot(train.long(), n_levels).sum(0).double() + alpha  # [C,H,W,K]
    logp = (counts / counts.sum(-1, keepdim=True)).log()
    idx = test.long().unsqueeze(-1)
    ll = torch.gather(logp.expand(test.shape[0], *logp.shape), -1, idx).squeeze(-1)
    return float(-ll.flatten(1).sum(1).mean())


def tones(n: int, length: int = 512, n_classes: int = 4, sample_rate: int = 4000, noise: float = 0.01,
          seed: int = 0) -> Dict[str, torch.Tensor]:
    """Synthetic tones: class c has base frequency 220 * 2**(c / n_classes * 2) Hz; each clip
    is that tone with 1-3 harmonics of random amplitude and phase, a random slow amplitude
    envelope, and Gaussian noise (std ``noise``).

    Returns {"audio": float [n, length] in [-1, 1], "y": int64 [n]}.
    """
    require_int(n, "n", low=1)
    require_int(length, "length", low=1)
    require_int(n_classes, "n_classes", low=1)
    rng = np.random.default_rng(seed)
    t = np.arange(length) / sample_rate
    y = rng.integers(0, n_classes, n)
    audio = np.zeros((n, length))
    for k in range(n):
        f0 = 220.0 * 2 ** (2.0 * y[k] / n_classes)
        nh = rng.integers(1, 4)
        amps = rng.uniform(0.2, 1.0, nh)
        sig = sum(a * np.sin(2 * math.pi * f0 * (h + 1) * t + rng.uniform(0, 2 * math.pi))
                  for h, a in enumerate(amps))
        env = 0.75 + 0.25 * np.sin(2 * math.pi * rng.uniform(0.5, 2.0) * t + rng.uniform(0, 2 * math.pi))
        audio[k] = 0.8 * sig * env / amps.sum() + noise * rng.standard_normal(length)
    return {"audio": torch.from_numpy(np.clip(audio, -1, 1)).float(), "y": torch.from_numpy(y)}


def _skimage_rgb_images():
    import skimage.data as sd

    return [np.asarray(getattr(sd, name)(), dtype=np.float64) / 255.0
            for name in ("astronaut", "coffee", "chelsea", "rocket")]


def image_pairs(n: int, size: int = 32, seed: int = 0) -> Dict[str, torch.Tensor]:
    """pix2pix pairs from scikit-image's photos: random crops (downscaled by 4 first),
    source = Sobel edge magnitude (1 channel), target = RGB crop.

    Returns {"src": float [n, 1, size, size] in [-1, 1], "tgt": float [n, 3, size, size] in [-1, 1]}.
    """
    require_int(n, "n", low=1)
    require_int(size, "size", low=1)
    from skimage.filters import sobel
    from skimage.transform import rescale

    rng = np.random.default_rng(seed)
    imgs = [rescale(im, 0.25, channel_axis=2, anti_aliasing=True) for im in _skimage_rgb_images()]
    src = np.zeros((n, 1, size, size))
    tgt = np.zeros((n, 3, size, size))
    for k in range(n):
        im = imgs[rng.integers(len(imgs))]
        y0, x0 = rng.integers(0, im.shape[0] - size + 1), rng.integers(0, im.shape[1] - size + 1)
        crop = im[y0:y0 + size, x0:x0 + size]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        e = sobel(crop.mean(2))
        src[k, 0] = e / max(e.max(), 1e-6)
        tgt[k] = crop.transpose(2, 0, 1)
    return {"src": torch.from_numpy(src * 2 - 1).float(), "tgt": torch.from_numpy(tgt * 2 - 1).float()}


N_VIDEO_CLASSES = 4  # 0: ground region A, 1: ground region B, 2: circle, 3: square
_SHAPE_COLORS = {2: (1.0, 0.85, 0.2), 3: (0.2, 0.45, 1.0)}


def moving_shapes(n: int, frames: int = 6, size: int = 32, n_shapes: int = 2, max_speed: int = 2,
                  pan_speed: int = 1, seed: int = 0) -> Dict[str, torch.Tensor]:
    """Synthetic videos: a camera pans (integer velocity, |v| <= pan_speed) over a world
    made of two textured ground regions (scikit-image grass and brick, tinted), and
    solid shapes (circle / square) move over it with their own integer velocities.

    Returns (all with leading [n, T]):
        "frames": float [n, T, 3, H, W] in [-1, 1];
        "labels": int64 [n, T, H, W] in [0, 4) (region A, region B, circle, square);
        "flows": float [n, T, 2, H, W]: backward flow (dx, dy), frame t pixel p shows what
                 frame t-1 showed at p + flow (flow at t = 0 is zero);
        "occlusion": float [n, T, 1, H, W]: 1 where p + flow was off-screen or showed another
                 object at t-1 (all ones at t = 0).
    """
    for name, v in [("n", n), ("frames", frames), ("size", size), ("n_shapes", n_shapes),
                    ("max_speed", max_speed)]:
        require_int(v, name, low=1)
    if isinstance(pan_speed, bool) or not isinstance(pan_speed, int) or pan_speed < 0:
        raise ValueError(f"pan_speed: expected an int >= 0, got {pan_speed!r}")
    if size < 14:
        raise ValueError(f"size: expected >= 14 (shapes have radius up to 6), got {size}")
    import skimage.data as sd

    grass = np.asarray(sd.grass(), dtype=np.float64) / 255.0
    brick = np.asarray(sd.brick(), dtype=np.float64) / 255.0
    rng = np.random.default_rng(seed)
    T, H = frames, size
    margin = pan_speed * T + 1
    Wd = H + 2 * margin
    out_f = np.zeros((n, T, 3, H, H))
    out_l = np.zeros((n, T, H, H), dtype=np.int64)
    out_fl = np.zeros((n, T, 2, H, H))
    out_o = np.ones((n, T, 1, H, H))
    yy, xx = np.mgrid[0:H, 0:H]
    for k in range(n):
        # world: two regions with low-frequency boundaries, each its own texture
        wy, wx = np.mgrid[0:Wd, 0:Wd]
        a = rng.uniform(0.08, 0.2, 2)
        ph = rng.uniform(0, 2 * math.pi, 2)
        region = (np.sin(wx * a[0] + ph[0]) + np.sin(wy * a[1] + ph[1]) > 0).astype(np.int64)
        oy, ox = rng.integers(0, 512 - Wd, 2)
        ta = grass[oy:oy + Wd, ox:ox + Wd][..., None] * np.array([0.35, 0.9, 0.35])
        oy, ox = rng.integers(0, 512 - Wd, 2)
        tb = brick[oy:oy + Wd, ox:ox + Wd][..., None] * np.array([0.9, 0.4, 0.3])
        world = np.where(region[..., None] == 0, ta, tb)  # [Wd, Wd, 3]
        v_cam = rng.integers(-pan_speed, pan_speed + 1, 2)  # (vy, vx)
        o0 = np.array([margin, margin])
        shapes = []
        for _ in range(n_shapes):
            cls = int(rng.integers(2, 4))
            r = int(rng.integers(3, 7))
            p0 = rng.uniform(r, H - r, 2)
            v = rng.integers(-max_speed, max_speed + 1, 2)
            shapes.append((cls, r, p0, v))
        prev_obj = None
        for t in range(T):
            o = o0 + t * v_cam
            img = world[o[0]:o[0] + H, o[1]:o[1] + H].copy()
            lab = region[o[0]:o[0] + H, o[1]:o[1] + H].copy()
            obj = -np.ones((H, H), dtype=np.int64)
            flow = np.stack([np.full((H, H), v_cam[1]), np.full((H, H), v_cam[0])]).astype(np.float64)
            for s, (cls, r, p0, v) in enumerate(shapes):
                cy, cx = p0 + t * v
                if cls == 2:
                    inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
                else:
                    inside = (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
                img[inside] = _SHAPE_COLORS[cls]
                lab[inside] = cls
                obj[inside] = s
                flow[0][inside], flow[1][inside] = -v[1], -v[0]
            out_f[k, t] = img.transpose(2, 0, 1)
            out_l[k, t] = lab
            if t > 0:
                out_fl[k, t] = flow
                sy, sx = yy + flow[1].astype(np.int64), xx + flow[0].astype(np.int64)
                ok = (sy >= 0) & (sy < H) & (sx >= 0) & (sx < H)
                same = np.zeros((H, H), dtype=bool)
                same[ok] = prev_obj[sy[ok], sx[ok]] == obj[ok]
                out_o[k, t, 0] = (~same).astype(np.float64)
            prev_obj = obj
    return {"frames": torch.from_numpy(out_f * 2 - 1).float(), "labels": torch.from_numpy(out_l),
            "flows": torch.from_numpy(out_fl).float(), "occlusion": torch.from_numpy(out_o).float()}
