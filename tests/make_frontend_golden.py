#!/usr/bin/python3
"""Writes the front-end golden fixture (tests/data/frontend_golden*) for tests/frontend_test.cc.

A float64 numpy reference of docs/DESIGN.md section 2 (the same math as core/frontend.cc),
run on a deterministic 1 s test signal: 0.05 s of digital silence (exercises log_offset), then
a log chirp 150 Hz -> 7 kHz, a 220 Hz tone with 6 harmonics, a 2 Hz amplitude wobble and seeded
Gaussian noise at -46 dBFS. The signal is stored as int16 so C++ and numpy read identical samples.

Outputs (little-endian):
  frontend_golden_signal.i16   n_samples int16 (sample = value / 32768)
  frontend_golden_logmel.f32   n_frames x n_mels float32, the float64 reference rounded once
  frontend_golden.json         parameters, sizes, per-filter weight sums, file names
The native-vs-WASM file frontend_golden_native.f32 is written by the C++ test itself:
  EARSHOT_WRITE_FRONTEND_NATIVE=1 build/tests/earshot_tests --gtest_filter='Frontend*'

Run: /usr/bin/python3 tests/make_frontend_golden.py   (needs numpy only)
"""
import json
import pathlib

import numpy as np

DATA = pathlib.Path(__file__).resolve().parent / "data"

PARAMS = dict(sample_rate_hz=16000, n_fft=512, hop_length=250, n_mels=64,
              f_min_hz=125.0, f_max_hz=7500.0, log_offset=1e-6)


def make_signal(sample_rate_hz, seconds=1.0, seed=20240601):
    n = int(round(seconds * sample_rate_hz))
    t = np.arange(n) / sample_rate_hz
    f0, f1 = 150.0, 7000.0
    # Log chirp: instantaneous frequency f0 * (f1/f0)^(t/T).
    k = np.log(f1 / f0) / seconds
    chirp = 0.25 * np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)
    tone = sum(0.2 / h * np.sin(2 * np.pi * 220.0 * h * t + 0.3 * h) for h in range(1, 8))
    wobble = 0.75 + 0.25 * np.sin(2 * np.pi * 2.0 * t)
    noise = np.random.default_rng(seed).normal(0.0, 0.005, n)
    x = wobble * (chirp + tone) + noise
    x[: int(0.05 * sample_rate_hz)] = 0.0
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")


def mel_weights(p):
    """n_mels x (n_fft/2+1) HTK triangles, float64."""
    hz_to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
    mel_to_hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_min = float(np.float32(p["f_min_hz"]))  # C++ holds these as float
    f_max = float(np.float32(p["f_max_hz"]))
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), p["n_mels"] + 2))
    freqs = np.arange(p["n_fft"] // 2 + 1) * p["sample_rate_hz"] / p["n_fft"]
    lo, c, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    return np.maximum(0.0, np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)))


def log_mel(x, p):
    n_fft, hop = p["n_fft"], p["hop_length"]
    n_frames = 1 + (len(x) - n_fft) // hop if len(x) >= n_fft else 0
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    frames = np.stack([x[t * hop: t * hop + n_fft] for t in range(n_frames)])
    spectrum = np.fft.rfft(frames * window, axis=1)  # unnormalised, like kiss_fftr
    power = spectrum.real ** 2 + spectrum.imag ** 2
    mel = power @ mel_weights(p).astype(np.float32).astype(np.float64).T
    return np.log(mel + float(np.float32(p["log_offset"])))


def main():
    signal = make_signal(PARAMS["sample_rate_hz"])
    x = signal.astype(np.float64) / 32768.0
    logmel = log_mel(x, PARAMS)
    weights = mel_weights(PARAMS)
    DATA.mkdir(exist_ok=True)
    (DATA / "frontend_golden_signal.i16").write_bytes(signal.tobytes())
    (DATA / "frontend_golden_logmel.f32").write_bytes(logmel.astype("<f4").tobytes())
    meta = dict(PARAMS, n_samples=len(signal), n_frames=logmel.shape[0],
                signal_file="frontend_golden_signal.i16",
                logmel_file="frontend_golden_logmel.f32",
                native_file="frontend_golden_native.f32",
                mel_weight_row_sums=[round(float(s), 9) for s in weights.sum(axis=1)],
                generator="tests/make_frontend_golden.py (numpy float64 reference)")
    (DATA / "frontend_golden.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{len(signal)} samples, {logmel.shape[0]} x {logmel.shape[1]} log-mel, "
          f"range [{logmel.min():.3f}, {logmel.max():.3f}]")


if __name__ == "__main__":
    main()
