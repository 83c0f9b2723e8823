"""Calibrates the no-match threshold of a model on TRAIN-set queries and writes it into the model.

The matcher refuses a match when its confidence, the best song's aligned mean similarity minus
W times the background (the mean best similarity of the other songs to the same audio), is
below threshold(n), n being the number of query embeddings (short queries have noisier mean
similarities, so need higher scores).
This tool reads the answers of `earshot query` on queries made by ../shared/eval/make-queries
from the train set (never the eval set), takes for each query length the highest scores of the
out-of-catalog queries, and sets threshold(n) so that at most --target-fp of them pass at every
measured length (interpolated in between).

  /usr/bin/python3 -m models.calibrate_threshold --truth Q/truth.tsv --results results.jsonl \\
      --model models/earshot-v1.emod [--write]

Several query sets (each with its own index) pool their queries: repeat --truth, --results and
--details in the same order.

With --fold (one label per --truth) and --crossval, it instead prints a leave-one-fold-out
check of the rule: each fold's queries scored with per-length thresholds fitted on the other
folds (how a target that holds on the calibration sets carries over to other songs):

  /usr/bin/python3 -m models.calibrate_threshold --model M --crossval --target-fp 0.001 \\
      --truth A/truth.tsv --results a.jsonl --fold 1 \\
      --truth B/truth.tsv --results b.jsonl --fold 2 ...

With --shared-audio R (and --catalog, --details), an out-of-catalog clip whose waveform
correlates at R or more with some place of the song it found is left out of the negatives: it
contains that song's audio (a loop or stem the two tracks share), so finding it is what a
fingerprinter should do, not a false positive. Only the highest-scoring negatives, those that
can set a threshold, are checked:

  /usr/bin/python3 -m models.calibrate_threshold ... --shared-audio 0.5 \\
      --catalog DEST/train/catalog.tsv

With --write the model file's metadata gets `threshold_by_n` (and `threshold`, its last value);
the model hash changes, so indexes must be rebuilt afterwards. The main table is for indexes with
the model's default code (`index_pq_m`, `index_opq_rounds`, `index_unit_norm`,
`index_code_group`: what `earshot build` uses by default); with
`--write --for-code NAME`, results from indexes built with another code give the table used for
such indexes instead (`threshold_by_n_by_code`). NAME is the code's name as `earshot info` shows
it: the PQ bytes, then -gG for a code over G windows, then -opq with a rotation, then -unit with
unit-length scores (`--pq-m 8 --opq 10 --unit-norm`: 8-opq-unit; `--pq-m 32 --group 5 --opq 10
--unit-norm`: 32-g5-opq-unit). `--write --for-code NAME --set-default` makes NAME the model's
default code instead: its table becomes the main one (and its listen rule, when
models/calibrate_listen.py wrote one for it, the main listen rule; and its speed search table,
which a model with a speed search needs) and `earshot build` uses that code unless told
otherwise.
"""
import argparse
import csv
import json
import math
import os
import re
import sys

import numpy as np

from models.earshot_model.container import read_container
from models.earshot_model.model_file import rewrite_model_file


DEFAULT_VARIANTS = [
    "tecnoballz-area1-game2=tecnoballz-area1-game",
    "fbmusic-frozen-mainzik-2p=frozenbubble-frozen-mainzik-2p",
]


def n_embeddings(meta, length_s, hop_frames=0):
    """Query embeddings of a clip of length_s seconds at hop_frames (0: the model's query hop),
    the n the matcher looks thresholds up with (whole-clip matching)."""
    n_samples = int(round(length_s * meta["sample_rate_hz"]))
    if n_samples < meta["n_fft"]:
        return 0
    frames = 1 + (n_samples - meta["n_fft"]) // meta["hop_length"]
    if frames < meta["context_frames"]:
        return 0
    hop = hop_frames or meta.get("query_hop_frames", meta["hop_frames"])
    return (frames - meta["context_frames"]) // hop + 1


def main():
    ap = argparse.ArgumentParser(prog="python3 -m models.calibrate_threshold", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--truth", required=True, action="append", help="make-queries' truth.tsv")
    ap.add_argument("--results", required=True, action="append",
                    help="`earshot query --threshold-base -1` output for those queries")
    ap.add_argument("--model", required=True)
    ap.add_argument("--target-fp", type=float, default=0.001,
                    help="largest share of out-of-catalog queries allowed to match, per length")
    ap.add_argument("--margin", type=float, default=0.005, help="added to the fitted thresholds")
    ap.add_argument("--fit", choices=["per-length", "smooth", "pooled"], default="per-length",
                    help="per-length: each measured length's own order statistic; smooth: "
                         "those fitted by a + b / sqrt(n) (least squares); pooled: "
                         "the negatives of every length standardised by a location and spread "
                         "linear in 1/sqrt(n), one tail quantile for all (steadier: each "
                         "threshold rests on every negative, not on the few highest of one "
                         "length)")
    ap.add_argument("--background-weight", type=float, default=0.5,
                    help="the decision statistic is similarity - W * background (how well the "
                         "other songs match the same audio); 0.5 was chosen on train queries")
    ap.add_argument("--query-hop-frames", type=int, default=0,
                    help="the query hop the results were made with (0 = the model's)")
    ap.add_argument("--speed", action="store_true",
                    help="fit the clip mode's speed-search table instead: the results come "
                         "from `earshot query --threshold-base -1 --speed-search always "
                         "--speed-stretches S` (each line's \"speed_search\" is the best "
                         "stretch); clips whose own match clears the model's clip table for "
                         "the code are left out, the rest are scored by their best stretch "
                         "(--target-fp: the share of ALL negatives the table may add)")
    ap.add_argument("--stretches", default="1.02,0.98,1.01,0.99",
                    help="--speed: the stretches the results were made with (written with "
                         "the table)")
    ap.add_argument("--write", action="store_true", help="write the thresholds into --model")
    ap.add_argument("--for-code", default="", metavar="NAME",
                    help="with --write: the results come from indexes with this code (e.g. 16 or "
                         "8-opq-unit), other than the model's default code; "
                         "store the table in threshold_by_n_by_code[NAME] and keep the main one")
    ap.add_argument("--set-default", action="store_true",
                    help="with --write --for-code NAME: make NAME the model's default code "
                         "(what `earshot build` uses): its table becomes the main one, which "
                         "moves under the former default code's name")
    ap.add_argument("--opq-rounds", type=int, default=10,
                    help="with --set-default and an -opq code: the rotation's training rounds")
    ap.add_argument("--fold", action="append", default=[],
                    help="fold label of each --truth set, in the same order (for --crossval)")
    ap.add_argument("--crossval", action="store_true",
                    help="print the leave-one-fold-out false positives and kept positives per "
                         "length instead of calibrating")
    ap.add_argument("--details", action="append", default=[],
                    help="make-queries' details.tsv (source song of each negative)")
    ap.add_argument("--shared-audio", type=float, default=0.0, metavar="R",
                    help="leave out negatives whose waveform correlates at R or more with the "
                         "song they found (shared audio; needs --details and --catalog; 0 = off)")
    ap.add_argument("--catalog", action="append", default=[],
                    help="catalog.tsv (id and path columns) of the songs of the query sets, "
                         "in and out of the index (for --shared-audio)")
    ap.add_argument("--variant", action="append", default=[], metavar="A=B",
                    help="songs that are the same tune in another arrangement: a negative cut "
                         "from A that matches B (or the reverse) is a right answer, not a false "
                         "positive, and is left out (repeatable)")
    args = ap.parse_args()

    with open(args.model, "rb") as f:
        model = read_container(f.read(), expected_kind="MODL", what=args.model)
    meta = model.meta
    if args.for_code and not (re.fullmatch(r"[1-9][0-9]*(-g([2-9]|1[0-6]))?(-opq)?(-unit)?",
                                           args.for_code) and
                              meta["embedding_dim"] % int(args.for_code.split("-")[0]) == 0):
        sys.exit(f"--for-code {args.for_code!r}: give PQ bytes that divide the embedding size "
                 f"({meta['embedding_dim']}), then -gG for a code over G windows (2 to 16), "
                 "-opq and/or -unit, as in 8-opq-unit or 32-g4-opq-unit")
    if args.set_default and not (args.write and args.for_code):
        sys.exit("--set-default goes with --write --for-code NAME")
    if not 1 <= args.opq_rounds <= 100:
        sys.exit("--opq-rounds must be in [1, 100]")
    # Tables written under their former key (PQ bytes of plain PQ) are kept under the new one.
    for old, new in (("threshold_by_n_by_pq_m", "threshold_by_n_by_code"),
                     ("threshold_calibration_by_pq_m", "threshold_calibration_by_code")):
        if old in meta:
            meta[new] = {**meta.pop(old), **meta.get(new, {})}
    n_sets = len(args.truth)
    if len(args.results) != n_sets or args.details and len(args.details) != n_sets:
        sys.exit("give as many --results (and --details) as --truth, in the same order")
    if args.crossval and (len(args.fold) != n_sets or len(set(args.fold)) < 2):
        sys.exit("--crossval needs one --fold label per --truth, and at least two folds")
    if args.shared_audio and not (args.details and args.catalog):
        sys.exit("--shared-audio needs --details (where each negative was cut) and --catalog")
    # Queries of different sets have the same names: key them by (set, query).
    truth, results, source = {}, {}, {}
    for k, truth_path in enumerate(args.truth):
        with open(truth_path, newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                truth[(k, row["query"])] = row
        with open(args.results[k]) as f:
            for line in f:
                r = json.loads(line)
                results[(k, r["query"])] = r
        if args.details:
            with open(args.details[k], newline="") as f:
                for row in csv.DictReader(f, delimiter="\t"):
                    source[(k, row["query"])] = row

    if args.speed:
        results, n_plain = speed_view(args, meta, truth, results)

    # The train set holds the same tune in several arrangements (../shared/eval/README.md names
    # some; tecnoballz's area1-game/area1-game2 is another): an out-of-catalog clip of one that
    # finds the other is not a false positive.
    variants = set()
    for pair in DEFAULT_VARIANTS + args.variant:
        a, b = pair.split("=")
        variants |= {(a, b), (b, a)}
    n_variant = 0

    # (set, n) -> scores of that set's queries with n embeddings (pos: (score, right song)).
    neg_by_set, pos_by_set = {}, {}
    for q, t in truth.items():
        r = results.get(q)
        if r is None:
            continue
        n = n_embeddings(meta, float(t["length_s"]), args.query_hop_frames)
        if n == 0:
            continue
        # Needs `earshot query --threshold-base -1` output (similarity and background fields).
        score = float(r["similarity"]) - args.background_weight * float(r["background"])
        if t["song"] == "-":
            if (source.get(q, {}).get("source_song"), r["song"]) in variants:
                n_variant += 1
                continue
            neg_by_set.setdefault((q[0], n), []).append((score, q))
        else:
            # A positive counts only if the best candidate is the right song (song may be null
            # under the current threshold: then we cannot tell, and the query is left out).
            if r["song"] is not None:
                pos_by_set.setdefault((q[0], n), []).append((score, r["song"] == t["song"]))
    if not neg_by_set:
        sys.exit("no out-of-catalog queries with results: make queries with --holdout > 0")
    shared = set()
    if args.shared_audio:
        shared = shared_audio_negatives(args, neg_by_set, source, results)
    neg_by_set = {key: [s for s, q in values if q not in shared]
                  for key, values in neg_by_set.items()}

    # Per measured length n, the score that at most target_fp of the negatives reach (plus a
    # margin); in between, linear in 1/sqrt(n) (the spread of a mean of n similarities);
    # never increasing with n (more evidence never needs a higher score); constant past the
    # longest measured length.
    def fit_limits(neg_by_n):
        if args.fit == "pooled":
            return pooled_tail_limits(neg_by_n, args.target_fp, args.margin)
        limits = {}
        for n, scores in sorted(neg_by_n.items()):
            scores = sorted(scores)
            allowed = int(math.floor(args.target_fp * len(scores)))
            limits[n] = scores[len(scores) - 1 - allowed] + args.margin
        if args.fit == "smooth":
            limits = smooth_limits(limits)
        print("limits by n:", {n: round(v, 4) for n, v in sorted(limits.items())})
        return limits

    if args.crossval:
        crossval(args, neg_by_set, pos_by_set, fit_limits)
        return
    neg, pos = pooled(neg_by_set), pooled(pos_by_set)  # n -> scores of every set
    limits = fit_limits(neg)
    ns = sorted(limits)
    table = []
    for n in range(1, ns[-1] + 1):
        if n <= ns[0]:
            value = limits[ns[0]]
        else:
            hi = next(m for m in ns if m >= n)
            lo = max(m for m in ns if m <= n)
            if hi == lo:
                value = limits[lo]
            else:
                x, x0, x1 = 1 / math.sqrt(n), 1 / math.sqrt(lo), 1 / math.sqrt(hi)
                value = limits[lo] + (limits[hi] - limits[lo]) * (x - x0) / (x1 - x0)
        if table:
            value = min(value, table[-1])
        table.append(round(value, 5))

    def threshold(n):
        return table[min(n, len(table)) - 1]

    n_pos = sum(len(v) for v in pos.values())
    if args.speed:
        print(f"speed search: {n_plain} clips answered by their own match left out")
    print(f"calibrated on {sum(len(v) for v in neg.values())} negatives and {n_pos} positives "
          f"({n_variant} negatives that found another arrangement of their tune and "
          f"{len(shared)} that hold the audio of the song they found left out)")
    print("threshold_by_n =", table)
    for n in sorted(limits):
        thr = threshold(n)
        fp = sum(1 for s in neg[n] if s >= thr) / len(neg[n])
        p = pos.get(n, [])
        tp = sum(1 for s, right in p if right and s >= thr) / max(1, len(p))
        print(f"  n={n:3d}: threshold {thr:.4f}  negatives passing {100 * fp:5.1f}% of "
              f"{len(neg[n])}"
              f"  positives kept {100 * tp:5.1f}% of {len(p)}")
    if not args.write:
        return
    calibration = {
        "queries": [query_set_name(t) for t in args.truth], "target_fp": args.target_fp,
        "background_weight": args.background_weight, "shared_audio_ncc": args.shared_audio,
        "margin": args.margin, "fit": args.fit, "negatives": sum(len(v) for v in neg.values()),
        "positives": n_pos}
    if args.speed:
        write_speed_table(args, meta, model, table, calibration)
        return
    if args.for_code and args.set_default:
        # The main table moves under the old default code's name; this code becomes the default.
        old = default_code(meta)
        if args.for_code == old:
            sys.exit(f"--for-code {args.for_code} is already the model's default code")
        if "threshold_by_n" in meta:
            meta.setdefault("threshold_by_n_by_code", {})[old] = meta["threshold_by_n"]
            if "threshold_calibration" in meta:
                meta.setdefault("threshold_calibration_by_code", {})[old] = \
                    meta["threshold_calibration"]
        for key in ("threshold_by_n_by_code", "threshold_calibration_by_code"):
            meta.get(key, {}).pop(args.for_code, None)
        # The listen rules (models/calibrate_listen.py) swap places the same way.
        rules = meta.setdefault("listen_rule_by_code", {})
        if "listen_threshold_by_n" in meta and args.for_code not in rules:
            sys.exit(f"--set-default: the model has no listen rule for {args.for_code}: write "
                     f"one first (models.calibrate_listen --for-code {args.for_code})")
        if "listen_threshold_by_n" in meta:
            rules[old] = {"threshold_by_n": meta.pop("listen_threshold_by_n"),
                          "confirm_looks": meta.pop("listen_confirm_looks", 1)}
            if "listen_calibration" in meta:
                rules[old]["calibration"] = meta.pop("listen_calibration")
        rule = rules.pop(args.for_code, None)
        if rule is not None:
            meta["listen_threshold_by_n"] = rule["threshold_by_n"]
            meta["listen_confirm_looks"] = rule["confirm_looks"]
            if "calibration" in rule:
                meta["listen_calibration"] = rule["calibration"]
        if not rules:
            del meta["listen_rule_by_code"]
        # And so do the speed search's tables: the core needs a main one once there is a search.
        speed = meta.get("speed_search")
        if speed is not None:
            tables = speed.setdefault("threshold_by_n_by_code", {})
            calibrations = speed.setdefault("calibration_by_code", {})
            if args.for_code not in tables:
                sys.exit(f"--set-default: the model's speed search has no table for "
                         f"{args.for_code}: write one first (--speed --for-code {args.for_code})")
            tables[old] = speed.pop("threshold_by_n")
            speed["threshold_by_n"] = tables.pop(args.for_code)
            if "calibration" in speed:
                calibrations[old] = speed.pop("calibration")
            if args.for_code in calibrations:
                speed["calibration"] = calibrations.pop(args.for_code)
            for key in ("threshold_by_n_by_code", "calibration_by_code"):
                if not speed[key]:
                    del speed[key]
        pq_m, *flags = args.for_code.split("-")
        meta["index_pq_m"] = int(pq_m)
        meta["index_opq_rounds"] = args.opq_rounds if "opq" in flags else 0
        meta["index_unit_norm"] = "unit" in flags
        group = [int(f[1:]) for f in flags if f.startswith("g")]
        if group:
            meta["index_code_group"] = group[0]
        else:
            meta.pop("index_code_group", None)
        args.for_code = ""
    if args.for_code:
        if args.for_code == default_code(meta):
            sys.exit(f"--for-code {args.for_code} is the model's default code (index_pq_m, "
                     "index_opq_rounds, index_unit_norm, index_code_group): drop --for-code")
        main_weight = meta.get("threshold_background_weight", args.background_weight)
        if main_weight != args.background_weight:
            sys.exit("--background-weight differs from the one of the model's main table")
        key = args.for_code
        meta.setdefault("threshold_by_n_by_code", {})[key] = table
        meta.setdefault("threshold_calibration_by_code", {})[key] = calibration
        what = f"threshold_by_n_by_code[{key}]"
    else:
        meta["threshold_by_n"] = table
        meta["threshold"] = table[-1]
        meta["threshold_background_weight"] = args.background_weight
        meta.pop("threshold_scale", None)
        meta["threshold_calibration"] = calibration
        what = "threshold_by_n"
    rewrite_model_file(args.model, meta, list(model.sections.items()))
    print(f"wrote {what} ({len(table)} values) into {args.model}")


def clip_table_for(meta, code):
    """The model's clip table for indexes with this code ("" = the default code)."""
    if not code or code == default_code(meta):
        return meta.get("threshold_by_n")
    return meta.get("threshold_by_n_by_code", {}).get(code)


def speed_view(args, meta, truth, results):
    """--speed: the results as the speed search's best stretches, without the clips the clip
    table answers (as the core does: a clip that matches as played is never stretched).
    Returns (results keyed as given, number of clips left out)."""
    table = clip_table_for(meta, args.for_code)
    if not table:
        sys.exit("--speed: the model has no clip table for this code yet: calibrate it first")
    weight = meta.get("threshold_background_weight", args.background_weight)
    view, n_plain = {}, 0
    for q, r in results.items():
        t = truth.get(q)
        if t is None:
            continue
        if "speed_search" not in r:
            sys.exit(f"--speed: query {q[1]} has no speed_search: run earshot query with "
                     "--speed-search always")
        n = n_embeddings(meta, float(t["length_s"]), args.query_hop_frames)
        if n == 0:
            continue
        plain = float(r["similarity"]) - weight * float(r["background"])
        if r["song"] is not None and plain >= table[min(n, len(table)) - 1]:
            n_plain += 1
            continue
        view[q] = r["speed_search"]
    return view, n_plain


def write_speed_table(args, meta, model, table, calibration):
    try:
        stretches = [float(x) for x in args.stretches.split(",")]
    except ValueError:
        sys.exit(f"--stretches {args.stretches!r}: give numbers separated by commas")
    speed = meta.setdefault("speed_search", {})
    calibration = {**calibration, "stretches": stretches}
    if args.for_code and args.for_code != default_code(meta):
        if speed.get("stretches") != stretches:
            sys.exit("--for-code: the model's speed search has other stretches: calibrate the "
                     "default code's table with these first")
        speed.setdefault("threshold_by_n_by_code", {})[args.for_code] = table
        speed.setdefault("calibration_by_code", {})[args.for_code] = calibration
        what = f"speed_search.threshold_by_n_by_code[{args.for_code}]"
    else:
        speed.update({"stretches": stretches, "threshold_by_n": table,
                      "calibration": calibration})
        what = "speed_search.threshold_by_n"
    rewrite_model_file(args.model, meta, list(model.sections.items()))
    print(f"wrote {what} ({len(table)} values) into {args.model}")


def default_code(meta):
    """The name of the model's default index code, as the core computes it (ModelInfo::
    index_code_name); a model file without index_pq_m means 16."""
    group = meta.get("index_code_group", 1)
    return (str(meta.get("index_pq_m", 16)) + (f"-g{group}" if group > 1 else "")
            + ("-opq" if meta.get("index_opq_rounds", 0) else "")
            + ("-unit" if meta.get("index_unit_norm", False) else ""))


def shared_audio_negatives(args, neg_by_set, details, results):
    """The negatives (keys) that hold the audio of the song they found (clip_ncc >= R).
    Thresholds and the leave-one-fold-out check use only the highest negatives of each length,
    so per length the check walks down from the top until it has found more kept negatives than
    any fit can let through, and stops."""
    from models.earshot_model.shared_audio import AudioError, SongAudio
    audio = SongAudio(args.catalog)
    shared = set()
    for n, scored in pooled(neg_by_set).items():
        need = int(math.floor(args.target_fp * len(scored))) + 10
        kept = 0
        for score, q in sorted(scored, reverse=True):
            if kept >= need:
                break
            row, answer = details.get(q), results[q]["song"]
            if row is None:
                sys.exit(f"--shared-audio: query {q[1]} of set {q[0] + 1} is in no --details")
            try:
                r, holds = audio.holds_answer(row, answer, args.shared_audio)
            except AudioError as e:
                sys.exit(f"--shared-audio: {e}")
            if holds:
                shared.add(q)
                print(f"  shared audio (r {r:.2f}, score {score:.3f}, n={n}): "
                      f"{row['source_song']} at {float(row['start_s']):.1f} s -> {answer}")
                continue
            kept += 1
    return shared


def smooth_limits(limits):
    """n -> limit fitted as a + b / sqrt(n) through the measured lengths' limits (least
    squares): one length's few highest negatives (often a single pair of related tracks) then
    move its threshold only as much as they move the whole curve."""
    ns = sorted(limits)
    if len(ns) < 2:
        return dict(limits)
    x = np.array([[1.0, 1 / math.sqrt(n)] for n in ns])
    coef = np.linalg.lstsq(x, np.array([limits[n] for n in ns]), rcond=None)[0]
    return {n: float(coef[0] + coef[1] / math.sqrt(n)) for n in ns}


def pooled_tail_limits(neg_by_n, target_fp, margin):
    """n -> threshold from the negatives of every length together: per length n, the median
    and the interquartile spread of the negatives' scores; both fitted as a + b / sqrt(n)
    (least squares weighted by the negatives per length); every negative standardised by its
    length's fitted values; the threshold is the fitted location plus the pooled
    (1 - target_fp) quantile of the standardised scores times the fitted spread, plus margin."""
    ns = sorted(n for n, v in neg_by_n.items() if len(v) >= 20)
    if len(ns) < 2:
        raise SystemExit("--fit pooled needs negatives of at least two lengths (20 or more each)")
    x = np.array([1 / math.sqrt(n) for n in ns])
    w = np.array([len(neg_by_n[n]) for n in ns], dtype=np.float64)
    med = np.array([np.median(neg_by_n[n]) for n in ns])
    iqr = np.array([np.subtract(*np.percentile(neg_by_n[n], [75, 25])) for n in ns])
    design = np.stack([np.ones_like(x), x], axis=1) * np.sqrt(w)[:, None]
    loc = np.linalg.lstsq(design, med * np.sqrt(w), rcond=None)[0]
    spread = np.linalg.lstsq(design, iqr * np.sqrt(w), rcond=None)[0]

    def at(coef, n):
        return coef[0] + coef[1] / math.sqrt(n)

    z = np.concatenate([(np.asarray(neg_by_n[n]) - at(loc, n)) / max(at(spread, n), 1e-6)
                        for n in ns])
    z.sort()
    allowed = int(math.floor(target_fp * len(z)))
    z_star = z[len(z) - 1 - allowed]
    return {n: float(at(loc, n) + z_star * at(spread, n) + margin) for n in neg_by_n}


def query_set_name(truth_path):
    """A query set as the calibration record names it: its folder's name and the truth file
    (QDIR/truth.tsv -> "QDIR/truth.tsv" without the folders above), never a machine path."""
    path = os.path.abspath(truth_path)
    return os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))


def pooled(by_set, sets=None):
    """(set, n) -> list  to  n -> the lists of `sets` (default: all) concatenated."""
    out = {}
    for (k, n), values in by_set.items():
        if sets is None or k in sets:
            out.setdefault(n, []).extend(values)
    return out


def crossval(args, neg_by_set, pos_by_set, fit_limits):
    """Leave-one-fold-out: per length n (the measured ones, without interpolation), the
    out-of-catalog queries of each fold that pass thresholds fitted on the other folds."""
    folds = sorted(set(args.fold))
    ns = sorted({n for _, n in neg_by_set})
    fp = {n: [0, 0] for n in ns}
    kept = {n: [0, 0] for n in ns}
    worst = {n: 0.0 for n in ns}
    for label in folds:
        inside = {k for k, f in enumerate(args.fold) if f == label}
        limits = fit_limits(pooled(neg_by_set, set(range(len(args.fold))) - inside))
        test_neg, test_pos = pooled(neg_by_set, inside), pooled(pos_by_set, inside)
        for n in ns:
            if n not in limits:  # no negatives of this length outside the fold: nothing to test
                continue
            negs = test_neg.get(n, [])
            passing = sum(1 for s in negs if s >= limits[n])
            fp[n][0] += passing
            fp[n][1] += len(negs)
            worst[n] = max(worst[n], 100 * passing / max(1, len(negs)))
            pos = test_pos.get(n, [])
            kept[n][0] += sum(1 for s, right in pos if right and s >= limits[n])
            kept[n][1] += len(pos)
    print(f"leave-one-fold-out over {len(folds)} folds, target {100 * args.target_fp:g} %:")
    for n in ns:
        print(f"  n={n:3d}: negatives passing {100 * fp[n][0] / max(1, fp[n][1]):5.2f}% of "
              f"{fp[n][1]} (worst fold {worst[n]:5.2f}%)  positives kept "
              f"{100 * kept[n][0] / max(1, kept[n][1]):5.1f}% of {kept[n][1]}")


if __name__ == "__main__":
    main()
