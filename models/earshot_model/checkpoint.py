"""Training checkpoints (models/checkpoints/RUN/last.pt, written by train.py): the network they
hold, the training record a model file carries, and their export to a model file.

A checkpoint is a dict: "net" (state dict), "config" (train.py's arguments, plus
"spec_mask_shape" with --spec-mask), "state" (step, train_s, dev "history", "done",
"init_from" after a warm start), "train_ids", "dev" ({"unseen", "seen", "neg"} song ids),
"holdout" and "excluded"; train.py adds the optimizer and RNG states to resume from."""

import os

import torch

from . import augment, model_file
from .frontend import DEFAULT_GEOMETRY, DEFAULT_PARAMS
from .net import EarshotNet
from .sampling import MAX_SHIFT

# Arguments that name folders of this machine: the record keeps their last component (the
# corpus set's name, the dev queries' folder name), never the path.
FOLDER_ARGUMENTS = ("corpus", "dev_queries")
# Not recorded among the arguments: the warm start is recorded as "warm_start", the mask shape
# is part of "augmentation".
UNRECORDED_CONFIG = ("init_from", "init_from_model", "spec_mask_shape")


def net_from_checkpoint(ck):
    """The checkpoint's network, in eval mode."""
    cfg = ck["config"]
    channels = [int(c) for c in cfg["channels"].split(",")]
    net = EarshotNet(DEFAULT_GEOMETRY["context_frames"], DEFAULT_PARAMS["n_mels"], channels,
                     cfg["dim"])
    net.load_state_dict(ck["net"])
    net.eval()
    return net


def folder_name(path):
    """The last component of a folder path: the corpus set's name for DEST/SET."""
    return os.path.basename(os.path.normpath(path))


def describe_augmentation(cfg):
    """The training augmentation of a run, from its arguments and augment.py's fixed ranges."""
    snr_lo, snr_hi = augment.SNR_DB_RANGE
    if "snr_db" in cfg:
        snr_lo, snr_hi = (float(v) for v in cfg["snr_db"].split(","))
    share = cfg.get("synthetic_noise", 0.0)
    noise = "train noise" if not share else \
        f"train noise and synthetic noise ({share:g} of the draws)"
    rate = DEFAULT_PARAMS["sample_rate_hz"]
    drr_lo, drr_hi = augment.DRR_DB_RANGE
    if "drr_db" in cfg:
        drr_lo, drr_hi = (float(v) for v in cfg["drr_db"].split(","))
    rt60 = "log-uniform " if cfg.get("rt60_log") else ""
    device = (f"loudspeaker and microphone responses on {cfg['p_device']:g} of the views, "
              if cfg.get("p_device") else "")
    text = (f"synthetic RIR (RT60 {rt60}{augment.RT60_MIN_S}-"
            f"{cfg.get('rt60_max', augment.RT60_MAX_S)}"
            f" s, {cfg.get('rir_sec', augment.RIR_S)} s long, DRR {drr_lo:g}.."
            f"{drr_hi:+g} dB), {device}Butterworth band-pass, "
            f"tilt +-{augment.TILT_DB:g} dB, tanh soft clip {augment.CLIP_DRIVE_DB_RANGE[0]:g}-"
            f"{augment.CLIP_DRIVE_DB_RANGE[1]:g} dB, {noise} {snr_lo:g}..{snr_hi:+g} dB SNR, "
            f"level {augment.LEVEL_DBFS_RANGE[0]:g}..{augment.LEVEL_DBFS_RANGE[1]:g} dBFS, "
            f"16-bit, +-{MAX_SHIFT / rate:g} s shift")
    if cfg.get("speed_range"):
        text += (f"; {cfg.get('p_speed', 0.5):g} of the positives at speed 1+-"
                 f"{cfg['speed_range']:g} (half pitch and tempo, half tempo alone)")
    if cfg.get("speed_variants"):
        text += "; each song also at speeds " + ", ".join(
            f"x{float(f):g}" for f in cfg["speed_variants"].split(",")) + " as new songs"
    if cfg.get("spec_mask"):
        # Checkpoints from before the shape was recorded used today's SPEC_MASK_SHAPE.
        shape = cfg.get("spec_mask_shape", augment.SPEC_MASK_SHAPE)
        text += (f"; SpecAugment-style masks on {cfg['spec_mask']:g} of the degraded views ("
                 + augment.describe_spec_mask(shape) + ")")
    return text


def training_record(ck):
    """The "training" metadata of a model file exported from checkpoint `ck`, derived from the
    arguments the run was started with and the state it reached."""
    cfg, state = ck["config"], ck["state"]
    last_dev = state["history"][-1] if state["history"] else None
    arguments = {}
    for key, value in cfg.items():
        if key in FOLDER_ARGUMENTS:
            arguments[key] = folder_name(value)
        elif key not in UNRECORDED_CONFIG:
            arguments[key] = value
    return {
        "seed": cfg["seed"],
        "steps": state["step"],
        "train_minutes": round(state["train_s"] / 60.0, 1),
        "finished": bool(state.get("done")),
        "loss": cfg["loss"],
        "tau": cfg["tau"] if cfg["loss"] == "ntxent" else None,
        "batch_pairs": cfg["batch"],
        "lr": cfg["lr"],
        "data": f"earshot train set ({folder_name(cfg['corpus'])}): {len(ck['train_ids'])} "
                "songs; dev songs held out",
        "dev_held_out": ck["dev"],
        # Songs of the train set kept out of training (--exclude-albums, and the seeded
        # --holdout-albums share kept unseen for calibration).
        "excluded": ck.get("excluded", []),
        "held_out_unseen": ck.get("holdout", []),
        "album_groups": {"share": cfg.get("album_frac", 0.0), "size": cfg.get("album_group", 8)},
        "augmentation": describe_augmentation(cfg),
        "warm_start": state.get("init_from"),
        # One entry per training process (resumed runs have several): steps, minutes.
        "pieces": state.get("pieces", []),
        "arguments": arguments,
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
