"""Training checkpoints (models/checkpoints/RUN/last.pt, written by train.py): the network they
hold, the training record a model file carries, and their export to a model file.

A checkpoint is a dict: "net" (state dict), "config" (train.py's arguments, plus
"spec_mask_shape" with --spec-mask), "state" (step, train_s, dev "history", "done",
"init_from" after a warm start), "train_ids", "dev" ({"unseen", "seen", "neg"} song ids),
"holdout" and "excluded"; train.py adds the optimizer and RNG states to resume from."""


import torch

from . import augment, model_file
from .frontend import DEFAULT_GEOMETRY, DEFAULT_PARAMS
from .net import EarshotNet

TRAIN_COMMAND = "models/train-recipe.sh"


def net_from_checkpoint(ck):
    """The checkpoint's network, in eval mode."""
    cfg = ck["config"]
    channels = [int(c) for c in cfg["channels"].split(",")]
    net = EarshotNet(DEFAULT_GEOMETRY["context_frames"], DEFAULT_PARAMS["n_mels"], channels,
                     cfg["dim"])
    net.load_state_dict(ck["net"])
    net.eval()
    return net


def training_record(ck):
    """The "training" metadata of a model file exported from checkpoint `ck`."""
    cfg, state = ck["config"], ck["state"]
    last_dev = state["history"][-1] if state["history"] else None
    return {
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
        # Songs of the train set kept out of training (--exclude-albums, and the seeded
        # --holdout-albums share kept unseen for calibration).
        "excluded": ck.get("excluded", []),
        "held_out_unseen": ck.get("holdout", []),
        "album_groups": {"share": cfg.get("album_frac", 0.0), "size": cfg.get("album_group", 8)},
        "augmentation": f"synthetic RIR (RT60 0.2-{cfg.get('rt60_max', 1.0)} s, "
                        f"{cfg.get('rir_sec', 0.75)} s long, DRR -6..+6 dB), Butterworth "
                        "band-pass, tilt +-6 dB, tanh soft clip 0-12 dB, train noise -5..+15 dB "
                        "SNR, level -30..-12 dBFS, 16-bit, +-0.25 s shift"
                        + (f"; SpecAugment-style masks on {cfg['spec_mask']:g} of the degraded "
                           "views (" + augment.describe_spec_mask(
                               # checkpoints from before the shape was recorded used this one
                               cfg.get("spec_mask_shape", augment.SPEC_MASK_SHAPE)) + ")"
                           if cfg.get("spec_mask") else ""),
        "warm_start": state.get("init_from"),
        "command": TRAIN_COMMAND,
        "dev_last": last_dev,
    }


def export_checkpoint(ckpt_path, out_path, name="earshot-v1",
                      hop_frames=DEFAULT_GEOMETRY["hop_frames"],
                      query_hop_frames=DEFAULT_GEOMETRY["query_hop_frames"],
                      index_pq_m=model_file.DEFAULT_INDEX_PQ_M, weights="f16",
                      thresholds_from=None):
    """Writes the model file of checkpoint `ckpt_path` to `out_path` (with the calibrated
    thresholds of model file `thresholds_from`, which must hold the same network), checks it
    against the numpy reference and returns its hash."""
    ck = torch.load(ckpt_path)
    net = net_from_checkpoint(ck)
    description = (f"earshot v1 fingerprint network: {len(net.channels)}x conv3x3/2 + "
                   "BN(folded) + ReLU, dense, L2; contrastive training on the earshot train set.")
    thresholds = {}
    if thresholds_from:
        thresholds = model_file.thresholds_of(thresholds_from, net.export_layers()[0])
    digest = model_file.write_model_file(out_path, net, name, weights=weights,
                                         extra_meta=thresholds, hop_frames=hop_frames,
                                         query_hop_frames=query_hop_frames,
                                         index_pq_m=index_pq_m, description=description,
                                         training=training_record(ck))
    model_file.check_parity(out_path, net)
    return digest
