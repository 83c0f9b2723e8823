"""models.calibrate_popularity: the popularity-weighted decision fitted on train queries."""

import json
import os
import shutil
import tempfile
import unittest

import numpy as np

from models import calibrate_popularity
from models.earshot_model import container
from models.earshot_model.model_file import rewrite_model_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "random-init-v0.emod")


def write_set(folder, rng, n_songs=40, n_pos=400, n_neg=400):
    """3 s clips (5 embeddings): positives score around 0.5 +- 0.12 (right song), negatives
    around 0.2 +- 0.08 (a random indexed song); background 0."""
    os.makedirs(folder)
    songs = [f"s{i}" for i in range(n_songs)]
    with open(os.path.join(folder, "index-catalog.tsv"), "w") as f:
        f.write("id\tpath\n" + "".join(f"{s}\t/x/{s}.ogg\n" for s in songs))
    with open(os.path.join(folder, "truth.tsv"), "w") as truth, \
            open(os.path.join(folder, "results.jsonl"), "w") as results:
        truth.write("query\tsong\tlength_s\n")
        for i in range(n_pos + n_neg):
            pos = i < n_pos
            song = songs[rng.integers(n_songs)]
            score = rng.normal(0.5, 0.12) if pos else rng.normal(0.2, 0.08)
            truth.write(f"q{i}.flac\t{song if pos else '-'}\t3\n")
            results.write(json.dumps({"query": f"q{i}.flac", "song": song, "similarity": score,
                                      "background": 0.0}) + "\n")
    return os.path.join(folder, "truth.tsv"), os.path.join(folder, "results.jsonl")


class CalibratePopularityTest(unittest.TestCase):
    def test_log_priors_match_the_builder(self):
        """ln(p + 1) less the mean, clamped to +-5 (index-builder catalog_log_priors)."""
        lp = calibrate_popularity.log_priors([0, 1e9, 10, 10])
        expect = np.log1p([0, 1e9, 10, 10])
        expect = np.clip(expect - expect.mean(), -5, 5)
        np.testing.assert_allclose(lp, expect)
        self.assertEqual(lp.max(), 5.0)

    def test_holds_the_false_positives_and_writes(self):
        """Every weight keeps the negatives passing at the rate without the prior; the chosen
        one does not lower the play-weighted hit rate; --write stores both numbers."""
        rng = np.random.default_rng(3)
        with tempfile.TemporaryDirectory() as tmp:
            model = os.path.join(tmp, "m.emod")
            shutil.copy(MODEL, model)
            c = container.read_container_file(model, "MODL")
            meta = dict(c.meta, threshold_by_n=[0.45, 0.4, 0.35, 0.33, 0.33])
            rewrite_model_file(model, meta, list(c.sections.items()))
            args = []
            for k in range(2):
                truth, results = write_set(os.path.join(tmp, f"set{k}"), rng)
                args += ["--truth", truth, "--results", results]
            queries, indexed = calibrate_popularity.load_queries(
                args[1::4], args[3::4], meta, 0.0)
            self.assertEqual(len(queries), 1600)
            base_fp, rows = calibrate_popularity.evaluate(
                queries, indexed, meta["threshold_by_n"], [0.0, 0.02, 0.05], 1.0, 5, 1)
            self.assertGreater(base_fp, 0.0)
            for w, offset, fp, hit_w, hit in rows:
                self.assertAlmostEqual(fp, base_fp, delta=0.5 / 800)
            self.assertEqual(rows[0][1], 0.0)
            calibrate_popularity.main(["--model", model, "--draws", "5", "--write", *args])
            meta = container.read_container_file(model, "MODL").meta
            self.assertIn("threshold_prior_weight", meta)
            self.assertLessEqual(abs(meta["threshold_prior_offset"]), 0.5)
            record = meta["threshold_prior_calibration"]
            self.assertEqual(record["queries"], ["set0/truth.tsv", "set1/truth.tsv"])
            self.assertGreaterEqual(record["hit_play_weighted"], record["hit_play_weighted_without"])


if __name__ == "__main__":
    unittest.main()
