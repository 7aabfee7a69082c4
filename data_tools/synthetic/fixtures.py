"""Wall-mounted items and the kitchen / bathroom fixtures (builders `f(rng, H) -> Group`, see `furniture`).

Wall-mounted groups set `Group.back` = the local y of the wall surface (0 here): a door, a window, a
picture, a mirror or a whiteboard is a thin slab sticking 0.3-4.5 cm out of the wall, and curtains hang
a few centimetres in front of it, so that geometry alone barely separates them (colour, size and height do).
"""
from __future__ import annotations

from typing import List

import numpy as np

from .parts import U, Box, Group, Piece, frame_bars, pleats
from .storage import _fronts


def door(rng: np.random.Generator, H: float, narrow: bool = False) -> Group:
    """'door' / 'doors': a leaf 1.5-3.5 cm out of the wall, a frame, a handle; the swing area is kept free."""
    w = U(rng, 0.68, 0.82) if narrow else U(rng, 0.75, 0.95)
    h = min(H - 0.15, U(rng, 1.95, 2.15))
    t, p = U(rng, 0.035, 0.05), U(rng, 0.015, 0.035)
    fb, fp = U(rng, 0.04, 0.09), p + U(rng, 0.0, 0.015)
    out = [Box((0, t / 2 - p, h / 2), (w, t, h))]
    out += [Box((sx * (w / 2 + fb / 2), (0.03 - fp) / 2, (h + fb) / 2), (fb, fp + 0.03, h + fb), 1) for sx in (-1, 1)]
    out.append(Box((0, (0.03 - fp) / 2, h + fb / 2), (w + 2 * fb, fp + 0.03, fb), 1))
    hx = float(rng.choice([-1, 1])) * (w / 2 - 0.08)
    out += [Box((hx, -p - 0.025, U(rng, 0.95, 1.05)), (0.12, 0.02, 0.025), 1)]
    swing = Box((0, -0.5, 1.0), (w + 0.2, 1.0, 2.0))
    return Group([Piece(str(rng.choice(["door", "door", "doors"])), out, "door")], back=0.0, keepout=[swing])


def window(rng: np.random.Generator, H: float, curtain_prob: float = 0.7, small: bool = False) -> Group:
    """'window': a glass pane 0.3-1.2 cm and a frame 1-4.5 cm out of the wall, optional mullion and sill;
    with probability curtain_prob one or two 'curtain' panels (pleated, 3-7 cm deep, at most 14 cm off the wall)
    hang over its sides."""
    w = U(rng, 0.4, 0.9) if small else U(rng, 0.5, 1.6)
    z0 = U(rng, 1.2, 1.5) if small else U(rng, 0.6, 1.1)
    h = min(H - 0.15 - z0, U(rng, 0.4, 0.8) if small else U(rng, 0.7, 1.5))
    gp, fb, fp = U(rng, 0.003, 0.012), U(rng, 0.04, 0.09), U(rng, 0.01, 0.03)
    out = [Box((0, (0.03 - gp) / 2, z0 + h / 2), (w - fb, gp + 0.03, h - fb))]
    out += frame_bars(w, h, fb, fp + 0.03, (0.03 - fp) / 2, z0, 1)
    if rng.random() < 0.5:
        out.append(Box((0, (0.03 - fp) / 2, z0 + h / 2), (fb * 0.6, fp + 0.03, h - fb), 1))
    front = fp
    if rng.random() < 0.5:  # sill
        sd = U(rng, 0.03, 0.06)
        out.append(Box((0, (0.03 - sd) / 2, z0 - 0.015), (w + 0.1, sd + 0.03, 0.03), 1))
        front = max(front, sd)
    pieces = [Piece("window", out)]
    if rng.random() < curtain_prob:
        top = min(H - 0.04, z0 + h + U(rng, 0.05, 0.35))
        bottom = U(rng, 0.01, 0.04) if rng.random() < 0.6 else max(0.02, z0 - U(rng, 0.0, 0.15))
        y_back = -front - 0.01
        raw = str(rng.choice(["curtain", "curtains"]))
        sides = (-1, 1) if rng.random() < 0.75 else (float(rng.choice([-1, 1])),)
        for sx in sides:
            outer, inner = w / 2 + U(rng, 0.05, 0.35), w / 2 - U(rng, 0.0, 0.35) * w
            x0, x1 = sorted((sx * outer, sx * inner))
            pieces.append(Piece(raw, pleats(rng, x0, x1, bottom, top, y_back, U(rng, 0.03, 0.07)), "curtain",
                                share="curtain"))
    return Group(pieces, back=0.0)


def _canvas(rng: np.random.Generator, w: float, h: float, y: float, depth: float, zc: float) -> List[Box]:
    """1-3 bands of accent colours (a picture's content)."""
    n = int(rng.integers(1, 4))
    if rng.random() < 0.5:
        return [Box((-w / 2 + w * (k + 0.5) / n, y, zc), (w / n, depth, h), 2 + k) for k in range(n)]
    return [Box((0, y, zc - h / 2 + h * (k + 0.5) / n), (w, depth, h / n), 2 + k) for k in range(n)]


def picture(rng: np.random.Generator, H: float) -> Group:
    """'picture' / 'pictures' / 'painting' / 'poster': a 1.2-4.5 cm slab on the wall, framed or not."""
    w, h = U(rng, 0.25, 1.3), U(rng, 0.2, 0.95)
    zc = min(U(rng, 1.1, 1.75), H - 0.2 - h / 2)
    t = U(rng, 0.012, 0.045)
    if rng.random() < 0.7:
        fb = U(rng, 0.02, 0.07)
        out = frame_bars(w, h, fb, t, -t / 2, zc - h / 2, 0)
        out += _canvas(rng, w - 2 * fb, h - 2 * fb, -t * 0.35, t * 0.7, zc)
        raw = str(rng.choice(["picture", "pictures", "painting"]))
    else:
        out = _canvas(rng, w, h, -t / 2, t, zc)
        raw = "poster"
    return Group([Piece(raw, out, "picture")], back=0.0)


def mirror(rng: np.random.Generator, H: float, w: float = 0.0, zc: float = 0.0) -> Group:
    """'mirror' (nyu40 19, not a ScanNet-20 class): glass in a thin frame (a picture look-alike)."""
    w = w or U(rng, 0.4, 1.0)
    h = U(rng, 0.5, 1.0)
    zc = min(zc or U(rng, 1.2, 1.6), H - 0.15 - h / 2)
    t, fb = U(rng, 0.01, 0.03), U(rng, 0.0, 0.04)
    out = [Box((0, -t / 2, zc), (w, t, h))] + (frame_bars(w + 2 * fb, h + 2 * fb, fb, t + 0.005, -t / 2 - 0.0025,
                                                          zc - h / 2 - fb, 1) if fb > 0.01 else [])
    return Group([Piece("mirror", out)], back=0.0)


def whiteboard(rng: np.random.Generator, H: float) -> Group:
    """'whiteboard' (nyu40 30, not a ScanNet-20 class): a large white slab with a tray."""
    w, h, t = U(rng, 0.9, 2.0), U(rng, 0.6, 1.2), U(rng, 0.015, 0.03)
    zc = min(U(rng, 1.3, 1.6), H - 0.15 - h / 2)
    out = [Box((0, -t / 2, zc), (w, t, h))] + frame_bars(w, h, 0.02, t + 0.005, -t / 2 - 0.0025, zc - h / 2, 1)
    out.append(Box((0, -0.04, zc - h / 2 - 0.02), (w * 0.8, 0.08, 0.025), 1))
    return Group([Piece("whiteboard", out)], back=0.0)


def _basin(x: float, y: float, z_top: float, w: float, d: float, depth: float) -> List[Box]:
    """An open-topped basin (walls 1.2 cm) from z_top - depth to z_top + 1 cm, centred at (x, y)."""
    t, z0, z1 = 0.012, z_top - depth, z_top + 0.01
    zc, hh = (z0 + z1) / 2, z1 - z0
    return [Box((x, y, z0 + t / 2), (w, d, t)), Box((x, y - d / 2 + t / 2, zc), (w, t, hh)),
            Box((x, y + d / 2 - t / 2, zc), (w, t, hh)), Box((x - w / 2 + t / 2, y, zc), (t, d - 2 * t, hh)),
            Box((x + w / 2 - t / 2, y, zc), (t, d - 2 * t, hh))]


def _faucet(x: float, y: float, z: float, reach: float) -> List[Box]:
    return [Box((x, y, z + 0.12), (0.03, 0.03, 0.24), 1), Box((x, y - reach / 2, z + 0.225), (0.03, reach, 0.03), 1)]


def _top_with_hole(L: float, y0: float, y1: float, z: float, t: float, hx0: float, hx1: float, hy0: float,
                   hy1: float) -> List[Box]:
    """A slab over x in [-L/2, L/2], y in [y0, y1], top at z, thickness t, with a hole [hx0,hx1] x [hy0,hy1]."""
    zc = z - t / 2
    return [Box(((-L / 2 + hx0) / 2, (y0 + y1) / 2, zc), (hx0 + L / 2, y1 - y0, t)),
            Box(((hx1 + L / 2) / 2, (y0 + y1) / 2, zc), (L / 2 - hx1, y1 - y0, t)),
            Box(((hx0 + hx1) / 2, (y0 + hy0) / 2, zc), (hx1 - hx0, hy0 - y0, t)),
            Box(((hx0 + hx1) / 2, (hy1 + y1) / 2, zc), (hx1 - hx0, y1 - hy1, t))]


def _base_run(L: float, d: float, top: float, plinth: float, gap0: float, gap1: float, under_top: float,
              handle: str) -> List[Box]:
    """Base cabinets over [-L/2, L/2] (top at `top`), lowered to under_top between gap0 and gap1."""
    out = []
    for x0, x1, zt in ((-L / 2, gap0, top), (gap0, gap1, under_top), (gap1, L / 2, top)):
        if x1 - x0 < 0.05:
            continue
        cw, ch = x1 - x0, zt - plinth
        out.append(Box(((x0 + x1) / 2, 0, plinth + ch / 2), (cw, d, ch)))
        n = max(1, int(round(cw / 0.5)))
        out += [Box((b.center[0] + (x0 + x1) / 2, b.center[1], b.center[2]), b.size, b.slot)
                for b in _fronts(cw, d, ch, plinth, n, 1, handle)]
    out.append(Box((0, 0.03, plinth / 2), (L, d - 0.06, plinth), 1))
    return out


def kitchen_run(rng: np.random.Generator, H: float) -> Group:
    """A run of 'kitchen cabinets' with a 'kitchen counter' (or 'counter') top, a 'sink' set into it with a
    faucet, and usually a row of wall 'kitchen cabinets' above."""
    L, d = U(rng, 1.6, 3.0), U(rng, 0.55, 0.62)
    top, tt, ov, plinth = U(rng, 0.86, 0.94), U(rng, 0.025, 0.05), U(rng, 0.01, 0.04), U(rng, 0.05, 0.12)
    sw, sd, depth = U(rng, 0.4, 0.8), U(rng, 0.35, 0.45), U(rng, 0.12, 0.2)
    xs = U(rng, -L / 2 + sw / 2 + 0.15, L / 2 - sw / 2 - 0.15)
    y0, y1 = -d / 2 - ov, d / 2
    ys = (y0 + y1) / 2 - 0.02
    handle = str(rng.choice(["bar", "vertical", "none"]))
    cab = _base_run(L, d, top - tt, plinth, xs - sw / 2 - 0.03, xs + sw / 2 + 0.03, top - depth - 0.03, handle)
    counter = _top_with_hole(L, y0, y1, top, tt, xs - sw / 2, xs + sw / 2, ys - sd / 2, ys + sd / 2)
    sink = _basin(xs, ys, top, sw, sd, depth) + _faucet(xs, ys + sd / 2 + 0.05, top, 0.15)
    share = "kitchen cabinets" if rng.random() < 0.8 else None
    cab_raw = str(rng.choice(["kitchen cabinets", "kitchen cabinet"]))
    pieces = [Piece(cab_raw, cab, "cabinet", share), Piece(str(rng.choice(["kitchen counter", "counter"])), counter,
                                                             "kitchen counter"),
              Piece("sink", sink)]
    if rng.random() < 0.75 and H > 2.3:
        ud, zb = U(rng, 0.3, 0.36), top + U(rng, 0.45, 0.6)
        zt = min(H - 0.05, zb + U(rng, 0.55, 0.9))
        lu = L * U(rng, 0.55, 1.0)
        xu = U(rng, -(L - lu) / 2, (L - lu) / 2)
        up = [Box((xu, d / 2 - ud / 2, (zb + zt) / 2), (lu, ud, zt - zb))]
        up += [Box((b.center[0] + xu, b.center[1] + d / 2 - ud / 2, b.center[2]), b.size, b.slot)
               for b in _fronts(lu, ud, zt - zb, zb, max(1, int(round(lu / 0.5))), 1, handle)]
        pieces.append(Piece(cab_raw, up, "cabinet", share))
    return Group(pieces)


def vanity(rng: np.random.Generator, H: float) -> Group:
    """Bathroom sink: a 'bathroom vanity' with a 'bathroom counter' top and a 'sink', or (30%) a pedestal
    'sink'; usually a 'mirror' on the wall above."""
    w, d = U(rng, 0.6, 1.3), U(rng, 0.42, 0.55)
    h = U(rng, 0.78, 0.88)
    bw, bd, depth = min(w - 0.15, U(rng, 0.35, 0.55)), min(d - 0.12, U(rng, 0.3, 0.4)), U(rng, 0.1, 0.16)
    xs = U(rng, -(w - bw) / 2 + 0.06, (w - bw) / 2 - 0.06) if rng.random() < 0.4 else 0.0
    ys = -0.03
    pieces = []
    if rng.random() < 0.7:
        tt = U(rng, 0.02, 0.04)
        handle = str(rng.choice(["bar", "vertical", "none"]))
        cab = _base_run(w, d - 0.03, h - tt, U(rng, 0.0, 0.1) + 0.02, xs - bw / 2 - 0.02, xs + bw / 2 + 0.02,
                        h - depth - 0.03, handle)
        cab = [Box((b.center[0], b.center[1] + 0.015, b.center[2]), b.size, b.slot) for b in cab]
        pieces += [Piece(str(rng.choice(["bathroom vanity", "bathroom cabinet"])), cab, "cabinet"),
                   Piece("bathroom counter", _top_with_hole(w, -d / 2, d / 2, h, tt, xs - bw / 2, xs + bw / 2,
                                                           ys - bd / 2, ys + bd / 2)),
                   Piece("sink", _basin(xs, ys, h, bw, bd, depth) + _faucet(xs, ys + bd / 2 + 0.04, h, 0.1))]
    else:
        bw2, bd2 = U(rng, 0.45, 0.65), U(rng, 0.38, 0.5)
        ys = -bd2 / 2 + d / 2 - 0.0
        ped = [Box((0, ys + 0.05, (h - 0.15) / 2), (U(rng, 0.14, 0.22), U(rng, 0.14, 0.22), h - 0.15))]
        ped += _basin(0, ys, h, bw2, bd2, 0.15)
        ped += _faucet(0, ys + bd2 / 2 - 0.04, h, 0.1)
        pieces.append(Piece("sink", ped))
        w = bw2
    if rng.random() < 0.8:
        m = mirror(rng, H, min(w, U(rng, 0.4, 1.0)), U(rng, h + 0.55, h + 0.8)).pieces[0]
        m.boxes = [Box((b.center[0], b.center[1] + d / 2 + 0.02, b.center[2]), b.size, b.slot)
                   for b in m.boxes]
        pieces.append(m)
    return Group(pieces, back=d / 2 + 0.02)


def toilet(rng: np.random.Generator, H: float) -> Group:
    """'toilet': pedestal, bowl, seat, lid (up or down), tank against the wall."""
    tw, td = U(rng, 0.36, 0.52), U(rng, 0.15, 0.24)
    t_bot, t_top = U(rng, 0.35, 0.45), U(rng, 0.7, 0.85)
    bw, bl, sh = U(rng, 0.34, 0.42), U(rng, 0.45, 0.58), U(rng, 0.36, 0.43)
    ty = bl / 2 + td / 2 - 0.06
    out = [Box((0, ty, (t_bot + t_top) / 2), (tw, td, t_top - t_bot)),
           Box((0, ty - 0.02, t_bot / 2), (bw * 0.45, td + 0.02, t_bot)),
           Box((0, 0.02, (sh - 0.12) / 2), (bw * U(rng, 0.5, 0.7), bl * 0.7, sh - 0.12)),
           Box((0, 0, sh - 0.07), (bw, bl, 0.14)), Box((0, -0.01, sh + 0.015), (bw + 0.01, bl - 0.02, 0.03), 1)]
    if rng.random() < 0.5:  # lid down
        out.append(Box((0, -0.01, sh + 0.04), (bw, bl - 0.04, 0.02), 1))
    else:
        out.append(Box((0, ty - td / 2 - 0.02, sh + 0.03 + bl * 0.42), (bw, 0.02, bl * 0.85), 1))
    return Group([Piece("toilet", out)])


def bathtub(rng: np.random.Generator, H: float, curtain_prob: float = 0.9) -> Group:
    """'bathtub': a hollow tub (rim 6-12 cm), taps; with probability curtain_prob a 'shower curtain' pushed
    back to the tub's end at the room corner: a pleated panel (3-7 cm deep) over 50-100% of the tub's width,
    flat against the end wall (5 cm off it), from ~2 m down to just above the rim. The group's
    `corner_end` puts that end at a wall's end."""
    L, w, h, t = U(rng, 1.4, 1.8), U(rng, 0.68, 0.85), U(rng, 0.45, 0.6), U(rng, 0.06, 0.12)
    zb = U(rng, 0.08, 0.15)
    out = [Box((0, 0, zb / 2), (L, w, zb)), Box((0, -w / 2 + t / 2, (zb + h) / 2), (L, t, h - zb)),
           Box((0, w / 2 - t / 2, (zb + h) / 2), (L, t, h - zb)),
           Box((-L / 2 + t / 2, 0, (zb + h) / 2), (t, w - 2 * t, h - zb)),
           Box((L / 2 - t / 2, 0, (zb + h) / 2), (t, w - 2 * t, h - zb))]
    end = float(rng.choice([-1, 1]))
    out += [Box((end * (L / 2 - t - 0.05), w / 2 - t - 0.03, h + 0.06), (0.04, 0.1, 0.04), 1)]
    g = Group([Piece("bathtub", out)], corner_end=int(end))
    if rng.random() < curtain_prob:
        z1 = min(H - 0.06, U(rng, 1.85, 2.1))
        z0 = h + U(rng, 0.02, 0.15)
        strips = pleats(rng, -w / 2, -w / 2 + U(rng, 0.5, 1.0) * w, z0, z1, 0.0, U(rng, 0.03, 0.07))
        # pleats run along x in front of y = 0: turn them into the y-z plane at the tub's end
        g.pieces.append(Piece("shower curtain", [Box((end * (L / 2 + b.center[1]), b.center[0], b.center[2]),
                                                     (b.size[1], b.size[0], b.size[2])) for b in strips]))
    return g
