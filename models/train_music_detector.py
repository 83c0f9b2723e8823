#!/usr/bin/python3
"""Trains the music detector (earshot_model/music_detector.py) on the train set, picks its
threshold on the fit split and measures it on the held-out split.

    /usr/bin/python3 -m models.train_music_detector --corpus CORPUS/train \
        --out models/music-detector-v1

Every stage caches its result under --work (default models/checkpoints/music-detector/) and a
re-run resumes where the last one stopped; everything is seeded (same arguments, same files).

Data (train set only): songs and noise files are split 80/20 into fit and held-out by a seeded
hash of their id. Songs: --excerpts-per-song random excerpts each, decoded alone (seek, not the
whole song), redrawn while their RMS is below -50 dBFS. Positives are music at -35..-10 dBFS;
negatives are digital silence, room tone (-70..-55 dBFS), music as quiet as room tone
(-75..-55 dBFS), speech, city, ambience and speech-over-ambience at -45..-10 dBFS, plus
synthetic noise (fit only). Both classes go through the same random microphone chain
(synthetic room, band-pass, tilt, soft clip: augment.Degrader) so the chain is no cue; half of
the positives have train noise added at 0..30 dB SNR and a fifth are played 2 % faster or
slower.

The cache depends on the arguments (recorded in WORK/args.json; another set of arguments is
refused) but not on the code: after changing how examples are made, delete WORK.
"""

import argparse
import hashlib
import json
import math
import os
import time

import numpy as np
import soundfile
import torch
from scipy.signal import resample_poly

from models.earshot_model import data, frontend
from models.earshot_model import music_detector as md
from models.earshot_model.augment import Degrader, synthetic_noise

MODELS_DIR = os.path.dirname(os.path.abspath(__file__))

RATE_HZ = 16000
SEG = frontend.DEFAULT_PARAMS["n_fft"] + (md.CONTEXT_FRAMES - 1) * \
    frontend.DEFAULT_PARAMS["hop_length"]  # 15762 samples: one patch
RIR_SAMPLES = 12000
PRE = RIR_SAMPLES  # pre-roll so that reverb tails enter the patch (Degrader needs >= RIR - 1)
SPEED_RATIOS = ((50, 51), (50, 49))  # resample_poly (up, down): 2 % faster / slower
EXCERPT = int(math.ceil((PRE + SEG) * 51 / 50)) + 64  # room for 2 % faster playback
SONG_FLOOR_DBFS = -50.0
NOISE_FLOOR_DBFS = -50.0
NOISE_MAX_S = 120.0  # noise files are decoded up to this length (memory)

# The microphone chain for both classes in the fit set (room, band-pass, tilt, clip) and the
# conditions measured. Keys: Degrader arguments; speed: share played at +-2 %.
CHAIN = dict(p_room=0.4, p_bandpass=0.5, p_tilt=0.5, p_clip=0.25)
MUSIC_LEVEL = (-35.0, -10.0)
NOISE_LEVEL = (-45.0, -10.0)
ROOM_TONE_LEVEL = (-70.0, -55.0)
QUIET_MUSIC_LEVEL = (-75.0, -55.0)  # music as quiet as room tone: a negative (see below)
CLEAN = dict(p_room=0, p_bandpass=0, p_tilt=0, p_clip=0, p_noise=0)
ROOM = dict(p_room=1, p_bandpass=1, p_tilt=1, p_clip=0.5, p_noise=1, snr_db_range=(10.0, 10.0))
TRAIN_CHAIN = dict(CHAIN, p_noise=0.5, snr_db_range=(0.0, 30.0))
MUSIC_CONDITIONS = {
    # name: (Degrader arguments, share played at +-2 % speed, level range in dBFS)
    "train": (TRAIN_CHAIN, 0.2, MUSIC_LEVEL),
    "clean": (CLEAN, 0.0, MUSIC_LEVEL),
    "noise5-30": (dict(CLEAN, p_noise=1, snr_db_range=(5.0, 30.0)), 0.0, MUSIC_LEVEL),
    "noise0-5": (dict(CLEAN, p_noise=1, snr_db_range=(0.0, 5.0)), 0.0, MUSIC_LEVEL),
    "room": (ROOM, 0.0, MUSIC_LEVEL),
    "speed2-room": (ROOM, 1.0, MUSIC_LEVEL),
    "clean-50-40": (CLEAN, 0.0, (-50.0, -40.0)),  # quieter than trained: measured only
    # Music at room-tone level is taught as NOT music: without it the network keys on spectral
    # shape alone and passes some room tone (tonal city sounds, wind) whatever its level.
    "quiet-music": (TRAIN_CHAIN, 0.2, QUIET_MUSIC_LEVEL),
}
NEGATIVE_KINDS = ("silence", "room-tone", "quiet-music", "speech", "city", "ambience",
                  "speech+ambience", "synthetic")
# Share of each kind among the fit negatives (synthetic noise widens the noise types).
FIT_NEGATIVE_SHARE = {"silence": 0.10, "room-tone": 0.15, "quiet-music": 0.15, "speech": 0.25,
                      "city": 0.10, "ambience": 0.10, "speech+ambience": 0.10, "synthetic": 0.05}
HELD_OUT_NEGATIVES = ("silence", "room-tone", "quiet-music", "speech", "city", "ambience",
                      "speech+ambience")
CALIBRATION_CONDITIONS = ("clean", "noise5-30", "room")
HELD_OUT_CONDITIONS = ("clean", "noise5-30", "noise0-5", "room", "speed2-room", "clean-50-40")
FIXTURE_SETS = ("held-out-clean", "held-out-speech")  # their first patch, plus the held-out
# room patch nearest the threshold (where the probability is most sensitive)


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def unit_hash(text, seed):
    """A number in [0, 1) from a seeded SHA-256 of `text`."""
    digest = hashlib.sha256(f"{seed}:{text}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2.0 ** 64


def split_of(item_id, seed, fit_frac):
    return "fit" if unit_hash(item_id, seed) < fit_frac else "held-out"


def rng_for(seed, *keys):
    digest = hashlib.sha256(":".join(str(k) for k in (seed, *keys)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def rms_dbfs(x):
    power = float(np.mean(np.square(x, dtype=np.float64)))
    return 10.0 * math.log10(power) if power > 0 else -math.inf


def atomic_savez(path, **arrays):
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


# ------------------------------------------------------------------ decoding

def song_excerpts(path, duration_s, n, rng, tries=20):
    """n excerpts of EXCERPT samples (16 kHz mono float32) at random places at least 2 s from
    either end, each redrawn up to `tries` times while its patch part is below SONG_FLOOR_DBFS.
    Only the excerpts are decoded (seek + read), with 50 ms of context for the resampler."""
    length_s = EXCERPT / RATE_HZ
    lo, hi = 2.0, max(2.0, duration_s - 2.0 - length_s)
    out = []
    try:
        f = soundfile.SoundFile(path)
    except RuntimeError:  # not readable by libsndfile: decode the whole file once
        audio = data._evallib().decode_audio(path, RATE_HZ)
        for _ in range(n):
            for _ in range(tries):
                start = int(rng.uniform(lo, hi) * RATE_HZ)
                x = audio[start:start + EXCERPT]
                if len(x) == EXCERPT and rms_dbfs(x[PRE:PRE + SEG]) >= SONG_FLOOR_DBFS:
                    out.append(x)
                    break
        return out
    with f:
        rate = f.samplerate
        pad_native = int(0.05 * rate)
        pad_out = int(0.05 * RATE_HZ)
        native_len = int(math.ceil(EXCERPT * rate / RATE_HZ)) + 2 * pad_native
        for _ in range(n):
            for _ in range(tries):
                start = int(rng.uniform(lo, hi) * rate) - pad_native
                if start < 0 or start + native_len > f.frames:
                    continue
                f.seek(start)
                raw = f.read(native_len, dtype="float32", always_2d=True)
                x = data._evallib().to_mono_at_rate(raw, rate, RATE_HZ)[pad_out:pad_out + EXCERPT]
                if len(x) == EXCERPT and rms_dbfs(x[PRE:PRE + SEG]) >= SONG_FLOOR_DBFS:
                    out.append(x)
                    break
    return out


def to_int16(x):
    """(int16 array scaled to peak 32767, float scale back to the original)."""
    peak = float(np.max(np.abs(x))) or 1.0
    return np.round(x / peak * 32767.0).astype(np.int16), peak / 32767.0


def prepare_songs(args, work):
    """Excerpts of every song, per split: work/songs-{fit,held-out}.npz (int16 + scale)."""
    paths = {s: os.path.join(work, f"songs-{s}.npz") for s in ("fit", "held-out")}
    if all(os.path.exists(p) for p in paths.values()):
        return {s: dict(np.load(p)) for s, p in paths.items()}
    rows = data.read_catalog(os.path.join(args.corpus, "catalog.tsv"))
    parts_dir = os.path.join(work, "songs")
    os.makedirs(parts_dir, exist_ok=True)
    t0 = time.time()
    for i, row in enumerate(rows):
        part = os.path.join(parts_dir, row["id"] + ".npz")
        if not os.path.exists(part):
            rng = rng_for(args.seed, "excerpts", row["id"])
            try:
                xs = song_excerpts(row["path"], float(row["duration_s"]),
                                   args.excerpts_per_song, rng)
            except Exception as e:  # an unreadable song is skipped, not fatal
                log(f"skip song {row['id']}: {e}")
                xs = []
            pcm = np.zeros((len(xs), EXCERPT), np.int16)
            scale = np.zeros(len(xs), np.float32)
            for k, x in enumerate(xs):
                pcm[k], scale[k] = to_int16(x)
            atomic_savez(part, pcm=pcm, scale=scale)
        if i % 50 == 0 or i == len(rows) - 1:
            log(f"songs {i + 1}/{len(rows)} {time.time() - t0:.0f} s")
    out = {}
    for s in ("fit", "held-out"):
        pcm, scale, song = [], [], []
        for j, row in enumerate(rows):
            if split_of(row["id"], args.seed, args.fit_frac) != s:
                continue
            with np.load(os.path.join(parts_dir, row["id"] + ".npz")) as z:
                pcm.append(z["pcm"])
                scale.append(z["scale"])
                song.append(np.full(len(z["scale"]), j, np.int32))
        out[s] = dict(pcm=np.concatenate(pcm), scale=np.concatenate(scale),
                      song=np.concatenate(song))
        atomic_savez(paths[s], **out[s])
        log(f"{s}: {len(set(out[s]['song'].tolist()))} songs, {len(out[s]['scale'])} excerpts")
    return out


def prepare_noise(args, work):
    """Every noise file (up to NOISE_MAX_S), per split: {split: {category: [float32 arrays]}}.
    Cached as work/noise-{split}.npz (int16 + scale per file)."""
    out = {}
    for s in ("fit", "held-out"):
        path = os.path.join(work, f"noise-{s}.npz")
        if not os.path.exists(path):
            break
        with np.load(path) as z:
            out[s] = {}
            for k, cat in enumerate(z["category"]):
                x = z[f"pcm{k}"].astype(np.float32) * z["scale"][k]
                out[s].setdefault(str(cat), []).append(x)
    if len(out) == 2:
        return out
    rows = data.read_catalog(os.path.join(args.corpus, "noise.tsv"))
    files = {"fit": [], "held-out": []}
    t0 = time.time()
    for i, row in enumerate(rows):
        try:
            x = data._evallib().decode_audio(row["path"], RATE_HZ)[:int(NOISE_MAX_S * RATE_HZ)]
        except Exception as e:  # an undecodable noise file is skipped, not fatal
            log(f"skip noise {row['id']}: {e}")
            continue
        if len(x) >= RATE_HZ // 4 and rms_dbfs(x) > NOISE_FLOOR_DBFS:
            files[split_of(row["id"], args.seed, args.fit_frac)].append((row["category"], x))
        if i % 200 == 0 or i == len(rows) - 1:
            log(f"noise {i + 1}/{len(rows)} {time.time() - t0:.0f} s")
    for s, items in files.items():
        arrays = {"category": np.array([c for c, _ in items]),
                  "scale": np.zeros(len(items), np.float32)}
        out[s] = {}
        for k, (cat, x) in enumerate(items):
            arrays[f"pcm{k}"], arrays["scale"][k] = to_int16(x)
            out[s].setdefault(cat, []).append(x)
        atomic_savez(os.path.join(work, f"noise-{s}.npz"), **arrays)
        summary = ", ".join(f"{c} {len(v)} files {sum(map(len, v)) / RATE_HZ / 60:.1f} min"
                            for c, v in sorted(out[s].items()))
        log(f"noise {s}: {summary}")
    return out


# ------------------------------------------------------------------ examples

def noise_segment(files, rng, length, max_gap_s=0.3, tries=10):
    """`length` samples of one category: random files joined end to end from a random offset,
    with gaps of silence up to max_gap_s between them (a file longer than `length` fills it
    alone). Redrawn while below NOISE_FLOOR_DBFS."""
    for _ in range(tries):
        out = np.zeros(length, np.float32)
        pos, first = 0, True
        while pos < length:
            x = files[rng.integers(len(files))]
            offset = int(rng.integers(0, len(x))) if first else 0
            piece = x[offset:offset + length - pos]
            out[pos:pos + len(piece)] = piece
            pos += len(piece) + int(rng.uniform(0.0, max_gap_s) * RATE_HZ)
            first = False
        if rms_dbfs(out) >= NOISE_FLOOR_DBFS:
            break
    return out


def any_noise_segment(noise, rng, length):
    """A segment of a category drawn first (so that each category is equally likely)."""
    cats = sorted(noise)
    return noise_segment(noise[cats[rng.integers(len(cats))]], rng, length)


def negative_source(kind, noise, rng, length):
    """Raw source audio of one negative example (any level; the chain sets it)."""
    if kind == "room-tone":
        pick = rng.integers(3)
        if pick == 2:
            return synthetic_noise(rng, length)
        return noise_segment(noise["ambience" if pick == 0 else "city"], rng, length)
    if kind in ("speech", "city", "ambience"):
        return noise_segment(noise[kind], rng, length)
    if kind == "speech+ambience":
        speech = noise_segment(noise["speech"], rng, length)
        amb = noise_segment(noise["ambience"], rng, length)
        gain = 10 ** (-rng.uniform(-5.0, 20.0) / 20) * math.sqrt(
            np.mean(speech.astype(np.float64) ** 2) / max(np.mean(amb.astype(np.float64) ** 2),
                                                          1e-20))
        return speech + np.float32(gain) * amb
    if kind == "synthetic":
        return synthetic_noise(rng, length)
    raise ValueError(f"unknown negative kind {kind!r}")


def silence(rng, n):
    """[n, SEG]: half digital zeros, half Gaussian dither at -100..-80 dBFS, 16-bit quantised."""
    out = np.zeros((n, SEG), np.float32)
    for i in range(n):
        if rng.random() < 0.5:
            x = rng.standard_normal(SEG) * 10 ** (rng.uniform(-100.0, -80.0) / 20)
            out[i] = np.round(x * 32768.0) / 32768.0
    return out


class PatchMaker:
    """Turns audio into log-mel patches [B, 62, 64] in batches (float32 torch front-end)."""

    def __init__(self):
        self.frontend = frontend.TorchFrontend()

    def __call__(self, pcm):
        with torch.no_grad():
            return self.frontend(torch.as_tensor(pcm, dtype=torch.float32)).numpy()


def make_music(songs, noise, condition, n_views, seed, degrader_seed, patches, count=None,
               batch=128):
    """n_views patches per excerpt of `songs` under MUSIC_CONDITIONS[condition]; with `count`,
    one patch each of `count` excerpts drawn without replacement."""
    chain, p_speed, level = MUSIC_CONDITIONS[condition]
    degrader = Degrader(degrader_seed, PRE, SEG, n_rirs=128, rir_samples=RIR_SAMPLES,
                        level_dbfs_range=level, **chain)
    rng = rng_for(seed, "positives", condition)
    gen = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
    order = np.repeat(np.arange(len(songs["scale"])), n_views)
    if count is not None:
        order = np.sort(rng.choice(len(songs["scale"]), min(count, len(order)), replace=False))
    out = []
    for b0 in range(0, len(order), batch):
        idx = order[b0:b0 + batch]
        raw = np.zeros((len(idx), PRE + SEG), np.float32)
        for r, i in enumerate(idx):
            x = songs["pcm"][i].astype(np.float32) * songs["scale"][i]
            if rng.random() < p_speed:
                up, down = SPEED_RATIOS[rng.integers(2)]
                x = resample_poly(x, up, down).astype(np.float32)
            raw[r] = x[:PRE + SEG]
        added = np.stack([any_noise_segment(noise, rng, SEG) for _ in idx])
        pcm = degrader(torch.from_numpy(raw), torch.from_numpy(added), gen)
        out.append(patches(pcm).astype(np.float16))
    return np.concatenate(out)


def make_negatives(noise, kind, n, seed, degrader_seed, patches, batch=128):
    """n patches of one negative kind through the fit microphone chain."""
    rng = rng_for(seed, "negatives", kind)
    if kind == "silence":
        return patches(silence(rng, n)).astype(np.float16)
    gen = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
    level = ROOM_TONE_LEVEL if kind == "room-tone" else NOISE_LEVEL
    degrader = Degrader(degrader_seed, PRE, SEG, n_rirs=128, rir_samples=RIR_SAMPLES,
                        level_dbfs_range=level, p_noise=0.0, **CHAIN)
    out = []
    for b0 in range(0, n, batch):
        m = min(batch, n - b0)
        raw = np.stack([negative_source(kind, noise, rng, PRE + SEG) for _ in range(m)])
        pcm = degrader(torch.from_numpy(raw), torch.zeros(m, SEG), gen)
        out.append(patches(pcm).astype(np.float16))
    return np.concatenate(out)


def example_sets(args, work, songs, noise):
    """{set name: float16 patches}: fit-train (positives + negatives, with labels), fit
    calibration conditions and held-out conditions. Cached one file per set."""
    patches = PatchMaker()
    sets = {}
    n_fit_pos = len(songs["fit"]["scale"]) * args.views

    def cached(name, make):
        path = os.path.join(work, f"set-{name}.npy")
        if not os.path.exists(path):
            t0 = time.time()
            x = make()
            np.save(path + ".tmp.npy", x)
            os.replace(path + ".tmp.npy", path)
            log(f"set {name}: {len(x)} patches, {time.time() - t0:.0f} s")
        sets[name] = np.load(path)

    # Fit split: training examples (rooms from seed+1), calibration draws (seed+2).
    cached("fit-music", lambda: make_music(songs["fit"], noise["fit"], "train", args.views,
                                           args.seed, args.seed + 1, patches))
    for kind in NEGATIVE_KINDS:
        n = int(round(n_fit_pos * args.negative_ratio * FIT_NEGATIVE_SHARE[kind]))
        if kind == "quiet-music":
            cached(f"fit-{kind}", lambda: make_music(songs["fit"], noise["fit"], kind, 1,
                                                     args.seed, args.seed + 1, patches, count=n))
        else:
            cached(f"fit-{kind}", lambda: make_negatives(noise["fit"], kind, n, args.seed,
                                                         args.seed + 1, patches))
    for cond in CALIBRATION_CONDITIONS:
        cached(f"calibrate-{cond}", lambda: make_music(
            songs["fit"], noise["fit"], cond, 1, args.seed + 2, args.seed + 2, patches))
    # Held-out split: other songs, other noise files, other rooms (seed+3).
    for cond in HELD_OUT_CONDITIONS:
        cached(f"held-out-{cond}", lambda: make_music(
            songs["held-out"], noise["held-out"], cond, 1, args.seed + 3, args.seed + 3,
            patches))
    for kind in HELD_OUT_NEGATIVES:
        if kind == "quiet-music":
            cached(f"held-out-{kind}", lambda: make_music(
                songs["held-out"], noise["held-out"], kind, 1, args.seed + 3, args.seed + 3,
                patches, count=args.held_out_negatives))
        else:
            cached(f"held-out-{kind}", lambda: make_negatives(
                noise["held-out"], kind, args.held_out_negatives, args.seed + 3,
                args.seed + 3, patches))
    return sets


# ------------------------------------------------------------------ training

def features_of(patches, batch=4096):
    out = [md.features_numpy(patches[i:i + batch].astype(np.float32))
           for i in range(0, len(patches), batch)]
    return torch.from_numpy(np.concatenate(out))


def train(args, work, sets, stop_after=None):
    """Adam on binary cross-entropy (classes weighted equally), cosine learning rate, one
    checkpoint per epoch (work/last.pt); resumes from it. stop_after: return after that many
    epochs in all (tests use it to interrupt a run)."""
    x_pos = features_of(sets["fit-music"])
    x_neg = torch.cat([features_of(sets[f"fit-{k}"]) for k in NEGATIVE_KINDS])
    x = torch.cat([x_pos, x_neg])
    y = torch.cat([torch.ones(len(x_pos)), torch.zeros(len(x_neg))])
    weight = torch.where(y > 0, 0.5 / len(x_pos), 0.5 / len(x_neg)) * len(y)
    log(f"fit: {len(x_pos)} music, {len(x_neg)} non-music patches")

    torch.manual_seed(args.seed)
    net = md.MusicDetectorNet(hidden=args.hidden)
    net.set_standardisation(x)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = math.ceil(len(y) / args.batch)
    total = steps_per_epoch * args.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    ckpt = os.path.join(work, "last.pt")
    epoch = 0
    if os.path.exists(ckpt):
        state = torch.load(ckpt)
        if state["args"] != train_args(args):
            raise SystemExit(f"{ckpt} was trained with other arguments; delete it or use "
                             "another --work")
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        epoch = state["epoch"]
        log(f"resumed after epoch {epoch}")
    while epoch < (args.epochs if stop_after is None else min(stop_after, args.epochs)):
        net.train()
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(
            args.seed * 1000 + epoch))
        total_loss = 0.0
        for s in range(steps_per_epoch):
            idx = order[s * args.batch:(s + 1) * args.batch]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                net.forward_features(x[idx]), y[idx], weight=weight[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total_loss += float(loss) * len(idx)
        epoch += 1
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(),
                    "sched": sched.state_dict(), "epoch": epoch, "args": train_args(args)},
                   ckpt + ".tmp")
        os.replace(ckpt + ".tmp", ckpt)
        if epoch % 5 == 0 or epoch == args.epochs:
            log(f"epoch {epoch}/{args.epochs} loss {total_loss / len(y):.4f}")
    return net.eval()


def train_args(args):
    """The arguments that shape the result (recorded in the metadata; no machine paths)."""
    return {k: getattr(args, k) for k in ("seed", "fit_frac", "excerpts_per_song", "views",
                                          "negative_ratio", "held_out_negatives", "hidden",
                                          "epochs", "batch", "lr", "weight_decay", "recall")}


def probabilities(net, patches, batch=4096):
    with torch.no_grad():
        logits = torch.cat([net.forward_features(features_of(patches[i:i + batch]))
                            for i in range(0, len(patches), batch)])
    return torch.sigmoid(logits.double()).numpy()


def evaluate(args, net, sets):
    """Threshold on the fit calibration draws (the lowest of the per-condition thresholds
    that keep --recall of the music), then held-out recall and false-trigger rates."""
    per_condition = {}
    for cond in CALIBRATION_CONDITIONS:
        p = np.sort(probabilities(net, sets[f"calibrate-{cond}"]))
        per_condition[cond] = float(p[int(math.floor((1.0 - args.recall) * len(p)))])
    threshold = min(per_condition.values())
    fit_recall = {c: float(np.mean(probabilities(net, sets[f"calibrate-{c}"]) >= threshold))
                  for c in CALIBRATION_CONDITIONS}
    music = {}
    for cond in HELD_OUT_CONDITIONS:
        p = probabilities(net, sets[f"held-out-{cond}"])
        music[cond] = {"recall": round(float(np.mean(p >= threshold)), 4), "n": len(p)}
    non_music = {}
    for kind in HELD_OUT_NEGATIVES:
        p = probabilities(net, sets[f"held-out-{kind}"])
        non_music[kind] = {"false_trigger": round(float(np.mean(p >= threshold)), 4),
                           "n": len(p)}
    held_out = {"music": music, "non_music": non_music, "unit": "one 62-frame patch"}
    fit = {"threshold_by_condition": per_condition, "recall": fit_recall}
    return threshold, held_out, fit


def print_report(threshold, held_out, fit):
    log(f"threshold {threshold:.4f} (fit per condition: "
        + ", ".join(f"{c} {t:.4f}" for c, t in fit["threshold_by_condition"].items()) + ")")
    log("fit recall at threshold: " + ", ".join(f"{c} {100 * r:.2f} %"
                                                for c, r in fit["recall"].items()))
    for cond, v in held_out["music"].items():
        log(f"held-out music  {cond:16s} recall        {100 * v['recall']:6.2f} %  n={v['n']}")
    for kind, v in held_out["non_music"].items():
        log(f"held-out no music {kind:16s} false trigger {100 * v['false_trigger']:6.2f} %  "
            f"n={v['n']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", required=True, help="train set folder (catalog.tsv, noise.tsv)")
    ap.add_argument("--out", default=os.path.join(MODELS_DIR, "music-detector-v1"),
                    help="output prefix: writes PREFIX.npz and PREFIX.json")
    ap.add_argument("--work", default=os.path.join(MODELS_DIR, "checkpoints", "music-detector"),
                    help="cache and checkpoint folder (resumable)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fit-frac", type=float, default=0.8)
    ap.add_argument("--excerpts-per-song", type=int, default=16)
    ap.add_argument("--views", type=int, default=3, help="augmented patches per fit excerpt")
    ap.add_argument("--negative-ratio", type=float, default=1.0,
                    help="fit negatives per fit positive")
    ap.add_argument("--held-out-negatives", type=int, default=2000, help="per kind")
    ap.add_argument("--hidden", type=lambda s: [int(v) for v in s.split(",")], default=[32, 16])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-3)
    ap.add_argument("--recall", type=float, default=0.99,
                    help="music recall the threshold keeps on the fit split")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fixture", help="also write the C++ test fixture (tests/data/"
                    "music_detector_golden.mdet): the detector, the first held-out patch of "
                    + " and ".join(FIXTURE_SETS) + " and the held-out room patch nearest the "
                    "threshold")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    recorded = os.path.join(args.work, "args.json")
    if os.path.exists(recorded):
        with open(recorded) as f:
            if json.load(f) != train_args(args):
                raise SystemExit(f"{args.work} holds a run with other arguments "
                                 f"({recorded}); delete it or use another --work")
    else:
        with open(recorded, "w") as f:
            json.dump(train_args(args), f)
    songs = prepare_songs(args, args.work)
    noise = prepare_noise(args, args.work)
    sets = example_sets(args, args.work, songs, noise)
    net = train(args, args.work, sets)
    threshold, held_out, fit = evaluate(args, net, sets)
    print_report(threshold, held_out, fit)
    training = dict(train_args(args), data="train set: catalog.tsv songs, noise.tsv noise",
                    fit_songs=len(set(songs["fit"]["song"].tolist())),
                    held_out_songs=len(set(songs["held-out"]["song"].tolist())),
                    fit_threshold=fit)
    meta = md.export_meta(net, threshold, held_out, training)
    md.write_npz_json(args.out, md.export_tensors(net), meta)
    log(f"wrote {args.out}.npz and .json: {md.describe(meta)}")
    if args.fixture:
        room = sets["held-out-room"]
        borderline = room[np.argmin(np.abs(probabilities(net, room) - threshold))]
        patches = np.stack([sets[name][0] for name in FIXTURE_SETS] + [borderline])
        with open(args.fixture, "wb") as f:
            f.write(md.fixture_bytes(md.export_tensors(net), meta, patches))
        log(f"wrote {args.fixture}")


if __name__ == "__main__":
    main()
