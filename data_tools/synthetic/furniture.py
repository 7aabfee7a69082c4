"""Floor furniture with per-instance shapes: every builder `f(rng, H) -> Group` draws its own
proportions (widths, depths, heights, leg thickness, part counts, optional parts), H = room height.
Local frame (`parts`): x = width, y = depth (+y = back), z = up, floor at z = 0, footprint centred.
"""
from __future__ import annotations

from typing import List

import numpy as np

from .parts import U, Box, Group, Piece, boxes_to_mesh, legs, turn  # noqa: F401 - Box, boxes_to_mesh re-exported

__all__ = ["Box", "boxes_to_mesh", "chair", "office_chair", "armchair", "couch", "table", "coffee_table", "end_table",
           "dining_set", "desk", "bed", "nightstand", "floor_lamp", "coat_rack"]


def _depth(boxes: List[Box]) -> float:
    """Extent of boxes along y (metres)."""
    return max(b.center[1] + b.size[1] / 2 for b in boxes) - min(b.center[1] - b.size[1] / 2 for b in boxes)


def _chair_boxes(rng: np.random.Generator) -> List[Box]:
    w, d, seat = U(rng, 0.38, 0.55), U(rng, 0.38, 0.52), U(rng, 0.42, 0.50)
    st, lt = U(rng, 0.03, 0.07), U(rng, 0.025, 0.05)
    back_h, back_t = U(rng, 0.30, 0.55), U(rng, 0.025, 0.06)
    out = [Box((0, 0, seat - st / 2), (w, d, st))] + legs(w, d, seat - st, lt, slot=int(rng.integers(2)))
    if rng.random() < 0.6:  # solid back
        out.append(Box((0, d / 2 - back_t / 2, seat + back_h / 2), (w, back_t, back_h)))
    else:  # two posts and a top rail
        rail = U(rng, 0.06, 0.14)
        out += [Box((sx * (w / 2 - lt / 2), d / 2 - lt / 2, seat + back_h / 2), (lt, lt, back_h), 1) for sx in (-1, 1)]
        out.append(Box((0, d / 2 - back_t / 2, seat + back_h - rail / 2), (w, back_t, rail)))
    if rng.random() < 0.25:  # arm rests
        ah = U(rng, 0.18, 0.25)
        out += [Box((sx * (w / 2 - 0.02), 0, seat + ah), (0.04, d * 0.8, 0.03), 1) for sx in (-1, 1)]
    return out


def chair(rng: np.random.Generator, H: float) -> Group:
    """'chair': four legs, a seat, a solid or railed back, sometimes arm rests."""
    return Group([Piece("chair", _chair_boxes(rng))])


def _office_chair_boxes(rng: np.random.Generator) -> List[Box]:
    w, d, seat = U(rng, 0.45, 0.58), U(rng, 0.42, 0.52), U(rng, 0.44, 0.54)
    spread, st = U(rng, 0.50, 0.66), U(rng, 0.06, 0.10)
    back_h, back_w = U(rng, 0.35, 0.65), w * U(rng, 0.75, 1.0)
    out = [Box((0, 0, 0.05), (spread, 0.05, 0.04), 1), Box((0, 0, 0.05), (0.05, spread, 0.04), 1),
           Box((0, 0, (seat - st) / 2 + 0.04), (0.05, 0.05, seat - st - 0.08 + 0.04), 1),
           Box((0, 0, seat - st / 2), (w, d, st)),
           Box((0, d / 2 - 0.03, seat + 0.06 + back_h / 2), (back_w, U(rng, 0.04, 0.09), back_h)),
           Box((0, d / 2 - 0.01, seat + 0.03), (0.05, 0.03, 0.08), 1)]
    if rng.random() < 0.6:
        ah = U(rng, 0.18, 0.24)
        for sx in (-1, 1):
            out += [Box((sx * (w / 2 + 0.02), 0, seat + ah), (0.05, d * 0.6, 0.03), 1),
                    Box((sx * (w / 2 + 0.02), 0, seat + ah / 2), (0.025, 0.025, ah), 1)]
    return out


def office_chair(rng: np.random.Generator, H: float) -> Group:
    """'office chair': a cross base, a column, a padded seat and back, often arm rests."""
    return Group([Piece("office chair", _office_chair_boxes(rng))])


def armchair(rng: np.random.Generator, H: float) -> Group:
    """'armchair': an upholstered block seat, back and arms."""
    w, d, seat = U(rng, 0.7, 1.0), U(rng, 0.7, 0.95), U(rng, 0.38, 0.47)
    aw, ah, back_t = U(rng, 0.08, 0.22), U(rng, 0.55, 0.72), U(rng, 0.12, 0.25)
    leg = U(rng, 0.0, 0.15)
    bt = U(rng, 0.75, 1.0)
    out = [Box((0, 0, leg + (seat - leg) / 2), (w, d, seat - leg)),
           Box((0, d / 2 - back_t / 2, leg + (bt - leg) / 2), (w, back_t, bt - leg))]
    out += [Box((sx * (w / 2 - aw / 2), -back_t / 2, leg + (ah - leg) / 2), (aw, d - back_t, ah - leg))
            for sx in (-1, 1)]
    if leg > 0.03:
        out += legs(w, d, leg, 0.04, slot=1)
    return Group([Piece("armchair", out, "armchair")])


def couch(rng: np.random.Generator, H: float) -> Group:
    """'couch' / 'sofa': 2-3 seat cushions, back, optional arms and legs, sometimes a chaise end."""
    w, d, seat = U(rng, 1.4, 2.5), U(rng, 0.8, 1.0), U(rng, 0.38, 0.48)
    back_top, back_t = U(rng, 0.7, 0.95), U(rng, 0.15, 0.28)
    aw, ah = U(rng, 0.08, 0.25), U(rng, 0.5, 0.68)
    leg = U(rng, 0.0, 0.14)
    base_top = seat - U(rng, 0.08, 0.16)
    out = [Box((0, 0, leg + (base_top - leg) / 2), (w, d, base_top - leg)),
           Box((0, d / 2 - back_t / 2, leg + (back_top - leg) / 2), (w, back_t, back_top - leg))]
    arms = rng.random() < 0.85
    inner = w - 2 * aw if arms else w
    if arms:
        out += [Box((sx * (w / 2 - aw / 2), 0, leg + (ah - leg) / 2), (aw, d, ah - leg)) for sx in (-1, 1)]
    n = int(rng.integers(2, 4))
    cw = inner / n
    out += [Box((-inner / 2 + cw * (k + 0.5), -back_t / 2, (base_top + seat) / 2),
                (cw - 0.015, d - back_t, seat - base_top), 0) for k in range(n)]
    if leg > 0.03:
        out += legs(w, d, leg, 0.05, slot=1)
    if rng.random() < 0.25:  # chaise: an extra seat sticking out at one end
        cd, side = U(rng, 0.5, 0.8), float(rng.choice([-1, 1]))
        out.append(Box((side * (w / 2 - cw / 2), -d / 2 - cd / 2, leg + (seat - leg) / 2), (cw, cd, seat - leg)))
    return Group([Piece(str(rng.choice(["couch", "sofa"])), out, "couch")])


def table(rng: np.random.Generator, H: float, kind: str = "table", height=(0.70, 0.78), w_rng=(0.8, 1.8),
          d_rng=(0.6, 1.0)) -> Group:
    """'table' (and its kinds 'dining table', 'coffee table', 'end table'): a top on four legs, a
    pedestal or a trestle; optional apron."""
    w, d, h = U(rng, *w_rng), U(rng, *d_rng), U(rng, *height)
    tt, lt = U(rng, 0.02, 0.06), U(rng, 0.03, 0.08)
    out = [Box((0, 0, h - tt / 2), (w, d, tt))]
    style = rng.random()
    if style < 0.65:
        inset = U(rng, 0.0, 0.08)
        out += legs(w, d, h - tt, lt, inset=inset, slot=int(rng.integers(2)))
        if rng.random() < 0.4:
            ap = U(rng, 0.05, 0.1)
            out += [Box((0, sy * (d / 2 - inset - lt / 2), h - tt - ap / 2), (w - 2 * inset, 0.02, ap), 1)
                    for sy in (-1, 1)]
    elif style < 0.85:  # pedestal
        out += [Box((0, 0, (h - tt) / 2), (lt * 1.5, lt * 1.5, h - tt), 1),
                Box((0, 0, 0.02), (min(w, d) * 0.6, min(w, d) * 0.6, 0.04), 1)]
    else:  # trestle: two end panels
        out += [Box((sx * (w / 2 - 0.12), 0, (h - tt) / 2), (0.04, d * 0.8, h - tt), 1) for sx in (-1, 1)]
    if kind == "coffee table" and rng.random() < 0.5:  # lower shelf
        out.append(Box((0, 0, U(rng, 0.08, 0.15)), (w * 0.9, d * 0.9, 0.02)))
    return Group([Piece(kind, out, "table")])


def coffee_table(rng, H):
    """'coffee table': a low table."""
    return table(rng, H, "coffee table", (0.35, 0.48), (0.7, 1.3), (0.45, 0.8))


def end_table(rng, H):
    """'end table': a small side table."""
    return table(rng, H, str(rng.choice(["end table", "side table"])), (0.45, 0.65), (0.35, 0.6), (0.35, 0.6))


def dining_set(rng: np.random.Generator, H: float) -> Group:
    """A 'dining table' (or 'table') with 2-6 identical chairs pushed up to it, facing it."""
    g = table(rng, H, str(rng.choice(["dining table", "table"])), (0.72, 0.78), (0.9, 1.8), (0.7, 1.0))
    boxes = g.pieces[0].boxes
    top = boxes[0]
    w, d = top.size[0], top.size[1]
    cb = _chair_boxes(rng)
    cd = _depth(cb) + 0.04  # 2 cm clear of the table on both sides
    pieces = [g.pieces[0]]
    n_side = 1 if w < 1.2 else 2
    # chair local front is -y; quarter turns: 0 faces -y (behind the table at +y)
    spots = [(0, (x, d / 2 + cd / 2)) for x in np.linspace(-w / 4, w / 4, n_side) * (n_side > 1)]
    spots += [(2, (x, -d / 2 - cd / 2)) for x in np.linspace(-w / 4, w / 4, n_side) * (n_side > 1)]
    spots += [(1, (-w / 2 - cd / 2, 0.0)), (3, (w / 2 + cd / 2, 0.0))]
    keep = rng.permutation(len(spots))[:int(rng.integers(2, len(spots) + 1))]
    for k in sorted(keep):
        q, (x, y) = spots[k]
        pieces.append(Piece("chair", turn(cb, q, (x, y, 0.0)), share="chairs"))
    return Group(pieces)


def desk(rng: np.random.Generator, H: float, with_chair: bool = True) -> Group:
    """'desk': a top on legs or side panels, optional modesty panel and drawer pedestal; usually an
    'office chair' in front and a 'monitor' on it."""
    w, d, h = U(rng, 1.0, 1.8), U(rng, 0.55, 0.8), U(rng, 0.71, 0.77)
    tt = U(rng, 0.025, 0.05)
    out = [Box((0, 0, h - tt / 2), (w, d, tt))]
    if rng.random() < 0.5:
        pt = U(rng, 0.02, 0.05)
        out += [Box((sx * (w / 2 - pt / 2), 0, (h - tt) / 2), (pt, d, h - tt), 1) for sx in (-1, 1)]
    else:
        out += legs(w, d, h - tt, U(rng, 0.03, 0.06), slot=1)
    if rng.random() < 0.5:
        out.append(Box((0, d / 2 - 0.03, h - tt - 0.25), (w * 0.9, 0.02, U(rng, 0.25, 0.45)), 1))
    if rng.random() < 0.5:  # drawer pedestal
        pw = U(rng, 0.35, 0.45)
        side = float(rng.choice([-1, 1]))
        out += [Box((side * (w / 2 - pw / 2 - 0.03), 0, (h - tt) / 2), (pw, d * 0.9, h - tt - 0.02))]
    pieces = [Piece("desk", out)]
    if rng.random() < 0.6:
        mw, mh = U(rng, 0.45, 0.7), U(rng, 0.28, 0.42)
        pieces.append(Piece("monitor", [Box((0, d / 4, h + 0.01), (0.2, 0.15, 0.02), 1),
                                        Box((0, d / 4 + 0.02, h + 0.1), (0.04, 0.03, 0.2), 1),
                                        Box((0, d / 4, h + 0.12 + mh / 2), (mw, U(rng, 0.02, 0.05), mh))],
                            "dark screen"))
    if with_chair:
        cb, raw = (_office_chair_boxes(rng), "office chair") if rng.random() < 0.8 else (_chair_boxes(rng), "chair")
        y = -d / 2 - _depth(cb) / 2 - U(rng, 0.03, 0.2)
        pieces.append(Piece(raw, turn(cb, 2, (U(rng, -w / 5, w / 5), y, 0.0))))
    return Group(pieces)


def bed(rng: np.random.Generator, H: float) -> Group:
    """'bed': frame, mattress, headboard, 1-3 pillows, optional footboard; single to king size."""
    w, L = U(rng, 0.9, 1.9), U(rng, 1.9, 2.2)
    fh, mt = U(rng, 0.15, 0.4), U(rng, 0.15, 0.3)
    top = fh + mt
    hb_h, hb_t = U(rng, 0.25, 0.8), U(rng, 0.04, 0.1)
    out = [Box((0, 0, fh / 2), (w, L, fh), 1), Box((0, -0.02, fh + mt / 2), (w - 0.04, L - hb_t - 0.04, mt)),
           Box((0, L / 2 - hb_t / 2, (top + hb_h) / 2), (w, hb_t, top + hb_h), 1)]
    if rng.random() < 0.5:  # blanket over the foot end
        bl = U(rng, 0.5, 0.8) * L
        out.append(Box((0, -L / 2 + bl / 2, top + 0.02), (w + 0.02, bl, 0.04), 2))
    n = 1 if w < 1.2 else int(rng.integers(2, 4))
    pw = (w - 0.1) / n
    out += [Box((-w / 2 + 0.05 + pw * (k + 0.5), L / 2 - hb_t - 0.22, top + 0.06), (pw - 0.04, 0.35, 0.12), 3)
            for k in range(n)]
    if rng.random() < 0.3:
        out.append(Box((0, -L / 2 + 0.03, (top + 0.1) / 2), (w, 0.06, top + 0.1), 1))
    return Group([Piece("bed", out)])


def nightstand(rng: np.random.Generator, H: float) -> Group:
    """'nightstand' (nyu40 night stand, not a ScanNet-20 class): a small cabinet with drawer fronts."""
    w, d, h = U(rng, 0.35, 0.6), U(rng, 0.3, 0.45), U(rng, 0.45, 0.7)
    out = [Box((0, 0, h / 2), (w, d, h))]
    n = int(rng.integers(1, 4))
    for k in range(n):
        z = 0.05 + (h - 0.1) * (k + 0.5) / n
        out += [Box((0, -d / 2 - 0.01, z), (w - 0.06, 0.02, (h - 0.1) / n - 0.02)),
                Box((0, -d / 2 - 0.03, z), (0.1, 0.02, 0.02), 1)]
    return Group([Piece("nightstand", out)])


def floor_lamp(rng: np.random.Generator, H: float) -> Group:
    """'lamp' (a floor lamp): a base plate, one thin pole 2-3 cm thick and a shade."""
    ph, pt = U(rng, 1.2, 1.6), U(rng, 0.02, 0.03)
    sw, sh = U(rng, 0.25, 0.45), U(rng, 0.2, 0.35)
    return Group([Piece("lamp", [Box((0, 0, 0.015), (0.28, 0.28, 0.03), 1), Box((0, 0, 0.03 + ph / 2), (pt, pt, ph), 1),
                                 Box((0, 0, 0.03 + ph + sh / 2 - 0.05), (sw, sw, sh))], "otherfurniture")])


def coat_rack(rng: np.random.Generator, H: float) -> Group:
    """'coat rack': a thin pole with 4 thin arms near the top on a cross-shaped foot, sometimes 'clothes' on it."""
    h, pt = U(rng, 1.6, 1.85), U(rng, 0.025, 0.04)
    out = [Box((0, 0, h / 2), (pt, pt, h)), Box((0, 0, 0.02), (0.45, 0.04, 0.04)), Box((0, 0, 0.02), (0.04, 0.45, 0.04))]
    za = h - U(rng, 0.1, 0.2)
    out += [Box((0.08, 0, za), (0.16, 0.015, 0.015)), Box((-0.08, 0, za), (0.16, 0.015, 0.015)),
            Box((0, 0.08, za), (0.015, 0.16, 0.015)), Box((0, -0.08, za), (0.015, 0.16, 0.015))]
    pieces = [Piece("coat rack", out, "otherfurniture")]
    if rng.random() < 0.6:
        ch = U(rng, 0.5, 0.9)
        pieces.append(Piece("clothes", [Box((0.17, 0, za - ch / 2), (0.06, U(rng, 0.3, 0.45), ch))], "soft furniture"))
    return Group(pieces)
