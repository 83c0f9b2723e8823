"""Training data: decode every train song and noise file once to mono float32 at the
front-end's sample rate (.npy cache under models/cache/, gitignored), then hold them in RAM.

TSV reading and audio decoding are the evaluation tools' own (evallib.py of ../shared/eval,
next to the repository; the EVAL environment variable names another folder), so that training
reads the corpus exactly as make-queries and score do."""

import functools
import importlib.util
import os
import time

import numpy as np

from .frontend import DEFAULT_PARAMS

REPO_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS_DIR = os.path.join(REPO_DIR, "models")
CACHE_DIR = os.path.join(MODELS_DIR, "cache")
RATE_HZ = DEFAULT_PARAMS["sample_rate_hz"]


@functools.lru_cache(maxsize=None)
def _evallib():
    """The evaluation tools' evallib module, loaded from its file."""
    folder = os.environ.get("EVAL", os.path.join(REPO_DIR, "..", "shared", "eval"))
    path = os.path.join(folder, "evallib.py")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: the evaluation tools are missing; put them in "
                                "../shared/eval or set EVAL to their folder")
    spec = importlib.util.spec_from_file_location("evallib", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_catalog(path, columns=None):
    """Rows of a TSV file with a header line, as dicts; `columns` must be in the header."""
    return _evallib().read_tsv(path, columns)


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

