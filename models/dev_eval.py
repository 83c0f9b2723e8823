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

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from earshot_model import data, deveval  # noqa: E402
import export  # noqa: E402
import train  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--dev-queries", default="/root/q-train-dev")
    parser.add_argument("--n-seen", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
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
                   if q["song"] != "-" or train._query_source(args.dev_queries, q) in neg]
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
    print(json.dumps(result))


if __name__ == "__main__":
    main()
