#!/usr/bin/python3
"""Trains the earshot v1 fingerprint network (contrastive, NT-Xent by default) on the train set.

One command from scratch, resumes automatically from models/checkpoints/<run>/last.pt:
    nohup nice -n 3 /usr/bin/python3 models/train.py --run v1 > models/checkpoints/v1.log 2>&1 &

The learning-rate schedule is time-based (warm-up then cosine over --budget-min minutes of
training time, accumulated across restarts), so the run ends on time on a shared CPU.
"""

import argparse
import hashlib
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from earshot_model import data, deveval, frontend  # noqa: E402
from earshot_model.augment import Degrader, synthetic_noise  # noqa: E402
from earshot_model.net import EarshotNet, matmul_nt  # noqa: E402

MODELS_DIR = os.path.dirname(os.path.abspath(__file__))
CONTEXT_FRAMES = 62
HOP_LENGTH = 250
N_FFT = 512
SEG_SAMPLES = N_FFT + (CONTEXT_FRAMES - 1) * HOP_LENGTH  # 15762 samples = 0.985 s
PRE_SAMPLES = 12000  # default pre-roll for reverb tails (>= RIR length - 1)
MAX_SHIFT = 4000     # +-0.25 s = half the index hop, anchor vs positive


def stable_hash(text, seed):
    return hashlib.sha256(f"{seed}:{text}".encode()).hexdigest()


def valid_starts(audio, floor_dbfs=-45.0):
    """Frame-aligned start samples whose 0.985 s segment is above floor_dbfs RMS."""
    n = (len(audio) - SEG_SAMPLES - MAX_SHIFT) // HOP_LENGTH
    if n <= MAX_SHIFT // HOP_LENGTH:
        return np.zeros(0, dtype=np.int64)
    power = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    starts = np.arange(MAX_SHIFT // HOP_LENGTH + 1, n) * HOP_LENGTH
    rms = np.sqrt((power[starts + SEG_SAMPLES] - power[starts]) / SEG_SAMPLES)
    return starts[rms > 10 ** (floor_dbfs / 20)]


class Sampler:
    """Draws training segments. With album_frac > 0, that share of each batch comes in groups of
    `group` segments from one album (one game's soundtrack, one MIDI synth): in-batch negatives
    that share instruments and style, which the no-match decision must tell apart (out-of-catalog
    clips that score high are mostly from the same game as the song they hit)."""

    def __init__(self, songs, noise_cats, noise_audio, seed, pre_samples=PRE_SAMPLES,
                 albums=None, album_frac=0.0, group=8, synthetic_noise=0.0):
        self.pre = pre_samples
        self.synthetic_noise = synthetic_noise
        self.songs = songs
        self.starts = [valid_starts(a) for a in songs]
        weights = np.array([len(s) for s in self.starts], dtype=np.float64)
        self.song_p = weights / weights.sum()
        self.album_frac = album_frac
        self.group = group
        self.album_songs = []  # per album with >= 2 songs: (song indices, their p)
        if albums is not None and album_frac > 0:
            for name in sorted(set(albums)):
                members = np.array([i for i, a in enumerate(albums) if a == name])
                if len(members) >= 2 and weights[members].sum() > 0:
                    self.album_songs.append((members, weights[members] / weights[members].sum()))
            album_w = np.array([weights[m].sum() for m, _ in self.album_songs])
            self.album_p = album_w / album_w.sum() if len(album_w) else None
        self.noise_by_cat = {}
        for cat, audio in zip(noise_cats, noise_audio):
            self.noise_by_cat.setdefault(cat, []).append(audio)
        self.cats = sorted(self.noise_by_cat)
        self.rng = np.random.default_rng(seed)

    def batch(self, b):
        """Returns anchors [b, SEG], raw positive windows [b, PRE+SEG], noise [b, SEG],
        song index [b], anchor start sample [b]."""
        rng = self.rng
        song_idx = rng.choice(len(self.songs), size=b, p=self.song_p)
        if self.album_songs:
            n_groups = int(round(b * self.album_frac)) // self.group
            for g in range(n_groups):
                members, p = self.album_songs[rng.choice(len(self.album_songs), p=self.album_p)]
                song_idx[g * self.group:(g + 1) * self.group] = rng.choice(
                    members, size=self.group, p=p)
        anchors = np.zeros((b, SEG_SAMPLES), dtype=np.float32)
        raws = np.zeros((b, self.pre + SEG_SAMPLES), dtype=np.float32)
        noise = np.zeros((b, SEG_SAMPLES), dtype=np.float32)
        starts = np.zeros(b, dtype=np.int64)
        for k, si in enumerate(song_idx):
            audio = self.songs[si]
            start = int(rng.choice(self.starts[si]))
            starts[k] = start
            anchors[k] = audio[start:start + SEG_SAMPLES]
            pos = start + int(rng.integers(-MAX_SHIFT, MAX_SHIFT + 1))
            lo = pos - self.pre
            src_lo = max(lo, 0)
            raws[k, src_lo - lo:] = audio[src_lo:pos + SEG_SAMPLES]
            if self.synthetic_noise and rng.random() < self.synthetic_noise:
                noise[k] = synthetic_noise(rng, SEG_SAMPLES)
            else:
                files = self.noise_by_cat[self.cats[rng.integers(len(self.cats))]]
                nz = files[rng.integers(len(files))]
                off = int(rng.integers(len(nz)))
                noise[k] = np.take(nz, np.arange(off, off + SEG_SAMPLES), mode="wrap")
        return (torch.from_numpy(anchors), torch.from_numpy(raws), torch.from_numpy(noise),
                torch.from_numpy(song_idx), torch.from_numpy(starts))


def excluded_and_holdout(album_of, exclude_albums, holdout_albums, holdout_frac, seed):
    """Songs kept out of training: (every song of the comma-separated `exclude_albums`,
    a seeded `holdout_frac` of the songs of `holdout_albums`, sorted). album_of: id -> album."""
    excluded = {s for s, a in album_of.items() if a in exclude_albums.split(",")}
    pool = sorted(s for s, a in album_of.items() if a in holdout_albums.split(","))
    n_holdout = int(round(len(pool) * holdout_frac))
    holdout = sorted(pool, key=lambda s: stable_hash(s, seed))[:n_holdout]
    return excluded, holdout


def speed_variants(songs, albums, factors):
    """Appends, for each factor f, every song played f times faster (pitch and tempo together,
    like a turntable: scipy's polyphase resampler, factor as a ratio of small integers) as a
    new song of the same album. Returns (songs, albums).

    Speaker augmentation in speaker verification (Yamamoto et al., Interspeech 2019) treats
    0.9x and 1.1x speed-perturbed speakers as new speakers, which helps when there are few of
    them; here the train set holds 185 songs. A variant is a negative for its original (a
    fingerprinter should not take a 10 % faster rendition for the recording in its index) and,
    being of the same album, joins its same-album groups."""
    from fractions import Fraction
    from scipy.signal import resample_poly
    out_songs, out_albums = list(songs), list(albums)
    for f in factors:
        ratio = Fraction(f).limit_denominator(20)
        for audio, album in zip(songs, albums):
            # f times faster = the same audio at f x the rate: up/down = 1/f
            out_songs.append(resample_poly(audio, ratio.denominator, ratio.numerator)
                             .astype(np.float32))
            out_albums.append(album)
    return out_songs, out_albums


def false_negative_mask(song_idx, starts, min_gap=2 * 16000):
    """[b, b] True where two different batch items are the same song within min_gap samples
    (they are not true negatives)."""
    same = song_idx[:, None] == song_idx[None, :]
    near = (starts[:, None] - starts[None, :]).abs() < min_gap
    mask = same & near
    mask.fill_diagonal_(False)
    return mask


def nt_xent(za, zp, tau, fn_mask, memory=None, memory_fn=None):
    """Symmetric NT-Xent (SimCLR / Chang et al. 2021) over 2b views; the positive of each view
    is its pair, the negatives are all other 2b-2 views (minus masked false negatives), plus the
    rows of `memory` [m, dim] (earlier batches' views) not masked by `memory_fn` [b, m]."""
    b = za.shape[0]
    z = torch.cat([za, zp])
    logits = matmul_nt(z, z) / tau
    eye = torch.eye(2 * b, dtype=torch.bool)
    fn = fn_mask.repeat(2, 2)
    logits = logits.masked_fill(eye | fn, float("-inf"))
    if memory is not None and len(memory):
        extra = (matmul_nt(z, memory) / tau).masked_fill(memory_fn.repeat(2, 1), float("-inf"))
        logits = torch.cat([logits, extra], 1)
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)])
    return F.cross_entropy(logits, target)


class CrossBatchMemory:
    """A queue of the last `size` views' embeddings (detached), with their songs, used
    as extra negatives (cross-batch memory, Wang et al. 2020): NT-Xent's negatives grow from
    2b-2 to 2b-2+size at the cost of one [2b, size] product, where a bigger batch would cost a
    forward and backward pass per view. The embeddings are a few steps stale, which is harmless
    once the network moves slowly (a warm start or a late, low learning rate). Not checkpointed:
    after a restart it fills again within size / 2b steps."""

    def __init__(self, size, dim):
        self.z = torch.zeros(size, dim)
        self.song = torch.full((size,), -1, dtype=torch.int64)
        self.filled = 0
        self.head = 0

    def negatives(self, song_idx):
        """Returns (memory rows [m, dim], mask [b, m] of the rows from the batch items' songs).
        The whole song is masked, not only nearby starts as in false_negative_mask: game music
        loops, so another part of a song is often the same audio, and the queue holds dozens of
        views of every song (a first run that masked only +-2 s kept 19 points fewer 1 s queries)."""
        m = self.filled
        return self.z[:m], song_idx[:, None] == self.song[None, :m]

    def push(self, z, song_idx):
        """Enqueues views z [n, dim] of songs song_idx [n], overwriting the oldest."""
        rows = (self.head + torch.arange(len(z))) % len(self.z)
        self.z[rows] = z.detach()
        self.song[rows] = song_idx
        self.head = int(rows[-1] + 1) % len(self.z)
        self.filled = min(self.filled + len(z), len(self.z))


def semi_hard_triplet(za, zp, margin, fn_mask):
    """Triplet loss with semi-hard negative mining (FaceNet): for each anchor, the hardest
    negative that is still farther than the positive, else the easiest one."""
    d = 2.0 - 2.0 * za @ zp.T  # squared distances anchor i -> positive j
    d_pos = d.diag()
    b = d.shape[0]
    invalid = torch.eye(b, dtype=torch.bool) | fn_mask
    semi = (d > d_pos[:, None]) & ~invalid
    d_semi = torch.where(semi, d, torch.full_like(d, float("inf"))).min(1).values
    d_easy = torch.where(~invalid, d, torch.full_like(d, float("-inf"))).max(1).values
    d_neg = torch.where(torch.isinf(d_semi), d_easy, d_semi)
    return F.relu(d_pos - d_neg + margin).mean()


# The mask geometry of --spec-mask: n_freq mel bands of 0..freq_max bins and n_time runs of
# 0..time_max frames. The checkpoint records it (config "spec_mask_shape") for export.py.
SPEC_MASK_SHAPE = {"n_freq": 2, "freq_max": 10, "n_time": 1, "time_max": 8}


def describe_spec_mask(shape):
    return (f"{shape['n_freq']} mel bands of up to {shape['freq_max']} bins, "
            f"{shape['n_time']} run of up to {shape['time_max']} frames")


def spec_mask(x, generator, p, shape=SPEC_MASK_SHAPE):
    """SpecAugment-style masking (Park et al. 2019; also offered by the training code published
    with Chang et al. 2021): each item of log-mel patches x [b, frames, mels] is masked with
    probability p, by the mel bands and frame runs of `shape` (SPEC_MASK_SHAPE's keys), all
    set to the item's mean (zero after the network's patch-mean normalisation). Noise that
    drowns a few bands or a burst of frames then costs the embedding less. Returns a new
    tensor."""
    b, n_frames, n_mels = x.shape
    mean = x.mean(dim=(1, 2), keepdim=True)
    chosen = torch.rand(b, generator=generator) < p
    masked = torch.zeros_like(x, dtype=torch.bool)
    for size, count, limit, axis in ((n_mels, shape["n_freq"], shape["freq_max"], 2),
                                     (n_frames, shape["n_time"], shape["time_max"], 1)):
        pos = torch.arange(size)
        for _ in range(count):
            width = torch.randint(0, limit + 1, (b,), generator=generator)
            start = (torch.rand(b, generator=generator) * (size - width + 1)).long()
            run = (pos[None, :] >= start[:, None]) & (pos[None, :] < (start + width)[:, None])
            masked |= run[:, None, :] if axis == 2 else run[:, :, None]
    masked &= chosen[:, None, None]
    return torch.where(masked, mean.expand_as(x), x)


def lr_at(progress, base_lr, warmup=0.03, final=0.01):
    if progress < warmup:
        return base_lr * max(progress / warmup, 0.02)
    p = (progress - warmup) / (1 - warmup)
    return base_lr * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="v1")
    parser.add_argument("--corpus", default="/root/corpus/train")
    parser.add_argument("--dev-queries", default="/root/q-train-dev")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256, help="pairs per step")
    parser.add_argument("--budget-min", type=float, default=75.0, help="training time")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--loss", choices=["ntxent", "triplet"], default="ntxent")
    parser.add_argument("--tau", type=float, default=0.05)
    parser.add_argument("--margin", type=float, default=0.4)
    parser.add_argument("--memory", type=int, default=0,
                        help="NT-Xent only: also use the last N views of earlier batches as "
                             "negatives (cross-batch memory; 0 = off)")
    parser.add_argument("--channels", default="24,48,96,128,192")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ckpt-min", type=float, default=5.0)
    parser.add_argument("--dev-min", type=float, default=20.0)
    parser.add_argument("--export-min", type=float, default=0.0,
                        help="export models/earshot-v1.emod every N minutes (0 = never)")
    parser.add_argument("--n-dev-songs", type=int, default=16)
    parser.add_argument("--n-dev-seen", type=int, default=4)
    parser.add_argument("--rt60-max", type=float, default=1.0,
                        help="synthetic rooms draw RT60 uniformly in 0.2..this (s)")
    parser.add_argument("--snr-db", default="-5,15",
                        help="additive noise SNR range LO,HI (dB, drawn uniformly)")
    parser.add_argument("--rir-sec", type=float, default=0.75,
                        help="length of the synthetic impulse responses (s)")
    parser.add_argument("--exclude-albums", default="",
                        help="comma-separated catalog albums left out of training (e.g. "
                             "planetblupi-music-midi: MIDI renders of tunes also in the set)")
    parser.add_argument("--holdout-albums", default="",
                        help="comma-separated albums of which --holdout-frac of the songs "
                             "(by seeded hash) are kept out of training as unseen negatives")
    parser.add_argument("--holdout-frac", type=float, default=0.25)
    parser.add_argument("--album-frac", type=float, default=0.0,
                        help="share of each batch drawn in same-album groups (hard negatives)")
    parser.add_argument("--album-group", type=int, default=8)
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
                             + describe_spec_mask(SPEC_MASK_SHAPE) + "; spec_mask); 0 = off")
    parser.add_argument("--init-from", default="",
                        help="warm start: take the network and optimizer state of this "
                             "checkpoint, then run a fresh schedule (--lr, --budget-min)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    ckpt_dir = os.path.join(MODELS_DIR, "checkpoints", args.run)
    os.makedirs(ckpt_dir, exist_ok=True)
    ckpt_path = os.path.join(ckpt_dir, "last.pt")

    # Data: dev songs (indexed in the dev queries) are held out of training; out-of-catalog
    # dev queries come from held-out songs too.
    catalog = data.read_catalog(os.path.join(args.corpus, "catalog.tsv"))
    album_of = {r["id"]: r["album"] for r in catalog}
    excluded, holdout = excluded_and_holdout(album_of, args.exclude_albums, args.holdout_albums,
                                             args.holdout_frac, args.seed)
    ids, songs = data.load_songs(os.path.join(args.corpus, "catalog.tsv"), verbose=False)
    noise_cats, noise_audio = data.load_noise(os.path.join(args.corpus, "noise.tsv"),
                                              verbose=False)
    indexed = [r["id"] for r in data.read_catalog(
        os.path.join(args.dev_queries, "index-catalog.tsv"))]
    # Out-of-catalog dev songs: sources of the dev set's '-' queries (songs added to the corpus
    # after the dev queries were made have none).
    dev_sources = {r["source_song"] for r in data.read_catalog(
        os.path.join(args.dev_queries, "details.tsv"))}
    out_of_catalog = sorted(dev_sources & set(ids) - set(indexed))
    dev_unseen = sorted(indexed, key=lambda s: stable_hash(s, args.seed))[:args.n_dev_songs]
    dev_neg = sorted(out_of_catalog, key=lambda s: stable_hash(s, args.seed))[:6]
    held_out = set(dev_unseen) | set(dev_neg) | excluded | set(holdout)
    train_ids = [s for s in ids if s not in held_out]
    dev_seen = sorted(train_ids, key=lambda s: stable_hash(s, args.seed + 1))
    dev_seen = [s for s in dev_seen if s in indexed][:args.n_dev_seen]
    by_id = dict(zip(ids, songs))
    train_songs = [by_id[s] for s in train_ids]
    train_albums = [album_of[s] for s in train_ids]
    hours = sum(len(a) for a in train_songs) / 16000 / 3600
    if args.speed_variants:
        factors = [float(f) for f in args.speed_variants.split(",")]
        train_songs, train_albums = speed_variants(train_songs, train_albums, factors)
        print(f"speed variants {factors}: {len(train_songs)} training songs", flush=True)
    print(f"train: {len(train_ids)} songs {hours:.2f} h; noise {len(noise_audio)} files; "
          f"dev unseen {len(dev_unseen)} seen {len(dev_seen)} neg {len(dev_neg)}; "
          f"excluded {len(excluded)}, held out {len(holdout)}", flush=True)

    dev_index = dev_unseen + dev_seen
    dev = deveval.DevSet(args.dev_queries, {s: by_id[s] for s in dev_index}, dev_index)
    dev.queries = [q for q in dev.queries if q["song"] != "-" or
                   q.get("song") == "-" and _query_source(args.dev_queries, q) in dev_neg]
    print(f"dev queries: {len(dev.queries)}", flush=True)

    channels = [int(c) for c in args.channels.split(",")]
    net = EarshotNet(CONTEXT_FRAMES, 64, channels, args.dim)
    net.reset_he(torch.Generator().manual_seed(args.seed))
    print(f"params {net.n_params_exported()} flops {net.flops()}", flush=True)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    front = frontend.TorchFrontend()
    rir_samples = int(round(args.rir_sec * 16000))
    pre_samples = max(PRE_SAMPLES, rir_samples)
    snr_lo, snr_hi = (float(v) for v in args.snr_db.split(","))
    degrader = Degrader(args.seed, pre_samples, SEG_SAMPLES, rir_samples=rir_samples,
                        rt60_range=(0.2, args.rt60_max), snr_db_range=(snr_lo, snr_hi))
    sampler = Sampler(train_songs, noise_cats, noise_audio, args.seed, pre_samples,
                      albums=train_albums, album_frac=args.album_frac,
                      group=args.album_group, synthetic_noise=args.synthetic_noise)
    gen = torch.Generator().manual_seed(args.seed)

    state = {"step": 0, "train_s": 0.0, "history": []}
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
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
        state["init_from"] = {"path": os.path.relpath(args.init_from, MODELS_DIR),
                              "step": ck["state"]["step"],
                              "train_min": round(ck["state"]["train_s"] / 60, 1)}
        print(f"warm start from {args.init_from} (step {ck['state']['step']})", flush=True)

    budget_s = args.budget_min * 60.0
    config = vars(args).copy()
    if args.spec_mask:
        config["spec_mask_shape"] = dict(SPEC_MASK_SHAPE)

    def save(tag="last"):
        ck = {"net": net.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(),
              "sampler_rng": sampler.rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
              "state": state, "config": config, "train_ids": train_ids,
              "dev": {"unseen": dev_unseen, "seen": dev_seen, "neg": dev_neg},
              "holdout": holdout, "excluded": sorted(excluded)}
        tmp = os.path.join(ckpt_dir, f"{tag}.pt.tmp")
        torch.save(ck, tmp)
        os.replace(tmp, os.path.join(ckpt_dir, f"{tag}.pt"))

    def run_dev():
        t = time.time()
        result = deveval.DevSet.evaluate(dev, net, seen_ids=set(dev_seen))
        result["step"] = state["step"]
        result["train_min"] = round(state["train_s"] / 60, 1)
        state["history"].append(result)
        print(f"DEV step {state['step']} ({time.time() - t:.0f}s): "
              f"{deveval.format_result(result)}", flush=True)
        with open(os.path.join(ckpt_dir, "dev.jsonl"), "a") as f:
            f.write(json.dumps(result) + "\n")

    def export():
        import export as export_mod
        save()
        export_mod.export_checkpoint(ckpt_path, os.path.join(MODELS_DIR, "earshot-v1.emod"))

    memory = CrossBatchMemory(args.memory, args.dim) if args.memory else None
    net.train()
    last_ckpt = last_dev = last_export = time.time()
    t_log = time.time()
    loss_avg = None
    while state["train_s"] < budget_s:
        t0 = time.time()
        progress = state["train_s"] / budget_s
        lr = lr_at(progress, args.lr)
        for group in opt.param_groups:
            group["lr"] = lr
        anchors, raws, noise, song_idx, starts = sampler.batch(args.batch)
        with torch.no_grad():
            positives = degrader(raws, noise, gen)
            x = front(torch.cat([anchors, positives]))  # [2b, 62, 64]
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
        state["train_s"] += time.time() - t0
        loss_avg = loss.item() if loss_avg is None else 0.95 * loss_avg + 0.05 * loss.item()
        if state["step"] % 10 == 0:
            with torch.no_grad():
                acc = ((za @ zp.T).argmax(1) == torch.arange(args.batch)).float().mean()
            rate = 10 / (time.time() - t_log)
            t_log = time.time()
            print(f"step {state['step']} train {state['train_s'] / 60:.1f}/{args.budget_min:.0f}"
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
    state["done"] = True
    save()
    if not state["history"] or state["history"][-1]["step"] != state["step"]:
        run_dev()
        save()
    print(f"done: {state['step']} steps, {state['train_s'] / 60:.1f} min", flush=True)


_DETAILS = {}


def _query_source(query_dir, q):
    """Source song of a query (details.tsv), used to pick the out-of-catalog dev queries."""
    if not _DETAILS:
        for r in data.read_catalog(os.path.join(query_dir, "details.tsv")):
            _DETAILS[r["query"]] = r
    row = _DETAILS[q["query"]]
    for key in ("source_song", "source", "song_id", "song"):
        if key in row:
            return row[key]
    raise KeyError("details.tsv has no source-song column")


if __name__ == "__main__":
    main()
