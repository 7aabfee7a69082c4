"""Per-voxel modules: any torch module applied to the features ``[N, C]``, coordinates unchanged."""
from __future__ import annotations

import torch
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


class SampleNorm(nn.Module):
    """Normalisation over the voxels of each sample of the batch on its own (the batch index, ``coords[:, 0]``):
    ``y = (x - mean_b) / sqrt(var_b + eps) * weight + bias`` per channel, with the mean and biased variance of
    sample b's rows. The same in training and evaluation (no running statistics), so a whole scene predicted
    alone is normalised as it was in a batch of one: what BatchNorm does in training with one scene per batch.
    feats ``[N, C] -> [N, C]``, coordinates unchanged; an empty tensor passes through (affine only)."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be an int >= 1, got {num_features!r}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.num_features, self.eps = num_features, float(eps)
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: SparseTensor) -> SparseTensor:
        f = x.feats
        if f.dim() != 2 or f.shape[1] != self.num_features:
            raise ValueError(f"SampleNorm({self.num_features}) expects feats [N, {self.num_features}], "
                             f"got {tuple(f.shape)}")
        if len(x) == 0:
            return x.replace(f * self.weight + self.bias)
        ids = x.coords[:, 0]
        if bool((ids == ids[0]).all()):  # one sample: torch's batch norm kernel over all rows
            return x.replace(self._norm(f))
        order = torch.argsort(ids, stable=True)
        counts = torch.unique_consecutive(ids[order], return_counts=True)[1].tolist()
        out = torch.empty_like(f)
        out[order] = torch.cat([self._norm(chunk) for chunk in torch.split(f[order], counts)])
        return x.replace(out)

    def _norm(self, f: torch.Tensor) -> torch.Tensor:
        if len(f) == 1:  # one voxel: zero variance, (x - mean) = 0
            return (f - f) + self.bias
        return torch.nn.functional.batch_norm(f, None, None, self.weight, self.bias, True, 0.0, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


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
