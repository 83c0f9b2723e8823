"""The embedding network (docs/DESIGN.md section 3) in PyTorch, and its export to the layer
list of the model file (BatchNorm folded, conv weights OHWI, first dense layer's columns in NHWC
flatten order)."""

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from .frontend import DEFAULT_GEOMETRY, DEFAULT_PARAMS

# Conv widths when none are given (train.py's --channels default, the random-init test model).
# The shipped model is wider: models/train-recipe.sh passes its widths.
DEFAULT_CHANNELS = (24, 48, 96, 128, 192)
DEFAULT_EMBEDDING_DIM = 128


def matmul_nt(a, b, bias=None):
    """a [n, k] @ b[m, k].T (+ bias [m]) -> [n, m], computed as a 1x1 convolution. Why not `@`:
    Debian's torch 1.13 does matmuls with the generic reference BLAS (BLAS_INFO=generic, about
    2.5 GFLOP/s on 2 CPU cores) but convolutions with oneDNN, which runs the same product
    about 10x faster, backward pass included."""
    return F.conv2d(a[:, :, None, None], b[:, :, None, None], bias)[:, :, 0, 0]


def conv_out(size, kernel=3, stride=2, pad=1):
    return (size + 2 * pad - kernel) // stride + 1


class EarshotNet(nn.Module):
    """Input: log-mel patches [B, context_frames, n_mels]. Output: unit embeddings [B, dim].

    Patch-mean normalisation, then conv3x3 stride 2 + BatchNorm + ReLU per entry of
    `channels`, flatten, dense -> dim, L2 norm.
    """

    def __init__(self, context_frames=DEFAULT_GEOMETRY["context_frames"],
                 n_mels=DEFAULT_PARAMS["n_mels"], channels=DEFAULT_CHANNELS,
                 embedding_dim=DEFAULT_EMBEDDING_DIM):
        super().__init__()
        self.context_frames = context_frames
        self.n_mels = n_mels
        self.channels = tuple(channels)
        self.embedding_dim = embedding_dim
        convs, norms = [], []
        c_in, h, w = 1, context_frames, n_mels
        self.shapes = []  # (in_h, in_w, out_h, out_w) per conv
        for c_out in self.channels:
            convs.append(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False))
            norms.append(nn.BatchNorm2d(c_out))
            self.shapes.append((h, w, conv_out(h), conv_out(w)))
            c_in, h, w = c_out, conv_out(h), conv_out(w)
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(norms)
        self.flat_shape = (c_in, h, w)  # NCHW without N
        self.dense = nn.Linear(c_in * h * w, embedding_dim)

    def reset_he(self, generator=None, bias_scale=0.01):
        """He (fan-in, ReLU gain) normal init for weights, small uniform biases."""
        for conv in self.convs:
            fan_in = conv.weight[0].numel()
            with torch.no_grad():
                conv.weight.normal_(0.0, float(np.sqrt(2.0 / fan_in)), generator=generator)
        for bn in self.norms:
            with torch.no_grad():
                bn.weight.fill_(1.0)
                bn.bias.uniform_(-bias_scale, bias_scale, generator=generator)
        fan_in = self.dense.in_features
        with torch.no_grad():
            self.dense.weight.normal_(0.0, float(np.sqrt(1.0 / fan_in)), generator=generator)
            self.dense.bias.uniform_(-bias_scale, bias_scale, generator=generator)

    def forward(self, logmel):
        x = logmel - logmel.mean(dim=(1, 2), keepdim=True)
        x = x.unsqueeze(1)  # [B, 1, H=time, W=mel]
        for conv, bn in zip(self.convs, self.norms):
            x = F.relu(bn(conv(x)))
        x = matmul_nt(x.flatten(1), self.dense.weight, self.dense.bias)
        return F.normalize(x, dim=1, eps=1e-12)

    def unfold_batchnorm(self, logmel):
        """Undoes BatchNorm folding on a network loaded from a model file (folded conv weights,
        identity BatchNorms that carry the biases; model_file.net_from_model_file), so that it
        can be trained again: each conv is rescaled to unit-variance outputs on the log-mel
        batch `logmel`, and that scale and mean move into its BatchNorm (weight, bias, running
        statistics). The network computes the same function afterwards in eval mode, and in
        train mode on batches with `logmel`'s statistics."""
        self.eval()
        with torch.no_grad():
            x = (logmel - logmel.mean(dim=(1, 2), keepdim=True)).unsqueeze(1)
            for conv, bn in zip(self.convs, self.norms):
                c = conv(x)
                mean = c.mean(dim=(0, 2, 3))
                sd = c.var(dim=(0, 2, 3), unbiased=False).sqrt().clamp_min(1e-6)
                conv.weight /= sd[:, None, None, None]
                bn.bias.add_(mean)
                bn.weight.copy_(sd)
                bn.running_mean.copy_(mean / sd)
                bn.running_var.fill_(1.0 - bn.eps)
                x = F.relu(bn(conv(x)))
        return self

    def n_params_exported(self):
        n = sum(c.weight.numel() + c.out_channels for c in self.convs)
        return n + self.dense.weight.numel() + self.dense.bias.numel()

    def flops(self):
        """FLOP per embedding (multiply-add = 2), conv and dense only."""
        total = 0
        c_in = 1
        for conv, (_, _, oh, ow) in zip(self.convs, self.shapes):
            total += 2 * oh * ow * conv.out_channels * 9 * c_in
            c_in = conv.out_channels
        total += 2 * self.dense.in_features * self.dense.out_features
        return total

    def export_layers(self):
        """Returns (layers metadata list, [(tensor name, float32 ndarray)]) with BN folded."""
        layers, tensors = [], []
        for i, (conv, bn) in enumerate(zip(self.convs, self.norms)):
            name = f"conv{i + 1}"
            w = conv.weight.detach().double()
            scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
            w = w * scale[:, None, None, None]
            b = bn.bias.detach().double() - bn.running_mean.double() * scale
            w_ohwi = w.permute(0, 2, 3, 1).contiguous()
            layers.append({"type": "conv2d", "name": name, "in": conv.in_channels,
                           "out": conv.out_channels, "kernel_h": 3, "kernel_w": 3,
                           "stride_h": 2, "stride_w": 2, "pad_h": 1, "pad_w": 1,
                           "relu": True})
            tensors.append((f"{name}.weight", w_ohwi.numpy().astype(np.float32)))
            tensors.append((f"{name}.bias", b.numpy().astype(np.float32)))
        c, h, w = self.flat_shape
        dense_w = self.dense.weight.detach().reshape(-1, c, h, w).permute(0, 2, 3, 1)
        dense_w = dense_w.reshape(self.dense.out_features, -1)
        layers.append({"type": "dense", "name": "fc", "in": self.dense.in_features,
                       "out": self.dense.out_features, "relu": False})
        tensors.append(("fc.weight", dense_w.numpy().astype(np.float32)))
        tensors.append(("fc.bias", self.dense.bias.detach().numpy().astype(np.float32)))
        layers.append({"type": "l2norm"})
        return layers, tensors
