"""Log-mel front-end (docs/DESIGN.md section 2) in numpy and torch, float32, and the frame
geometry of embeddings: the numbers every other module takes its sample rate, mel bands, hops
and context from.

Frame t covers samples [t*hop, t*hop + n_fft) (no centring, no padding), periodic Hann window,
unnormalised real FFT, power, HTK mel filterbank (no area normalisation, weights computed in
double, stored as float32), L = ln(W P + log_offset). Output [n_frames, n_mels].
"""

import numpy as np

DEFAULT_PARAMS = {
    "sample_rate_hz": 16000,
    "n_fft": 512,
    "hop_length": 250,
    "n_mels": 64,
    "f_min_hz": 125.0,
    "f_max_hz": 7500.0,
    "log_offset": 1e-6,
}

# Embedding geometry of the shipped model, in frames of DEFAULT_PARAMS (model files record it
# next to the front-end parameters): an embedding sees context_frames frames (0.985 s); an index
# stores one every hop_frames frames (0.25 s); a query computes one every query_hop_frames
# frames (0.5 s).
DEFAULT_GEOMETRY = {
    "context_frames": 62,
    "hop_frames": 16,
    "query_hop_frames": 32,
}


def params_from_meta(meta):
    return {key: type(default)(meta[key]) for key, default in DEFAULT_PARAMS.items()}


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_weights(params=DEFAULT_PARAMS):
    """[n_mels, n_fft/2+1] float32, computed in double."""
    n_fft, n_mels = params["n_fft"], params["n_mels"]
    edges = mel_to_hz(np.linspace(hz_to_mel(params["f_min_hz"]), hz_to_mel(params["f_max_hz"]),
                                  n_mels + 2))
    freqs = np.arange(n_fft // 2 + 1, dtype=np.float64) * params["sample_rate_hz"] / n_fft
    weights = np.zeros((n_mels, n_fft // 2 + 1), dtype=np.float64)
    for j in range(n_mels):
        lo, c, hi = edges[j], edges[j + 1], edges[j + 2]
        weights[j] = np.maximum(0.0, np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)))
    return weights.astype(np.float32)


def hann_window(n_fft):
    n = np.arange(n_fft, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft)).astype(np.float32)


def n_frames(n_samples, params=DEFAULT_PARAMS):
    """Frames in n_samples samples (0 when shorter than one FFT window)."""
    if n_samples < params["n_fft"]:
        return 0
    return 1 + (n_samples - params["n_fft"]) // params["hop_length"]


def window_samples(frames, params=DEFAULT_PARAMS):
    """Samples spanned by `frames` consecutive frames: n_fft + (frames - 1) * hop_length
    (15762 samples = 0.985 s for one embedding's context)."""
    return params["n_fft"] + (frames - 1) * params["hop_length"]


def logmel_numpy(pcm, params=DEFAULT_PARAMS):
    """pcm: 1-D float array at params['sample_rate_hz']. Returns [n_frames, n_mels] float32."""
    pcm = np.asarray(pcm, dtype=np.float32)
    n_fft, hop = params["n_fft"], params["hop_length"]
    count = n_frames(len(pcm), params)
    if count == 0:
        return np.zeros((0, params["n_mels"]), dtype=np.float32)
    idx = np.arange(count)[:, None] * hop + np.arange(n_fft)[None, :]
    frames = pcm[idx] * hann_window(n_fft)
    spec = np.fft.rfft(frames.astype(np.float32), axis=1)
    power = (spec.real.astype(np.float32) ** 2 + spec.imag.astype(np.float32) ** 2)
    mel = power @ mel_weights(params).T
    return np.log(mel + np.float32(params["log_offset"])).astype(np.float32)


class TorchFrontend:
    """Batched torch front-end: [B, N] float32 -> [B, n_frames, n_mels] float32."""

    def __init__(self, params=DEFAULT_PARAMS):
        import torch
        self.params = dict(params)
        self.window = torch.from_numpy(hann_window(params["n_fft"]))
        self.mel_t = torch.from_numpy(mel_weights(params).T.copy())  # [n_bins, n_mels]

    def __call__(self, pcm):
        import torch
        squeeze = pcm.dim() == 1
        if squeeze:
            pcm = pcm[None]
        frames = pcm.unfold(1, self.params["n_fft"], self.params["hop_length"])
        spec = torch.fft.rfft(frames * self.window, dim=-1)
        power = spec.real.square() + spec.imag.square()
        out = torch.log(power @ self.mel_t + self.params["log_offset"])
        return out[0] if squeeze else out
