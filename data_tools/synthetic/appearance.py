"""Appearance of the synthetic rooms beyond the flat per-instance colours of `colors`: per-instance solid
textures finer than a 5 cm voxel, and per-frame lighting. Used by `writer.generate_scene(appearance="textured")`.

Everything here draws from its own random stream (`appearance_rng(seed)`), never from the room's geometry
stream, so that a room's meshes, depth frames and poses stay bit-identical whichever appearance is chosen.

Texture of an object (one per instance, `ObjectTextures`): a pattern w(p) in [0, 1] of the world point p,
and the colour at p is (1 - contrast * w(p)) * c_face + contrast * w(p) * alt, with

    kind 0 plain      w = 0
    kind 1 stripes    w = [sin(2 pi p.dir / period) > 0]                    (wallpaper, blinds, upholstery)
    kind 2 checker    w = (floor(p_x / s) + floor(p_y / s) + floor(p_z / s)) mod 2, s = period / 2   (tiles, weave)
    kind 3 grain      w = 0.5 + 0.5 sin(2 pi p.dir / period + 2 sin(2 pi p.dir2 / (3 period)))      (wood grain)

with period 2.5-4.5 cm (stripes / squares of 1.25-2.25 cm): a 5 cm voxel averages a pattern to
(1 - contrast / 2) * c_face + contrast / 2 * alt, a 320 x 240 frame resolves it within ~3 m. The pattern
kind is drawn from class-dependent probabilities that overlap (`KIND_PROBS`), the alternate colour from the
class's secondary materials (`colors.CLASS_MATERIALS`), contrast U(0.3, 0.8).

Lighting of a frame (`FrameLight`): a global gain U(0.7, 1.25), a white balance (per-channel gain
N(1, 0.06)), an ambient share U(0.35, 0.6) and a directional light from a random upper-hemisphere
direction that replaces half of the head-light shading.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .colors import draw_colors

PLAIN, STRIPES, CHECKER, GRAIN = 0, 1, 2, 3

_WOODY = (0.25, 0.15, 0.05, 0.55)
_FABRIC = (0.3, 0.35, 0.3, 0.05)
_HARD = (0.6, 0.1, 0.2, 0.1)
# colour key -> probabilities of (plain, stripes, checker, grain); keys absent here use _HARD
KIND_PROBS: Dict[str, Tuple[float, float, float, float]] = {
    "wall": (0.55, 0.3, 0.1, 0.05), "floor": (0.15, 0.05, 0.35, 0.45),
    "door": (0.35, 0.15, 0.05, 0.45), "window": (0.45, 0.45, 0.1, 0.0), "picture": (0.1, 0.3, 0.3, 0.3),
    "curtain": (0.2, 0.5, 0.2, 0.1), "shower curtain": (0.25, 0.4, 0.3, 0.05),
    "bed": _FABRIC, "chair": (0.3, 0.2, 0.15, 0.35), "office chair": _FABRIC, "armchair": _FABRIC,
    "couch": _FABRIC, "soft furniture": _FABRIC, "table": _WOODY, "desk": _WOODY, "bookshelf": _WOODY,
    "cabinet": (0.4, 0.1, 0.1, 0.4), "nightstand": _WOODY, "otherfurniture": _WOODY,
    "kitchen counter": (0.4, 0.05, 0.35, 0.2), "bathroom counter": (0.45, 0.05, 0.35, 0.15),
    "sink": _HARD, "refrigerator": (0.75, 0.15, 0.05, 0.05), "toilet": _HARD, "bathtub": (0.55, 0.1, 0.3, 0.05),
    "mirror": (0.7, 0.2, 0.05, 0.05), "whiteboard": (0.8, 0.1, 0.1, 0.0), "dark screen": (0.8, 0.1, 0.1, 0.0),
    "trash can": (0.5, 0.3, 0.1, 0.1),
}
PERIOD_RANGE = (0.025, 0.045)  # metres
_APPEARANCE_STREAM = 0x3D3D  # second word of the appearance seed: a stream apart from the geometry's


def appearance_rng(seed: int) -> np.random.Generator:
    """The random stream of a scene's appearance (textures, lighting), independent of its geometry stream."""
    return np.random.default_rng([int(seed), _APPEARANCE_STREAM])


@dataclass(frozen=True)
class ObjectTextures:
    """One texture per object (O objects): kind int64 [O] (PLAIN..GRAIN); period float64 [O] metres;
    direction float64 [O,3] and direction2 float64 [O,3] unit vectors; alt uint8 [O,3]; contrast float64 [O]."""

    kind: np.ndarray
    period: np.ndarray
    direction: np.ndarray
    direction2: np.ndarray
    alt: np.ndarray
    contrast: np.ndarray

    def pattern(self, points: np.ndarray, obj: np.ndarray) -> np.ndarray:
        """float64 [P] in [0, 1]: the pattern weight w of object obj int [P] at world points float [P,3]."""
        p = np.asarray(points, np.float64)
        o = np.asarray(obj, np.int64)
        kind, per = self.kind[o], self.period[o]
        s = np.einsum("ij,ij->i", p, self.direction[o])
        w = np.zeros(len(p))
        m = kind == STRIPES
        w[m] = (np.sin(2 * np.pi * s[m] / per[m]) > 0).astype(np.float64)
        m = kind == CHECKER
        cells = np.floor(p[m] / (per[m, None] / 2)).astype(np.int64).sum(1)
        w[m] = (cells % 2).astype(np.float64)
        m = kind == GRAIN
        s2 = np.einsum("ij,ij->i", p[m], self.direction2[o[m]])
        w[m] = 0.5 + 0.5 * np.sin(2 * np.pi * s[m] / per[m] + 2 * np.sin(2 * np.pi * s2 / (3 * per[m])))
        return w

    def apply(self, colors: np.ndarray, points: np.ndarray, obj: np.ndarray) -> np.ndarray:
        """float32 [P,3]: base colours float/uint8 [P,3] of points [P,3] of objects obj [P], textured."""
        a = (self.contrast[np.asarray(obj, np.int64)] * self.pattern(points, obj))[:, None]
        return ((1 - a) * np.asarray(colors, np.float64) + a * self.alt[obj].astype(np.float64)).astype(np.float32)

    def mean_colors(self, colors: np.ndarray, obj: np.ndarray) -> np.ndarray:
        """uint8 [P,3]: what averaging a texture over many periods leaves (a reconstruction's vertex colour):
        the mix with weight contrast * mean(w), mean(w) = 1/2 for every patterned kind."""
        o = np.asarray(obj, np.int64)
        a = (self.contrast[o] * np.where(self.kind[o] == PLAIN, 0.0, 0.5))[:, None]
        c = (1 - a) * np.asarray(colors, np.float64) + a * self.alt[o].astype(np.float64)
        return np.clip(np.round(c), 0, 255).astype(np.uint8)


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(0, 1, 3)
    return v / max(float(np.linalg.norm(v)), 1e-9)


def draw_textures(rng: np.random.Generator, color_keys: Sequence[str]) -> ObjectTextures:
    """ObjectTextures of objects whose colour keys (keys of colors.CLASS_MATERIALS) are `color_keys`."""
    n = len(color_keys)
    kind = np.zeros(n, np.int64)
    period, contrast = np.zeros(n), np.zeros(n)
    d1, d2 = np.zeros((n, 3)), np.zeros((n, 3))
    alt = np.zeros((n, 3), np.uint8)
    for k, key in enumerate(color_keys):
        probs = np.asarray(KIND_PROBS.get(key, _HARD), np.float64)
        kind[k] = int(rng.choice(4, p=probs / probs.sum()))
        period[k] = rng.uniform(*PERIOD_RANGE)
        d1[k], d2[k] = _unit(rng), _unit(rng)
        alt[k] = draw_colors(rng, key)[1]
        contrast[k] = rng.uniform(0.3, 0.8)
    return ObjectTextures(kind, period, d1, d2, alt, contrast)


@dataclass(frozen=True)
class FrameLight:
    """gain float [3] (global gain x white balance); ambient float in (0, 1); direction float [3] unit vector
    towards the light (world frame)."""

    gain: np.ndarray
    ambient: float
    direction: np.ndarray

    def shade(self, normals: np.ndarray, view_cos: np.ndarray) -> np.ndarray:
        """float32 [P,3] factors for unit normals [P,3] and |cos| to the camera ray view_cos [P]."""
        lam = np.abs(np.asarray(normals, np.float64) @ self.direction)
        s = self.ambient + (1 - self.ambient) * (0.5 * np.asarray(view_cos, np.float64) + 0.5 * lam)
        return (s[:, None] * self.gain[None]).astype(np.float32)


def draw_lights(rng: np.random.Generator, n_frames: int) -> List[FrameLight]:
    """n_frames independent FrameLights (see the module docstring for the distributions)."""
    out = []
    for _ in range(n_frames):
        gain = rng.uniform(0.7, 1.25) * rng.normal(1.0, 0.06, 3)
        d = _unit(rng)
        d[2] = abs(d[2])
        out.append(FrameLight(np.clip(gain, 0.4, 1.6), float(rng.uniform(0.35, 0.6)), d))
    return out
