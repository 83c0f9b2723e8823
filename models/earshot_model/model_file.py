"""Model file (.emod) assembly: metadata of docs/DESIGN.md section 4 + exported tensors, and the
checks an export must pass."""

import hashlib
import os

import numpy as np
import torch

from . import container, frontend, reference
from .net import EarshotNet

# Weight storage: "f16" halves the file (model_version 2; the core widens the weights to f32
# when loading, and computes in f32); "f32" writes a model_version 1 file that every earshot
# release reads. Biases stay f32.
WEIGHT_DTYPES = {"f16": np.float16, "f32": np.float32}

# PQ bytes per index embedding that calibrated thresholds are fitted for (`earshot build`'s
# default). 32 bytes keep more short in-catalog queries than 16 at the same false-positive
# rate; 64 keep no more than 32 (docs/EXPERIMENTS.md).
DEFAULT_INDEX_PQ_M = 32


def rewrite_model_file(path, meta, sections):
    """Replaces the model file at `path` by one with `meta` and `sections` ([(name, array)]),
    atomically (a temporary file renamed over it): the calibration tools edit the shipped file
    in place. The model hash changes, so indexes must be rebuilt."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(container.write_container("MODL", meta, sections))
    os.replace(tmp, path)


def model_meta(net, name, hop_frames=frontend.DEFAULT_GEOMETRY["hop_frames"], description=None,
               training=None, threshold=None, params=frontend.DEFAULT_PARAMS,
               query_hop_frames=frontend.DEFAULT_GEOMETRY["query_hop_frames"], index_pq_m=None,
               weights="f16"):
    layers, _ = net.export_layers()
    meta = {"format": "earshot-model", "model_version": 2 if weights == "f16" else 1,
            "name": name}
    meta.update(params)
    meta.update({
        "context_frames": net.context_frames,
        "hop_frames": hop_frames,
        "query_hop_frames": query_hop_frames,
        "embedding_dim": net.embedding_dim,
        "input_norm": "patch_mean",
        "layers": layers,
        "n_params": net.n_params_exported(),
        "flops_per_embedding": net.flops(),
    })
    if index_pq_m is not None:
        meta["index_pq_m"] = index_pq_m
    if description:
        meta["description"] = description
    if training is not None:
        meta["training"] = training
    if threshold is not None:
        meta["threshold"] = threshold
    return meta


def export_tensors(net, weights="f16"):
    """The network's (name, array) sections, weights stored as `weights` (WEIGHT_DTYPES)."""
    _, tensors = net.export_layers()
    dtype = WEIGHT_DTYPES[weights]
    return [(n, t.astype(dtype) if n.endswith(".weight") else t) for n, t in tensors]


def write_model_file(path, net, name, weights="f16", extra_meta=None, **kwargs):
    """Exports `net` (eval mode, BN folded) to `path`; returns the model hash (hex).
    `extra_meta` (e.g. calibrated thresholds) is added to the metadata of model_meta."""
    net.eval()
    meta = model_meta(net, name, weights=weights, **kwargs)
    meta.update(extra_meta or {})
    data = container.write_container("MODL", meta, export_tensors(net, weights))
    with open(path, "wb") as f:
        f.write(data)
    return container.read_container(data, "MODL").sha256_hex


def net_from_meta(meta):
    channels = [layer["out"] for layer in meta["layers"] if layer["type"] == "conv2d"]
    return EarshotNet(meta["context_frames"], meta["n_mels"], channels, meta["embedding_dim"])


def net_from_model_file(path):
    """An EarshotNet (eval mode) computing what model file `path` computes: its folded conv
    weights and biases in the convs, identity BatchNorms, its dense layer."""
    import torch
    c = container.read_container_file(path, "MODL")
    net = net_from_meta(c.meta)
    convs = [layer for layer in c.meta["layers"] if layer["type"] == "conv2d"]
    with torch.no_grad():
        for layer, conv, bn in zip(convs, net.convs, net.norms):
            w = np.array(c[layer["name"] + ".weight"], dtype=np.float32)  # OHWI, writable
            conv.weight.copy_(torch.from_numpy(w).permute(0, 3, 1, 2))
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(np.array(c[layer["name"] + ".bias"], np.float32)))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
        ch, h, w = net.flat_shape
        dense = np.array(c["fc.weight"], dtype=np.float32).reshape(-1, h, w, ch)
        net.dense.weight.copy_(torch.from_numpy(dense).permute(0, 3, 1, 2).reshape(
            net.dense.out_features, -1))
        net.dense.bias.copy_(torch.from_numpy(np.array(c["fc.bias"], np.float32)))
    return net.eval()


def network_hash(path):
    """SHA-256 (hex) of the embedding network stored in model file `path`: its sections other
    than the music detector's, names and bytes in file order. Unchanged by calibration (which
    rewrites metadata) and by models.add_music_detector, unlike the file's hash."""
    c = container.read_container_file(path, "MODL")
    h = hashlib.sha256()
    for name, array in c.sections.items():
        if not name.startswith("music_detector."):
            h.update(name.encode() + b"\0" + np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def thresholds_of(path, layers):
    """The calibrated threshold metadata of model file `path`, which must hold `layers`."""
    meta = container.read_container_file(path, "MODL").meta
    if meta.get("layers") != layers:
        raise RuntimeError(f"{path}: another network than the checkpoint's; its thresholds "
                           "do not apply (calibrate instead: docs/EVALUATION.md)")
    return {k: v for k, v in meta.items() if k.startswith("threshold")}


def check_parity(path, net, n=4, seed=0, min_cosine=0.9999):
    """Pure-numpy reference on the file vs the torch model on random-song-like log-mels; raises
    RuntimeError below min_cosine, returns the worst cosine."""
    c = container.read_container_file(path, "MODL")
    rng = np.random.default_rng(seed)
    n_samples = frontend.DEFAULT_PARAMS["sample_rate_hz"]  # 1 s
    worst = 1.0
    for _ in range(n):
        pcm = (rng.standard_normal(n_samples) * np.linspace(0.01, 0.3, n_samples)).astype(
            np.float32)
        logmel = frontend.logmel_numpy(pcm)[:net.context_frames]
        ref = reference.embed(c, logmel)
        with torch.no_grad():
            out = net(torch.from_numpy(logmel)[None])[0].double().numpy()
        worst = min(worst, float(ref @ out / np.linalg.norm(ref) / np.linalg.norm(out)))
    if worst < min_cosine:
        raise RuntimeError(f"{path}: export parity cosine {worst} < {min_cosine}")
    return worst
