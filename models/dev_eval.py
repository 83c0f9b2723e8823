"""Dev metric of a checkpoint (TRAIN-set material only): brute-force retrieval of the
make-queries clips in --dev-queries against the dev songs at the shipped index and query hops,
top-1 hit rate per length and condition, for songs held out of training ("unseen") and songs
trained on ("seen"); then the best scores of the out-of-catalog clips.

    /usr/bin/python3 -m models.dev_eval models/checkpoints/RUN/last.pt --dev-queries QDIR

The songs are read from the corpus the checkpoint was trained on (its --corpus).
"""

import argparse
import collections
import json
import os

import numpy as np
import torch

from models.earshot_model import checkpoint, data, dev_metric, model_file, splits

# Same composition, different recording (../shared/eval/README.md): a negative whose source
# song is one of these while its partner is indexed is not a false positive, so it is left out.
KNOWN_DUPLICATES = {"frozenbubble-frozen-mainzik-2p": "fbmusic-frozen-mainzik-2p",
                    "fbmusic-frozen-mainzik-2p": "frozenbubble-frozen-mainzik-2p"}


def main():
    parser = argparse.ArgumentParser(prog="python3 -m models.dev_eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a train.py checkpoint (models/checkpoints/RUN/last.pt)")
    parser.add_argument("--dev-queries", required=True,
                        help="the make-queries folder the run was trained with")
    parser.add_argument("--model", default="",
                        help="measure this model file instead of the checkpoint's network, on "
                             "the checkpoint's dev songs (to compare models on one split)")
    parser.add_argument("--n-seen", type=int, default=16,
                        help="songs trained on that join the dev index (seen)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--all-neg", action="store_true",
                        help="use every out-of-catalog query as a negative (also songs trained "
                             "on), not only the held-out ones")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ck = torch.load(args.checkpoint)
    net = (model_file.net_from_model_file(args.model) if args.model
           else checkpoint.net_from_checkpoint(ck))
    cfg = ck["config"]
    ids, songs = data.load_songs(os.path.join(cfg["corpus"], "catalog.tsv"), verbose=False)
    by_id = dict(zip(ids, songs))
    dev_queries = splits.DevQueries(args.dev_queries)
    source_of = dev_queries.source_of
    seen = splits.seen_dev_songs(ck["train_ids"], set(dev_queries.indexed), cfg["seed"],
                                 args.n_seen)
    unseen, neg = ck["dev"]["unseen"], ck["dev"]["neg"]
    index = unseen + seen
    dev = dev_metric.DevSet(args.dev_queries, {s: by_id[s] for s in index}, index)
    dev.queries = [q for q in dev.queries
                   if q["song"] != "-" or args.all_neg or source_of[q["query"]] in neg]
    dev.queries = [q for q in dev.queries if q["song"] != "-" or
                   KNOWN_DUPLICATES.get(source_of[q["query"]]) not in index]
    result = dev.evaluate(net, seen_ids=set(seen))
    result.update(step=ck["state"]["step"], train_min=round(ck["state"]["train_s"] / 60, 1),
                  n_queries=len(dev.queries), n_unseen=len(unseen), n_seen=len(seen))
    for group in ("unseen", "seen"):
        print(f"{group}: top-1 hit rate % (rows condition, columns length s)")
        lengths = sorted({k.split("/")[2] for k in result if k.startswith(group + "/")},
                         key=lambda v: (v == "all", float(v) if v != "all" else 0))
        print("  " + "condition".ljust(10) + "".join(f"{l:>8}" for l in lengths))
        conds = sorted({k.split("/")[1] for k in result if k.startswith(group + "/")} - {"all"})
        for cond in conds + ["all"]:
            print("  " + cond.ljust(10) + "".join(
                f"{result.get(f'{group}/{cond}/{l}', float('nan')):>8}" for l in lengths))
    print("no-match threshold per query length (brute-force aligned mean cosine):")
    for length in sorted({s[0] for s in dev.scores}, key=float):
        neg_scores = np.array([s[4] for s in dev.scores if s[0] == length and s[2]])
        pos = [(s[3], s[4]) for s in dev.scores if s[0] == length and not s[2]]
        if not len(neg_scores):
            continue
        thr = float(np.max(neg_scores))
        hit = 100.0 * np.mean([ok and score > thr for ok, score in pos])
        print(f"  {length} s: negatives n={len(neg_scores)} "
              f"p95={np.percentile(neg_scores, 95):.3f} max={thr:.3f}; hit rate with score > "
              f"max negative: {hit:.1f}%")
        result[f"threshold/{length}"] = round(thr, 4)
        by_cond = collections.defaultdict(list)
        for s in dev.scores:
            if s[0] == length and not s[2]:
                by_cond[s[1]].append(s[3] and s[4] > thr)
        print("    by condition: " + ", ".join(
            f"{c} {100.0 * np.mean(v):.1f}%" for c, v in sorted(by_cond.items())))
        for c, v in by_cond.items():
            result[f"above_max_neg/{c}/{length}"] = round(100.0 * float(np.mean(v)), 1)
    print("highest-scoring negatives (query, source song, answer, score):")
    for s in sorted((s for s in dev.scores if s[2]), key=lambda s: -s[4])[:5]:
        print(f"  {s[5]} {source_of[s[5]]} {s[6]} {s[4]:.3f} ({s[0]} s {s[1]})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
