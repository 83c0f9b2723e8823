"""Tests of the listen rule calibration (models/calibrate_listen.py): the replay follows
core/listen.cc, the fitted tables never rise with n, and the chosen rule meets its targets."""
import json
import os
import subprocess
import tempfile
import unittest

from models import calibrate_listen as cl
from models.earshot_model import container
from models.test_calibrate import write_set

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "random-init-v0.emod")


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

    def test_looks_are_reweighed_for_the_models_background_weight(self):
        """A trace made before the model had a background weight (the bare score as its
        confidence) is scored as the recognizer will score it once the weight is written."""
        traced = [1.0, 4, 0.6, "a", 10.0, 0.6, 0.5, 0.02]
        self.assertEqual(cl.reweigh(traced, 0.5), [1.0, 4, 0.6 - 0.25 + 0.02, "a", 10.0])
        self.assertEqual(cl.reweigh(traced[:5], 0.5), traced[:5])  # older traces as they are
        self.assertEqual(cl.reweigh([1.0, 4, 0.0, None, 0.0, 0.0, 0.0, 0.0], 0.5),
                         [1.0, 4, 0.0, None, 0.0])
        with tempfile.TemporaryDirectory() as tmp:
            truth, trace = os.path.join(tmp, "truth.tsv"), os.path.join(tmp, "trace.jsonl")
            with open(truth, "w") as f:
                f.write("query\tsong\tstart_s\tlength_s\tcondition\tlead_s\nn.flac\t-\t0\t10\t"
                        "listen-clean\t0\n")
            with open(trace, "w") as f:
                f.write(json.dumps({"query": "n.flac", "looks": [traced]}) + "\n")
            (_, looks), = cl.load_clips([truth], [trace], 0.5)
            self.assertIsNone(cl.replay(looks, [0.5], 1))  # 0.37 with the weight, not 0.6
            (_, looks), = cl.load_clips([truth], [trace])
            self.assertEqual(cl.replay(looks, [0.5], 1), ("a", 1.0, 10.0))

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


class WriteTest(unittest.TestCase):
    def test_a_rule_for_another_code_then_made_the_default(self):
        """--for-code fits from that code's clip table and writes listen_rule_by_code; making
        the code the default (calibrate_threshold --set-default) makes its rule the main one."""
        with tempfile.TemporaryDirectory() as tmp:
            model = os.path.join(tmp, "m.emod")
            c = container.read_container_file(MODEL, "MODL")  # no index_pq_m: code 16
            meta = dict(c.meta, threshold_by_n=[0.5], listen_threshold_by_n=[0.9],
                        listen_confirm_looks=2, threshold_by_n_by_code={"8-opq-unit": [0.3]})
            with open(model, "wb") as f:
                f.write(container.write_container("MODL", meta, list(c.sections.items())))
            with open(os.path.join(tmp, "truth.tsv"), "w") as f:
                f.write("query\tsong\tstart_s\tlength_s\tcondition\tlead_s\n"
                        "p.flac\ta\t0\t10\tlisten-clean\t0\n"
                        "n.flac\t-\t0\t10\tlisten-clean\t0\n")
            with open(os.path.join(tmp, "trace.jsonl"), "w") as f:
                f.write(json.dumps({"query": "p.flac", "looks": [look(1.0, 1, 0.45, "a")]}) + "\n")
                f.write(json.dumps({"query": "n.flac", "looks": [look(1.0, 1, 0.2, "b")]}) + "\n")

            def run(tool, *args):
                return subprocess.run(["/usr/bin/python3", "-m", tool, "--model", model, *args],
                                      cwd=ROOT, capture_output=True, text=True)
            listens = ["--truth", os.path.join(tmp, "truth.tsv"),
                       "--trace", os.path.join(tmp, "trace.jsonl"), "--confirm", "1",
                       "--n-max", "1", "--max-median-s", "10", "--max-p90-s", "10"]
            out = run("models.calibrate_listen", *listens, "--for-code", "16")  # the default
            self.assertNotEqual(out.returncode, 0)
            out = run("models.calibrate_listen", *listens, "--for-code", "32")  # no clip table
            self.assertIn("no clip thresholds for code 32", out.stderr)
            out = run("models.calibrate_listen", *listens, "--for-code", "8-opq-unit", "--write")
            self.assertEqual(out.returncode, 0, out.stderr)
            meta = container.read_container_file(model, "MODL").meta
            rule = meta["listen_rule_by_code"]["8-opq-unit"]
            # From the 0.3 clip table: passes the positive (0.45), not the negative (0.2).
            self.assertTrue(0.2 < rule["threshold_by_n"][0] <= 0.45, rule)
            self.assertEqual(rule["confirm_looks"], 1)
            self.assertEqual(meta["listen_threshold_by_n"], [0.9])  # the main rule is kept

            # calibrate_threshold --set-default with clip results of the code.
            out = run("models.calibrate_threshold", *write_set(os.path.join(tmp, "clips"), [0.2],
                                                               [(0.5, True)]),
                      "--write", "--for-code", "8-opq-unit", "--set-default")
            self.assertEqual(out.returncode, 0, out.stderr)
            meta = container.read_container_file(model, "MODL").meta
            self.assertEqual(meta["listen_threshold_by_n"], rule["threshold_by_n"])
            self.assertEqual(meta["listen_confirm_looks"], 1)
            self.assertEqual(meta["listen_calibration"], rule["calibration"])
            self.assertEqual(meta["listen_rule_by_code"],
                             {"16": {"threshold_by_n": [0.9], "confirm_looks": 2}})


if __name__ == "__main__":
    unittest.main()
