"""Writes models/random-init-v0.emod: the default architecture (net.DEFAULT_CHANNELS) with
deterministic He-initialised random weights (seed 20240601) and full metadata. For the loader
and backend tests only; it recognises nothing.

    /usr/bin/python3 -m models.make_random_model [--out FILE]
"""

import argparse
import os

import torch

from models.earshot_model import model_file
from models.earshot_model.net import EarshotNet

SEED = 20240601
# The hops this test model was written with (0.5 s for index and query alike); the tests that
# use it expect these.
HOP_FRAMES = 32
QUERY_HOP_FRAMES = 32


def main():
    parser = argparse.ArgumentParser(prog="python3 -m models.make_random_model",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    digest = model_file.write_model_file(
        args.out, net, "random-init-v0", weights="f32",  # a model_version 1 file, kept as is
        hop_frames=HOP_FRAMES, query_hop_frames=QUERY_HOP_FRAMES,
        description="Random-init (untrained) network with the v1 architecture, seed "
                    f"{SEED}; for loader and backend tests only, recognises nothing.",
        training={"trained": False, "seed": SEED, "init": "He normal (fan-in, ReLU gain), "
                  "biases uniform +-0.01"})
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes) sha256 {digest}")
    print(f"params {net.n_params_exported()} flops {net.flops()}")


if __name__ == "__main__":
    main()
