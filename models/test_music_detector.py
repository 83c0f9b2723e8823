"""Tests of the music detector on synthetic signals (no corpus needed): features against a
float64 formula, the torch network against the numpy reference of the exported tensors, export
round trips, the training loop (learns, deterministic, resumes to the same weights) and the
data helpers (excerpts decoded by seeking, noise segments, silence).

Run: /usr/bin/python3 -m unittest discover -s models -p 'test_music_detector.py'
"""

import argparse
import os
import tempfile
import unittest

import numpy as np
import soundfile
import torch

from models import train_music_detector as tmd
from models.earshot_model import container, frontend
from models.earshot_model import music_detector as md

RATE = 16000
# float32 features (sequential sums over 62 frames of values up to ~|15|) vs float64: measured
# max 4e-6 absolute; the standardised network output vs float64 numpy: measured ~1e-6.
FEATURE_ABS_TOL = 2e-5
LOGIT_ABS_TOL = 1e-4


def synth_music(rng, n):
    """Notes of 3-voice chords (harmonic tones, 2-6 harmonics, attack-decay envelopes), a new
    chord every 0.15-0.5 s."""
    out = np.zeros(n)
    pos = 0
    t_all = np.arange(n) / RATE
    while pos < n:
        dur = int(rng.uniform(0.15, 0.5) * RATE)
        t = t_all[:min(dur, n - pos)] - t_all[0]
        env = np.minimum(1.0, t / 0.01) * np.exp(-t / rng.uniform(0.1, 0.6))
        for _ in range(3):
            f0 = 110.0 * 2 ** (rng.integers(0, 36) / 12)
            for h in range(1, rng.integers(2, 7)):
                if f0 * h < 7000:
                    out[pos:pos + len(t)] += env * np.sin(2 * np.pi * f0 * h * t) / h
        pos += dur
    return (out / np.sqrt(np.mean(out ** 2)) * 0.05).astype(np.float32)


def synth_noise(rng, n):
    """Broadband noise, half of the time cut into 4 Hz 'syllables' (speech-like envelope)."""
    x = np.cumsum(rng.standard_normal(n)) * 0.02 + rng.standard_normal(n)
    x -= np.convolve(x, np.ones(64) / 64, mode="same")
    if rng.random() < 0.5:
        x *= np.abs(np.sin(2 * np.pi * rng.uniform(3, 6) * np.arange(n) / RATE)) ** 2
    return (x / np.sqrt(np.mean(x ** 2)) * 10 ** (rng.uniform(-45, -10) / 20)).astype(np.float32)


def patches_of(signals):
    return tmd.PatchMaker()(np.stack(signals))


def synthetic_sets(seed, n=120):
    rng = np.random.default_rng(seed)
    music = lambda k: patches_of([synth_music(rng, tmd.SEG) for _ in range(k)])  # noqa: E731
    noise = lambda k: patches_of([synth_noise(rng, tmd.SEG) for _ in range(k)])  # noqa: E731
    sets = {"fit-music": music(n)}
    for kind in tmd.NEGATIVE_KINDS:
        sets[f"fit-{kind}"] = noise(n // len(tmd.NEGATIVE_KINDS))
    sets["fit-silence"] = patches_of(list(tmd.silence(rng, 20)))
    for cond in tmd.CALIBRATION_CONDITIONS:
        sets[f"calibrate-{cond}"] = music(40)
    for cond in tmd.HELD_OUT_CONDITIONS:
        sets[f"held-out-{cond}"] = music(40)
    for kind in tmd.HELD_OUT_NEGATIVES:
        sets[f"held-out-{kind}"] = noise(20)
    sets["held-out-silence"] = patches_of(list(tmd.silence(rng, 20)))
    return {k: v.astype(np.float16) for k, v in sets.items()}


def train_args(**overrides):
    args = argparse.Namespace(seed=3, fit_frac=0.8, excerpts_per_song=4, views=1,
                              negative_ratio=1.0, held_out_negatives=20, hidden=[8, 4], epochs=6,
                              batch=32, lr=1e-2, weight_decay=1e-4, recall=0.95)
    for k, v in overrides.items():
        setattr(args, k, v)
    return args


def random_net(seed, hidden=(32, 16)):
    torch.manual_seed(seed)
    net = md.MusicDetectorNet(hidden=hidden)
    rng = np.random.default_rng(seed)
    net.feature_mean.copy_(torch.from_numpy(rng.normal(-5, 3, md.n_features()).astype(np.float32)))
    net.feature_std.copy_(torch.from_numpy(rng.uniform(0.5, 3, md.n_features()).astype(np.float32)))
    return net.eval()


class FeatureTest(unittest.TestCase):
    def test_features_match_float64_formula_and_torch(self):
        rng = np.random.default_rng(0)
        patches = patches_of([synth_music(rng, tmd.SEG), synth_noise(rng, tmd.SEG),
                              np.zeros(tmd.SEG, np.float32)])
        self.assertEqual(patches.shape, (3, md.CONTEXT_FRAMES, md.N_MELS))
        x = patches.astype(np.float64)
        mean = x.mean(1)
        want = np.concatenate([mean, np.sqrt(((x - mean[:, None]) ** 2).mean(1)),
                               np.abs(np.diff(x, axis=1)).mean(1),
                               np.abs(np.diff(x, axis=2)).mean(1)], axis=1)
        self.assertEqual(want.shape, (3, md.n_features()))
        got = md.features_numpy(patches)
        self.assertEqual(got.dtype, np.float32)
        np.testing.assert_allclose(got, want, atol=FEATURE_ABS_TOL, rtol=0)
        got_torch = md.features_torch(torch.from_numpy(patches)).numpy()
        np.testing.assert_allclose(got_torch, want, atol=FEATURE_ABS_TOL, rtol=0)
        # Digital silence: every band at ln(1e-6), flat.
        np.testing.assert_allclose(got[2, :md.N_MELS], np.log(np.float32(1e-6)), rtol=1e-6)
        self.assertLess(np.max(got[2, md.N_MELS:]), 1e-5)


class ExportTest(unittest.TestCase):
    def test_reference_matches_torch(self):
        net = random_net(1)
        rng = np.random.default_rng(1)
        patches = rng.normal(-6, 4, (5, md.CONTEXT_FRAMES, md.N_MELS)).astype(np.float32)
        tensors = md.export_tensors(net)
        meta = md.export_meta(net, 0.5)
        with torch.no_grad():
            want = net(torch.from_numpy(patches)).numpy()
        np.testing.assert_allclose(md.logits_reference(tensors, meta, patches), want,
                                   atol=LOGIT_ABS_TOL, rtol=1e-5)
        self.assertEqual(meta["layer_sizes"], [255, 32, 16, 1])
        self.assertEqual(meta["n_params"], 255 * 32 + 32 + 32 * 16 + 16 + 16 + 1)
        self.assertEqual(list(tensors), [
            "music_detector.feature_mean", "music_detector.feature_std",
            "music_detector.dense1.weight", "music_detector.dense1.bias",
            "music_detector.dense2.weight", "music_detector.dense2.bias",
            "music_detector.dense3.weight", "music_detector.dense3.bias"])
        self.assertTrue(all(t.dtype == np.float32 for t in tensors.values()))

    def test_npz_json_round_trip_and_container(self):
        net = random_net(2, hidden=(8,))
        tensors = md.export_tensors(net)
        meta = md.export_meta(net, 0.25, held_out={"x": 1}, training={"seed": 1})
        with tempfile.TemporaryDirectory() as tmp:
            prefix = os.path.join(tmp, "det")
            md.write_npz_json(prefix, tensors, meta)
            tensors2, meta2 = md.read_npz_json(prefix)
        self.assertEqual(meta2, meta)
        for name, t in tensors.items():
            np.testing.assert_array_equal(tensors2[name], t)
        c = container.read_container(md.container_bytes(tensors, meta), md.CONTAINER_KIND)
        self.assertEqual(c.meta["music_detector"]["threshold"], 0.25)
        np.testing.assert_array_equal(c["music_detector.dense1.weight"],
                                      tensors["music_detector.dense1.weight"])
        net2 = md.net_from_tensors(tensors2, meta2)
        patch = np.full((1, md.CONTEXT_FRAMES, md.N_MELS), -3.0, np.float32)
        with torch.no_grad():
            self.assertEqual(float(net(torch.from_numpy(patch))),
                             float(net2(torch.from_numpy(patch))))

    def test_check_tensors_names_the_problem(self):
        net = random_net(3)
        tensors, meta = md.export_tensors(net), md.export_meta(net, 0.5)
        bad = dict(tensors)
        bad["music_detector.dense2.weight"] = bad["music_detector.dense2.weight"][:, :5]
        with self.assertRaisesRegex(ValueError, "dense2.weight: shape"):
            md.check_tensors(bad, meta)
        bad = dict(tensors)
        del bad["music_detector.feature_std"]
        with self.assertRaisesRegex(ValueError, "missing tensor music_detector.feature_std"):
            md.check_tensors(bad, meta)
        with self.assertRaisesRegex(ValueError, "feature_kind"):
            md.check_tensors(tensors, dict(meta, feature_kind="other"))


class TrainTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(1)
        cls.sets = synthetic_sets(0)

    def test_learns_and_is_deterministic_and_resumes(self):
        args = train_args()
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            net_a = tmd.train(args, a, self.sets)
            tmd.train(args, b, self.sets, stop_after=2)  # interrupted after 2 epochs
            net_b = tmd.train(args, b, self.sets)  # resumed
            for (name, pa), pb in zip(net_a.state_dict().items(), net_b.state_dict().values()):
                self.assertTrue(torch.equal(pa, pb), name)
            with self.assertRaises(SystemExit):  # other arguments: refuse to resume
                tmd.train(train_args(lr=0.5), a, self.sets)
        threshold, held_out, fit = tmd.evaluate(args, net_a, self.sets)
        self.assertTrue(0.0 < threshold < 1.0)
        self.assertGreaterEqual(min(fit["recall"].values()), args.recall)
        self.assertGreaterEqual(held_out["music"]["clean"]["recall"], 0.9)
        self.assertLessEqual(held_out["non_music"]["silence"]["false_trigger"], 0.0)
        self.assertLessEqual(held_out["non_music"]["speech"]["false_trigger"], 0.1)


EVAL_TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                          "shared", "eval", "evallib.py")


@unittest.skipUnless(os.path.exists(EVAL_TOOLS) or "EVAL" in os.environ,
                     "the evaluation tools (../shared/eval) decode the songs and are not present")
class DataTest(unittest.TestCase):
    def test_excerpts_by_seeking_equal_the_file(self):
        rng = np.random.default_rng(4)
        x = (rng.standard_normal(40 * RATE) * 0.1).astype(np.float32)
        x[:20 * RATE] *= 1e-4  # a quiet first half (-80 dBFS): no patch may come from it
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "song.wav")
            soundfile.write(path, x, RATE, subtype="FLOAT")
            excerpts = tmd.song_excerpts(path, 40.0, 5, np.random.default_rng(5))
        self.assertEqual(len(excerpts), 5)
        for e in excerpts:
            self.assertEqual(len(e), tmd.EXCERPT)
            # where it came from: the excerpt is an exact slice of the file at 16 kHz, and its
            # patch part (after the pre-roll) lies in the loud half
            probe = e[tmd.PRE:tmd.PRE + 256]
            start = int(np.argmax(np.abs(np.correlate(x, probe)))) - tmd.PRE
            np.testing.assert_array_equal(e, x[start:start + tmd.EXCERPT])
            self.assertGreaterEqual(start + tmd.PRE, 20 * RATE - 256)

    def test_excerpts_resampled_from_44k(self):
        t = np.arange(int(35 * 44100)) / 44100
        x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "song.wav")
            soundfile.write(path, np.stack([x, x], 1), 44100)
            excerpts = tmd.song_excerpts(path, 35.0, 3, np.random.default_rng(6))
        self.assertEqual(len(excerpts), 3)
        for e in excerpts:
            self.assertEqual(len(e), tmd.EXCERPT)
            self.assertAlmostEqual(float(np.sqrt(np.mean(e ** 2))), 0.3 / np.sqrt(2), places=2)

    def test_noise_segment_joins_short_files_and_silence_is_quiet(self):
        rng = np.random.default_rng(7)
        files = [np.full(RATE // 2, 0.1, np.float32), np.full(RATE // 3, -0.1, np.float32)]
        seg = tmd.noise_segment(files, rng, 3 * RATE)
        self.assertEqual(len(seg), 3 * RATE)
        self.assertGreater(np.mean(seg != 0), 0.5)  # mostly sound, some gaps
        self.assertTrue(np.all(np.isin(seg, [0.0, 0.1, -0.1])))
        quiet = tmd.silence(rng, 50)
        self.assertEqual(quiet.shape, (50, tmd.SEG))
        self.assertLess(np.max(np.abs(quiet)), 10 ** (-60 / 20))
        self.assertTrue(np.all(quiet * 32768 == np.round(quiet * 32768)))  # 16-bit values

    def test_split_is_stable(self):
        ids = [f"song-{i}" for i in range(1000)]
        fit = [tmd.split_of(i, 1, 0.8) == "fit" for i in ids]
        self.assertAlmostEqual(np.mean(fit), 0.8, delta=0.04)
        self.assertEqual(fit, [tmd.split_of(i, 1, 0.8) == "fit" for i in ids])
        self.assertNotEqual(fit, [tmd.split_of(i, 2, 0.8) == "fit" for i in ids])

    def test_frontend_matches_patch_maker(self):
        x = synth_music(np.random.default_rng(8), tmd.SEG)
        np.testing.assert_allclose(tmd.PatchMaker()(x[None])[0], frontend.logmel_numpy(x),
                                   atol=1e-3)


if __name__ == "__main__":
    unittest.main()
