"""Tests of models/code_study.py on synthetic embeddings: the learned rotation is orthogonal and
makes PQ lose less on anisotropic data; reconstructions improve with the code size; the aligned
re-score finds a clip cut from a catalogue song, with its song, and not an unrelated clip.

Run from the repository root: /usr/bin/python3 -m unittest discover -s models -t . -p 'test_*.py'
"""

import unittest

import numpy as np

from models import code_study
from models.code_study import D


def anisotropic(rng, n):
    """Unit vectors whose variance falls off steeply over a random basis, as embeddings' does."""
    basis, _ = np.linalg.qr(rng.standard_normal((D, D)))
    x = rng.standard_normal((n, D)) * np.exp(-np.arange(D) / 12.0)
    x = (x @ basis.T).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class CodeStudyTest(unittest.TestCase):
    def test_rotation_is_orthogonal_and_lowers_pq_error(self):
        rng = np.random.default_rng(0)
        x = anisotropic(rng, 3000)
        r = code_study.opq_rotation(x, 8, iters=2)
        np.testing.assert_allclose(r.T @ r, np.eye(D), atol=1e-4)

        def pq_error(rot):
            pq = code_study.PQ(8).train(x @ rot)
            return float(((pq.decode(pq.encode(x @ rot)) @ rot.T - x) ** 2).sum(1).mean())

        self.assertLess(pq_error(r), 0.9 * pq_error(np.eye(D, dtype=np.float32)))

    def test_more_bytes_reconstruct_better(self):
        rng = np.random.default_rng(1)
        x = anisotropic(rng, 3000)
        err = [float(((code_study.reconstruct(x, code, np.random.default_rng(2), n_lists=16)
                       - x) ** 2).sum(1).mean()) for code in ("pq4", "pq16")]
        self.assertLess(err[1], err[0])
        self.assertEqual(float(np.abs(code_study.reconstruct(x, "raw", rng) - x).max()), 0.0)

    def test_aligned_rescore_names_the_song_a_clip_comes_from(self):
        rng = np.random.default_rng(3)
        songs = [anisotropic(rng, 60) for _ in range(4)]
        x = np.concatenate(songs)
        cat = (["a", "b", "c", "d"], np.array([60] * 4), np.array([0, 60, 120, 180]))
        # clip of song "c" from window 10, one clip embedding per two index windows (step 2);
        # and an unrelated clip of the same length
        pos = songs[2][10:30:2] + 0.05 * rng.standard_normal((10, D)).astype(np.float32)
        neg = anisotropic(rng, 10)
        clips = (["p", "n"], np.array([10, 10]), np.array([0, 10]), np.concatenate([pos, neg]))
        truth = {"p": ("c", "5"), "n": ("-", "5")}
        line = code_study.evaluate(x, cat, clips, truth, ["5"], step=2)
        self.assertIn("top-1 100.0", line)
        self.assertIn("hit at 1 % FP 100.0", line)


class CodeNamesAndSizesTest(unittest.TestCase):
    def test_code_names(self):
        self.assertIsNone(code_study.parse_code("raw"))
        self.assertEqual(code_study.parse_code("n-opq8b10l4096"),
                         {"norm": True, "opq": True, "rq": False, "m": 8, "bits": 10,
                          "lists": 4096, "beam": 8, "group": 1, "kron": False})
        self.assertEqual(code_study.parse_code("pq16"),
                         {"norm": False, "opq": False, "rq": False, "m": 16, "bits": 8,
                          "lists": 256, "beam": 8, "group": 1, "kron": False})
        self.assertEqual(code_study.parse_code("n-rq8l1024w16"),
                         {"norm": True, "opq": False, "rq": True, "m": 8, "bits": 8,
                          "lists": 1024, "beam": 16, "group": 1, "kron": False})
        self.assertEqual(code_study.parse_code("j4-n-opq32"),
                         {"norm": True, "opq": True, "rq": False, "m": 32, "bits": 8,
                          "lists": 256, "beam": 8, "group": 4, "kron": False})
        self.assertEqual(code_study.parse_code("k4-n-opq32"),
                         {"norm": True, "opq": True, "rq": False, "m": 32, "bits": 8,
                          "lists": 256, "beam": 8, "group": 4, "kron": True})

    def test_interleaving_groups_is_undone(self):
        z = np.arange(2 * 4 * 16, dtype=np.float32).reshape(2, 64)  # 2 groups of 4 windows
        rows = code_study.interleave(z, 4, 8)
        # sub-space 1 holds dimensions 2..3 of each of the 4 windows
        np.testing.assert_array_equal(rows[0, 8:16], [2, 3, 18, 19, 34, 35, 50, 51])
        np.testing.assert_array_equal(code_study.deinterleave(rows, 4, 8), z)

    def test_window_groups_stay_within_a_song(self):
        rows = code_study.window_groups(np.array([5, 2]), np.array([0, 5]), 2)
        np.testing.assert_array_equal(rows, [[0, 1], [2, 3], [4, 4], [5, 6]])

    def test_windows_coded_in_pairs_lose_less_where_neighbours_are_alike(self):
        # songs whose consecutive windows differ a little, as the network's do at 0.25 s; the
        # quantizer trained on other songs, at the same bytes a window
        rng = np.random.default_rng(5)

        def songs(count, length=40):
            x = [anisotropic(rng, count)]
            for _ in range(length - 1):
                x.append(x[-1] + 0.3 * anisotropic(rng, count))
                x[-1] /= np.linalg.norm(x[-1], axis=1, keepdims=True)
            x = np.stack(x, 1).reshape(-1, D).astype(np.float32)  # song-major
            n = np.full(count, length)
            return x, n, np.arange(count) * length

        x, n, first = songs(25)
        fit = songs(100)
        err = [float(((code_study.reconstruct(x, code, np.random.default_rng(2), n_lists=16,
                                              songs=(n, first), fit=fit) - x) ** 2)
                      .sum(1).mean()) for code in ("opq4", "j2-opq8", "k2-opq8")]
        self.assertLess(err[1], 0.9 * err[0])
        self.assertLess(err[2], 0.9 * err[0])  # one rotation for every window: still less

    def test_residual_quantization_beam_search_codes_better_than_greedy(self):
        rng = np.random.default_rng(7)
        x = anisotropic(rng, 3000)
        rq = code_study.RQ(4, bits=4, beam=1, refine=0).train(x)
        greedy = ((rq.decode(rq.encode(x)) - x) ** 2).sum(1).mean()
        rq.beam = 8
        codes = rq.encode(x)
        beam = ((rq.decode(codes) - x) ** 2).sum(1).mean()
        self.assertEqual(codes.shape, (3000, 4))
        self.assertLess(codes.max(), 16)
        self.assertLess(beam, greedy)
        self.assertLess(beam, 0.8 * (x ** 2).sum(1).mean())

    def test_normalized_reconstructions_have_unit_length(self):
        x = anisotropic(np.random.default_rng(4), 2000)
        rec = code_study.reconstruct(x, "n-pq8", np.random.default_rng(5), n_lists=16)
        np.testing.assert_allclose(np.linalg.norm(rec, axis=1), 1.0, atol=1e-5)

    def test_list_ids_that_repeat_cost_few_bits(self):
        rng = np.random.default_rng(6)
        n = np.array([200] * 20)
        first = np.arange(20) * 200
        runs = np.repeat(rng.integers(0, 64, size=400), 10)  # each list held for 10 windows
        cond, flat = code_study.list_bits(runs, n, first)
        self.assertLess(cond, 0.5 * flat)
        self.assertGreater(flat, 5.0)  # about log2(64) without context

    def test_discriminant_turns_from_the_clips_noise(self):
        # Clips are their song's windows (every other one) plus noise in the first half of the
        # dimensions only: the leading discriminant directions lie in the quiet half.
        rng = np.random.default_rng(3)
        n_songs, n_win = 6, 60
        y = rng.standard_normal((n_songs * n_win, D)).astype(np.float32)
        y /= np.linalg.norm(y, axis=1, keepdims=True)
        ids = [f"s{k}" for k in range(n_songs)]
        cat = (ids, np.full(n_songs, n_win), np.arange(n_songs) * n_win)
        qids, qn, qfirst, qx, truth = [], [], [], [], {}
        for c in range(24):
            s, j = c % n_songs, int(rng.integers(0, n_win - 10))
            q = y[s * n_win + j + 2 * np.arange(5)].copy()
            q[:, :D // 2] += 0.3 * rng.standard_normal((5, D // 2)).astype(np.float32)
            qids.append(f"q{c}")
            qn.append(5)
            qfirst.append(5 * c)
            qx.append(q)
            truth[f"q{c}"] = (ids[s], "3")
        clips = (qids, np.array(qn), np.array(qfirst), np.concatenate(qx))
        w = code_study.fit_lda(y, cat, clips, truth, range(n_songs))
        top = w[:, :16] / np.linalg.norm(w[:, :16], axis=0)
        self.assertGreater(float((top[D // 2:] ** 2).sum(0).min()), 0.9)


if __name__ == "__main__":
    unittest.main()
