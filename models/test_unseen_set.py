"""models.unseen_set: the set folder of the songs a model never trained on."""

import os
import shutil
import tempfile
import unittest

from models import unseen_set
from models.earshot_model import container
from models.earshot_model.model_file import rewrite_model_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "random-init-v0.emod")


class UnseenSetTest(unittest.TestCase):
    def test_writes_the_unseen_songs_and_the_rooms(self):
        with tempfile.TemporaryDirectory() as tmp:
            model = os.path.join(tmp, "m.emod")
            shutil.copy(MODEL, model)
            c = container.read_container_file(model, "MODL")
            meta = dict(c.meta, training={
                "held_out_unseen": ["c", "a"],
                "dev_held_out": {"unseen": ["d"], "seen": ["b"], "neg": ["e"]}})
            rewrite_model_file(model, meta, list(c.sections.items()))
            catalog = os.path.join(tmp, "catalog.tsv")
            with open(catalog, "w") as f:
                f.write("id\tpath\ttitle\talbum\tduration_s\n")
                for s in "abcdef":
                    f.write(f"{s}\t/x/{s}.ogg\t{s}\talb\t60\n")
            rooms = os.path.join(tmp, "rooms")
            os.makedirs(rooms)
            for name in ("noise.tsv", "ir.tsv", "corpus-name"):
                with open(os.path.join(rooms, name), "w") as f:
                    f.write(name + "\n")
            out = os.path.join(tmp, "out")
            unseen_set.main(["--model", model, "--catalog", catalog, "--rooms", rooms,
                             "--out", out])
            with open(os.path.join(out, "catalog.tsv")) as f:
                ids = [line.split("\t")[0] for line in f][1:]
            self.assertEqual(ids, ["a", "c", "d", "e"])  # "b" was trained on
            with open(os.path.join(out, "ir.tsv")) as f:
                self.assertEqual(f.read(), "ir.tsv\n")
            # A model without a training record, or a catalogue without its songs: refused.
            with self.assertRaises(SystemExit):
                unseen_set.main(["--model", MODEL, "--catalog", catalog, "--rooms", rooms,
                                 "--out", out])
            with open(catalog, "w") as f:
                f.write("id\tpath\ttitle\talbum\tduration_s\n")
            with self.assertRaises(SystemExit):
                unseen_set.main(["--model", model, "--catalog", catalog, "--rooms", rooms,
                                 "--out", out])


if __name__ == "__main__":
    unittest.main()
