"""Pure-numpy reference of the model file's network (docs/DESIGN.md section 3), written from the
spec and the file alone (no torch), used to test exports."""

import numpy as np


def conv2d_nhwc(x, weight, bias, stride_h, stride_w, pad_h, pad_w):
    """x [H, W, C_in]; weight [out, kh, kw, in] (OHWI); returns [out_h, out_w, out]."""
    h, w, c_in = x.shape
    c_out, kh, kw, _ = weight.shape
    xp = np.zeros((h + 2 * pad_h, w + 2 * pad_w, c_in), dtype=np.float64)
    xp[pad_h:pad_h + h, pad_w:pad_w + w] = x
    out_h = (h + 2 * pad_h - kh) // stride_h + 1
    out_w = (w + 2 * pad_w - kw) // stride_w + 1
    y = np.zeros((out_h, out_w, c_out), dtype=np.float64)
    for dy in range(kh):
        for dx in range(kw):
            patch = xp[dy:dy + stride_h * (out_h - 1) + 1:stride_h,
                       dx:dx + stride_w * (out_w - 1) + 1:stride_w]  # [out_h, out_w, c_in]
            y += patch @ weight[:, dy, dx, :].astype(np.float64).T
    return y + bias.astype(np.float64)


def embed(container, patch):
    """patch: [context_frames, n_mels] log-mel. Returns the float64 embedding."""
    meta = container.meta
    x = np.asarray(patch, dtype=np.float64)
    assert x.shape == (meta["context_frames"], meta["n_mels"]), x.shape
    if meta.get("input_norm") == "patch_mean":
        x = x - x.mean()
    x = x[:, :, None]  # NHWC without N: H=time, W=mel, C=1
    for layer in meta["layers"]:
        kind = layer["type"]
        if kind == "conv2d":
            x = conv2d_nhwc(x, container[layer["name"] + ".weight"],
                            container[layer["name"] + ".bias"], layer["stride_h"],
                            layer["stride_w"], layer["pad_h"], layer["pad_w"])
        elif kind == "dense":
            x = container[layer["name"] + ".weight"].astype(np.float64) @ x.reshape(-1)
            x = x + container[layer["name"] + ".bias"]
        elif kind == "l2norm":
            x = x.reshape(-1)
            x = x / max(np.linalg.norm(x), 1e-12)
        else:
            raise ValueError(f"unknown layer type {kind!r}")
        if layer.get("relu"):
            x = np.maximum(x, 0.0)
    return x.reshape(-1)
