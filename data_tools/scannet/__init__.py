"""Readers and writers of the ScanNet formats (.sens, PLY meshes, labels) and RGB-D folders."""
from .labels import (IGNORE, SCANNET20_NAMES, SCANNET20_NYU40_IDS, LabelMap, nyu40_to_scannet20, read_aggregation,
                     read_segs, vertex_instances_and_labels)
from .ply import PlyFormatError, PlyMesh, read_ply, write_ply
from .rgbd_folder import RGBDFolder
from .sens import SensFormatError, SensFrame, SensHeader, SensReader, write_sens
from .scene import ScanNetScene, find_scenes
