"""`sparse3d view segmentation` with the ScanNet-20 palette (vis takes the palette from its caller:
it may not import data_tools)."""
from __future__ import annotations

from data_tools.scannet.labels import IGNORE, SCANNET20_COLORS, SCANNET20_NAMES, SCANNET20_NYU40_IDS
from sparse3d.vis.label_cli import register_segmentation
from sparse3d.vis.labels import Palette

SCANNET20_PALETTE = Palette(SCANNET20_COLORS, SCANNET20_NAMES, ignore=IGNORE, class_ids=SCANNET20_NYU40_IDS)


def register_view(vsub) -> None:
    """Add `sparse3d view segmentation` to the `view` group's sub-parsers."""
    register_segmentation(vsub, SCANNET20_PALETTE)
