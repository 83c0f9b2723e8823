"""Writes a make-queries set folder of the train songs a model never trained on, for calibrating
its thresholds on music it has not seen (as the catalogue's songs and out-of-catalog audio are
in use): the seeded held-out share and the dev songs kept out of training, from the training
record in the model file; noise, room responses and the corpus name come from a set folder
that has them (scripts/make-synthetic-rooms.py writes one for the train set).

    /usr/bin/python3 -m models.unseen_set --model M.emod --catalog TRAIN/catalog.tsv \\
        --rooms train-synthroom --out unseen
"""

import argparse
import os
import shutil
import sys

from models.calibrate_popularity import read_rows
from models.earshot_model.container import read_container_file


def unseen_ids(training):
    """The song ids of a model's training record that were never trained on, sorted."""
    dev = training.get("dev_held_out") or {}
    return sorted(set(training.get("held_out_unseen", [])) | set(dev.get("unseen", [])) |
                  set(dev.get("neg", [])))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m models.unseen_set", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model file with a training record")
    ap.add_argument("--catalog", required=True, help="the train set's catalog.tsv")
    ap.add_argument("--rooms", required=True,
                    help="set folder whose noise.tsv, ir.tsv and corpus-name to use")
    ap.add_argument("--out", required=True, help="folder to write")
    args = ap.parse_args(argv)

    training = read_container_file(args.model, "MODL").meta.get("training")
    if not training:
        sys.exit(f"{args.model}: no training record (export it with models.export)")
    ids = unseen_ids(training)
    if not ids:
        sys.exit(f"{args.model}: its training record keeps no song unseen")
    with open(args.catalog, encoding="utf-8") as f:
        header = f.readline()
        rows = {line.split("\t", 1)[0]: line for line in f if line.strip()}
    missing = [s for s in ids if s not in rows]
    if missing:
        sys.exit(f"{args.catalog} lacks {len(missing)} of the unseen songs, e.g. {missing[0]}: "
                 "is it the set the model was trained on?")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "catalog.tsv"), "w", encoding="utf-8") as f:
        f.write(header)
        f.writelines(rows[s] if rows[s].endswith("\n") else rows[s] + "\n" for s in ids)
    for name in ("noise.tsv", "ir.tsv", "corpus-name"):
        shutil.copy(os.path.join(args.rooms, name), os.path.join(args.out, name))
    hours = sum(float(r.get("duration_s") or 0) for r in read_rows(
        os.path.join(args.out, "catalog.tsv"))) / 3600
    print(f"{args.out}: {len(ids)} unseen songs, {hours:.2f} h")


if __name__ == "__main__":
    main()
