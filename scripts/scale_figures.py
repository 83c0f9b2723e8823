#!/usr/bin/env python3
"""Prints the scale harness's impostor figures (docs/SCALE.md) from `earshot query` results.

  scale_figures.py TRUTH.tsv NAME=RESULTS.jsonl [NAME=RESULTS.jsonl ...]

Per results file, over the clips it answered: top-1 hit of in-catalogue clips, false positives
(out-of-catalogue clips given a song), wrong songs, which catalogue the wrong answers came from
(synthetic songs have ids "synthetic-..."), and quantiles of the best impostor's confidence on
out-of-catalogue clips (the `score` the recognizer compares with its threshold, after subtracting
the background; every candidate there is an impostor) and of its raw `similarity`, and of the
runner-up's similarity on in-catalogue clips.
"""
import csv
import json
import sys

import numpy as np


def quantiles(values):
    if not values:
        return "-"
    v = np.asarray(values, dtype=float)
    parts = [f"{q}:{np.quantile(v, q / 100):.3f}" for q in (50, 90, 99)]
    return " ".join(parts) + f" max:{v.max():.3f}"


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    truth = {}
    with open(argv[1], newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            truth[row["query"]] = row["song"]
    for arg in argv[2:]:
        name, path = arg.split("=", 1)
        n_in = n_ooc = hits = fps = wrong = synthetic_answers = 0
        ooc_conf, ooc_sim, runner_up_sim = [], [], []
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                q = r["query"].split("/")[-1]
                true_song = truth[q]
                song = r.get("song")
                if song is not None and song.startswith("synthetic-"):
                    synthetic_answers += 1
                if true_song == "-":
                    n_ooc += 1
                    fps += song is not None
                    ooc_conf.append(r.get("score", 0.0))
                    ooc_sim.append(r.get("similarity", 0.0))
                else:
                    n_in += 1
                    hits += song == true_song
                    wrong += song is not None and song != true_song
                    if "runner_up" in r:
                        runner_up_sim.append(r["runner_up"]["score"])
        print(f"{name}: in-catalogue {n_in} clips, top-1 {100 * hits / max(n_in, 1):.1f} %, "
              f"wrong song {wrong}; out-of-catalogue {n_ooc} clips, false positives {fps} "
              f"({100 * fps / max(n_ooc, 1):.1f} %); answers naming a synthetic song "
              f"{synthetic_answers}")
        print(f"  best impostor confidence, out-of-catalogue clips: {quantiles(ooc_conf)}")
        print(f"  best impostor similarity, out-of-catalogue clips: {quantiles(ooc_sim)}")
        print(f"  runner-up similarity, in-catalogue clips:         {quantiles(runner_up_sim)}")


if __name__ == "__main__":
    main(sys.argv)
