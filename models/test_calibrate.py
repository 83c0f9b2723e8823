"""Tests of models/calibrate_threshold.py on small synthetic query sets: the fitted thresholds,
the leave-one-fold-out check (--crossval), the tables written per PQ resolution and the
negatives left out for holding their answer's audio (--shared-audio).

Run from the repository root: /usr/bin/python3 -m unittest discover -s models -t . -p 'test_*.py'
"""

import json
import math
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np
import soundfile

from models import calibrate_threshold
from models.earshot_model import container

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = ["/usr/bin/python3", "-m", "models.calibrate_threshold"]
MODEL = os.path.join(ROOT, "models", "random-init-v0.emod")


def run_tool(*args):
    return subprocess.run([*TOOL, *args], cwd=ROOT, capture_output=True, text=True)


def write_set(folder, negatives, positives):
    """A query set of 1 s clips: negatives = confidences of out-of-catalog queries, positives =
    (confidence, right song?) of in-catalog ones; background 0, so confidence = similarity."""
    os.makedirs(folder)
    with open(os.path.join(folder, "truth.tsv"), "w") as truth, \
            open(os.path.join(folder, "results.jsonl"), "w") as results:
        truth.write("query\tsong\tlength_s\n")
        rows = [("-", s, "x") for s in negatives] + [("a", s, "a" if right else "b")
                                                     for s, right in positives]
        for i, (song, score, answer) in enumerate(rows):
            truth.write(f"q{i}.flac\t{song}\t1\n")
            results.write(json.dumps({"query": f"q{i}.flac", "song": answer, "similarity": score,
                                      "background": 0.0}) + "\n")
    return ["--truth", os.path.join(folder, "truth.tsv"),
            "--results", os.path.join(folder, "results.jsonl")]


def writing_run(tmp):
    """A copy of the test model in tmp, two query sets (a: negatives up to 0.5, b: up to 0.8)
    and a function running the tool with --write on that copy."""
    model = os.path.join(tmp, "m.emod")
    shutil.copy(MODEL, model)  # no index_pq_m: 16
    a = write_set(os.path.join(tmp, "a"), [0.1, 0.2, 0.5], [(0.9, True)])
    b = write_set(os.path.join(tmp, "b"), [0.1, 0.3, 0.8], [(0.7, True)])

    def run(*args):
        return run_tool("--model", model, "--write", "--target-fp", "0", "--margin", "0.01",
                        *args)
    return model, a, b, run


def write_model(path, container_, **meta):
    """Writes container_ (a read MODL container) to path with `meta` over its metadata."""
    with open(path, "wb") as f:
        f.write(container.write_container("MODL", dict(container_.meta, **meta),
                                          list(container_.sections.items())))


class CalibrateTest(unittest.TestCase):
    def assert_refused_unchanged(self, model, run, message):
        """run() (a tool run on `model`) fails with `message` and leaves the file as it was."""
        with open(model, "rb") as f:
            before = f.read()
        out = run()
        self.assertNotEqual(out.returncode, 0)
        self.assertIn(message, out.stderr)
        with open(model, "rb") as f:
            self.assertEqual(f.read(), before)

    def run_script(self, *args):
        out = run_tool("--model", MODEL, *args)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def test_crossval(self):
        """Fold 1's negatives top out at 0.5, fold 2's at 0.8: thresholds fitted on fold 2 let
        none of fold 1 through; fitted on fold 1 (0.5 + margin) they let fold 2's 0.8 through."""
        with tempfile.TemporaryDirectory() as tmp:
            a = write_set(os.path.join(tmp, "a"), [0.1, 0.2, 0.5], [(0.9, True), (0.52, True)])
            b = write_set(os.path.join(tmp, "b"), [0.1, 0.3, 0.8], [(0.7, True), (0.95, False)])
            text = self.run_script("--crossval", "--target-fp", "0", "--margin", "0.01",
                                   *a, "--fold", "1", *b, "--fold", "2")
        line = [x for x in text.splitlines() if "n=  1" in x][0]
        # Fold 2 passes one negative of 3 (0.8 >= 0.51), fold 1 none (all < 0.81): 1 of 6.
        self.assertIn("negatives passing 16.67% of 6", line)
        self.assertIn("worst fold 33.33%", line)
        # Kept: fold 1 at 0.81 keeps 0.9 only; fold 2 at 0.51 keeps 0.7 (0.95 is wrong): 2 of 4.
        self.assertIn("positives kept  50.0% of 4", line)

    def test_crossval_needs_folds(self):
        with tempfile.TemporaryDirectory() as tmp:
            a = write_set(os.path.join(tmp, "a"), [0.1], [(0.9, True)])
            out = run_tool("--model", MODEL, "--crossval", *a)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("--fold", out.stderr)

    def test_threshold_from_pooled_negatives(self):
        with tempfile.TemporaryDirectory() as tmp:
            a = write_set(os.path.join(tmp, "a"), [0.1, 0.2, 0.5], [(0.9, True)])
            b = write_set(os.path.join(tmp, "b"), [0.1, 0.3, 0.8], [(0.7, True)])
            text = self.run_script("--target-fp", "0", "--margin", "0.01", *a, *b)
        self.assertIn("threshold 0.8100", text)
        self.assertIn("negatives passing   0.0% of 6", text)
        self.assertIn("positives kept  50.0% of 2", text)

    def test_smooth_and_pooled_fits(self):
        """smooth: limits on a + b / sqrt(n) stay there, one length's outlier moves its limit
        only part of the way; pooled: negatives whose location and spread follow 1/sqrt(n)
        give limits on that curve, so each length lets about target_fp of its own through."""
        exact = {n: 0.2 + 0.3 / math.sqrt(n) for n in (1, 3, 5, 9, 19)}
        for n, v in calibrate_threshold.smooth_limits(exact).items():
            self.assertAlmostEqual(v, exact[n], places=9)
        bumped = {**exact, 5: exact[5] + 0.1}
        smooth = calibrate_threshold.smooth_limits(bumped)
        self.assertGreater(smooth[5], exact[5])
        self.assertLess(smooth[5], exact[5] + 0.05)
        rng = np.random.default_rng(1)
        neg = {n: list(0.1 + 0.2 / math.sqrt(n) + (0.02 + 0.1 / math.sqrt(n)) *
                       rng.standard_normal(20000)) for n in (1, 3, 5, 9, 19)}
        limits = calibrate_threshold.pooled_tail_limits(neg, 0.01, 0.0)
        for n, scores in neg.items():
            passing = np.mean(np.asarray(scores) >= limits[n])
            self.assertAlmostEqual(passing, 0.01, delta=0.004)
        self.assertEqual(sorted(limits.values(), reverse=True), [limits[n] for n in sorted(neg)])

    def test_write_main_table_then_one_for_another_code(self):
        with tempfile.TemporaryDirectory() as tmp:
            model, a, b, run = writing_run(tmp)
            self.assertEqual(run(*a, *b).returncode, 0)
            out = run("--for-code", "32", *a)  # other results: only a's negatives, max 0.5
            self.assertEqual(out.returncode, 0, out.stderr)
            meta = container.read_container_file(model, "MODL").meta
            self.assertEqual(meta["threshold_by_n"], [0.81])  # kept
            # Query sets are recorded by folder name, not by the path on this machine.
            self.assertEqual(meta["threshold_calibration"]["queries"],
                             ["a/truth.tsv", "b/truth.tsv"])
            self.assertEqual(meta["threshold_by_n_by_code"], {"32": [0.51]})
            self.assertIn("32", meta["threshold_calibration_by_code"])
            out = run("--for-code", "8-opq-unit", *b)  # only b's negatives, max 0.8
            self.assertEqual(out.returncode, 0, out.stderr)
            meta = container.read_container_file(model, "MODL").meta
            self.assertEqual(meta["threshold_by_n_by_code"], {"32": [0.51], "8-opq-unit": [0.81]})
            out = run("--for-code", "16", *a)  # the model's own code: refused
            self.assertNotEqual(out.returncode, 0)
            self.assertIn("index_pq_m", out.stderr)
            for bad in ("7", "8-unit-opq", "08", "opq", "8-g1", "8-g17", "8-opq-g4"):  # not names
                out = run("--for-code", bad, *a)
                self.assertNotEqual(out.returncode, 0)
                self.assertIn("-opq and/or -unit", out.stderr)

    def test_speed_table_over_the_clip_table(self):
        """--speed: clips whose own match clears the clip table are left out; the others are
        scored by their best stretch, and the table lands in speed_search with the stretches."""
        with tempfile.TemporaryDirectory() as tmp:
            model, a, b, run = writing_run(tmp)
            self.assertEqual(run(*a, *b).returncode, 0)  # clip table [0.81]
            folder = os.path.join(tmp, "s")
            os.makedirs(folder)
            # (truth song, own answer, own similarity, best stretch's song, its similarity)
            rows = [("-", "x", 0.9, "y", 0.95),   # answered as played: left out
                    ("-", "x", 0.2, "y", 0.6),    # the highest kept negative
                    ("-", "x", 0.1, "z", 0.3),
                    ("a", "b", 0.5, "a", 0.7)]
            with open(os.path.join(folder, "truth.tsv"), "w") as truth, \
                    open(os.path.join(folder, "results.jsonl"), "w") as results:
                truth.write("query\tsong\tlength_s\n")
                for i, (song, own, own_s, best, best_s) in enumerate(rows):
                    truth.write(f"q{i}.flac\t{song}\t1\n")
                    results.write(json.dumps({
                        "query": f"q{i}.flac", "song": own, "similarity": own_s,
                        "background": 0.0, "speed_search": {
                            "stretch": 1.02, "song": best, "similarity": best_s,
                            "background": 0.0}}) + "\n")
            s = ["--truth", os.path.join(folder, "truth.tsv"),
                 "--results", os.path.join(folder, "results.jsonl")]
            out = run("--speed", "--stretches", "1.02,0.98", *s)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("1 clips answered by their own match left out", out.stdout)
            meta = container.read_container_file(model, "MODL").meta
            self.assertEqual(meta["threshold_by_n"], [0.81])  # kept
            self.assertEqual(meta["speed_search"]["stretches"], [1.02, 0.98])
            self.assertEqual(meta["speed_search"]["threshold_by_n"], [0.61])
            # Results without the best stretches are refused.
            out = run("--speed", *a)
            self.assertNotEqual(out.returncode, 0)
            self.assertIn("--speed-search always", out.stderr)

    def test_set_default_code(self):
        with tempfile.TemporaryDirectory() as tmp:
            model, a, b, run = writing_run(tmp)
            self.assertEqual(run(*a).returncode, 0)  # main table, for code 16: [0.51]
            self.assertEqual(run("--for-code", "8-opq-unit", *b).returncode, 0)  # [0.81]
            out = run("--for-code", "8-opq-unit", "--set-default", "--opq-rounds", "7", *b)
            self.assertEqual(out.returncode, 0, out.stderr)
            meta = container.read_container_file(model, "MODL").meta
            self.assertEqual(meta["threshold_by_n"], [0.81])
            self.assertEqual(meta["threshold"], 0.81)
            self.assertEqual(meta["threshold_by_n_by_code"], {"16": [0.51]})
            self.assertEqual(sorted(meta["threshold_calibration_by_code"]), ["16"])
            self.assertEqual((meta["index_pq_m"], meta["index_opq_rounds"],
                              meta["index_unit_norm"]), (8, 7, True))
            out = run("--for-code", "8-opq-unit", *a)  # now the default: refused
            self.assertNotEqual(out.returncode, 0)
            self.assertIn("default code", out.stderr)
            out = run("--set-default", *a)  # without --for-code
            self.assertNotEqual(out.returncode, 0)
            self.assertIn("--set-default goes with", out.stderr)

    def test_set_default_grouped_code_with_its_speed_table(self):
        """A code over 5 windows becomes the default: the model names its group, and the speed
        search's tables swap as the clip tables do; without a speed table of its own the code is
        refused where the model has a speed search, and the file is left as it was."""
        with tempfile.TemporaryDirectory() as tmp:
            model, a, b, run = writing_run(tmp)
            self.assertEqual(run(*a).returncode, 0)  # main table, for code 16: [0.51]
            c = container.read_container_file(model, "MODL")
            speed = {"stretches": [1.02, 0.98], "threshold_by_n": [0.4],
                     "calibration": {"target_fp": 0.0005},
                     "threshold_by_n_by_code": {"8-opq-unit": [0.35]}}
            write_model(model, c, speed_search=speed)
            self.assert_refused_unchanged(
                model, lambda: run("--for-code", "32-g5-opq-unit", "--set-default", *b),
                "no table for 32-g5-opq-unit")

            speed["threshold_by_n_by_code"]["32-g5-opq-unit"] = [0.3]
            write_model(model, c, speed_search=speed)
            out = run("--for-code", "32-g5-opq-unit", "--set-default", *b)
            self.assertEqual(out.returncode, 0, out.stderr)
            meta = container.read_container_file(model, "MODL").meta
            self.assertEqual((meta["index_pq_m"], meta["index_code_group"],
                              meta["index_opq_rounds"], meta["index_unit_norm"]),
                             (32, 5, 10, True))
            self.assertEqual(calibrate_threshold.default_code(meta), "32-g5-opq-unit")
            self.assertEqual(meta["threshold_by_n"], [0.81])
            self.assertEqual(meta["threshold_by_n_by_code"], {"16": [0.51]})
            self.assertEqual(meta["speed_search"]["threshold_by_n"], [0.3])
            self.assertEqual(meta["speed_search"]["threshold_by_n_by_code"],
                             {"16": [0.4], "8-opq-unit": [0.35]})
            self.assertEqual(meta["speed_search"]["calibration_by_code"],
                             {"16": {"target_fp": 0.0005}})
            # And back to a code over one window: the group goes.
            out = run("--for-code", "16", "--set-default", *a)
            self.assertEqual(out.returncode, 0, out.stderr)
            meta = container.read_container_file(model, "MODL").meta
            self.assertNotIn("index_code_group", meta)
            self.assertEqual(meta["speed_search"]["threshold_by_n"], [0.4])

    def test_set_default_swaps_the_listen_rules_and_needs_one(self):
        """A model with a main listen rule: a code without a rule of its own is refused as the
        default (the file left as it was); with one, the rules swap places."""
        with tempfile.TemporaryDirectory() as tmp:
            model, a, b, run = writing_run(tmp)
            self.assertEqual(run(*a).returncode, 0)  # main table, for code 16: [0.51]
            c = container.read_container_file(model, "MODL")
            listen = dict(listen_threshold_by_n=[0.6], listen_confirm_looks=2)
            write_model(model, c, **listen)
            self.assert_refused_unchanged(
                model, lambda: run("--for-code", "8-opq-unit", "--set-default", *b),
                "no listen rule for 8-opq-unit")

            rules = {"8-opq-unit": {"threshold_by_n": [0.7], "confirm_looks": 1}}
            write_model(model, c, listen_rule_by_code=rules, **listen)
            out = run("--for-code", "8-opq-unit", "--set-default", *b)
            self.assertEqual(out.returncode, 0, out.stderr)
            meta = container.read_container_file(model, "MODL").meta
            self.assertEqual((meta["listen_threshold_by_n"], meta["listen_confirm_looks"]),
                             ([0.7], 1))
            self.assertEqual(meta["listen_rule_by_code"],
                             {"16": {"threshold_by_n": [0.6], "confirm_looks": 2}})

    def test_tables_under_the_former_key_move_to_the_new_one(self):
        with tempfile.TemporaryDirectory() as tmp:
            model = os.path.join(tmp, "m.emod")
            c = container.read_container_file(MODEL, "MODL")
            meta = dict(c.meta, threshold_by_n_by_pq_m={"32": [0.4]},
                        threshold_calibration_by_pq_m={"32": {"target_fp": 0.001}})
            with open(model, "wb") as f:
                f.write(container.write_container("MODL", meta, list(c.sections.items())))
            a = write_set(os.path.join(tmp, "a"), [0.1, 0.2, 0.5], [(0.9, True)])
            out = run_tool("--model", model, "--write", "--target-fp", "0", "--margin", "0.01",
                           "--for-code", "8-opq", *a)
            self.assertEqual(out.returncode, 0, out.stderr)
            meta = container.read_container_file(model, "MODL").meta
            self.assertNotIn("threshold_by_n_by_pq_m", meta)
            self.assertNotIn("threshold_calibration_by_pq_m", meta)
            self.assertEqual(meta["threshold_by_n_by_code"], {"32": [0.4], "8-opq": [0.51]})
            self.assertEqual(sorted(meta["threshold_calibration_by_code"]), ["32", "8-opq"])

    def test_shared_audio_negatives_are_left_out(self):
        """Two out-of-catalog clips of song `a` score high: one found song `b`, which holds
        the clip's audio under as loud other sound (waveform correlation ~0.7); one found `c`,
        unrelated audio. With --shared-audio 0.5 only the second sets the threshold."""
        rate = 16000
        rng = np.random.default_rng(5)
        a = rng.standard_normal(3 * rate) * 0.1
        b = rng.standard_normal(4 * rate) * 0.1
        b[2 * rate:3 * rate] += a[rate:2 * rate]  # a's second second, mixed in at b's third
        c = rng.standard_normal(4 * rate) * 0.1
        with tempfile.TemporaryDirectory() as tmp:
            paths = {}
            for name, audio in (("a", a), ("b", b), ("c", c)):
                paths[name] = os.path.join(tmp, f"{name}.wav")
                soundfile.write(paths[name], audio, rate, subtype="PCM_16")
            catalog = os.path.join(tmp, "catalog.tsv")
            with open(catalog, "w") as f:
                f.write("id\tpath\n" + "".join(f"{k}\t{v}\n" for k, v in paths.items()))
            # query, truth, source start (s), answer, score
            rows = [("q0", "-", 1.0, "b", 0.9), ("q1", "-", 0.2, "c", 0.8),
                    ("q2", "-", 1.5, "c", 0.1), ("q3", "b", 0.0, "b", 0.95)]
            with open(os.path.join(tmp, "truth.tsv"), "w") as truth, \
                    open(os.path.join(tmp, "details.tsv"), "w") as details, \
                    open(os.path.join(tmp, "results.jsonl"), "w") as results:
                truth.write("query\tsong\tlength_s\n")
                details.write("query\tsong\tsource_song\tlength_s\tstart_s\tspeed\n")
                for query, song, start, answer, score in rows:
                    truth.write(f"{query}.flac\t{song}\t1\n")
                    details.write(f"{query}.flac\t{song}\ta\t1\t{start}\t1.00\n")
                    results.write(json.dumps({"query": f"{query}.flac", "song": answer,
                                              "similarity": score, "background": 0.0}) + "\n")
            args = ["--target-fp", "0", "--margin", "0.01",
                    "--truth", os.path.join(tmp, "truth.tsv"),
                    "--details", os.path.join(tmp, "details.tsv"),
                    "--results", os.path.join(tmp, "results.jsonl")]
            self.assertIn("threshold 0.9100", self.run_script(*args))
            text = self.run_script(*args, "--shared-audio", "0.5", "--catalog", catalog)
            self.assertIn("threshold 0.8100", text)
            self.assertIn("1 that hold the audio of the song they found left out", text)
            r = float(text.split("shared audio (r ")[1].split(",")[0])
            self.assertGreater(r, 0.6)  # equal power: 1/sqrt(2) = 0.71
            self.assertLess(r, 0.8)
            out = run_tool("--model", MODEL, *args, "--shared-audio", "0.5")
            self.assertNotEqual(out.returncode, 0)  # no --catalog
            self.assertIn("--catalog", out.stderr)

    def test_a_passage_shared_for_part_of_a_clip(self):
        """A clip whose last 4 s are the song's audio and first 6 s are not: its whole r is
        about sqrt(0.4) = 0.63, its passage r (4 s pieces at the clip's best alignment) near 1;
        an unrelated song scores low."""
        from models.earshot_model.shared_audio import best_alignment, passage_ncc
        rate = 4000
        rng = np.random.default_rng(9)
        song = rng.standard_normal(30 * rate)
        clip = np.concatenate([rng.standard_normal(6 * rate), song[12 * rate:16 * rate]])
        r, lag = best_alignment(clip, song)
        self.assertLess(r, 0.7)
        self.assertEqual(lag, 6 * rate)  # the clip's 6 s mark at the song's 12 s
        self.assertGreater(passage_ncc(clip, song, 4 * rate), 0.95)
        other = rng.standard_normal(30 * rate)
        self.assertLess(passage_ncc(clip, other, 4 * rate), 0.2)
        self.assertEqual(passage_ncc(clip[:rate], song, 4 * rate), 0.0)  # shorter than a piece


if __name__ == "__main__":
    unittest.main()
