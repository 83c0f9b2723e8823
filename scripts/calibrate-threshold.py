#!/usr/bin/python3
"""Calibrates the no-match threshold of a model on TRAIN-set queries and writes it into the model.

The matcher refuses a match when the best score is below
    threshold(n) = threshold_base + threshold_scale / sqrt(n)
where n is the number of query embeddings (short queries have noisier mean similarities).
This script reads the answers of `earshot query` on queries made by ../shared/eval/make-queries
from the train set (never the eval set), takes for each query length the highest scores of the
out-of-catalog queries, and picks (base, scale) so that at most --target-fp of them pass at every
length while as many in-catalog queries as possible pass with the right song.

  scripts/calibrate-threshold.py --truth Q/truth.tsv --results results.jsonl \
      --model models/earshot-v1.emod [--write]

With --write the model file's metadata gets `threshold` (base) and `threshold_scale`; the model
hash changes, so indexes must be rebuilt afterwards.
"""
import argparse
import csv
import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
from earshot_model.container import read_container, write_container  # noqa: E402


def n_embeddings(meta, length_s):
    """Query embeddings of a clip of length_s seconds at the model's hop (whole-clip matching)."""
    n_samples = int(round(length_s * meta["sample_rate_hz"]))
    if n_samples < meta["n_fft"]:
        return 0
    frames = 1 + (n_samples - meta["n_fft"]) // meta["hop_length"]
    if frames < meta["context_frames"]:
        return 0
    return (frames - meta["context_frames"]) // meta["hop_frames"] + 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--truth", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--target-fp", type=float, default=0.005,
                    help="largest share of out-of-catalog queries allowed to match, per length")
    ap.add_argument("--margin", type=float, default=0.005, help="added to the fitted thresholds")
    ap.add_argument("--write", action="store_true", help="write the thresholds into --model")
    args = ap.parse_args()

    with open(args.model, "rb") as f:
        model = read_container(f.read(), expected_kind="MODL", what=args.model)
    meta = model.meta
    with open(args.truth, newline="") as f:
        truth = {row["query"]: row for row in csv.DictReader(f, delimiter="\t")}
    results = {}
    with open(args.results) as f:
        for line in f:
            r = json.loads(line)
            results[r["query"]] = r

    neg, pos = {}, {}  # n -> list of scores (pos: (score, right song))
    for q, t in truth.items():
        r = results.get(q)
        if r is None:
            continue
        n = n_embeddings(meta, float(t["length_s"]))
        if n == 0:
            continue
        score = float(r["score"])
        if t["song"] == "-":
            neg.setdefault(n, []).append(score)
        else:
            # A positive counts only if the best candidate is the right song (song may be null
            # under the current threshold: then we cannot tell, and the query is left out).
            if r["song"] is not None:
                pos.setdefault(n, []).append((score, r["song"] == t["song"]))
    if not neg:
        sys.exit("no out-of-catalog queries with results: make queries with --holdout > 0")

    # Per length, the score that at most target_fp of the negatives reach.
    limits = {}
    for n, scores in sorted(neg.items()):
        scores = sorted(scores)
        allowed = int(math.floor(args.target_fp * len(scores)))
        limits[n] = scores[len(scores) - 1 - allowed] + args.margin
    best = None
    for step in range(0, 201):
        scale = step * 0.005
        base = max(limit - scale / math.sqrt(n) for n, limit in limits.items())
        hits = sum(1 for n, items in pos.items() for s, right in items
                   if right and s >= base + scale / math.sqrt(n))
        if best is None or hits > best[0]:
            best = (hits, base, scale)
    hits, base, scale = best
    n_pos = sum(len(v) for v in pos.values())
    print(f"calibrated on {sum(len(v) for v in neg.values())} negatives and {n_pos} positives")
    print(f"threshold(n) = {base:.4f} + {scale:.4f}/sqrt(n)")
    for n in sorted(limits):
        thr = base + scale / math.sqrt(n)
        fp = sum(1 for s in neg[n] if s >= thr) / len(neg[n])
        p = pos.get(n, [])
        tp = sum(1 for s, right in p if right and s >= thr) / max(1, len(p))
        print(f"  n={n:3d}: threshold {thr:.4f}  negatives passing {100 * fp:5.1f}% of {len(neg[n])}"
              f"  positives kept {100 * tp:5.1f}% of {len(p)}")
    if args.write:
        meta["threshold"] = round(base, 5)
        meta["threshold_scale"] = round(scale, 5)
        sections = list(model.sections.items())
        data = write_container("MODL", meta, sections)
        tmp = args.model + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, args.model)
        print(f"wrote threshold {base:.5f} and threshold_scale {scale:.5f} into {args.model}")


if __name__ == "__main__":
    main()
