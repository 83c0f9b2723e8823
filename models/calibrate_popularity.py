"""Calibrates the popularity-weighted decision (MatchParams::prior_weight, prior_offset in
core/matcher.h) on TRAIN-set queries and writes it into a model file.

With a catalogue popularity column, a song's confidence gains
prior_weight * log_prior / sqrt(n) - prior_offset, where log_prior is how much likelier the
song is to be played than the catalogue's typical one (index-builder/catalog.h). Listeners play
popular songs more often, so lowering their bar and raising the bar of obscure ones catches more
of what people actually play at the same false-positive rate (Sound Search weighs its thresholds
by popularity for this reason).

The train sets have no popularity, so each draw gives the songs of every set's index a Zipf
popularity (rank r of a random order: 1 / r^s plays per million) and weighs each in-catalog
query by its song's share of plays; out-of-catalog queries stay unweighted, their prior that of
the song they found. For each weight on a grid, the offset is set so that as many negatives
pass as without the prior (the false-positive rate the thresholds were calibrated for, pooled
over lengths and draws), and the weight kept is the smallest within --tolerance points of the
best play-weighted hit rate.

    /usr/bin/python3 -m models.calibrate_popularity --model M.emod \\
        --truth q-cal-7/truth.tsv --results 32/7.jsonl [...] [--for-code NAME] [--write]

--results are `earshot query --threshold-base -1` outputs (similarity and background), as
for models.calibrate_threshold; each truth.tsv's folder must hold its index-catalog.tsv.
"""

import argparse
import csv
import json
import math
import os
import sys

import numpy as np

from models.calibrate_threshold import DEFAULT_VARIANTS, clip_table_for, n_embeddings
from models.earshot_model.container import read_container
from models.earshot_model.model_file import rewrite_model_file

MAX_LOG_PRIOR = 5.0  # kMaxLogPrior in core/index.h


def read_rows(path):
    """The rows of a TSV file with a header line, as dicts."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def log_priors(popularity):
    """ln(p + 1) less its mean, clamped to +-MAX_LOG_PRIOR (catalog_log_priors in C++)."""
    x = np.log1p(np.asarray(popularity, dtype=np.float64))
    return np.clip(x - x.mean(), -MAX_LOG_PRIOR, MAX_LOG_PRIOR)


def load_queries(truth_paths, result_paths, meta, background_weight):
    """[(set index, n, confidence, found song, true song or None)] over every set, and the
    indexed songs of each set. An out-of-catalog query that found another arrangement of its
    tune (calibrate_threshold's known variants) is left out, as there."""
    variants = set()
    for pair in DEFAULT_VARIANTS:
        a, b = pair.split("=")
        variants |= {(a, b), (b, a)}
    queries, indexed = [], []
    for k, (truth_path, result_path) in enumerate(zip(truth_paths, result_paths)):
        folder = os.path.dirname(os.path.abspath(truth_path))
        indexed.append([r["id"] for r in read_rows(
            os.path.join(folder, "index-catalog.tsv"))])
        truth = {r["query"]: r for r in read_rows(truth_path)}
        source = {}
        if os.path.exists(os.path.join(folder, "details.tsv")):
            source = {r["query"]: r["source_song"] for r in read_rows(
                os.path.join(folder, "details.tsv"))}
        with open(result_path) as f:
            for line in f:
                r = json.loads(line)
                t = truth.get(r["query"])
                if t is None or r.get("song") is None:
                    continue
                n = n_embeddings(meta, float(t["length_s"]))
                if n == 0 or (t["song"] == "-" and (source.get(r["query"]), r["song"]) in variants):
                    continue
                conf = float(r["similarity"]) - background_weight * float(r["background"])
                queries.append((k, n, conf, r["song"], None if t["song"] == "-" else t["song"]))
    return queries, indexed


def evaluate(queries, indexed, table, weights, zipf, draws, seed):
    """Rows (weight, offset, fp, play-weighted hit, plain hit) for each weight."""
    rng = np.random.default_rng(seed)
    n = np.array([q[1] for q in queries], dtype=np.float64)
    conf = np.array([q[2] for q in queries])
    thr = np.array([table[min(int(m), len(table)) - 1] for m in n])
    neg = np.array([q[4] is None for q in queries])
    right = np.array([q[4] is not None and q[3] == q[4] for q in queries])
    # Per draw: each query's found-song prior and (positives) play weight.
    priors, plays = [], []
    for _ in range(draws):
        prior_of, share_of = {}, {}
        for k, songs in enumerate(indexed):
            ranks = rng.permutation(len(songs)) + 1
            popularity = 1e6 / ranks.astype(np.float64) ** zipf
            lp = log_priors(popularity)
            share = popularity / popularity.mean()
            for s, p, w in zip(songs, lp, share):
                prior_of[(k, s)], share_of[(k, s)] = p, w
        priors.append(np.array([prior_of.get((q[0], q[3]), 0.0) for q in queries]))
        plays.append(np.array([share_of.get((q[0], q[4]), 0.0) if q[4] else 0.0
                               for q in queries]))
    base_fp = float(np.mean((conf >= thr)[neg]))
    rows = []
    for w in weights:
        lifted = [conf + w * p / np.sqrt(n) for p in priors]
        margins = np.concatenate([(x - thr)[neg] for x in lifted])
        # The offset that lets as many negatives through as without the prior: just above the
        # margin of the first negative that must fail.
        allowed = int(round(base_fp * len(margins)))
        ordered = np.sort(margins)[::-1]
        offset = 0.0
        if w and allowed < len(ordered):
            offset = float(ordered[allowed]) + 1e-9
        fp = float(np.mean(margins >= offset))
        hit_w, hit = [], []
        for x, p in zip(lifted, plays):
            ok = right & (x - offset >= thr)
            hit_w.append(np.sum(p * ok) / max(np.sum(p[~neg]), 1e-12))
            hit.append(np.mean(ok[~neg]))
        rows.append((w, offset, fp, float(np.mean(hit_w)), float(np.mean(hit))))
    return base_fp, rows


def choose(rows, tolerance):
    best = max(r[3] for r in rows)
    return next(r for r in rows if r[3] >= best - tolerance)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m models.calibrate_popularity",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--truth", action="append", required=True)
    ap.add_argument("--results", action="append", required=True)
    ap.add_argument("--for-code", default="", metavar="NAME",
                    help="the results come from indexes with this code: use its table")
    ap.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent of the popularity")
    ap.add_argument("--draws", type=int, default=20, help="popularity draws averaged")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-weight", type=float, default=0.1,
                    help="weights tried: 41 steps from 0 to this")
    ap.add_argument("--tolerance", type=float, default=0.0005,
                    help="keep the smallest weight within this of the best hit rate (0.0005 = "
                         "0.05 points)")
    ap.add_argument("--write", action="store_true", help="write the weight and offset into --model")
    args = ap.parse_args(argv)
    if len(args.truth) != len(args.results):
        sys.exit("give as many --results as --truth, in the same order")
    with open(args.model, "rb") as f:
        model = read_container(f.read(), expected_kind="MODL", what=args.model)
    meta = model.meta
    table = clip_table_for(meta, args.for_code)
    if not table:
        sys.exit(f"{args.model} has no threshold table for this code: calibrate the thresholds "
                 "first (models.calibrate_threshold)")
    queries, indexed = load_queries(args.truth, args.results, meta,
                                    meta.get("threshold_background_weight", 0.0))
    weights = [float(w) for w in np.linspace(0.0, args.max_weight, 41)]
    base_fp, rows = evaluate(queries, indexed, table, weights, args.zipf, args.draws, args.seed)
    n_neg = sum(q[4] is None for q in queries)
    print(f"{len(queries) - n_neg} in-catalog and {n_neg} out-of-catalog queries, Zipf "
          f"{args.zipf:g}, {args.draws} draws; false positives without the prior "
          f"{100 * base_fp:.2f} %")
    print("weight  offset  false pos.  hit (play-weighted)  hit (per query)")
    for w, offset, fp, hit_w, hit in rows:
        print(f"{w:6.4f}  {offset:6.3f}  {100 * fp:8.2f} %  {100 * hit_w:12.2f} %  "
              f"{100 * hit:12.2f} %")
    w, offset, fp, hit_w, hit = choose(rows, args.tolerance)
    print(f"chosen: prior_weight {w:g}, prior_offset {offset:.4f} (play-weighted hit "
          f"{100 * hit_w:.2f} % against {100 * rows[0][3]:.2f} % without)")
    if args.write:
        if abs(offset) > 0.5:  # the core refuses it (core/model.cc)
            sys.exit(f"prior_offset {offset:.3f} is outside [-0.5, 0.5]: not written")
        meta["threshold_prior_weight"] = float(w)
        meta["threshold_prior_offset"] = round(float(offset), 5)
        meta["threshold_prior_calibration"] = {
            "queries": [os.path.join(os.path.basename(os.path.dirname(os.path.abspath(t))),
                                     os.path.basename(t)) for t in args.truth],
            "zipf": args.zipf, "draws": args.draws, "false_positives": round(base_fp, 5),
            "hit_play_weighted": round(hit_w, 4), "hit_play_weighted_without": round(rows[0][3], 4)}
        rewrite_model_file(args.model, meta, list(model.sections.items()))
        print(f"wrote threshold_prior_weight and threshold_prior_offset into {args.model}")


if __name__ == "__main__":
    main()
