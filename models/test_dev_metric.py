"""Tests of the dev metric (earshot_model/dev_metric.py): the aligned mean over query and song
embeddings at different hops, and retrieval of exactly cut clips at the shipped hops.

Run from the repository root: /usr/bin/python3 -m unittest discover -s models -t . -p 'test_*.py'
"""

import os
import tempfile
import unittest

import numpy as np
import soundfile
import torch

from models.earshot_model import dev_metric, frontend
from models.earshot_model.net import EarshotNet

RATE_HZ = frontend.DEFAULT_PARAMS["sample_rate_hz"]
HOP_SAMPLES = frontend.DEFAULT_GEOMETRY["hop_frames"] * frontend.DEFAULT_PARAMS["hop_length"]


class AlignedScoresTest(unittest.TestCase):
    def brute_force(self, sims, stride):
        n_q, n_s = sims.shape
        return np.array([np.mean([sims[i, j + stride * i] for i in range(n_q)])
                         for j in range(n_s - stride * (n_q - 1))])

    def test_strides(self):
        sims = np.random.default_rng(0).uniform(-1, 1, (4, 20))
        for stride in (1, 2, 3):
            np.testing.assert_allclose(dev_metric.aligned_scores(sims, stride),
                                       self.brute_force(sims, stride), rtol=0, atol=1e-12)

    def test_song_shorter_than_the_query(self):
        """No start covers the whole query: the partial means of every start."""
        sims = np.arange(12.0).reshape(3, 4)  # stride 2: query spans 5 song embeddings
        got = dev_metric.aligned_scores(sims, 2)
        expected = [np.mean([sims[0, 0], sims[1, 2]]), np.mean([sims[0, 1], sims[1, 3]]),
                    sims[0, 2], sims[0, 3]]
        np.testing.assert_allclose(got, expected)


class DevSetTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.folder = self.tmp.name
        os.makedirs(os.path.join(self.folder, "queries"))
        rng = np.random.default_rng(1)
        t = np.arange(8 * RATE_HZ) / RATE_HZ
        self.songs = {
            "tone": (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32),
            "sweep": (0.3 * np.sin(2 * np.pi * (200.0 + 300.0 * t) * t)).astype(np.float32),
            "noise": (0.1 * rng.standard_normal(len(t))).astype(np.float32),
        }
        # Clips cut at whole index hops: their query embeddings are song embeddings.
        self.rows = [("q0.wav", "sweep", 4 * HOP_SAMPLES, 3),
                     ("q1.wav", "noise", 6 * HOP_SAMPLES, 2), ("q2.wav", "-", 0, 1)]
        with open(os.path.join(self.folder, "truth.tsv"), "w") as f:
            f.write("query\tsong\tstart_s\tlength_s\tcondition\n")
            for name, song, start, length in self.rows:
                clip = self.songs.get(song, self.songs["tone"])[start:start + length * RATE_HZ]
                if song == "-":  # out of catalog: unrelated noise
                    clip = (0.1 * rng.standard_normal(length * RATE_HZ)).astype(np.float32)
                soundfile.write(os.path.join(self.folder, "queries", name), clip, RATE_HZ,
                                subtype="FLOAT")
                f.write(f"{name}\t{song}\t{start / RATE_HZ}\t{length}\tclean\n")

    def tearDown(self):
        self.tmp.cleanup()

    def net(self):
        net = EarshotNet(channels=[4, 8, 8, 8, 8], embedding_dim=16)
        net.reset_he(torch.Generator().manual_seed(2))
        return net

    def test_exact_clips_are_found_at_the_shipped_hops(self):
        dev = dev_metric.DevSet(self.folder, self.songs, list(self.songs))
        self.assertEqual(len(dev.queries), 3)
        result = dev.evaluate(self.net(), seen_ids={"noise"})
        self.assertEqual(result["unseen/all/all"], 100.0)
        self.assertEqual(result["seen/all/all"], 100.0)
        by_query = {s[5]: s for s in dev.scores}
        for name in ("q0.wav", "q1.wav"):
            self.assertAlmostEqual(by_query[name][4], 1.0, places=4)
        self.assertTrue(by_query["q2.wav"][2])  # the out-of-catalog clip is a negative
        self.assertIn("neg_score_p95", result)

    def test_query_hop_must_be_a_multiple_of_the_index_hop(self):
        dev = dev_metric.DevSet(self.folder, self.songs, list(self.songs))
        with self.assertRaisesRegex(ValueError, "multiple"):
            dev.evaluate(self.net(), hop_frames=16, query_hop_frames=24)

    def test_clips_at_another_rate_are_refused(self):
        soundfile.write(os.path.join(self.folder, "queries", "q0.wav"),
                        np.zeros(8000, dtype=np.float32), 8000)
        with self.assertRaisesRegex(ValueError, "8000 Hz"):
            dev_metric.DevSet(self.folder, self.songs, list(self.songs))


if __name__ == "__main__":
    unittest.main()
