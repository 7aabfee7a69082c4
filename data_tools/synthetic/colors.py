"""Per-instance colours drawn from class-dependent distributions that overlap between classes.

Every class (colour key, usually the raw category) has a list of base materials for its main
surfaces (slot 0) and for its secondary parts (slot 1: legs, frames, handles); slot 2 is a free
accent (book spines, picture canvases, pillows) drawn from the whole palette. An instance picks one
material per slot, then perturbs it (per-channel N(0, 12), brightness x U(0.85, 1.12)). Many
materials are shared (white walls, doors, toilets, fridges; wooden tables, desks, doors, floors),
so colour helps but never decides the class.
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

MATERIALS: Dict[str, Tuple[int, int, int]] = {
    "white": (232, 232, 228), "offwhite": (236, 228, 210), "cream": (225, 212, 180), "lightgrey": (190, 190, 188),
    "grey": (135, 135, 135), "darkgrey": (75, 75, 80), "black": (38, 38, 40), "steel": (170, 174, 178),
    "lightwood": (196, 160, 112), "wood": (150, 105, 62), "darkwood": (92, 62, 40), "beige": (200, 182, 150),
    "brown": (110, 75, 50), "navy": (45, 55, 95), "blue": (70, 100, 160), "paleblue": (190, 205, 220),
    "red": (150, 50, 45), "green": (80, 120, 75), "palegreen": (200, 215, 190), "olive": (120, 120, 70),
    "yellow": (210, 180, 90), "teal": (60, 130, 130), "pink": (210, 150, 160), "orange": (200, 120, 60),
    "glass": (150, 175, 190), "darkglass": (80, 95, 110), "sky": (185, 210, 235),
}

_WOODS = ("lightwood", "wood", "darkwood")
_FABRICS = ("grey", "darkgrey", "beige", "navy", "blue", "red", "green", "brown", "cream", "olive", "teal")
_METAL = ("steel", "black", "grey")

# colour key -> (slot-0 materials, slot-1 materials)
CLASS_MATERIALS: Dict[str, Tuple[Sequence[str], Sequence[str]]] = {
    "wall": (("white", "offwhite", "cream", "lightgrey", "beige", "paleblue", "palegreen"), ("white",)),
    "floor": (_WOODS + ("grey", "beige", "lightgrey", "darkgrey", "brown"), ("grey",)),
    "door": (("white", "offwhite", "lightgrey") + _WOODS + ("grey",), ("white", "steel", "wood", "offwhite")),
    "window": (("glass", "darkglass", "sky", "paleblue", "lightgrey"), ("white", "offwhite", "darkgrey", "wood")),
    "picture": (("black", "darkwood", "wood", "white", "steel", "yellow", "lightwood"), ("black", "wood", "white")),
    "curtain": (("white", "offwhite", "cream", "beige", "grey", "navy", "blue", "red", "green", "olive", "teal",
                 "pink", "yellow"), ("steel",)),
    "shower curtain": (("white", "offwhite", "paleblue", "blue", "teal", "pink", "grey", "cream", "yellow"),
                       ("steel",)),
    "bed": (("white", "offwhite", "cream", "beige", "blue", "navy", "grey", "red", "green", "pink"),
            _WOODS + ("white", "grey", "black")),
    "chair": (_WOODS + ("black", "grey", "blue", "red", "green", "white", "darkgrey"), _WOODS + _METAL),
    "office chair": (("black", "darkgrey", "grey", "blue", "navy", "red"), _METAL),
    "armchair": (_FABRICS, _WOODS + ("black",)),
    "couch": (_FABRICS, _WOODS + ("black",)),
    "table": (_WOODS + ("white", "black", "grey", "lightgrey"), _WOODS + _METAL + ("white",)),
    "desk": (_WOODS + ("white", "grey", "black", "lightgrey"), _METAL + _WOODS),
    "bookshelf": (_WOODS + ("white", "black", "grey"), _WOODS),
    "cabinet": (("white", "offwhite", "lightgrey", "grey", "darkgrey") + _WOODS, ("steel", "black", "wood", "white")),
    "kitchen counter": (("white", "black", "darkgrey", "grey", "beige", "lightwood", "wood", "cream"), ("grey",)),
    "bathroom counter": (("white", "black", "darkgrey", "grey", "beige", "cream", "offwhite"), ("grey",)),
    "sink": (("white", "steel", "offwhite", "lightgrey"), ("steel",)),
    "refrigerator": (("white", "steel", "black", "lightgrey", "offwhite"), _METAL),
    "toilet": (("white", "offwhite", "cream", "white", "lightgrey"), ("white", "steel")),
    "bathtub": (("white", "offwhite", "cream", "lightgrey"), ("steel", "white")),
    "otherfurniture": (_WOODS + ("white", "grey", "black", "darkgrey"), _WOODS + _METAL),
    "soft furniture": (_FABRICS, _WOODS + ("black",)),
    "trash can": (("grey", "black", "steel", "white", "blue", "green", "darkgrey"), _METAL),
    "nightstand": (_WOODS + ("white", "grey"), _METAL + _WOODS),
    "mirror": (("glass", "lightgrey", "steel", "sky"), ("white", "black", "wood", "steel")),
    "whiteboard": (("white", "offwhite"), ("steel", "grey")),
    "dark screen": (("black", "darkgrey", "darkglass"), ("black", "darkgrey", "grey")),
}


def _perturb(rng: np.random.Generator, base: Sequence[int], spread: float = 12.0) -> np.ndarray:
    c = np.asarray(base, float) * rng.uniform(0.85, 1.12) + rng.normal(0, spread, 3)
    return np.clip(np.round(c), 0, 255).astype(np.uint8)


def draw_colors(rng: np.random.Generator, key: str, n_accent: int = 0) -> np.ndarray:
    """uint8 [2 + n_accent, 3]: the instance's slot-0 and slot-1 colours of class `key` (a key of
    CLASS_MATERIALS), then n_accent free accent colours (slots 2, 3, ...)."""
    if key not in CLASS_MATERIALS:
        raise KeyError(f"colour key must be one of {sorted(CLASS_MATERIALS)}, got {key!r}")
    main, second = CLASS_MATERIALS[key]
    out = [_perturb(rng, MATERIALS[main[int(rng.integers(len(main)))]]),
           _perturb(rng, MATERIALS[second[int(rng.integers(len(second)))]])]
    names = list(MATERIALS)
    for _ in range(n_accent):
        if rng.random() < 0.5:
            out.append(_perturb(rng, MATERIALS[names[int(rng.integers(len(names)))]], 20.0))
        else:
            out.append(rng.integers(25, 235, 3).astype(np.uint8))
    return np.stack(out)


def vertex_noise(rng: np.random.Generator, colors: np.ndarray, std: float = 5.0) -> np.ndarray:
    """uint8 [V,3]: `colors` [V,3] with a per-vertex brightness noise N(0, std) (surface texture)."""
    c = np.asarray(colors, float) + rng.normal(0, std, (len(colors), 1))
    return np.clip(np.round(c), 0, 255).astype(np.uint8)
