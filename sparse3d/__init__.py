"""sparse3d: deep learning on sparse 3D data of real scenes.

    import sparse3d as s3d
    x = s3d.SparseTensor(coords, feats)          # coords int32 [N, 4] (b, x, y, z), feats [N, C]
    y = s3d.nn.SubMConv3d(16, 32, 3)(x)
"""
from sparse3d import nn, ops
from sparse3d.coords import CoordinateManager
from sparse3d.kernel_map import KernelMap
from sparse3d.tensor import SparseTensor

__version__ = "0.1.0"
__all__ = ["SparseTensor", "CoordinateManager", "KernelMap", "nn", "ops", "__version__"]
