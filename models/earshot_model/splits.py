"""Which songs of the train set are trained on and which are kept out: dev songs (for the dev
metric), excluded albums and a seeded held-out share (unseen music for calibration). Every
choice is a seeded hash of the song id, so the same arguments always give the same split."""

import hashlib
import os
from dataclasses import dataclass, field

from . import data

N_DEV_NEGATIVE_SONGS = 6  # out-of-catalog dev songs whose queries are the dev metric's negatives


def stable_hash(text, seed):
    return hashlib.sha256(f"{seed}:{text}".encode()).hexdigest()


def excluded_and_holdout(album_of, exclude_albums, holdout_albums, holdout_frac, seed):
    """Songs kept out of training: (every song of the comma-separated `exclude_albums`,
    a seeded `holdout_frac` of the songs of `holdout_albums` in hash order; "*" is every
    album). album_of: id -> album."""
    excluded = {s for s, a in album_of.items() if a in exclude_albums.split(",")}
    pool = sorted(s for s, a in album_of.items()
                  if holdout_albums == "*" or a in holdout_albums.split(","))
    n_holdout = int(round(len(pool) * holdout_frac))
    holdout = sorted(pool, key=lambda s: stable_hash(s, seed))[:n_holdout]
    return excluded, holdout


def seen_dev_songs(train_ids, indexed, seed, n):
    """The first n songs trained on that the dev queries index (in seeded hash order): the dev
    metric's "seen" songs."""
    ordered = sorted(train_ids, key=lambda s: stable_hash(s, seed + 1))
    return [s for s in ordered if s in indexed][:n]


@dataclass
class Split:
    train_ids: list                  # songs trained on, in catalog order
    dev_unseen: list                 # indexed dev songs kept out of training
    dev_seen: list                   # indexed dev songs trained on
    dev_neg: list                    # out-of-catalog dev songs kept out of training
    excluded: set = field(default_factory=set)
    holdout: list = field(default_factory=list)


def split_songs(ids, album_of, indexed, dev_sources, seed, n_dev_songs, n_dev_seen,
                exclude_albums="", holdout_albums="", holdout_frac=0.25):
    """ids: the train set's songs in catalog order; album_of: id -> album; indexed: the songs
    the dev queries index; dev_sources: the source songs of the dev queries. Songs added to
    the train set after the dev queries were made are in neither and can only be trained on."""
    excluded, holdout = excluded_and_holdout(album_of, exclude_albums, holdout_albums,
                                             holdout_frac, seed)
    out_of_catalog = sorted(dev_sources & set(ids) - set(indexed))
    dev_unseen = sorted(indexed, key=lambda s: stable_hash(s, seed))[:n_dev_songs]
    dev_neg = sorted(out_of_catalog, key=lambda s: stable_hash(s, seed))[:N_DEV_NEGATIVE_SONGS]
    held_out = set(dev_unseen) | set(dev_neg) | excluded | set(holdout)
    train_ids = [s for s in ids if s not in held_out]
    dev_seen = seen_dev_songs(train_ids, set(indexed), seed, n_dev_seen)
    return Split(train_ids, dev_unseen, dev_seen, dev_neg, excluded, holdout)


class DevQueries:
    """A make-queries folder of train-set clips (../shared/eval/make-queries): the songs its
    index holds (index-catalog.tsv) and the source song of every clip (details.tsv)."""

    def __init__(self, folder):
        self.indexed = [r["id"] for r in data.read_catalog(
            os.path.join(folder, "index-catalog.tsv"))]
        self.source_of = {r["query"]: r["source_song"] for r in data.read_catalog(
            os.path.join(folder, "details.tsv"), ["query", "source_song"])}

    def sources(self):
        """Every song a clip was cut from."""
        return set(self.source_of.values())
