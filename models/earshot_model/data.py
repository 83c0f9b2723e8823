"""Training data: decode every train song and noise file once to 16 kHz mono float32 (.npy
cache under models/cache/, gitignored), then hold them in RAM."""

import os
import sys
import time

import numpy as np

EVAL_TOOLS = "/work/shared/eval"
MODELS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE_DIR = os.path.join(MODELS_DIR, "cache")
RATE_HZ = 16000


def _evallib():
    if EVAL_TOOLS not in sys.path:
        sys.path.insert(0, EVAL_TOOLS)
    import evallib
    return evallib


def read_catalog(path):
    return _evallib().read_tsv(path)


def _cached_decode(path, cache_path):
    if os.path.exists(cache_path):
        return np.load(cache_path, mmap_mode=None)
    audio = _evallib().decode_audio(path, RATE_HZ)
    os.makedirs(os.path.dirname(cache_path), exist_ok=True)
    tmp = cache_path + ".tmp.npy"
    np.save(tmp, audio.astype(np.float32))
    os.replace(tmp, cache_path)
    return audio


def load_songs(catalog_tsv, verbose=True):
    """Returns (ids, list of float32 arrays), in catalog order."""
    rows = read_catalog(catalog_tsv)
    ids, audio = [], []
    t0 = time.time()
    for i, row in enumerate(rows):
        cache = os.path.join(CACHE_DIR, "songs", row["id"] + ".npy")
        audio.append(_cached_decode(row["path"], cache))
        ids.append(row["id"])
        if verbose and (i % 20 == 0 or i == len(rows) - 1):
            print(f"songs {i + 1}/{len(rows)} {time.time() - t0:.0f}s", flush=True)
    return ids, audio


def load_noise(noise_tsv, min_len=RATE_HZ // 2, verbose=True):
    """Returns (categories list, list of float32 arrays), silent/short files dropped."""
    rows = read_catalog(noise_tsv)
    cats, audio = [], []
    t0 = time.time()
    for i, row in enumerate(rows):
        cache = os.path.join(CACHE_DIR, "noise", row["id"] + ".npy")
        try:
            x = _cached_decode(row["path"], cache)
        except Exception as e:  # a noise file we cannot decode is skipped, not fatal
            print(f"skip noise {row['id']}: {e}", flush=True)
            continue
        if len(x) >= min_len and np.sqrt(np.mean(x.astype(np.float64) ** 2)) > 10 ** (-50 / 20):
            cats.append(row["category"])
            audio.append(x)
        if verbose and (i % 200 == 0 or i == len(rows) - 1):
            print(f"noise {i + 1}/{len(rows)} {time.time() - t0:.0f}s", flush=True)
    return cats, audio


if __name__ == "__main__":
    corpus = sys.argv[1] if len(sys.argv) > 1 else "/root/corpus/train"
    load_songs(os.path.join(corpus, "catalog.tsv"))
    load_noise(os.path.join(corpus, "noise.tsv"))
