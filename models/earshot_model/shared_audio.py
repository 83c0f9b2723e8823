"""Does an out-of-catalog clip hold the audio of the song it was matched to?

Game soundtracks reuse loops and stems across tracks (colobot's music009 plays parts of
music007; freedroid's hellfortressentrance and hellfortresstwo are mostly the same recording).
A clip cut from one such track that finds the other is what a fingerprinter should find, not a
false positive. The test is the waveform itself, independent of any model: the peak normalised
cross-correlation of the clip (as cut, before degradation) against every position of the song.
"""
import csv
import functools
import math

import numpy as np
import soundfile
from scipy.signal import fftconvolve, resample_poly

RATE_HZ = 4000  # the 0-2 kHz band, where most of the music's energy lies


class AudioError(Exception):
    """A song in no catalog given, or an audio file that cannot be read."""


def best_alignment(clip, song):
    """(r, lag): the peak normalised cross-correlation of `clip` against every position of
    `song` (mono, same rate) and the song sample where it lies (-1 when there is none): r is 1
    where the song holds the same samples; over a few seconds, about 0.05-0.2 for unrelated
    music. Written here with scipy's FFT convolution because the fingerprint tools in Debian
    (chromaprint's fpcalc) compare whole files, not a clip against any place in a song."""
    clip = clip - clip.mean()
    norm = np.linalg.norm(clip)
    if norm == 0 or len(song) < len(clip):
        return 0.0, -1
    dot = np.abs(fftconvolve(song, clip[::-1], mode="valid"))
    energy = np.sqrt(np.maximum(fftconvolve(song * song, np.ones(len(clip)), mode="valid"), 0))
    # Near-silent windows (and the FFT's round-off there) say nothing about shared audio.
    audible = energy > 0.05 * np.median(energy)
    if not audible.any():
        return 0.0, -1
    r = np.where(audible, dot / np.maximum(energy * norm, 1e-30), 0.0)
    lag = int(np.argmax(r))
    return float(r[lag]), lag


def waveform_ncc(clip, song):
    """best_alignment's r alone."""
    return best_alignment(clip, song)[0]


def passage_ncc(clip, song, piece, lag=None):
    """The highest |correlation| of a `piece`-sample piece of `clip` (pieces every piece / 2,
    and one ending at the clip's end) with the song at the whole clip's best alignment (`lag`,
    best_alignment's; found here when None): a clip that holds a passage of the song for part
    of its length (the rest another part) scores high here while its whole r stays low. 0
    where the clip has no alignment or is shorter than a piece."""
    if lag is None:
        lag = best_alignment(clip, song)[1]
    if lag < 0 or len(clip) < piece:
        return 0.0
    best = 0.0
    starts = set(range(0, len(clip) - piece + 1, max(1, piece // 2))) | {len(clip) - piece}
    for start in sorted(starts):
        a = clip[start:start + piece]
        b = song[lag + start:lag + start + piece]
        a = a - a.mean()
        b = b - b.mean()
        norm = np.linalg.norm(a) * np.linalg.norm(b)
        if norm > 0:
            best = max(best, abs(float(np.dot(a, b))) / norm)
    return best


class SongAudio:
    """Songs by id (from catalog.tsv files with id and path columns), decoded once, mono at
    RATE_HZ. Raises AudioError for an id in no catalog or an unreadable file."""

    def __init__(self, catalogs):
        self.paths = {}
        for catalog in catalogs:
            with open(catalog, newline="") as f:
                for row in csv.DictReader(f, delimiter="\t"):
                    self.paths[row["id"]] = row["path"]

    @functools.lru_cache(maxsize=None)
    def __getitem__(self, song):
        if song not in self.paths:
            raise AudioError(f"song {song!r} is in no catalog given")
        try:
            audio, rate = soundfile.read(self.paths[song], dtype="float64", always_2d=True)
        except (RuntimeError, OSError) as e:  # soundfile's LibsndfileError is a RuntimeError
            raise AudioError(f"cannot read {self.paths[song]}: {e}") from e
        g = math.gcd(rate, RATE_HZ)
        return resample_poly(audio.mean(axis=1), RATE_HZ // g, rate // g)

    def clip(self, details_row):
        """The clip a make-queries details.tsv row was cut from (as cut, before degradation);
        None for clips played at another speed (their waveforms cannot align with the song)."""
        if float(details_row.get("speed") or 1) != 1.0:
            return None
        start = int(round(float(details_row["start_s"]) * RATE_HZ))
        length = int(round(float(details_row["length_s"]) * RATE_HZ))
        return self[details_row["source_song"]][start:start + length]

    def clip_ncc(self, details_row, answer):
        """waveform_ncc of a details.tsv row's clip against the song `answer`; None for clips
        played at another speed."""
        clip = self.clip(details_row)
        return None if clip is None else waveform_ncc(clip, self[answer])

    def clip_ncc_and_passage(self, details_row, answer, piece_s=4.0):
        """(r, passage r): clip_ncc, and passage_ncc with pieces of piece_s seconds at the same
        alignment (found once); (None, None) for clips played at another speed, passage r None
        for clips shorter than a piece."""
        clip = self.clip(details_row)
        if clip is None:
            return None, None
        song = self[answer]
        r, lag = best_alignment(clip, song)
        piece = int(round(piece_s * RATE_HZ))
        return r, passage_ncc(clip, song, piece, lag) if len(clip) >= piece else None

    def holds_answer(self, details_row, answer, r_min):
        """(r, whether r >= r_min): does the clip hold the audio of the song it was given?
        r is None, and the answer False, for clips played at another speed."""
        r = self.clip_ncc(details_row, answer)
        return r, r is not None and r >= r_min
