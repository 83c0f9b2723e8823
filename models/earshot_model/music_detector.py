"""Music detector: does a 1 s log-mel patch hold music? A gate in front of the embedding network
and the matcher, so that silence, room tone and speech produce no embeddings to match.

Input: the patch the embedder sees, [context_frames, n_mels] natural-log mel power
(frontend.logmel_numpy), taken BEFORE the embedder's patch-mean normalisation so that the
absolute level is visible (digital silence is ln(1e-6) = -13.8 in every band).

Features (kind "band_mean_std_tdiff_fdiff"), over the T frames of the patch, in float32:
    mean_b    = sum_t x[t, b] / T                                  b = 0..M-1
    std_b     = sqrt(sum_t (x[t, b] - mean_b)^2 / T)             (population, two passes)
    tdiff_b   = sum_{t>0} |x[t, b] - x[t-1, b]| / (T - 1)          (change over time)
    fdiff_b   = sum_t |x[t, b+1] - x[t, b]| / T                    b = 0..M-2 (spectral contrast)
laid out [mean_0..mean_{M-1}, std_.., tdiff_.., fdiff_0..fdiff_{M-2}] (4 M - 1 values), sums in
frame order; standardised with stored per-feature mean and std, then dense layers with ReLU
between them and one output logit; probability = sigmoid(logit). The same arithmetic is
core/music_detector.cc.

Tensors (float32, names as in a model file): music_detector.feature_mean [4M-1],
music_detector.feature_std [4M-1], music_detector.dense{i}.weight [out, in] and .bias [out] for
i = 1..n_layers.
"""

import json
import math

import numpy as np
import torch
from torch import nn

from . import container, frontend

FORMAT = "earshot-music-detector"
FORMAT_VERSION = 1
FEATURE_KIND = "band_mean_std_tdiff_fdiff"
CONTEXT_FRAMES = 62
N_MELS = 64
DEFAULT_HIDDEN = (32, 16)
PREFIX = "music_detector."
CONTAINER_KIND = "MDET"  # a standalone detector file; in a model file the sections join MODL


def n_features(n_mels=N_MELS):
    return 4 * n_mels - 1


def features_numpy(patches):
    """[..., T, M] float32 log-mel -> [..., 4M-1] float32 features (module docstring). numpy
    sums along the frame axis in frame order, as the core does."""
    x = np.asarray(patches, dtype=np.float32)
    t = x.shape[-2]
    mean = x.sum(axis=-2, dtype=np.float32) / np.float32(t)
    centred = x - mean[..., None, :]
    std = np.sqrt((centred * centred).sum(axis=-2, dtype=np.float32) / np.float32(t))
    tdiff = np.abs(np.diff(x, axis=-2)).sum(axis=-2, dtype=np.float32) / np.float32(t - 1)
    fdiff = np.abs(np.diff(x, axis=-1)).sum(axis=-2, dtype=np.float32) / np.float32(t)
    return np.concatenate([mean, std, tdiff, fdiff], axis=-1).astype(np.float32)


def features_torch(patches):
    """[B, T, M] float32 tensor -> [B, 4M-1], the same formulas as features_numpy."""
    t = patches.shape[-2]
    mean = patches.sum(-2) / t
    std = (patches - mean[..., None, :]).square().sum(-2).div(t).sqrt()
    tdiff = (patches[..., 1:, :] - patches[..., :-1, :]).abs().sum(-2) / (t - 1)
    fdiff = (patches[..., :, 1:] - patches[..., :, :-1]).abs().sum(-2) / t
    return torch.cat([mean, std, tdiff, fdiff], -1)


class MusicDetectorNet(nn.Module):
    """Patches [B, T, M] (or features [B, 4M-1] via forward_features) -> logits [B]."""

    def __init__(self, n_mels=N_MELS, hidden=DEFAULT_HIDDEN, context_frames=CONTEXT_FRAMES):
        super().__init__()
        self.n_mels = n_mels
        self.context_frames = context_frames
        self.hidden = tuple(hidden)
        self.register_buffer("feature_mean", torch.zeros(n_features(n_mels)))
        self.register_buffer("feature_std", torch.ones(n_features(n_mels)))
        sizes = self.layer_sizes()
        self.dense = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def layer_sizes(self):
        return [n_features(self.n_mels), *self.hidden, 1]

    def set_standardisation(self, features):
        """Per-feature mean and std of a [N, 4M-1] training sample (std floored at 1e-3)."""
        f = torch.as_tensor(features, dtype=torch.float64)
        self.feature_mean.copy_(f.mean(0).float())
        self.feature_std.copy_(f.std(0, unbiased=False).clamp_min(1e-3).float())

    def forward_features(self, features):
        h = (features - self.feature_mean) / self.feature_std
        for i, layer in enumerate(self.dense):
            h = layer(h)
            if i + 1 < len(self.dense):
                h = torch.relu(h)
        return h[:, 0]

    def forward(self, patches):
        return self.forward_features(features_torch(patches))

    def n_params(self):
        return sum(p.numel() for p in self.dense.parameters())


def export_tensors(net):
    """{name: float32 ndarray} in file order (standardisation, then dense1, dense2, ...)."""
    out = {PREFIX + "feature_mean": net.feature_mean.detach().numpy().astype(np.float32),
           PREFIX + "feature_std": net.feature_std.detach().numpy().astype(np.float32)}
    for i, layer in enumerate(net.dense, start=1):
        out[f"{PREFIX}dense{i}.weight"] = layer.weight.detach().numpy().astype(np.float32)
        out[f"{PREFIX}dense{i}.bias"] = layer.bias.detach().numpy().astype(np.float32)
    return out


def export_meta(net, threshold, held_out=None, training=None, params=frontend.DEFAULT_PARAMS):
    """The detector's metadata: what the C++ loader checks (feature kind, sizes, front-end) and
    what a reader wants to know (threshold, held-out figures, training arguments)."""
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "feature_kind": FEATURE_KIND,
        "context_frames": net.context_frames,
        "n_mels": net.n_mels,
        "layer_sizes": net.layer_sizes(),
        "activation": "relu",
        "output": "sigmoid",
        "threshold": float(threshold),
        "n_params": int(net.n_params()),
        "frontend": dict(params),
    }
    if held_out is not None:
        meta["held_out"] = held_out
    if training is not None:
        meta["training"] = training
    return meta


def check_tensors(tensors, meta):
    """Raises ValueError naming the first tensor whose presence or shape does not fit meta."""
    sizes = meta["layer_sizes"]
    if meta.get("feature_kind") != FEATURE_KIND:
        raise ValueError(f"feature_kind {meta.get('feature_kind')!r}, expected {FEATURE_KIND!r}")
    if sizes[0] != n_features(meta["n_mels"]) or sizes[-1] != 1:
        raise ValueError(f"layer_sizes {sizes} must run from 4*n_mels-1 to 1")
    expected = {PREFIX + "feature_mean": (sizes[0],), PREFIX + "feature_std": (sizes[0],)}
    for i in range(1, len(sizes)):
        expected[f"{PREFIX}dense{i}.weight"] = (sizes[i], sizes[i - 1])
        expected[f"{PREFIX}dense{i}.bias"] = (sizes[i],)
    for name, shape in expected.items():
        if name not in tensors:
            raise ValueError(f"missing tensor {name}")
        if tuple(tensors[name].shape) != shape:
            raise ValueError(f"{name}: shape {tuple(tensors[name].shape)}, expected {shape}")
    extra = set(tensors) - set(expected)
    if extra:
        raise ValueError(f"unexpected tensors {sorted(extra)}")


def net_from_tensors(tensors, meta):
    check_tensors(tensors, meta)
    net = MusicDetectorNet(meta["n_mels"], meta["layer_sizes"][1:-1], meta["context_frames"])
    with torch.no_grad():
        net.feature_mean.copy_(torch.from_numpy(tensors[PREFIX + "feature_mean"]))
        net.feature_std.copy_(torch.from_numpy(tensors[PREFIX + "feature_std"]))
        for i, layer in enumerate(net.dense, start=1):
            layer.weight.copy_(torch.from_numpy(tensors[f"{PREFIX}dense{i}.weight"]))
            layer.bias.copy_(torch.from_numpy(tensors[f"{PREFIX}dense{i}.bias"]))
    return net.eval()


def logits_reference(tensors, meta, patches):
    """Pure-numpy float64 reference of the exported detector: [N, T, M] -> [N] logits. The
    features are computed in float32 (as the core does), everything after in float64."""
    check_tensors(tensors, meta)
    f = features_numpy(patches).astype(np.float64)
    h = (f - tensors[PREFIX + "feature_mean"].astype(np.float64)) / \
        tensors[PREFIX + "feature_std"].astype(np.float64)
    n_layers = len(meta["layer_sizes"]) - 1
    for i in range(1, n_layers + 1):
        h = h @ tensors[f"{PREFIX}dense{i}.weight"].astype(np.float64).T + \
            tensors[f"{PREFIX}dense{i}.bias"].astype(np.float64)
        if i < n_layers:
            h = np.maximum(h, 0.0)
    return h[:, 0]


def sigmoid(x):
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), without overflow


def write_npz_json(prefix, tensors, meta):
    """Writes prefix.npz (the tensors, uncompressed) and prefix.json (the metadata)."""
    np.savez(prefix + ".npz", **tensors)
    with open(prefix + ".json", "w") as f:
        json.dump(meta, f, indent=1, sort_keys=False)
        f.write("\n")


def read_npz_json(prefix):
    with open(prefix + ".json") as f:
        meta = json.load(f)
    with np.load(prefix + ".npz") as z:
        tensors = {name: z[name].astype(np.float32) for name in z.files}
    check_tensors(tensors, meta)
    return tensors, meta


def container_bytes(tensors, meta, extra_sections=()):
    """A standalone detector container (kind MDET): metadata under the key "music_detector"
    (where a model file would carry it) and the tensors as f32 sections, then `extra_sections`
    (name, array) as given (test fixtures add patches and expected probabilities)."""
    sections = [(name, np.asarray(t, dtype=np.float32)) for name, t in tensors.items()]
    return container.write_container(CONTAINER_KIND, {"music_detector": meta},
                                     sections + list(extra_sections))


def fixture_bytes(tensors, meta, patches):
    """A test fixture for the C++ detector: the detector container plus sections "patches"
    (float32 [N, T, M]), "logits" and "probability" (float32 [N], from the float64 reference),
    and "silence_logit" (float32 [1]: the patch of digital silence, every value
    float32(ln(log_offset)), which the test builds itself)."""
    patches = np.asarray(patches, dtype=np.float32)
    logits = logits_reference(tensors, meta, patches)
    silent = np.full((1, meta["context_frames"], meta["n_mels"]),
                     np.log(np.float32(frontend.DEFAULT_PARAMS["log_offset"])), np.float32)
    return container_bytes(tensors, meta, [
        ("patches", patches), ("logits", logits.astype(np.float32)),
        ("probability", sigmoid(logits).astype(np.float32)),
        ("silence_logit", logits_reference(tensors, meta, silent).astype(np.float32))])


def n_macs(meta):
    """Multiply-adds per patch: features (about 6 per log-mel value) and the dense layers."""
    sizes = meta["layer_sizes"]
    dense = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return 6 * meta["context_frames"] * meta["n_mels"] + dense


def describe(meta):
    sizes = "-".join(str(s) for s in meta["layer_sizes"])
    return (f"music detector {meta['feature_kind']} {sizes}, {meta['n_params']} parameters, "
            f"{n_macs(meta)} MACs per patch, threshold {meta['threshold']:.4f}")


def logit(p):
    return math.log(p / (1.0 - p))
