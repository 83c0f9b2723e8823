"""Model file (.emod) assembly: metadata of docs/DESIGN.md section 4 + exported tensors."""

import numpy as np

from . import container, frontend
from .net import EarshotNet

# Weight storage: "f16" halves the file (model_version 2; the core widens the weights to f32
# when loading, and computes in f32); "f32" writes a model_version 1 file that every earshot
# release reads. Biases stay f32.
WEIGHT_DTYPES = {"f16": np.float16, "f32": np.float32}


def model_meta(net, name, hop_frames=32, description=None, training=None, threshold=None,
               params=frontend.DEFAULT_PARAMS, query_hop_frames=None, index_pq_m=None,
               weights="f16"):
    layers, _ = net.export_layers()
    meta = {"format": "earshot-model", "model_version": 2 if weights == "f16" else 1,
            "name": name}
    meta.update(params)
    meta.update({
        "context_frames": net.context_frames,
        "hop_frames": hop_frames,
        "query_hop_frames": query_hop_frames or hop_frames,
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
