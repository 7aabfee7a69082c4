"""Storage and appliances with per-instance shapes (builders `f(rng, H) -> Group`, see `furniture`):
cabinets, file cabinets, wardrobes, bookshelves with books, refrigerators, tv stands, ottomans, trash cans."""
from __future__ import annotations

from typing import List

import numpy as np

from .parts import U, Box, Group, Piece, legs


def _fronts(w: float, d: float, h: float, z0: float, n_cols: int, n_rows: int, handle: str) -> List[Box]:
    """Door / drawer fronts on the -y face of a w x d x h body starting at z0, with handles."""
    out = []
    cw, rh = w / n_cols, h / n_rows
    for i in range(n_cols):
        for j in range(n_rows):
            x, z = -w / 2 + cw * (i + 0.5), z0 + rh * (j + 0.5)
            out.append(Box((x, -d / 2 - 0.009, z), (cw - 0.012, 0.018, rh - 0.012)))
            if handle == "bar":
                out.append(Box((x, -d / 2 - 0.028, z + rh * 0.3 * (n_rows == 1)), (min(0.14, cw * 0.5), 0.02, 0.02), 1))
            elif handle == "vertical":
                hx = x + (cw / 2 - 0.05) * (1 if i % 2 == 0 else -1)
                out.append(Box((hx, -d / 2 - 0.028, z), (0.02, 0.02, min(0.2, rh * 0.5)), 1))
    return out


def cabinet(rng: np.random.Generator, H: float, raw: str = "cabinet", h_rng=(0.6, 1.3)) -> Group:
    """'cabinet' (also 'kitchen cabinet', 'bathroom cabinet'): a body with 1-3 door columns, optional
    drawer row, plinth or legs."""
    w, d, h = U(rng, 0.45, 1.4), U(rng, 0.35, 0.6), U(rng, *h_rng)
    plinth = U(rng, 0.0, 0.12)
    out = [Box((0, 0, plinth + (h - plinth) / 2), (w, d, h - plinth))]
    if plinth > 0.03:
        out += legs(w, d, plinth, 0.04, slot=1) if rng.random() < 0.5 else [
            Box((0, 0.02, plinth / 2), (w - 0.04, d - 0.04, plinth), 1)]
    handle = str(rng.choice(["bar", "vertical", "none"]))
    n_cols = max(1, min(3, int(round(w / U(rng, 0.35, 0.6)))))
    if rng.random() < 0.4:
        dh = U(rng, 0.12, 0.2)
        out += _fronts(w, d, h - plinth - dh, plinth, n_cols, 1, handle)
        out += _fronts(w, d, dh, h - dh, n_cols, 1, "bar" if handle != "none" else "none")
    else:
        out += _fronts(w, d, h - plinth, plinth, n_cols, 1, handle)
    return Group([Piece(raw, out, "cabinet")])


def file_cabinet(rng: np.random.Generator, H: float) -> Group:
    """'file cabinet': 2-4 stacked drawers."""
    w, d, h = U(rng, 0.38, 0.9), U(rng, 0.45, 0.65), U(rng, 0.55, 1.35)
    n = int(rng.integers(2, 5))
    out = [Box((0, 0, h / 2), (w, d, h))] + _fronts(w, d, h - 0.02, 0.01, 1, n, "bar")
    return Group([Piece(str(rng.choice(["file cabinet", "file cabinets"])), out, "cabinet")])


def wardrobe(rng: np.random.Generator, H: float) -> Group:
    """'wardrobe' / 'wardrobe closet' (nyu40 otherfurniture): a tall two- or three-door cabinet."""
    w, d, h = U(rng, 0.8, 1.6), U(rng, 0.5, 0.65), min(H - 0.15, U(rng, 1.7, 2.2))
    out = [Box((0, 0, h / 2), (w, d, h))] + _fronts(w, d, h - 0.1, 0.08, int(rng.integers(2, 4)), 1, "vertical")
    if rng.random() < 0.5:
        out.append(Box((0, 0, h + 0.015), (w + 0.04, d + 0.02, 0.03), 1))
    return Group([Piece(str(rng.choice(["wardrobe", "wardrobe closet"])), out, "otherfurniture")])


def bookshelf(rng: np.random.Generator, H: float) -> Group:
    """'bookshelf' / 'bookshelves': sides, back, 3-7 shelves, runs of books (accent colours)."""
    w, d, h = U(rng, 0.5, 1.3), U(rng, 0.25, 0.42), min(H - 0.15, U(rng, 0.9, 2.2))
    st, sd = U(rng, 0.015, 0.04), U(rng, 0.015, 0.04)
    n = max(2, int(round(h / U(rng, 0.3, 0.42))))
    out = [Box((sx * (w / 2 - sd / 2), 0, h / 2), (sd, d, h)) for sx in (-1, 1)]
    out.append(Box((0, d / 2 - 0.01, h / 2), (w - 2 * sd, 0.02, h)))
    zs = np.linspace(0.03, h - st / 2, n + 1)
    iw = w - 2 * sd
    for k, z in enumerate(zs):
        out.append(Box((0, 0, z), (iw, d, st)))
        if k == n or rng.random() < 0.2:
            continue
        gap = zs[k + 1] - z - st
        x = -iw / 2 + U(rng, 0.0, 0.3) * iw
        stop = iw / 2 - U(rng, 0.0, 0.3) * iw
        while x < stop - 0.05:
            bw, bh, bd = U(rng, 0.02, 0.06), gap * U(rng, 0.55, 0.9), d * U(rng, 0.6, 0.9)
            out.append(Box((x + bw / 2, d / 2 - 0.02 - bd / 2, z + st / 2 + bh / 2), (bw, bd, bh),
                           2 + int(rng.integers(4))))
            x += bw + (0.0 if rng.random() < 0.9 else U(rng, 0.05, 0.2))
    return Group([Piece(str(rng.choice(["bookshelf", "bookshelves"])), out, "bookshelf")])


def refrigerator(rng: np.random.Generator, H: float, mini: bool = False) -> Group:
    """'refrigerator' (full size: top/bottom freezer or side-by-side doors with handles) or
    'mini fridge'."""
    if mini:
        w, d, h = U(rng, 0.45, 0.6), U(rng, 0.45, 0.6), U(rng, 0.5, 0.9)
    else:
        w, d, h = U(rng, 0.55, 0.92), U(rng, 0.6, 0.78), min(H - 0.2, U(rng, 1.5, 1.95))
    body = [Box((0, 0, h / 2), (w, d, h - 0.0))]
    if mini or rng.random() < 0.3:
        body += _fronts(w, d, h - 0.04, 0.02, 1 if (mini or w < 0.8) else 2, 1, "vertical")
    else:
        split = U(rng, 0.28, 0.4) if rng.random() < 0.5 else U(rng, 0.6, 0.7)
        body += _fronts(w, d, h * split, 0.02, 1, 1, "vertical") + _fronts(w, d, h * (1 - split) - 0.04,
                                                                            h * split + 0.02, 1, 1, "vertical")
    return Group([Piece("mini fridge" if mini else "refrigerator", body, "refrigerator")])


def tv_stand(rng: np.random.Generator, H: float) -> Group:
    """'tv stand' (otherfurniture): a low long unit with an open shelf; usually a 'tv' on it."""
    w, d, h = U(rng, 0.9, 1.9), U(rng, 0.35, 0.5), U(rng, 0.35, 0.6)
    t = U(rng, 0.02, 0.04)
    out = [Box((0, 0, h - t / 2), (w, d, t)), Box((0, 0, 0.04), (w, d, 0.08)),
           Box((0, d / 2 - 0.01, h / 2), (w, 0.02, h))]
    out += [Box((sx * (w / 2 - t / 2), 0, h / 2), (t, d, h)) for sx in (-1, 1)]
    out.append(Box((0, 0, h * U(rng, 0.4, 0.6)), (w - 2 * t, d, t)))
    pieces = [Piece("tv stand", out, "otherfurniture")]
    if rng.random() < 0.8:
        tw = min(w, U(rng, 0.8, 1.4))
        th = tw * U(rng, 0.5, 0.6)
        pieces.append(Piece("tv", [Box((0, 0, h + 0.01), (0.3, 0.2, 0.02), 1),
                                   Box((0, 0.03, h + 0.08), (0.05, 0.03, 0.14), 1),
                                   Box((0, 0.0, h + 0.12 + th / 2), (tw, U(rng, 0.03, 0.08), th))], "dark screen"))
    return Group(pieces)


def ottoman(rng: np.random.Generator, H: float) -> Group:
    """'ottoman' / 'footstool' / 'bench' (otherfurniture): an upholstered block or a bench on legs."""
    if rng.random() < 0.3:
        w, d, h = U(rng, 0.9, 1.6), U(rng, 0.3, 0.45), U(rng, 0.4, 0.5)
        return Group([Piece("bench", [Box((0, 0, h - 0.025), (w, d, 0.05))] + legs(w, d, h - 0.05, 0.05, slot=1),
                            "otherfurniture")])
    w, d, h = U(rng, 0.4, 0.9), U(rng, 0.4, 0.7), U(rng, 0.33, 0.46)
    leg = U(rng, 0.0, 0.1)
    out = [Box((0, 0, leg + (h - leg) / 2), (w, d, h - leg))] + (legs(w, d, leg, 0.04, slot=1) if leg > 0.03 else [])
    return Group([Piece(str(rng.choice(["ottoman", "footstool"])), out, "soft furniture")])


def trash_can(rng: np.random.Generator, H: float) -> Group:
    """'trash can' / 'trash bin' / 'recycling bin' (otherfurniture): an open-topped bin."""
    w, d, h = U(rng, 0.22, 0.45), U(rng, 0.22, 0.4), U(rng, 0.28, 0.75)
    t = 0.015
    out = [Box((0, 0, 0.01), (w, d, 0.02)), Box((0, -d / 2 + t / 2, h / 2), (w, t, h)),
           Box((0, d / 2 - t / 2, h / 2), (w, t, h)), Box((-w / 2 + t / 2, 0, h / 2), (t, d - 2 * t, h)),
           Box((w / 2 - t / 2, 0, h / 2), (t, d - 2 * t, h))]
    if rng.random() < 0.4:
        out.append(Box((0, 0, h + 0.015), (w + 0.01, d + 0.01, 0.03), 1))
    return Group([Piece(str(rng.choice(["trash can", "trash bin", "recycling bin"])), out, "trash can")])


def open_shelf(rng: np.random.Generator, H: float) -> Group:
    """'shelf' (nyu40 shelves): an open shelving unit without back or doors - two side boards or four thin
    posts, 3-5 thin shelves - holding runs of 'books' and the odd 'box'; the wall shows through it."""
    w, d, h = U(rng, 0.6, 1.3), U(rng, 0.25, 0.4), min(H - 0.2, U(rng, 0.8, 1.9))
    st = U(rng, 0.012, 0.025)
    posts = rng.random() < 0.5
    if posts:  # metal frame: four posts 2-3 cm thick
        pt = U(rng, 0.02, 0.03)
        frame = [Box((sx * (w / 2 - pt / 2), sy * (d / 2 - pt / 2), h / 2), (pt, pt, h), 1)
                 for sx in (-1, 1) for sy in (-1, 1)]
    else:
        pt = st
        frame = [Box((sx * (w / 2 - pt / 2), 0, h / 2), (pt, d, h)) for sx in (-1, 1)]
    n = int(rng.integers(3, 6))
    zs = np.linspace(U(rng, 0.05, 0.25), h - st / 2, n)
    iw = w - 2 * pt
    frame += [Box((0, 0, z), (iw, d, st)) for z in zs]
    books: List[Box] = []
    boxes: List[Box] = []
    for k in range(n - 1):
        gap = zs[k + 1] - zs[k] - st
        z0 = zs[k] + st / 2
        x, stop = -iw / 2 + U(rng, 0.0, 0.4) * iw, iw / 2 - U(rng, 0.0, 0.4) * iw
        while x < stop - 0.05:
            if rng.random() < 0.15 and gap > 0.15:  # a storage box
                bw = min(stop - x, U(rng, 0.15, 0.3))
                bh, bd = gap * U(rng, 0.4, 0.8), d * U(rng, 0.6, 0.9)
                boxes.append(Box((x + bw / 2, d / 2 - 0.02 - bd / 2, z0 + bh / 2), (bw, bd, bh)))
                x += bw + U(rng, 0.02, 0.1)
                continue
            bw, bh, bd = U(rng, 0.015, 0.05), gap * U(rng, 0.5, 0.85), d * U(rng, 0.55, 0.85)
            books.append(Box((x + bw / 2, d / 2 - 0.02 - bd / 2, z0 + bh / 2), (bw, bd, bh), 2 + int(rng.integers(4))))
            x += bw + (0.0 if rng.random() < 0.85 else U(rng, 0.05, 0.25))
    pieces = [Piece("shelf", frame, "otherfurniture" if posts else "bookshelf")]
    if books:
        pieces.append(Piece("books", books, "bookshelf"))
    if boxes:
        pieces.append(Piece("box", boxes, "cabinet"))
    return Group(pieces)


def floor_clutter(rng: np.random.Generator, H: float) -> Group:
    """Things left on the floor: a stack of 1-3 'box'es, a 'bag', a 'laundry basket' (open, thin walls) or a
    pair of 'shoes'."""
    kind = rng.random()
    if kind < 0.35:
        out, z, w0, d0 = [], 0.0, U(rng, 0.25, 0.6), U(rng, 0.2, 0.45)
        for _ in range(int(rng.integers(1, 4))):
            bh = U(rng, 0.12, 0.4)
            out.append(Box((U(rng, -0.03, 0.03), U(rng, -0.03, 0.03), z + bh / 2), (w0, d0, bh)))
            z += bh
            w0, d0 = w0 * U(rng, 0.6, 1.0), d0 * U(rng, 0.6, 1.0)
        return Group([Piece("box", out, "cabinet")])
    if kind < 0.6:
        w, d, h = U(rng, 0.3, 0.5), U(rng, 0.15, 0.25), U(rng, 0.3, 0.45)
        return Group([Piece("bag", [Box((0, 0, h / 2), (w, d, h)), Box((0, 0, h + 0.08), (w * 0.5, 0.02, 0.02), 1)],
                            "soft furniture")])
    if kind < 0.8:
        w, d, h, t = U(rng, 0.4, 0.6), U(rng, 0.3, 0.45), U(rng, 0.25, 0.45), 0.012
        out = [Box((0, 0, 0.01), (w, d, 0.02)), Box((0, -d / 2 + t / 2, h / 2), (w, t, h)),
               Box((0, d / 2 - t / 2, h / 2), (w, t, h)), Box((-w / 2 + t / 2, 0, h / 2), (t, d - 2 * t, h)),
               Box((w / 2 - t / 2, 0, h / 2), (t, d - 2 * t, h))]
        if rng.random() < 0.6:  # clothes heaped inside
            out.append(Box((0, 0, h * 0.45), (w - 0.05, d - 0.05, h * 0.8), 1))
        return Group([Piece("laundry basket", out, "trash can")])
    sw, sl, sh = U(rng, 0.08, 0.11), U(rng, 0.25, 0.31), U(rng, 0.08, 0.14)
    return Group([Piece("shoes", [Box((sx * (sw / 2 + 0.02), 0, sh / 2), (sw, sl, sh)) for sx in (-1, 1)],
                        "soft furniture")])


def tabletop_item(rng: np.random.Generator) -> Piece:
    """A small thing for a table, desk or counter top (local frame, resting on z = 0, centred on x = y = 0):
    'books' (a stack), 'box', 'bottle' (with a thin neck), 'cup', 'paper' (a 5 mm pile) or a table 'lamp'
    (thin pole)."""
    kind = rng.random()
    if kind < 0.25:
        out, z = [], 0.0
        for _ in range(int(rng.integers(1, 5))):
            t = U(rng, 0.015, 0.05)
            out.append(Box((U(rng, -0.02, 0.02), U(rng, -0.02, 0.02), z + t / 2),
                           (U(rng, 0.15, 0.25), U(rng, 0.2, 0.3), t), 2 + int(rng.integers(4))))
            z += t
        return Piece("books", out, "bookshelf")
    if kind < 0.45:
        w, d, h = U(rng, 0.1, 0.35), U(rng, 0.1, 0.3), U(rng, 0.06, 0.3)
        return Piece("box", [Box((0, 0, h / 2), (w, d, h))], "cabinet")
    if kind < 0.6:
        s, h = U(rng, 0.055, 0.085), U(rng, 0.15, 0.25)
        return Piece("bottle", [Box((0, 0, h / 2), (s, s, h)), Box((0, 0, h + 0.035), (0.025, 0.025, 0.07), 1)],
                     "trash can")
    if kind < 0.75:
        s, h = U(rng, 0.07, 0.09), U(rng, 0.08, 0.12)
        return Piece("cup", [Box((0, 0, h / 2), (s, s, h))], "sink")
    if kind < 0.85:
        return Piece("paper", [Box((0, 0, 0.0025), (0.21, 0.297, 0.005))], "whiteboard")
    ph = U(rng, 0.25, 0.4)
    return Piece("lamp", [Box((0, 0, 0.01), (0.14, 0.14, 0.02), 1), Box((0, 0, 0.02 + ph / 2), (0.02, 0.02, ph), 1),
                          Box((0, 0, 0.02 + ph + 0.09), (0.24, 0.24, 0.18))], "otherfurniture")
