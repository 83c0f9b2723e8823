"""Training batches: (anchor, positive) segment pairs drawn from the training songs, the noise
each positive is mixed with, and song augmentation by playback speed.

An anchor is a clean segment at a frame-aligned position, like an index embedding's window; its
positive is the same place shifted by up to +-MAX_SHIFT samples, with a pre-roll so that the
degradation's reverb tails enter the segment naturally (augment.Degrader).

With speed_range > 0, a share of the positives is played at another speed (drawn uniformly in
1 +- speed_range): half of them with pitch and tempo together (the raw window is resampled, as
a turntable or a resampling radio chain does), the other half with the tempo alone (the
positive's log-mel frames are read at a stretched rate by `tempo_frames`, as a time-stretching
player keeps the pitch). Either way the positive is centred on the same moment as its anchor,
so the network learns that a sped-up moment is the same moment."""

import math
from fractions import Fraction

import numpy as np
import torch

from .augment import RIR_SAMPLES, synthetic_noise
from .frontend import DEFAULT_GEOMETRY, DEFAULT_PARAMS, window_samples

RATE_HZ = DEFAULT_PARAMS["sample_rate_hz"]
HOP_LENGTH = DEFAULT_PARAMS["hop_length"]
# One embedding's window: context_frames frames, 15762 samples = 0.985 s.
SEG_SAMPLES = window_samples(DEFAULT_GEOMETRY["context_frames"])
# Pre-roll before the positive for reverb tails: at least the impulse response length - 1
# (0.75 s for the default responses; train.py widens it for longer ones).
PRE_SAMPLES = RIR_SAMPLES
# Largest anchor-positive shift: 0.25 s, twice the farthest a query can be from an embedding of
# a 0.25 s index hop. A whole number of frames (valid_starts counts in frames).
MAX_SHIFT = int(round(0.25 * RATE_HZ))
assert MAX_SHIFT % HOP_LENGTH == 0
# Frames computed beyond the patch on each side of a positive when speeds change, so that a
# tempo-stretched patch (up to +-6 % of 62 frames) still reads inside the computed frames.
SPEED_PAD_FRAMES = 2
# Resampling ratios are SPEED_DEN / round(SPEED_DEN * f): a speed step of 0.5 %.
SPEED_DEN = 200


def valid_starts(audio, floor_dbfs=-45.0, tail=0):
    """Frame-aligned start samples whose SEG_SAMPLES segment is above floor_dbfs RMS, leaving
    room for a shift of MAX_SHIFT either way and `tail` more samples after it."""
    n = (len(audio) - SEG_SAMPLES - MAX_SHIFT - tail) // HOP_LENGTH
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
    clips that score high are mostly from the same game as the song they hit). With
    synthetic_noise > 0, that share of the noise segments is augment.synthetic_noise instead of
    a noise file."""

    def __init__(self, songs, noise_cats, noise_audio, seed, pre_samples=PRE_SAMPLES,
                 albums=None, album_frac=0.0, group=8, synthetic_noise=0.0, speed_range=0.0,
                 p_speed=0.0):
        self.pre = pre_samples
        self.synthetic_noise = synthetic_noise
        self.songs = songs
        self.speed_range, self.p_speed = speed_range, p_speed
        # Positives carry `pad` more samples on each side (SPEED_PAD_FRAMES frames) when speeds
        # change; the source span of a sped-up window is longer by up to speed_range.
        self.pad = SPEED_PAD_FRAMES * HOP_LENGTH if speed_range > 0 else 0
        need = self.pre + SEG_SAMPLES + 2 * self.pad
        self.tail = self.pad + int(math.ceil(need * speed_range)) + 64 if speed_range > 0 else 0
        self.starts = [valid_starts(a, tail=self.tail) for a in songs]
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
        """Returns anchors [b, SEG_SAMPLES], raw positive windows [b, pre + seg], noise [b, seg],
        song index [b], anchor start sample [b] and tempo factors [b] (1 where the tempo is
        unchanged; apply with `tempo_frames`), where seg = SEG_SAMPLES + 2 * self.pad (the
        positive's segment, pad samples more on each side when speeds change)."""
        rng = self.rng
        song_idx = rng.choice(len(self.songs), size=b, p=self.song_p)
        if self.album_songs:
            n_groups = int(round(b * self.album_frac)) // self.group
            for g in range(n_groups):
                members, p = self.album_songs[rng.choice(len(self.album_songs), p=self.album_p)]
                song_idx[g * self.group:(g + 1) * self.group] = rng.choice(
                    members, size=self.group, p=p)
        seg = SEG_SAMPLES + 2 * self.pad
        anchors = np.zeros((b, SEG_SAMPLES), dtype=np.float32)
        raws = np.zeros((b, self.pre + seg), dtype=np.float32)
        noise = np.zeros((b, seg), dtype=np.float32)
        starts = np.zeros(b, dtype=np.int64)
        tempo = np.ones(b, dtype=np.float32)
        for k, si in enumerate(song_idx):
            audio = self.songs[si]
            start = int(rng.choice(self.starts[si]))
            starts[k] = start
            anchors[k] = audio[start:start + SEG_SAMPLES]
            pos = start + int(rng.integers(-MAX_SHIFT, MAX_SHIFT + 1))
            speed = 1.0
            if self.speed_range > 0 and rng.random() < self.p_speed:
                speed = 1.0 + rng.uniform(-self.speed_range, self.speed_range)
                if rng.random() < 0.5:
                    tempo[k], speed = speed, 1.0
            if speed == 1.0:
                lo = pos - self.pad - self.pre
                src_lo = max(lo, 0)
                raws[k, src_lo - lo:] = audio[src_lo:lo + self.pre + seg]
            else:
                raws[k] = resampled_window(audio, pos + SEG_SAMPLES / 2, self.pre, seg, speed)
            if self.synthetic_noise and rng.random() < self.synthetic_noise:
                noise[k] = synthetic_noise(rng, seg)
            else:
                files = self.noise_by_cat[self.cats[rng.integers(len(self.cats))]]
                nz = files[rng.integers(len(files))]
                off = int(rng.integers(len(nz)))
                noise[k] = np.take(nz, np.arange(off, off + seg), mode="wrap")
        return (torch.from_numpy(anchors), torch.from_numpy(raws), torch.from_numpy(noise),
                torch.from_numpy(song_idx), torch.from_numpy(starts), torch.from_numpy(tempo))


def resampled_window(audio, centre, pre, seg, speed):
    """[pre + seg] float32: `audio` played `speed` times faster (pitch and tempo together), the
    segment's centre (pre + seg / 2) on source sample `centre`; zeros before the song. The ratio
    is rounded to SPEED_DEN / integer (scipy's polyphase resampler)."""
    from scipy.signal import resample_poly
    down = int(round(SPEED_DEN * speed))
    speed = down / SPEED_DEN
    n = pre + seg
    first = int(round(centre - (pre + seg / 2) * speed))
    span = int(math.ceil(n * speed)) + 64
    src = np.zeros(span, dtype=np.float32)
    lo = max(first, 0)
    piece = audio[lo:first + span]
    src[lo - first:lo - first + len(piece)] = piece
    return resample_poly(src, SPEED_DEN, down)[:n].astype(np.float32)


def tempo_frames(x, tempo, frames):
    """Reads `frames` frames of log-mel patches x [b, n, mels] at `tempo` times the frame rate
    (linear interpolation), centred on the middle of x: a time stretch with the pitch kept.
    tempo [b], 1 for a plain centred crop."""
    b, n, _ = x.shape
    pos = (n - 1) / 2 + (torch.arange(frames, dtype=torch.float32) - (frames - 1) / 2)[None] \
        * tempo[:, None]
    pos = pos.clamp(0, n - 1)
    lo = pos.floor().long().clamp(max=n - 2)
    w = (pos - lo)[:, :, None]
    take = lo[:, :, None].expand(-1, -1, x.shape[2])
    return torch.gather(x, 1, take) * (1 - w) + torch.gather(x, 1, take + 1) * w


def speed_variants(songs, albums, factors):
    """Appends, for each factor f, every song played f times faster (pitch and tempo together,
    like a turntable: scipy's polyphase resampler, factor as a ratio of small integers) as a
    new song of the same album. Returns (songs, albums).

    Speaker augmentation in speaker verification (Yamamoto et al., Interspeech 2019) treats
    0.9x and 1.1x speed-perturbed speakers as new speakers, which helps when there are few of
    them, as there are few songs here. A variant is a negative for its original (a
    fingerprinter should not take a 10 % faster rendition for the recording in its index) and,
    being of the same album, joins its same-album groups."""
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
