"""Per-voxel modules: any torch module applied to the features ``[N, C]``, coordinates unchanged."""
from __future__ import annotations

from torch import nn

from sparse3d.tensor import SparseTensor


class FeatureModule(nn.Module):
    """Wraps a torch module ``f`` acting on ``[N, C]`` rows: returns ``x.replace(f(x.feats))``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: SparseTensor) -> SparseTensor:
        return x.replace(self.module(x.feats))


class BatchNorm(FeatureModule):
    """Batch norm over all voxels of the batch; an empty tensor passes through (affine only),
    since batch statistics of zero rows do not exist."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__(nn.BatchNorm1d(num_features, eps=eps, momentum=momentum))

    def forward(self, x: SparseTensor) -> SparseTensor:
        if len(x) == 0:
            bn = self.module
            assert isinstance(bn, nn.BatchNorm1d)
            return x.replace(x.feats * bn.weight + bn.bias)
        return super().forward(x)


class ReLU(FeatureModule):
    def __init__(self) -> None:
        super().__init__(nn.ReLU())


class LeakyReLU(FeatureModule):
    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__(nn.LeakyReLU(negative_slope))


class ELU(FeatureModule):
    def __init__(self) -> None:
        super().__init__(nn.ELU())


class Sigmoid(FeatureModule):
    def __init__(self) -> None:
        super().__init__(nn.Sigmoid())


class Dropout(FeatureModule):
    def __init__(self, p: float = 0.5) -> None:
        super().__init__(nn.Dropout(p))


class Linear(FeatureModule):
    """Per-voxel linear layer ``[N, C_in] -> [N, C_out]`` (a 1x1x1 conv)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(nn.Linear(in_features, out_features, bias=bias))
