#!/usr/bin/python3
"""Writes synthetic room impulse responses and a copy of a query set's folder that uses them, so
that ../shared/eval/make-queries can make `room` queries from TRAIN music (the train set ships
no room responses, and the eval set's must not be used for choices).

The responses are deliberately built differently from the training augmentation
(models/earshot_model/augment.py: one RT60 per response plus a first-order low-pass): here each
octave band decays at its own rate (low bands slower, high bands faster, as in real rooms), the
mid-band RT60 reaches 3 s, early reflections come from a random shoebox-like pattern, and each
response is 2.5 s long. make-queries then applies its own room chain (direct-to-reverberant
ratio -6..+6 dB, band-limit, tilt, soft clip, 10 dB SNR noise).

  scripts/make-synthetic-rooms.py --set-dir DEST/train --out DEST/train-synthroom
  ../shared/eval/make-queries --set-dir DEST/train-synthroom --out QDIR/q-train-room \\
      --conditions room --lengths 1,2,3,5,10 --per-cell 2 --holdout 0.3 --seed 7
"""
import argparse
import os

import numpy as np
import scipy.signal
import soundfile

RATE_HZ = 16000
OCTAVES_HZ = [125, 250, 500, 1000, 2000, 4000]


def room_response(rng, seconds=2.5):
    n = int(seconds * RATE_HZ)
    t = np.arange(n) / RATE_HZ
    rt60_mid = rng.uniform(0.6, 3.0)
    h = np.zeros(n)
    for k, fc in enumerate(OCTAVES_HZ):
        # Band RT60: up to 1.5x longer in the lowest band, down to 0.5x in the highest.
        shape = 1.0 + (0.5 * rng.uniform(0, 1) if fc < 500 else 0.0) - \
            (rng.uniform(0.2, 0.5) if fc >= 2000 else 0.0)
        rt60 = rt60_mid * shape
        lo, hi = fc / np.sqrt(2), min(fc * np.sqrt(2), RATE_HZ / 2 - 100)
        if k == 0:
            sos = scipy.signal.butter(4, hi, btype="lowpass", fs=RATE_HZ, output="sos")
        elif k == len(OCTAVES_HZ) - 1:
            sos = scipy.signal.butter(4, lo, btype="highpass", fs=RATE_HZ, output="sos")
        else:
            sos = scipy.signal.butter(4, [lo, hi], btype="bandpass", fs=RATE_HZ, output="sos")
        band = scipy.signal.sosfilt(sos, rng.standard_normal(n))
        h += band * np.exp(-6.9078 * t / rt60)
    onset = int(rng.uniform(0.004, 0.015) * RATE_HZ)
    h[:onset] = 0.0
    # Early reflections: 10-30 taps 5-80 ms after the direct sound, decaying with delay.
    for _ in range(rng.integers(10, 31)):
        k = int(rng.uniform(0.005, 0.08) * RATE_HZ)
        h[k] += rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.7) * np.exp(-k / RATE_HZ / 0.05)
    h[0] = 1.0  # the direct sound
    return (h / np.sqrt(np.sum(h ** 2))).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set-dir", required=True, help="a fetch-corpus set (catalog.tsv, noise.tsv)")
    ap.add_argument("--out", required=True, help="folder to write: catalog, noise, ir.tsv, ir/")
    ap.add_argument("--n", type=int, default=40, help="number of responses")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()

    os.makedirs(os.path.join(args.out, "ir"), exist_ok=True)
    for name in ("catalog.tsv", "noise.tsv", "corpus-name"):
        src = os.path.join(os.path.abspath(args.set_dir), name)
        dst = os.path.join(args.out, name)
        if os.path.exists(src) and not os.path.lexists(dst):
            os.symlink(src, dst)
    rng = np.random.default_rng(args.seed)
    rows = ["id\tpath"]
    for i in range(args.n):
        path = os.path.join(os.path.abspath(args.out), "ir", f"synth-{i:03d}.wav")
        soundfile.write(path, room_response(rng), RATE_HZ, subtype="FLOAT")
        rows.append(f"synth-{i:03d}\t{path}")
    with open(os.path.join(args.out, "ir.tsv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    print(f"wrote {args.n} responses and {os.path.join(args.out, 'ir.tsv')}")


if __name__ == "__main__":
    main()
