#!/usr/bin/python3
"""Exports a training checkpoint to an earshot model file (docs/DESIGN.md sections 3-4):
BatchNorm folded into the convolutions, conv weights OHWI, the dense layer's columns in NHWC
flatten order, full metadata. Checks the file with the pure-numpy reference before returning.

    /usr/bin/python3 models/export.py models/checkpoints/v6/last.pt models/earshot-v1.emod

Weights are stored as f16 by default (model_version 2, half the download; the core computes in
f32, and the parity check below holds for the rounded weights); --weights f32 writes a
model_version 1 file. --thresholds-from copies the calibrated no-match thresholds of an earlier
export of the same network (e.g. after changing only the weight storage).

The model file records the index hop (hop_frames, default 16 = 0.25 s) and the query hop
(query_hop_frames, default 32 = 0.5 s), and the PQ bytes per index embedding the thresholds
are calibrated for (index_pq_m, default 32); MODEL_CARD.md has the measurements. Exporting drops
calibrated thresholds: run scripts/calibrate-threshold.py afterwards.
"""

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from earshot_model import container, frontend, modelfile, reference  # noqa: E402
from earshot_model.net import EarshotNet  # noqa: E402
import train  # noqa: E402  (the mask geometry of --spec-mask)

TRAIN_COMMAND = "models/train-recipe.sh"
# Index hop in frames (16 x 15.6 ms = 0.25 s) and query hop (32 = 0.5 s). The network is
# trained on single patches and is hop-agnostic. On train calibration queries a 0.25 s index hop
# kept 71.5 / 87.9 / 92.2 / 95.6 / 98.1 % of 1 / 2 / 3 / 5 / 10 s queries at 0.3 % false
# positives, against 52.8 / 83.4 / 85.9 / 93.8 / 93.9 % with 0.5 s, for 1.7x the index bytes
# (a query is never more than 0.125 s from an index embedding); querying every 0.5 s instead of
# 0.25 s kept as many and halves the query's network and search work (MODEL_CARD.md).
DEFAULT_HOP_FRAMES = 16
DEFAULT_QUERY_HOP_FRAMES = 32
# PQ bytes per index embedding (`earshot build` default; the thresholds are calibrated for it).
# On the pooled train calibration queries at the 0.1 % false-positive target, 32 bytes kept
# 69.1 / 89.6 / 90.5 / 97.2 / 97.7 % of 1 / 2 / 3 / 5 / 10 s in-catalog queries against
# 57.2 / 81.2 / 82.5 / 96.2 / 96.5 % with 16 bytes (64 bytes: no better than 32), for 1.8x the
# index bytes (8.7 KB per minute; docs/EVALUATION.md, session 5).
DEFAULT_INDEX_PQ_M = 32


def net_from_checkpoint(ck):
    cfg = ck["config"]
    channels = [int(c) for c in cfg["channels"].split(",")]
    net = EarshotNet(62, 64, channels, cfg["dim"])
    net.load_state_dict(ck["net"])
    net.eval()
    return net


def thresholds_of(path, layers):
    """The calibrated threshold metadata of model file `path`, which must hold `layers`."""
    meta = container.read_container_file(path, "MODL").meta
    if meta.get("layers") != layers:
        raise RuntimeError(f"{path}: another network than the checkpoint's; its thresholds "
                           "do not apply (calibrate instead: docs/EVALUATION.md)")
    return {k: v for k, v in meta.items() if k.startswith("threshold")}


def export_checkpoint(ckpt_path, out_path, name="earshot-v1", hop_frames=DEFAULT_HOP_FRAMES,
                      query_hop_frames=DEFAULT_QUERY_HOP_FRAMES, index_pq_m=DEFAULT_INDEX_PQ_M,
                      weights="f16", thresholds_from=None):
    ck = torch.load(ckpt_path)
    net = net_from_checkpoint(ck)
    cfg, state = ck["config"], ck["state"]
    last_dev = state["history"][-1] if state["history"] else None
    training = {
        "seed": cfg["seed"],
        "steps": state["step"],
        "train_minutes": round(state["train_s"] / 60.0, 1),
        "finished": bool(state.get("done")),
        "loss": cfg["loss"],
        "tau": cfg["tau"] if cfg["loss"] == "ntxent" else None,
        "batch_pairs": cfg["batch"],
        "lr": cfg["lr"],
        "data": f"earshot train set ({cfg['corpus']}): {len(ck['train_ids'])} songs; "
                "dev songs held out",
        "dev_held_out": ck["dev"],
        # Songs of the train set kept out of training (train.py --exclude-albums, and the seeded
        # --holdout-albums share kept unseen for calibration); absent in older checkpoints.
        "excluded": ck.get("excluded", []),
        "held_out_unseen": ck.get("holdout", []),
        "album_groups": {"share": cfg.get("album_frac", 0.0), "size": cfg.get("album_group", 8)},
        "augmentation": f"synthetic RIR (RT60 0.2-{cfg.get('rt60_max', 1.0)} s, "
                        f"{cfg.get('rir_sec', 0.75)} s long, DRR -6..+6 dB), Butterworth "
                        "band-pass, tilt +-6 dB, tanh soft clip 0-12 dB, train noise -5..+15 dB "
                        "SNR, level -30..-12 dBFS, 16-bit, +-0.25 s shift"
                        + (f"; SpecAugment-style masks on {cfg['spec_mask']:g} of the degraded "
                           "views (" + train.describe_spec_mask(
                               # runs v6 and v7 predate the record; they used today's shape
                               cfg.get("spec_mask_shape", train.SPEC_MASK_SHAPE)) + ")"
                           if cfg.get("spec_mask") else ""),
        "warm_start": state.get("init_from"),
        "command": TRAIN_COMMAND,
        "dev_last": last_dev,
    }
    description = ("earshot v1 fingerprint network: 5x conv3x3/2 + BN(folded) + ReLU, dense, "
                   "L2; contrastive training on the earshot train set.")
    thresholds = thresholds_of(thresholds_from, net.export_layers()[0]) if thresholds_from else {}
    digest = modelfile.write_model_file(out_path, net, name, weights=weights,
                                        extra_meta=thresholds, hop_frames=hop_frames,
                                        query_hop_frames=query_hop_frames,
                                        index_pq_m=index_pq_m, description=description,
                                        training=training)
    check_parity(out_path, net)
    return digest


def check_parity(path, net, n=4, seed=0, min_cosine=0.9999):
    """Pure-numpy reference on the file vs the torch model on random-song-like log-mels."""
    c = container.read_container_file(path, "MODL")
    rng = np.random.default_rng(seed)
    worst = 1.0
    for _ in range(n):
        pcm = (rng.standard_normal(16000) * np.linspace(0.01, 0.3, 16000)).astype(np.float32)
        logmel = frontend.logmel_numpy(pcm)[:62]
        ref = reference.embed(c, logmel)
        with torch.no_grad():
            out = net(torch.from_numpy(logmel)[None])[0].double().numpy()
        worst = min(worst, float(ref @ out / np.linalg.norm(ref) / np.linalg.norm(out)))
    if worst < min_cosine:
        raise RuntimeError(f"{path}: export parity cosine {worst} < {min_cosine}")
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    parser.add_argument("--name", default="earshot-v1")
    parser.add_argument("--hop-frames", type=int, default=DEFAULT_HOP_FRAMES,
                        help="index hop in frames of 250 samples (default: %(default)s = 0.25 s)")
    parser.add_argument("--query-hop-frames", type=int, default=DEFAULT_QUERY_HOP_FRAMES,
                        help="query hop in frames (default: %(default)s = 0.5 s)")
    parser.add_argument("--index-pq-m", type=int, default=DEFAULT_INDEX_PQ_M,
                        help="PQ bytes per index embedding (default: %(default)s)")
    parser.add_argument("--weights", choices=sorted(modelfile.WEIGHT_DTYPES), default="f16",
                        help="weight storage (default: %(default)s, model_version 2; f32 writes "
                             "a model_version 1 file)")
    parser.add_argument("--thresholds-from", metavar="MODEL",
                        help="copy the calibrated thresholds of this export of the same network")
    args = parser.parse_args()
    digest = export_checkpoint(args.checkpoint, args.out, args.name, args.hop_frames,
                               args.query_hop_frames, args.index_pq_m, args.weights,
                               args.thresholds_from)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes) sha256 {digest}")


if __name__ == "__main__":
    main()
