"""Tests of the listen rule calibration (models/calibrate_listen.py): the replay follows
core/listen.cc, the fitted tables never rise with n, and the chosen rule meets its targets."""
import unittest

from models import calibrate_listen as cl


def look(t, n, confidence, song, at0=10.0):
    return [t, n, confidence, song, at0]


class ReplayTest(unittest.TestCase):
    def test_commits_after_confirming_looks_on_one_song(self):
        table = [0.6, 0.5, 0.4]
        looks = [look(1.0, 1, 0.7, "a"), look(1.5, 2, 0.6, "b"), look(2.0, 3, 0.3, "b"),
                 look(2.5, 3, 0.5, "b"), look(3.0, 3, 0.45, "b")]
        self.assertEqual(cl.replay(looks, table, 1), ("a", 1.0, 10.0))
        self.assertEqual(cl.replay(looks, table, 2), ("b", 3.0, 10.0))
        self.assertIsNone(cl.replay(looks, table, 3))

    def test_looks_without_candidates_break_the_streak(self):
        looks = [look(1.0, 3, 0.9, "a"), look(1.5, 3, 0.0, None), look(2.0, 3, 0.9, "a")]
        self.assertIsNone(cl.replay(looks, [0.5], 2))

    def test_family_never_rises(self):
        table = cl.family_table([0.45, 0.40, 0.38, 0.41, 0.30], 0.02, 0.1, 8)
        self.assertEqual(len(table), 8)
        self.assertTrue(all(x >= y for x, y in zip(table, table[1:])))
        self.assertAlmostEqual(table[-1], 0.30 + 0.02)

    def test_score_counts_like_the_ruler(self):
        clips = [
            ({"song": "a", "condition": "listen-clean", "lead_s": "1.0"}, [look(3.0, 4, 0.9, "a")]),
            ({"song": "a", "condition": "listen-clean", "lead_s": "1.0"}, [look(3.0, 4, 0.9, "b")]),
            ({"song": "-", "condition": "listen-clean", "lead_s": "1.0"}, [look(3.0, 4, 0.9, "c")]),
            ({"song": "-", "condition": "nomusic", "lead_s": "0"}, []),
        ]
        s = cl.score(clips, [0.5], 1)
        self.assertEqual(s["hit"], 0.5)
        self.assertEqual(s["wrong"], 0.5)
        self.assertEqual(s["fp_out"], 1.0)
        self.assertEqual(s["fp_nomusic"], 0.0)
        self.assertEqual(s["heard_median_s"], 2.0)

    def test_guard_listens_hold_the_targets_too(self):
        # In catalog: song "a" passes at 0.6 and above. Out of catalog with the detector: nothing
        # reaches the matcher. With the level gate alone, noise reaches it and scores 0.55.
        positive = ({"song": "a", "condition": "listen-clean", "lead_s": "0"},
                    [look(1.0, 1, 0.65, "a"), look(1.5, 2, 0.65, "a")])
        noise = {"song": "-", "condition": "nomusic", "lead_s": "0"}
        clips = [positive, (noise, [])]
        guard = [positive, (noise, [look(1.0, 1, 0.55, "x"), look(1.5, 2, 0.55, "x")])]
        clip_table = [0.5]
        alone = cl.fit(clip_table, clips, [], 0.0, 0.0, [1], 2)
        guarded = cl.fit(clip_table, clips, guard, 0.0, 0.0, [1], 2)
        self.assertLess(alone[3][0], 0.55)       # lets the noise by
        self.assertGreater(guarded[3][0], 0.55)  # holds it off
        self.assertLessEqual(guarded[3][0], 0.65)
        self.assertEqual(guarded[4]["hit"], 1.0)
        self.assertEqual(guarded[5]["fp_nomusic"], 0.0)

    def test_fewest_false_positives_among_rules_good_enough(self):
        # Two positives pass at 0.6 and 0.8; a negative scores 0.65. Needing half the hits, the
        # rule keeps the negative off (threshold in (0.65, 0.8]); needing all, it cannot.
        clips = [({"song": "a", "condition": "listen-clean", "lead_s": "0"}, [look(1.0, 1, 0.6, "a")]),
                 ({"song": "b", "condition": "listen-clean", "lead_s": "0"}, [look(1.0, 1, 0.8, "b")]),
                 ({"song": "-", "condition": "listen-clean", "lead_s": "0"}, [look(1.0, 1, 0.65, "c")])]
        half = cl.fit([0.5], clips, [], 1.0, 1.0, [1], 1, min_hit=0.5)
        self.assertGreater(half[3][0], 0.65)
        self.assertEqual(half[4]["fp_out_n"], 0)
        self.assertEqual(half[4]["hit"], 0.5)
        everything = cl.fit([0.5], clips, [], 1.0, 1.0, [1], 1, min_hit=1.0)
        self.assertLessEqual(everything[3][0], 0.6)
        self.assertEqual(everything[4]["fp_out_n"], 1)
        self.assertIsNone(cl.fit([0.5], clips, [], 0.0, 1.0, [1], 1, min_hit=1.0))


if __name__ == "__main__":
    unittest.main()
