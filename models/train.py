"""Trains the earshot fingerprint network (contrastive, NT-Xent by default) on the train set.

    /usr/bin/python3 -m models.train --run NAME --corpus DEST/train --dev-queries QDIR [options]

Run from the repository root. Checkpoints go to models/checkpoints/NAME/ (last.pt, and the dev
metric's history in dev.jsonl); the same command resumes from last.pt after an interruption.
models/train-recipe.sh trains the shipped model; models.export turns a checkpoint into a model
file.

--corpus is a train set written by ../shared/eval/fetch-corpus (DEST/train); --dev-queries is a
make-queries folder cut from it. The songs that folder indexes (some trained on, some not) and
some of its out-of-catalog songs are the dev metric's (earshot_model/dev_metric.py), measured
every --dev-min minutes and at the end; earshot_model/splits.py chooses them.

The learning-rate schedule is warm-up then cosine over the run's budget: --budget-min minutes of
training time, accumulated across restarts, so the run ends on time on a shared CPU; or, with
--budget-steps, a number of steps, so the same command makes the same run on a busy machine or
a quiet one (a time budget gives fewer steps where other jobs share the cores). A step counts
at most MAX_STEP_S seconds of the time budget (a stopped or suspended process does not eat
it), and SIGTERM or SIGINT saves last.pt before the process exits.
"""

import argparse
import json
import math
import os
import signal
import time

import torch

from models.earshot_model import (augment, checkpoint, data, dev_metric, frontend, model_file,
                                  splits)
from models.earshot_model.augment import SPEC_MASK_SHAPE, Degrader, spec_mask
from models.earshot_model.losses import (CrossBatchMemory, false_negative_mask, nt_xent,
                                         semi_hard_triplet)
from models.earshot_model.net import DEFAULT_CHANNELS, DEFAULT_EMBEDDING_DIM, EarshotNet
from models.earshot_model.sampling import (PRE_SAMPLES, SEG_SAMPLES, Sampler, speed_variants,
                                           tempo_frames)

MODELS_DIR = os.path.dirname(os.path.abspath(__file__))
RATE_HZ = frontend.DEFAULT_PARAMS["sample_rate_hz"]
MAX_STEP_S = 30.0


def budget_progress(state, budget_min, budget_steps):
    """How far a run is through its budget (0..1, 1 or more: done): steps with budget_steps,
    else training minutes."""
    if budget_steps > 0:
        return state["step"] / budget_steps
    return state["train_s"] / (budget_min * 60.0)


def lr_at(progress, base_lr, warmup=0.03, final=0.01):
    """Learning rate at `progress` (0..1) of the budget (budget_progress): linear warm-up over
    `warmup` (from 2 % of base_lr), then cosine down to final * base_lr."""
    if progress < warmup:
        return base_lr * max(progress / warmup, 0.02)
    p = (progress - warmup) / (1 - warmup)
    return base_lr * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))


def build_parser():
    parser = argparse.ArgumentParser(prog="python3 -m models.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True,
                        help="run name: checkpoints in models/checkpoints/RUN/")
    parser.add_argument("--corpus", required=True,
                        help="the train set folder (catalog.tsv, noise.tsv) of fetch-corpus")
    parser.add_argument("--dev-queries", required=True,
                        help="make-queries folder of train-set clips for the dev metric")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of the initialisation, sampling, augmentation and splits")
    parser.add_argument("--batch", type=int, default=256, help="pairs per step")
    parser.add_argument("--budget-min", type=float, default=75.0,
                        help="training time in minutes (the schedule's length)")
    parser.add_argument("--budget-steps", type=int, default=0,
                        help="steps (the schedule's length, instead of --budget-min; 0: minutes)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (AdamW)")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--loss", choices=["ntxent", "triplet"], default="ntxent")
    parser.add_argument("--tau", type=float, default=0.05, help="NT-Xent temperature")
    parser.add_argument("--margin", type=float, default=0.4, help="triplet margin")
    parser.add_argument("--memory", type=int, default=0,
                        help="NT-Xent only: also use the last N views of earlier batches as "
                             "negatives (cross-batch memory; 0 = off)")
    parser.add_argument("--channels", default=",".join(map(str, DEFAULT_CHANNELS)),
                        help="conv widths, comma-separated (default: %(default)s)")
    parser.add_argument("--dim", type=int, default=DEFAULT_EMBEDDING_DIM,
                        help="embedding size")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--ckpt-min", type=float, default=5.0,
                        help="save last.pt every N minutes")
    parser.add_argument("--dev-min", type=float, default=20.0,
                        help="measure the dev metric every N minutes")
    parser.add_argument("--export-min", type=float, default=0.0,
                        help="export models/earshot-v1.emod every N minutes (0 = never)")
    parser.add_argument("--n-dev-songs", type=int, default=16,
                        help="indexed dev songs kept out of training (unseen)")
    parser.add_argument("--n-dev-seen", type=int, default=4,
                        help="indexed dev songs that are trained on (seen)")
    parser.add_argument("--rt60-max", type=float, default=augment.RT60_MAX_S,
                        help=f"synthetic rooms draw RT60 uniformly in {augment.RT60_MIN_S}..this "
                             "(s)")
    parser.add_argument("--snr-db", default="{:g},{:g}".format(*augment.SNR_DB_RANGE),
                        help="additive noise SNR range LO,HI (dB, drawn uniformly)")
    parser.add_argument("--rir-sec", type=float, default=augment.RIR_S,
                        help="length of the synthetic impulse responses (s)")
    parser.add_argument("--rt60-log", action="store_true",
                        help="draw RT60 log-uniformly (default: uniformly)")
    parser.add_argument("--drr-db", default="{:g},{:g}".format(*augment.DRR_DB_RANGE),
                        help="direct-to-reverberant ratio range LO,HI of the rooms (dB)")
    parser.add_argument("--p-device", type=float, default=0.0,
                        help="share of the degraded views through a random loudspeaker and "
                             "microphone response (augment.device_response_bank); 0 = off")
    parser.add_argument("--speed-range", type=float, default=0.0,
                        help="positives played at 1 +- this speed (e.g. 0.03), half with pitch "
                             "and tempo together, half with the tempo alone; 0 = off")
    parser.add_argument("--p-speed", type=float, default=0.5,
                        help="share of the positives whose speed changes (with --speed-range)")
    parser.add_argument("--exclude-albums", default="",
                        help="comma-separated catalog albums left out of training (e.g. "
                             "planetblupi-music-midi: MIDI renders of tunes also in the set)")
    parser.add_argument("--holdout-albums", default="",
                        help="comma-separated albums (or * for all) of which --holdout-frac of "
                             "the songs (by seeded hash) are kept out of training: unseen music "
                             "for calibration")
    parser.add_argument("--holdout-frac", type=float, default=0.25)
    parser.add_argument("--album-frac", type=float, default=0.0,
                        help="share of each batch drawn in same-album groups (hard negatives)")
    parser.add_argument("--album-group", type=int, default=8,
                        help="segments per same-album group")
    parser.add_argument("--synthetic-noise", type=float, default=0.0,
                        help="share of the noise draws that are synthetic environmental noise "
                             "(coloured, modulated, with clicks; augment.synthetic_noise) "
                             "instead of a train noise file; 0 = off")
    parser.add_argument("--speed-variants", default="",
                        help="comma-separated speed factors (e.g. 0.9,1.1): each trained song "
                             "is also resampled by each factor and trained on as a new song of "
                             "its album (song augmentation, like speaker augmentation in speaker "
                             "verification); empty = off")
    parser.add_argument("--spec-mask", type=float, default=0.0,
                        help="share of the degraded views masked SpecAugment-style ("
                             + augment.describe_spec_mask(SPEC_MASK_SHAPE)
                             + "; augment.spec_mask); 0 = off")
    parser.add_argument("--init-from", default="",
                        help="warm start: take the network, optimizer and random-stream state of "
                             "this checkpoint (same --seed: same splits), then run a fresh "
                             "schedule (--lr, --budget-min)")
    parser.add_argument("--init-from-model", default="",
                        help="warm start from a model file (e.g. models/earshot-v1.emod, same "
                             "channels): its network with BatchNorm unfolded on a few training "
                             "batches (EarshotNet.unfold_batchnorm), a fresh optimizer and "
                             "schedule (--lr, --budget-min)")
    return parser


def main():
    args = build_parser().parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    ckpt_dir = os.path.join(MODELS_DIR, "checkpoints", args.run)
    os.makedirs(ckpt_dir, exist_ok=True)
    ckpt_path = os.path.join(ckpt_dir, "last.pt")

    # Data: dev songs (indexed in the dev queries) are held out of training; out-of-catalog
    # dev queries come from held-out songs too.
    catalog = data.read_catalog(os.path.join(args.corpus, "catalog.tsv"))
    album_of = {r["id"]: r["album"] for r in catalog}
    ids, songs = data.load_songs(os.path.join(args.corpus, "catalog.tsv"), verbose=False)
    noise_cats, noise_audio = data.load_noise(os.path.join(args.corpus, "noise.tsv"),
                                              verbose=False)
    dev_queries = splits.DevQueries(args.dev_queries)
    split = splits.split_songs(ids, album_of, dev_queries.indexed, dev_queries.sources(),
                               args.seed, args.n_dev_songs, args.n_dev_seen, args.exclude_albums,
                               args.holdout_albums, args.holdout_frac)
    by_id = dict(zip(ids, songs))
    train_songs = [by_id[s] for s in split.train_ids]
    train_albums = [album_of[s] for s in split.train_ids]
    hours = sum(len(a) for a in train_songs) / RATE_HZ / 3600
    if args.speed_variants:
        factors = [float(f) for f in args.speed_variants.split(",")]
        train_songs, train_albums = speed_variants(train_songs, train_albums, factors)
        print(f"speed variants {factors}: {len(train_songs)} training songs", flush=True)
    print(f"train: {len(split.train_ids)} songs {hours:.2f} h; noise {len(noise_audio)} files; "
          f"dev unseen {len(split.dev_unseen)} seen {len(split.dev_seen)} "
          f"neg {len(split.dev_neg)}; excluded {len(split.excluded)}, "
          f"held out {len(split.holdout)}", flush=True)

    dev_index = split.dev_unseen + split.dev_seen
    dev = dev_metric.DevSet(args.dev_queries, {s: by_id[s] for s in dev_index}, dev_index)
    dev.queries = [q for q in dev.queries if q["song"] != "-" or
                   dev_queries.source_of[q["query"]] in split.dev_neg]
    print(f"dev queries: {len(dev.queries)}", flush=True)

    channels = [int(c) for c in args.channels.split(",")]
    net = EarshotNet(channels=channels, embedding_dim=args.dim)
    net.reset_he(torch.Generator().manual_seed(args.seed))
    print(f"params {net.n_params_exported()} flops {net.flops()}", flush=True)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    front = frontend.TorchFrontend()
    rir_samples = int(round(args.rir_sec * RATE_HZ))
    pre_samples = max(PRE_SAMPLES, rir_samples)
    snr_lo, snr_hi = (float(v) for v in args.snr_db.split(","))
    drr_lo, drr_hi = (float(v) for v in args.drr_db.split(","))
    sampler = Sampler(train_songs, noise_cats, noise_audio, args.seed, pre_samples,
                      albums=train_albums, album_frac=args.album_frac,
                      group=args.album_group, synthetic_noise=args.synthetic_noise,
                      speed_range=args.speed_range, p_speed=args.p_speed)
    degrader = Degrader(args.seed, pre_samples, SEG_SAMPLES + 2 * sampler.pad,
                        rir_samples=rir_samples, rt60_range=(augment.RT60_MIN_S, args.rt60_max),
                        snr_db_range=(snr_lo, snr_hi), drr_db_range=(drr_lo, drr_hi),
                        rt60_log=args.rt60_log, p_device=args.p_device)
    gen = torch.Generator().manual_seed(args.seed)

    state = {"step": 0, "train_s": 0.0, "history": []}
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        made = ck.get("config", {})
        if (made.get("budget_steps", 0), made.get("budget_min")) != \
                (args.budget_steps, args.budget_min):
            raise SystemExit(f"{ckpt_path} was made with another budget (--budget-steps "
                             f"{made.get('budget_steps', 0)}, --budget-min "
                             f"{made.get('budget_min')}): resuming it would mix two schedules; "
                             "use its options, or remove the folder to start over")
        net.load_state_dict(ck["net"])
        opt.load_state_dict(ck["opt"])
        gen.set_state(ck["gen"])
        sampler.rng.bit_generator.state = ck["sampler_rng"]
        torch.set_rng_state(ck["torch_rng"])
        state = ck["state"]
        print(f"resumed at step {state['step']} ({state['train_s'] / 60:.1f} min)", flush=True)
    elif args.init_from:
        ck = torch.load(args.init_from)
        net.load_state_dict(ck["net"])
        opt.load_state_dict(ck["opt"])
        for group in opt.param_groups:
            group["initial_lr"] = args.lr
        # Its random streams too: the run goes on to new batches rather than replaying the
        # checkpoint's first ones (the same --seed keeps the same splits and banks).
        gen.set_state(ck["gen"])
        sampler.rng.bit_generator.state = ck["sampler_rng"]
        torch.set_rng_state(ck["torch_rng"])
        state["init_from"] = {"path": os.path.relpath(args.init_from, MODELS_DIR),
                              "step": ck["state"]["step"],
                              "train_min": round(ck["state"]["train_s"] / 60, 1)}
        print(f"warm start from {args.init_from} (step {ck['state']['step']})", flush=True)

    elif args.init_from_model:
        start = model_file.net_from_model_file(args.init_from_model)
        if (start.channels, start.embedding_dim, start.context_frames) != (
                net.channels, net.embedding_dim, net.context_frames):
            raise SystemExit(f"{args.init_from_model}: channels {start.channels} dim "
                             f"{start.embedding_dim}, not this run's {net.channels} "
                             f"{net.embedding_dim}")
        with torch.no_grad():  # BatchNorm statistics from clean anchors of the training music
            x = torch.cat([front(sampler.batch(args.batch)[0]) for _ in range(4)])
        net.load_state_dict(start.unfold_batchnorm(x).state_dict())
        state["init_from"] = {"model": os.path.relpath(args.init_from_model, MODELS_DIR),
                              "network_sha256": model_file.network_hash(args.init_from_model)}
        print(f"warm start from {args.init_from_model}", flush=True)

    # Each process that trains is a piece: its first and last step, training minutes and wall
    # minutes go into the checkpoint (and the model file's training record).
    pieces = state.setdefault("pieces", [])
    if state["step"] > 0 and not pieces:  # a run resumed from a checkpoint without records
        pieces.append({"from_step": 0, "from_train_min": 0.0, "to_step": state["step"],
                       "to_train_min": round(state["train_s"] / 60, 1), "wall_min": None})
    piece_t0 = time.time()
    pieces.append({"from_step": state["step"], "from_train_min": round(state["train_s"] / 60, 1),
                   "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    if args.budget_steps < 0:
        raise SystemExit("--budget-steps must be >= 0")
    config = vars(args).copy()  # checkpoint.training_record describes the run from it
    if args.spec_mask:
        config["spec_mask_shape"] = dict(SPEC_MASK_SHAPE)

    def save(tag="last"):
        pieces[-1].update(to_step=state["step"], to_train_min=round(state["train_s"] / 60, 1),
                          wall_min=round((time.time() - piece_t0) / 60, 1))
        ck = {"net": net.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(),
              "sampler_rng": sampler.rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
              "state": state, "config": config, "train_ids": split.train_ids,
              "dev": {"unseen": split.dev_unseen, "seen": split.dev_seen, "neg": split.dev_neg},
              "holdout": split.holdout, "excluded": sorted(split.excluded)}
        tmp = os.path.join(ckpt_dir, f"{tag}.pt.tmp")
        torch.save(ck, tmp)
        os.replace(tmp, os.path.join(ckpt_dir, f"{tag}.pt"))

    def run_dev():
        t = time.time()
        result = dev.evaluate(net, seen_ids=set(split.dev_seen))
        result["step"] = state["step"]
        result["train_min"] = round(state["train_s"] / 60, 1)
        state["history"].append(result)
        print(f"DEV step {state['step']} ({time.time() - t:.0f}s): "
              f"{dev_metric.format_result(result)}", flush=True)
        with open(os.path.join(ckpt_dir, "dev.jsonl"), "a") as f:
            f.write(json.dumps(result) + "\n")

    def export():
        save()
        checkpoint.export_checkpoint(ckpt_path, os.path.join(MODELS_DIR, "earshot-v1.emod"))

    stop = []

    def on_signal(signum, _frame):
        stop.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    memory = CrossBatchMemory(args.memory, args.dim) if args.memory else None
    if state["step"] == 0 and (args.init_from or args.init_from_model):
        run_dev()  # the starting point's dev figures, for comparison with the run's
    net.train()
    last_ckpt = last_dev = last_export = time.time()
    t_log = time.time()
    loss_avg = None
    while budget_progress(state, args.budget_min, args.budget_steps) < 1.0:
        t0 = time.time()
        lr = lr_at(budget_progress(state, args.budget_min, args.budget_steps), args.lr)
        for group in opt.param_groups:
            group["lr"] = lr
        anchors, raws, noise, song_idx, starts, tempo = sampler.batch(args.batch)
        with torch.no_grad():
            positives = degrader(raws, noise, gen)
            if sampler.pad:  # frames beyond the patch: read at each positive's tempo
                xp = tempo_frames(front(positives), tempo, net.context_frames)
                x = torch.cat([front(anchors), xp])
            else:
                x = front(torch.cat([anchors, positives]))  # [2b, context_frames, n_mels]
            if args.spec_mask:
                x[args.batch:] = spec_mask(x[args.batch:], gen, args.spec_mask,
                                           config["spec_mask_shape"])
        z = net(x)
        za, zp = z[:args.batch], z[args.batch:]
        fn = false_negative_mask(song_idx, starts)
        if args.loss == "ntxent":
            extra = memory.negatives(song_idx) if memory is not None else (None, None)
            loss = nt_xent(za, zp, args.tau, fn, *extra)
        else:
            loss = semi_hard_triplet(za, zp, args.margin, fn)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if memory is not None:  # after backward: the loss's graph holds a view of the queue
            memory.push(z, song_idx.repeat(2))
        state["step"] += 1
        state["train_s"] += min(time.time() - t0, MAX_STEP_S)
        loss_avg = loss.item() if loss_avg is None else 0.95 * loss_avg + 0.05 * loss.item()
        if state["step"] % 10 == 0:
            with torch.no_grad():
                acc = ((za @ zp.T).argmax(1) == torch.arange(args.batch)).float().mean()
            rate = 10 / (time.time() - t_log)
            t_log = time.time()
            budget = (f"/{args.budget_steps}" if args.budget_steps else "") + \
                f" train {state['train_s'] / 60:.1f}" + \
                ("" if args.budget_steps else f"/{args.budget_min:.0f}")
            print(f"step {state['step']}{budget}"
                  f" min lr {lr:.2e} loss {loss_avg:.4f} batch-acc {acc:.3f} "
                  f"{rate:.3f} steps/s", flush=True)
        now = time.time()
        if now - last_ckpt > args.ckpt_min * 60:
            save()
            last_ckpt = now
        if now - last_dev > args.dev_min * 60:
            run_dev()
            last_dev = time.time()
        if args.export_min and now - last_export > args.export_min * 60:
            export()
            last_export = time.time()
        if stop:
            save()
            print(f"signal {stop[0]}: saved at step {state['step']} "
                  f"({state['train_s'] / 60:.1f} min); run the same command to resume",
                  flush=True)
            # Not a finished run: exit as a killed process would, so recipes stop here.
            raise SystemExit(128 + stop[0])
    state["done"] = True
    save()
    if not state["history"] or state["history"][-1]["step"] != state["step"]:
        run_dev()
        save()
    print(f"done: {state['step']} steps, {state['train_s'] / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
