"""Sparse nn modules (take and return SparseTensors)."""
from sparse3d.nn.conv import Conv3d, ConvTranspose3d, GenerativeConvTranspose3d, SubMConv3d, set_backend
from sparse3d.nn.feature import ELU, BatchNorm, Dropout, FeatureModule, LeakyReLU, Linear, ReLU, SampleNorm, Sigmoid
from sparse3d.nn.pool import AvgPool3d, GlobalPool, MaxPool3d, Prune

__all__ = ["Conv3d", "SubMConv3d", "ConvTranspose3d", "GenerativeConvTranspose3d", "set_backend",
           "FeatureModule", "BatchNorm", "SampleNorm", "ReLU", "LeakyReLU", "ELU", "Sigmoid", "Dropout", "Linear",
           "MaxPool3d", "AvgPool3d", "GlobalPool", "Prune"]
