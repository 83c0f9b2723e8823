"""Exports a training checkpoint to an earshot model file (docs/DESIGN.md sections 3-4):
BatchNorm folded into the convolutions, conv weights OHWI, the dense layer's columns in NHWC
flatten order, full metadata (front-end, embedding geometry, layers, the training record).
Checks the file with the pure-numpy reference before returning.

    /usr/bin/python3 -m models.export models/checkpoints/earshot-v1/last.pt models/earshot-v1.emod

Weights are stored as f16 by default (model_version 2, half the download; the core computes in
f32, and the parity check holds for the rounded weights); --weights f32 writes a model_version 1
file. --thresholds-from copies the calibrated no-match thresholds of an earlier export of the
same network (e.g. after changing only the weight storage).

The model file records the index hop (hop_frames), the query hop (query_hop_frames) and the PQ
bytes per index embedding the thresholds are calibrated for (index_pq_m). A 0.25 s index hop
keeps more short queries than 0.5 s, most of all at 1 s, for 1.7x the index bytes (a query is
never more than 0.125 s from an index embedding); querying every 0.5 s keeps as many as every
0.25 s and halves the query's work (docs/EXPERIMENTS.md). Exporting drops calibrated thresholds: run
models.calibrate_threshold afterwards.
"""

import argparse
import os

from models.earshot_model import checkpoint, frontend, model_file

HOP_LENGTH = frontend.DEFAULT_PARAMS["hop_length"]
RATE_HZ = frontend.DEFAULT_PARAMS["sample_rate_hz"]


def seconds(frames):
    return f"{frames * HOP_LENGTH / RATE_HZ:g} s"


def main():
    geometry = frontend.DEFAULT_GEOMETRY
    parser = argparse.ArgumentParser(prog="python3 -m models.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a train.py checkpoint (models/checkpoints/RUN/last.pt)")
    parser.add_argument("out", help="the model file to write")
    parser.add_argument("--name", default="earshot-v1")
    parser.add_argument("--hop-frames", type=int, default=geometry["hop_frames"],
                        help=f"index hop in frames of {HOP_LENGTH} samples (default: %(default)s "
                             f"= {seconds(geometry['hop_frames'])})")
    parser.add_argument("--query-hop-frames", type=int, default=geometry["query_hop_frames"],
                        help="query hop in frames (default: %(default)s = "
                             f"{seconds(geometry['query_hop_frames'])})")
    parser.add_argument("--index-pq-m", type=int, default=model_file.DEFAULT_INDEX_PQ_M,
                        help="PQ bytes per index embedding (default: %(default)s)")
    parser.add_argument("--weights", choices=sorted(model_file.WEIGHT_DTYPES), default="f16",
                        help="weight storage (default: %(default)s, model_version 2; f32 writes "
                             "a model_version 1 file)")
    parser.add_argument("--thresholds-from", metavar="MODEL",
                        help="copy the calibrated thresholds of this export of the same network")
    args = parser.parse_args()
    digest = checkpoint.export_checkpoint(args.checkpoint, args.out, args.name, args.hop_frames,
                                          args.query_hop_frames, args.index_pq_m, args.weights,
                                          args.thresholds_from)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes) sha256 {digest}")


if __name__ == "__main__":
    main()
