"""Prints the CPU time of one batch of the training degrader (models/earshot_model/augment.py)
with the model-v2 recipe's settings (2 s room responses, device responses, 256 positives), the
median of --runs batches after one warm-up:

    /usr/bin/python3 -m bench.degrader_bench [--threads 2] [--runs 5]
"""

import argparse
import statistics
import time

import torch

from models.earshot_model.augment import Degrader, RATE_HZ
from models.earshot_model.sampling import HOP_LENGTH, SEG_SAMPLES, SPEED_PAD_FRAMES


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rir = int(2.0 * RATE_HZ)  # train.py --rir-sec 2.0
    seg = SEG_SAMPLES + 2 * SPEED_PAD_FRAMES * HOP_LENGTH
    d = Degrader(1, rir, seg, rir_samples=rir, rt60_range=(0.2, 3.0), drr_db_range=(-15, 10),
                 rt60_log=True, p_device=0.5)
    g = torch.Generator().manual_seed(1)
    raw = torch.randn(args.batch, rir + seg, generator=g)
    noise = torch.randn(args.batch, seg, generator=g)
    times = []
    for i in range(args.runs + 1):
        t0 = time.process_time()
        d(raw, noise, g)
        if i:
            times.append(time.process_time() - t0)
    print(f"degrader: {args.batch} positives, FFT {d.n_fft}, {args.threads} threads: "
          f"{statistics.median(times):.2f} s CPU a batch (median of {args.runs})")


if __name__ == "__main__":
    main()
