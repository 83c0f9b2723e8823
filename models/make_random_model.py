#!/usr/bin/python3
"""Writes models/random-init-v0.emod: the v1 architecture with deterministic He-initialised
random weights (seed 20240601) and full metadata. For C++ loader/backend tests only; it does
not recognise anything."""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from earshot_model import modelfile  # noqa: E402
from earshot_model.net import EarshotNet  # noqa: E402

SEED = 20240601


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "random-init-v0.emod"))
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(SEED)
    net = EarshotNet()
    net.reset_he(generator)
    # Random (not identity) BN statistics so that the export's BN folding is exercised.
    with torch.no_grad():
        for bn in net.norms:
            bn.running_mean.uniform_(-0.05, 0.05, generator=generator)
            bn.running_var.uniform_(0.8, 1.25, generator=generator)
    digest = modelfile.write_model_file(
        args.out, net, "random-init-v0", weights="f32",  # a model_version 1 file, kept as is
        description="Random-init (untrained) network with the v1 architecture, seed "
                    f"{SEED}; for loader and backend tests only, recognises nothing.",
        training={"trained": False, "seed": SEED, "init": "He normal (fan-in, ReLU gain), "
                  "biases uniform +-0.01"})
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes) sha256 {digest}")
    print(f"params {net.n_params_exported()} flops {net.flops()}")


if __name__ == "__main__":
    main()
