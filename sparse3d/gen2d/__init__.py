"""sparse3d.gen2d: dense 2D / video generative models (companion module).

PixelCNN, Gated PixelCNN (optionally class-conditional), PixelRNN (Row LSTM, Diagonal
BiLSTM), WaveNet, pix2pix (+ pix2pixHD options) and vid2vid, with built-in data and
training tasks (``sparse3d train gen2d <model>``). Does not use the sparse engine.
"""
from .flow import flow_warping_error, warp
from .gated_pixelcnn import ClassConditionalGatedPixelCNN, GatedPixelCNN
from .layers import MaskedConv2d, causal_mask
from .pix2pix import MultiScaleDiscriminator, PatchDiscriminator, UNetGenerator
from .pixelcnn import PixelCNN
from .pixelrnn import DiagonalBiLSTM, PixelRNN, RowLSTM
from .vid2vid import SequentialGenerator, Vid2Vid
from .wavenet import WaveNet, mu_law_decode, mu_law_encode

__all__ = ["warp", "flow_warping_error", "GatedPixelCNN", "ClassConditionalGatedPixelCNN", "MaskedConv2d",
           "causal_mask", "PixelCNN", "PixelRNN", "RowLSTM", "DiagonalBiLSTM", "WaveNet", "mu_law_encode",
           "mu_law_decode", "UNetGenerator", "PatchDiscriminator", "MultiScaleDiscriminator",
           "SequentialGenerator", "Vid2Vid"]
