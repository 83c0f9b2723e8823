"""Puts a trained music detector (models/music-detector-v1.npz + .json, written by
models.train_music_detector) into a model file: its tensors as `music_detector.*` sections (f32)
and its metadata under the key `music_detector`, replacing a detector the file already carries.
The model hash changes, so indexes must be rebuilt, and the listen rule should be recalibrated
with the new gate (models.calibrate_listen, docs/EVALUATION.md "Listens").

    /usr/bin/python3 -m models.add_music_detector --model models/earshot-v1.emod \\
        --detector models/music-detector-v1
"""
import argparse

import numpy as np

from models.earshot_model import music_detector as md
from models.earshot_model.container import read_container
from models.earshot_model.model_file import rewrite_model_file


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model file (.emod), rewritten in place")
    ap.add_argument("--detector", required=True, help="PREFIX of PREFIX.npz and PREFIX.json")
    args = ap.parse_args()
    with open(args.model, "rb") as f:
        model = read_container(f.read(), expected_kind="MODL", what=args.model)
    tensors, meta = md.read_npz_json(args.detector)
    md.check_tensors(tensors, meta)
    sections = [(k, v) for k, v in model.sections.items() if not k.startswith("music_detector.")]
    sections += [(k, np.asarray(v, dtype=np.float32)) for k, v in tensors.items()]
    model.meta["music_detector"] = meta
    rewrite_model_file(args.model, model.meta, sections)
    print(f"wrote the music detector ({sum(v.size for v in tensors.values())} parameters) "
          f"into {args.model}")


if __name__ == "__main__":
    main()
