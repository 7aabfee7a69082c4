"""Functional sparse ops: each takes and returns SparseTensors (shapes in each docstring)."""
from sparse3d.ops.backproject import Backprojection, backproject, backproject_torch
from sparse3d.ops.conv import conv3d, conv_transpose3d, generative_conv_transpose3d
from sparse3d.ops.pool import avg_pool3d, global_pool, max_pool3d
from sparse3d.ops.prune import prune
from sparse3d.ops.union import add, align, cat, lookup
from sparse3d.ops.view_selection import ViewSelection, select_views, view_coverage

__all__ = ["conv3d", "conv_transpose3d", "generative_conv_transpose3d", "max_pool3d", "avg_pool3d",
           "global_pool", "prune", "add", "cat", "lookup", "align", "backproject", "backproject_torch",
           "Backprojection", "select_views", "view_coverage", "ViewSelection"]
