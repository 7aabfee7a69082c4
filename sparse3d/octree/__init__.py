"""The octree backend: O-CNN's full octree as a second geometry provider of the sparse engine.

    from sparse3d.octree import Octree, OctreeConv
    octree, leaf_rows = Octree.from_points(points, depth=6, normals=normals)   # points in [-1, 1]^3
    conv = OctreeConv(3, 32)                                  # weights [27, 3, 32], as sparse3d.nn.Conv3d
    y = conv(octree.features[6], octree, 6)                   # [N_6, 32]
    x = octree.to_sparse(6, y)                                # the same depth as a SparseTensor

Structure (build in csrc/octree): :mod:`sparse3d.octree.structure`; neighbour tables and kernel maps:
:mod:`sparse3d.octree.tables`; ops with autograd: :mod:`sparse3d.octree.functional`; modules:
:mod:`sparse3d.octree.nn`. See docs/octree.md.
"""
from sparse3d.octree.functional import (octree_avg_pool, octree_conv, octree_deconv, octree_max_pool,
                                        octree_max_unpool, octree_upsample)
from sparse3d.octree.nn import (OctreeAvgPool, OctreeConv, OctreeDeconv, OctreeMaxPool, OctreeMaxUnpool,
                                OctreeUpsample)
from sparse3d.octree.structure import Octree

__all__ = ["Octree", "OctreeConv", "OctreeDeconv", "OctreeMaxPool", "OctreeAvgPool", "OctreeMaxUnpool",
           "OctreeUpsample", "octree_conv", "octree_deconv", "octree_max_pool", "octree_avg_pool",
           "octree_max_unpool", "octree_upsample"]
