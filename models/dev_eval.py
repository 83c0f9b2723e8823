#!/usr/bin/python3
"""Dev metric for a checkpoint (TRAIN-set material only): brute-force retrieval of the
make-queries clips in --dev-queries against the dev songs, top-1 hit rate per length and
condition, for songs held out of training ("unseen") and songs trained on ("seen").

    /usr/bin/python3 models/dev_eval.py models/checkpoints/v1/last.pt [--n-seen 16]
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from earshot_model import data, deveval  # noqa: E402
import export  # noqa: E402
import train  # noqa: E402


# Same composition, different recording (shared/eval/README.md): a negative whose source song
# is one of these while its partner is indexed is not a false positive, so it is left out.
KNOWN_DUPLICATES = {"frozenbubble-frozen-mainzik-2p": "fbmusic-frozen-mainzik-2p",
                    "fbmusic-frozen-mainzik-2p": "frozenbubble-frozen-mainzik-2p"}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--dev-queries", default="/root/q-train-dev")
    parser.add_argument("--n-seen", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--all-neg", action="store_true",
                        help="use every out-of-catalog query as a negative (also songs trained "
                             "on), not only the held-out ones")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ck = torch.load(args.checkpoint)
    net = export.net_from_checkpoint(ck)
    cfg = ck["config"]
    ids, songs = data.load_songs(os.path.join(cfg["corpus"], "catalog.tsv"), verbose=False)
    by_id = dict(zip(ids, songs))
    indexed = {r["id"] for r in data.read_catalog(
        os.path.join(args.dev_queries, "index-catalog.tsv"))}
    seen = sorted(ck["train_ids"], key=lambda s: train.stable_hash(s, cfg["seed"] + 1))
    seen = [s for s in seen if s in indexed][:args.n_seen]
    unseen, neg = ck["dev"]["unseen"], ck["dev"]["neg"]
    index = unseen + seen
    dev = deveval.DevSet(args.dev_queries, {s: by_id[s] for s in index}, index)
    dev.queries = [q for q in dev.queries
                   if q["song"] != "-" or args.all_neg or
                   train._query_source(args.dev_queries, q) in neg]
    dev.queries = [q for q in dev.queries if q["song"] != "-" or KNOWN_DUPLICATES.get(
        train._query_source(args.dev_queries, q)) not in index]
    result = dev.evaluate(net, seen_ids=set(seen))
    result.update(step=ck["state"]["step"], train_min=round(ck["state"]["train_s"] / 60, 1),
                  n_queries=len(dev.queries), n_unseen=len(unseen), n_seen=len(seen))
    for group in ("unseen", "seen"):
        print(f"{group}: top-1 hit rate % (rows condition, columns length s)")
        lengths = sorted({k.split("/")[2] for k in result if k.startswith(group + "/")},
                         key=lambda v: (v == "all", float(v) if v != "all" else 0))
        print("  " + "condition".ljust(10) + "".join(f"{l:>8}" for l in lengths))
        for cond in ("clean", "noise10", "noise5", "noise0", "all"):
            print("  " + cond.ljust(10) + "".join(
                f"{result.get(f'{group}/{cond}/{l}', float('nan')):>8}" for l in lengths))
    print("no-match threshold per query length (brute-force aligned mean cosine):")
    for length in sorted({s[0] for s in dev.scores}, key=float):
        neg = np.array([s[4] for s in dev.scores if s[0] == length and s[2]])
        pos = [(s[3], s[4]) for s in dev.scores if s[0] == length and not s[2]]
        if not len(neg):
            continue
        thr = float(np.max(neg))
        hit = 100.0 * np.mean([ok and score > thr for ok, score in pos])
        print(f"  {length} s: negatives n={len(neg)} p95={np.percentile(neg, 95):.3f} "
              f"max={thr:.3f}; hit rate with score > max negative: {hit:.1f}%")
        result[f"threshold/{length}"] = round(thr, 4)
    print("highest-scoring negatives (query, source song, answer, score):")
    for s in sorted((s for s in dev.scores if s[2]), key=lambda s: -s[4])[:5]:
        print(f"  {s[5]} {train._query_source(args.dev_queries, {'query': s[5]})} {s[6]} "
              f"{s[4]:.3f} ({s[0]} s {s[1]})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
