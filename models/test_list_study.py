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
                         {"kind": "flat", "k": 256, "p": 8, "g": 1, "d": 0})
        self.assertEqual(list_study.parse_variant("imi1024:p256:g64:d4"),
                         {"kind": "imi", "k": 1024, "p": 256, "g": 64, "d": 4})

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
