"""Tests of models/list_study.py on synthetic embeddings: variant names parse; the inverted
multi-index probes exactly the cells of the smallest summed half-distances, and every vector's
own cell comes first.

Run from the repository root: /usr/bin/python3 -m unittest discover -s models -t . -p 'test_*.py'
"""

import unittest

import numpy as np

from models import list_study
from models.code_study import D


def unit_vectors(rng, n):
    x = rng.standard_normal((n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class ListStudyTest(unittest.TestCase):
    def test_variant_names(self):
        self.assertEqual(list_study.parse_variant("flat256"),
                         {"kind": "flat", "k": 256, "p": 8, "g": 1, "d": 0, "t": 4, "v": 0})
        self.assertEqual(list_study.parse_variant("imi1024:p256:g64:d4"),
                         {"kind": "imi", "k": 1024, "p": 256, "g": 64, "d": 4, "t": 4, "v": 0})
        self.assertEqual(list_study.parse_variant("pair4096:p2:t8:v1"),
                         {"kind": "pair", "k": 4096, "p": 2, "g": 1, "d": 0, "t": 8, "v": 1})

    def test_pair_keys_probe_the_nearest_pairs(self):
        rng = np.random.default_rng(4)
        x = unit_vectors(rng, 2000)
        coarse = list_study.Coarse(list_study.parse_variant("pair16"), x, seed=0)
        self.assertEqual(coarse.n_cells, 256)
        later = np.arange(len(x)) + 2
        later[-2:] = -1  # the last two windows have no partner
        keys = coarse.pair_cells(x, later)
        self.assertTrue((keys[-2:] == -1).all())
        own = list_study.assign(x, coarse.c[0])
        np.testing.assert_array_equal(keys[:-2], own[:-2] * 16 + own[2:])
        # a query made of the index's own windows probes their key first, then the pairs of
        # smallest summed distance
        got = coarse.probe_pairs(x[:12], 2, 5)
        self.assertEqual(got.shape, (10, 5))
        np.testing.assert_array_equal(got[:, 0], keys[:10])
        d = ((x[:12, None, :] - coarse.c[0][None]) ** 2).sum(2)
        for i, cells in enumerate(got):
            full = (d[i][:, None] + d[i + 2][None, :]).ravel()
            np.testing.assert_allclose(np.sort(full[cells]), np.sort(full)[:5], rtol=1e-4, atol=1e-5)

    def test_multi_index_probes_the_nearest_cells(self):
        rng = np.random.default_rng(3)
        x = unit_vectors(rng, 2000)
        coarse = list_study.Coarse(list_study.parse_variant("imi16"), x, seed=0)
        self.assertEqual(coarse.n_cells, 256)
        q = unit_vectors(rng, 5)
        got = coarse.probe(q, 20)
        h = D // 2
        for row, cells in zip(q, got):
            da = ((coarse.c[0] - row[:h]) ** 2).sum(1)
            db = ((coarse.c[1] - row[h:]) ** 2).sum(1)
            full = (da[:, None] + db[None, :]).ravel()
            want = np.sort(full)[:20]
            np.testing.assert_allclose(np.sort(full[cells]), want, rtol=1e-4, atol=1e-5)
        # a vector's own cell is the first it probes, flat or multi-index
        for name in ("imi16", "flat32"):
            c = list_study.Coarse(list_study.parse_variant(name), x, seed=0)
            np.testing.assert_array_equal(c.probe(x[:50], 3)[:, 0], c.cell(x[:50]))


if __name__ == "__main__":
    unittest.main()
