"""Lists the out-of-catalog queries that got an answer, and whether each holds the answer's audio.

A diagnosis of `earshot query` results on make-queries clips (it changes nothing): for every
clip cut from a song outside the index that was nevertheless given a song, the peak waveform
correlation r of the clip (as cut, before degradation) with the song it was given
(models/earshot_model/shared_audio.py). r near 1 means the two tracks share that audio (a loop,
a stem), so the answer is what a fingerprinter should find; unrelated music scores about
0.05-0.2. A clip can hold a passage of the answer for part of its length only (the rest
another part of its own track), which lowers its whole r: each clip's "passage" r is the
highest of its --passage-s pieces at the clip's best alignment. Then, per query length, the
false-positive rate as the scorer counts it, without the clips whose r reaches
--shared-audio, and without those whose passage r does too.

  /usr/bin/python3 -m models.false_positives --truth Q/truth.tsv --details Q/details.tsv \\
      --results results.jsonl --catalog DEST/eval/catalog.tsv
"""
import argparse
import csv
import json
import sys

from models.earshot_model.shared_audio import AudioError, SongAudio


def read_tsv(path):
    with open(path, newline="") as f:
        return {row["query"]: row for row in csv.DictReader(f, delimiter="\t")}


def main():
    ap = argparse.ArgumentParser(prog="python3 -m models.false_positives", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--truth", required=True, help="make-queries' truth.tsv")
    ap.add_argument("--details", required=True, help="make-queries' details.tsv")
    ap.add_argument("--results", required=True, help="`earshot query` output (JSON lines)")
    ap.add_argument("--catalog", required=True, action="append",
                    help="catalog.tsv (id, path) holding the clips' sources and the answers")
    ap.add_argument("--shared-audio", type=float, default=0.5, metavar="R",
                    help="r from which a clip counts as holding its answer's audio")
    ap.add_argument("--passage-s", type=float, default=4.0, metavar="S",
                    help="the pieces (seconds) of a clip whose passage r is measured")
    args = ap.parse_args()
    try:
        truth, details = read_tsv(args.truth), read_tsv(args.details)
        with open(args.results) as f:
            results = {r["query"]: r for r in map(json.loads, f)}
    except (OSError, KeyError, json.JSONDecodeError) as e:
        sys.exit(f"false_positives: cannot read the inputs: {e}")
    audio = SongAudio(args.catalog)
    # (length, no music at all) -> [out-of-catalog queries, answered, without shared audio,
    # without a passage]
    by_length = {}
    for q, t in sorted(truth.items()):
        if t["song"] != "-":
            continue
        d = details.get(q)
        if d is None:
            sys.exit(f"false_positives: {q} is not in {args.details}")
        length = float(t["length_s"])
        counts = by_length.setdefault((length, d["condition"] == "nomusic"), [0, 0, 0, 0])
        counts[0] += 1
        answer = results.get(q, {}).get("song")
        if not answer:
            continue
        try:
            r, passage = audio.clip_ncc_and_passage(d, answer, args.passage_s)
        except AudioError as e:
            sys.exit(f"false_positives: {e}")
        shared = r is not None and r >= args.shared_audio
        counts[1] += 1
        counts[2] += not shared
        holds_passage = passage is not None and passage >= args.shared_audio
        counts[3] += not (shared or holds_passage)
        r_text = "n/a (speed)" if r is None else f"{r:.2f}" + (
            f", passage {passage:.2f}" if passage is not None else "")
        tag = "  (shared audio)" if shared else "  (a shared passage)" if holds_passage else ""
        print(f"{q}  {length:g} s {d['condition']:8s} {d['source_song']} at "
              f"{float(d['start_s']):.1f} s"
              f" -> {answer}  score {results[q].get('score', float('nan')):.3f}  r {r_text}{tag}")
    print(f"\nfalse positives per length (all / without clips with r >= {args.shared_audio:g} / "
          f"without those with a passage r >= {args.shared_audio:g}):")
    for (length, nomusic), (n, answered, whole, passage) in sorted(by_length.items()):
        what = f"{length:g} s{', no music' if nomusic else ''}"
        print(f"  {what}: {answered} of {n} = {100 * answered / n:.1f} %  /  "
              f"{whole} of {n} = {100 * whole / n:.1f} %  /  "
              f"{passage} of {n} = {100 * passage / n:.1f} %")


if __name__ == "__main__":
    main()
