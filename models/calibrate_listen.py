"""Calibrates the live listen's decision rule (core/listen.h) on TRAIN-set listens and writes it
into a model file.

A listen makes a look after every query embedding; the rule commits when `confirm_looks`
consecutive looks pass (confidence >= listen threshold(n), n = embeddings in the window) and name
the same song. This script replays that rule on the looks that `earshot query --live --trace`
recorded for listens made by ../shared/eval/make-queries from the train set (never the eval set),
and picks, over the family

    threshold(n) = clip_threshold(n) + a + b * (1/sqrt(n) - 1/sqrt(n_max))    (non-increasing)

and confirm_looks in --confirm, the rule with the fewest false positives over whole listens
(then the highest hit rate, then the fastest answers) among those that reach the hit rate and
answer speed the app needs, with a margin (--min-hit, --max-median-s, --max-p90-s: seconds of
music heard before a right answer) and keep the false-positive rate within --target-fp on
out-of-catalog listens and --target-fp-nomusic on `nomusic` clips. Spending what exceeds the
needed hit rate on fewer false positives leaves a margin for negatives unlike the train set's
(a rule fitted for the highest hit rate sits at the edge of the false-positive target, which
is counted on a few train clips). clip_threshold is the model's per-clip table
(threshold_by_n).

    /usr/bin/python3 -m models.calibrate_listen --model models/earshot-v1.emod \\
        --truth q-train-listen/truth.tsv --trace trace.jsonl [--write]

Several listen sets pool their clips: repeat --truth and --trace in the same order.

With --for-code NAME (an index code as `earshot info` names it, e.g. 16-opq-unit), the listens
were traced against an index with that code: the rule starts from the model's clip table for it
(threshold_by_n_by_code, models/calibrate_threshold.py) and --write stores it in
listen_rule_by_code[NAME], used for such indexes instead of the main rule.

--guard-truth/--guard-trace (same form) name listens traced with the level gate alone
(`earshot query --live --no-music-detector --trace`): the false-positive targets must hold on
them too, so the rule keeps its promise where the music detector lets noise by (it does for
some ambience: docs/MUSIC_DETECTOR.md); hit rate and speed are taken from --trace only.
The trace has one JSON object per clip: {"query": NAME, "looks": [[stream_time_s, n,
confidence, song_id, song_time_at_0_s, score, background, prior], ...]} (looks in stream order,
song_id null without candidates). The confidence is recomputed as score - W * background + prior
with the weight W of the model's clip table (threshold_background_weight): the listens may be
traced before the clip thresholds are written (scripts/calibrate-model.sh), when a new model has
no weight yet and the trace's own confidence is the bare score.
"""
import argparse
import csv
import json
import math
import os
import statistics
import sys

from models.calibrate_threshold import default_code
from models.earshot_model.container import read_container
from models.earshot_model.model_file import rewrite_model_file


def reweigh(look, background_weight):
    """A look as [t, n, confidence, song, song_time_at_0] with the confidence recomputed for
    background_weight from its score, background and prior (the trace's looks 5-7); a look
    without them keeps the confidence it was traced with."""
    if len(look) < 8 or look[3] is None:
        return look[:5]
    t, n, _, song, at0, score, background, prior = look[:8]
    return [t, n, score - background_weight * background + prior, song, at0]


def load_clips(truth_paths, trace_paths, background_weight=None):
    """[(truth row, looks)] over every set; a clip missing from its trace has no looks. With
    background_weight, each look's confidence is recomputed for it (reweigh): the clip table
    the rule starts from is calibrated for the model's weight, which a trace made before the
    model had one (a new export) did not use."""
    clips = []
    for truth_path, trace_path in zip(truth_paths, trace_paths):
        looks = {}
        with open(trace_path) as f:
            for line in f:
                if line.strip():
                    record = json.loads(line)
                    looks[record["query"]] = (
                        record["looks"] if background_weight is None else
                        [reweigh(look, background_weight) for look in record["looks"]])
        with open(truth_path, newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                clips.append((row, looks.get(row["query"], [])))
    return clips


def replay(looks, table, confirm):
    """The rule of core/listen.cc on one clip's looks: (song, answer_s, song_time_at_0) or None."""
    streak, streak_song = 0, None
    for look in looks:
        stream_time_s, n, confidence, song, song_time_at_0 = look[:5]
        threshold = table[min(max(n, 1), len(table)) - 1]
        if song is None or confidence < threshold:
            streak = 0
            continue
        streak = streak + 1 if streak > 0 and song == streak_song else 1
        streak_song = song
        if streak >= confirm:
            return song, stream_time_s, song_time_at_0
    return None


def score(clips, table, confirm):
    """Figures of one rule over the clips (the ruler's definitions, listens only)."""
    n_pos = n_hit = n_out = n_out_fp = n_nomusic = n_nomusic_fp = n_wrong = 0
    heard = []
    for row, looks in clips:
        answer = replay(looks, table, confirm)
        if row["song"] == "-":
            if row["condition"] == "nomusic":
                n_nomusic += 1
                n_nomusic_fp += answer is not None
            else:
                n_out += 1
                n_out_fp += answer is not None
            continue
        n_pos += 1
        if answer is None:
            continue
        if answer[0] == row["song"]:
            n_hit += 1
            heard.append(answer[1] - float(row.get("lead_s") or 0.0))
        else:
            n_wrong += 1
    heard.sort()
    return {
        "hit": n_hit / max(n_pos, 1), "wrong": n_wrong / max(n_pos, 1),
        "fp_out": n_out_fp / max(n_out, 1), "fp_nomusic": n_nomusic_fp / max(n_nomusic, 1),
        "fp_out_n": n_out_fp, "fp_nomusic_n": n_nomusic_fp,
        "heard_median_s": statistics.median(heard) if heard else None,
        "heard_p90_s": heard[min(len(heard) - 1, int(0.9 * len(heard)))] if heard else None,
        "positives": n_pos, "out_of_catalog": n_out, "nomusic": n_nomusic,
    }


def family_table(clip_table, a, b, n_max):
    table, last = [], math.inf
    for n in range(1, n_max + 1):
        clip = clip_table[min(n, len(clip_table)) - 1]
        t = clip + a + b * (1.0 / math.sqrt(n) - 1.0 / math.sqrt(n_max))
        last = min(last, t)  # never rising with n
        table.append(round(last, 5))
    return table


def frange(lo, hi, step):
    k = 0
    while lo + k * step <= hi + 1e-9:
        yield round(lo + k * step, 6)
        k += 1


def fit(clip_table, clips, guard, target_fp, target_fp_nomusic, confirms, n_max,
        min_hit=0.0, max_median_s=math.inf, max_p90_s=math.inf):
    """The rule of the family with the fewest false positives on `clips` and `guard` (may be
    empty), then the highest hit rate on `clips`, then the fastest answers, among those that
    reach min_hit, max_median_s and max_p90_s on `clips` and meet the false-positive targets on
    both: (confirm, a, b, table, figures on clips, figures on guard or None), or None."""
    def within_targets(s):
        return s["fp_out"] <= target_fp and s["fp_nomusic"] <= target_fp_nomusic

    def fast_enough(s):
        return (s["hit"] >= min_hit and (s["heard_median_s"] or math.inf) <= max_median_s and
                (s["heard_p90_s"] or math.inf) <= max_p90_s)

    best = None
    for confirm in confirms:
        for a in frange(-0.06, 0.20, 0.005):
            for b in frange(0.0, 0.20, 0.02):
                table = family_table(clip_table, a, b, n_max)
                s = score(clips, table, confirm)
                if not within_targets(s) or not fast_enough(s):
                    continue
                g = score(guard, table, confirm) if guard else None
                if g is not None and not within_targets(g):
                    continue
                n_fp = s["fp_out_n"] + s["fp_nomusic_n"]
                if g is not None:
                    n_fp += g["fp_out_n"] + g["fp_nomusic_n"]
                key = (-n_fp, s["hit"], -(s["heard_median_s"] or 99.0),
                       -(s["heard_p90_s"] or 99.0))
                if best is None or key > best[0]:
                    best = (key, (confirm, a, b, table, s, g))
    return best[1] if best else None


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model file (.emod) whose clip table to start from")
    ap.add_argument("--truth", action="append", required=True, help="truth.tsv of a train listen set")
    ap.add_argument("--trace", action="append", required=True,
                    help="`earshot query --live --trace` output for that set, same order as --truth")
    ap.add_argument("--guard-truth", action="append", default=[],
                    help="truth.tsv of a listen set traced with the level gate alone")
    ap.add_argument("--guard-trace", action="append", default=[],
                    help="its `earshot query --live --no-music-detector --trace` output")
    ap.add_argument("--target-fp", type=float, default=0.004,
                    help="largest share of out-of-catalog train listens given a song")
    ap.add_argument("--target-fp-nomusic", type=float, default=0.002,
                    help="largest share of train `nomusic` clips given a song")
    ap.add_argument("--min-hit", type=float, default=0.975,
                    help="least share of in-catalog train listens answered right (the app "
                         "needs 0.97)")
    ap.add_argument("--max-median-s", type=float, default=2.5,
                    help="most median seconds of music heard before a right answer (needs 3)")
    ap.add_argument("--max-p90-s", type=float, default=5.5,
                    help="most 90th-percentile seconds of music heard before a right answer "
                         "(needs 6)")
    ap.add_argument("--confirm", default="1,2,3", help="confirm_looks values to try")
    ap.add_argument("--n-max", type=int, default=20, help="table length (the 10 s window)")
    ap.add_argument("--for-code", default="", metavar="NAME",
                    help="the listens were traced against an index with this code, not the "
                         "model's default one")
    ap.add_argument("--write", action="store_true", help="write the rule into --model")
    args = ap.parse_args()
    if len(args.truth) != len(args.trace) or len(args.guard_truth) != len(args.guard_trace):
        sys.exit("give as many --trace as --truth (--guard-trace as --guard-truth), in the same order")

    with open(args.model, "rb") as f:
        model = read_container(f.read(), expected_kind="MODL", what=args.model)
    meta = model.meta
    clip_table = meta.get("threshold_by_n") or [meta.get("threshold", 0.5)]
    if args.for_code:
        if args.for_code == default_code(meta):
            sys.exit(f"--for-code {args.for_code} is the model's default code: drop --for-code")
        clip_table = meta.get("threshold_by_n_by_code", {}).get(args.for_code)
        if not clip_table:
            sys.exit(f"the model has no clip thresholds for code {args.for_code}: calibrate them "
                     "first (models.calibrate_threshold --write --for-code)")
    weight = meta.get("threshold_background_weight", 0.0)
    clips = load_clips(args.truth, args.trace, weight)
    guard = load_clips(args.guard_truth, args.guard_trace, weight)
    best = fit(clip_table, clips, guard, args.target_fp, args.target_fp_nomusic,
               [int(c) for c in args.confirm.split(",")], args.n_max,
               args.min_hit, args.max_median_s, args.max_p90_s)
    if best is None:
        sys.exit("no rule of the family meets the targets on these listens")
    confirm, a, b, table, s, g = best
    print(json.dumps({"confirm_looks": confirm, "a": a, "b": b, "threshold_by_n": table,
                      "train": s, "train_level_gate_alone": g}, indent=1))
    if args.write:
        calibration = {
            "listen_sets": [os.path.basename(os.path.dirname(os.path.abspath(t)))
                            for t in args.truth],
            "target_fp": args.target_fp, "target_fp_nomusic": args.target_fp_nomusic,
            "family": "clip_threshold(n) + a + b * (1/sqrt(n) - 1/sqrt(n_max))",
            "min_hit": args.min_hit, "max_median_s": args.max_median_s,
            "max_p90_s": args.max_p90_s,
            "a": a, "b": b, "train": s,
        }
        if g is not None:
            calibration["guard_sets"] = [
                os.path.basename(os.path.dirname(os.path.abspath(t))) for t in args.guard_truth]
            calibration["train_level_gate_alone"] = g
        if args.for_code:
            meta.setdefault("listen_rule_by_code", {})[args.for_code] = {
                "threshold_by_n": table, "confirm_looks": confirm, "calibration": calibration}
            what = f"listen_rule_by_code[{args.for_code}]"
        else:
            meta["listen_threshold_by_n"] = table
            meta["listen_confirm_looks"] = confirm
            meta["listen_calibration"] = calibration
            what = "listen_threshold_by_n"
        rewrite_model_file(args.model, meta, list(model.sections.items()))
        print(f"wrote {what} ({len(table)} values) into {args.model}")


if __name__ == "__main__":
    main()
