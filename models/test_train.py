"""Tests of the training pieces: losses, false-negative and spectrogram masks, schedule,
sampling, splits, degradation chain, RIR bank, and the tools' command lines.

Run from the repository root: /usr/bin/python3 -m unittest discover -s models -t . -p 'test_*.py'
"""

import contextlib
import io
import math
import os
import runpy
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
import torch.nn.functional as F

from models import train
from models.earshot_model import augment, data, losses, sampling, splits

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rms_db(x):
    return 20 * torch.log10(x.square().mean(-1).sqrt())


def reference_nt_xent(za, zp, tau, extra=()):
    """NT-Xent written out term by term: view i's positive is its pair, its negatives every
    other view and the rows of `extra`."""
    z = torch.cat([za, zp])
    n = len(z)
    total = 0.0
    for i in range(n):
        pool = [z[k] for k in range(n) if k != i] + list(extra)
        denom = sum(math.exp(float(z[i] @ v) / tau) for v in pool)
        total += -math.log(math.exp(float(z[i] @ z[(i + n // 2) % n]) / tau) / denom)
    return total / n


class LossTest(unittest.TestCase):
    def test_nt_xent_matches_direct_formula(self):
        g = torch.Generator().manual_seed(0)
        za = F.normalize(torch.randn(6, 8, generator=g), dim=1)
        zp = F.normalize(torch.randn(6, 8, generator=g), dim=1)
        tau = 0.1
        no_mask = torch.zeros(6, 6, dtype=torch.bool)
        self.assertAlmostEqual(losses.nt_xent(za, zp, tau, no_mask).item(),
                               reference_nt_xent(za, zp, tau), places=4)

    def test_masked_false_negatives_are_ignored(self):
        za = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.01]]), dim=1)
        zp = za.clone()
        mask = losses.false_negative_mask(torch.tensor([0, 1, 0]), torch.tensor([0, 0, 16000]))
        self.assertTrue(mask[0, 2] and mask[2, 0])
        self.assertFalse(mask[0, 1] or mask[0, 0])
        # Item 2 duplicates item 0: unmasked it is a hard negative, masked it is not.
        masked = losses.nt_xent(za, zp, 0.05, mask).item()
        unmasked = losses.nt_xent(za, zp, 0.05, torch.zeros(3, 3, dtype=torch.bool)).item()
        self.assertLess(masked, 0.01)
        self.assertGreater(unmasked, 0.5)

    def test_memory_rows_are_extra_negatives(self):
        g = torch.Generator().manual_seed(1)
        za = F.normalize(torch.randn(4, 8, generator=g), dim=1)
        zp = F.normalize(torch.randn(4, 8, generator=g), dim=1)
        extra = F.normalize(torch.randn(3, 8, generator=g), dim=1)
        tau = 0.1
        no_mask = torch.zeros(4, 4, dtype=torch.bool)
        got = losses.nt_xent(za, zp, tau, no_mask, extra, torch.zeros(4, 3, dtype=torch.bool))
        self.assertAlmostEqual(got.item(), reference_nt_xent(za, zp, tau, extra), places=4)
        # Masking every memory row gives back the in-batch loss.
        all_masked = losses.nt_xent(za, zp, tau, no_mask, extra, torch.ones(4, 3, dtype=torch.bool))
        self.assertAlmostEqual(all_masked.item(), losses.nt_xent(za, zp, tau, no_mask).item(),
                               places=5)

    def test_cross_batch_memory_queue_and_mask(self):
        memory = losses.CrossBatchMemory(size=5, dim=2)
        z = torch.eye(2).repeat(2, 1)  # 4 views
        memory.push(z, torch.tensor([0, 1, 2, 3]))
        rows, mask = memory.negatives(torch.tensor([1, 3]))
        self.assertEqual(rows.shape, (4, 2))
        # Rows of the batch item's own song are masked, wherever in the song they start.
        self.assertEqual(mask.tolist(), [[False, True, False, False], [False, False, False, True]])
        # Three more views: the queue holds 5 and overwrites the oldest two (songs 0 and 1).
        memory.push(torch.ones(3, 2), torch.tensor([4, 5, 6]))
        rows, mask = memory.negatives(torch.tensor([1]))
        self.assertEqual(rows.shape, (5, 2))
        self.assertEqual(sorted(memory.song.tolist()), [2, 3, 4, 5, 6])
        self.assertFalse(mask.any())

    def test_semi_hard_triplet(self):
        za = F.normalize(torch.eye(4), dim=1)
        no_mask = torch.zeros(4, 4, dtype=torch.bool)
        self.assertAlmostEqual(losses.semi_hard_triplet(za, za.clone(), 0.4, no_mask).item(), 0.0)
        # Positives swapped: every anchor's positive is farther than some negative -> loss > 0.
        loss = losses.semi_hard_triplet(za, za[[1, 0, 3, 2]], 0.4, no_mask).item()
        self.assertGreater(loss, 0.0)

    def test_lr_schedule(self):
        self.assertLess(train.lr_at(0.0, 1.0), 0.05)
        self.assertAlmostEqual(train.lr_at(0.03, 1.0), 1.0)
        values = [train.lr_at(p / 100, 1.0) for p in range(3, 101)]
        self.assertTrue(all(a >= b for a, b in zip(values, values[1:])))
        self.assertAlmostEqual(train.lr_at(1.0, 1.0), 0.01)

    def test_budget_in_steps_or_minutes(self):
        state = {"step": 300, "train_s": 1800.0}
        self.assertAlmostEqual(train.budget_progress(state, 60.0, 0), 0.5)  # 30 of 60 minutes
        self.assertAlmostEqual(train.budget_progress(state, 60.0, 1200), 0.25)  # steps win
        state["step"] = 1200
        self.assertGreaterEqual(train.budget_progress(state, 60.0, 1200), 1.0)


class SamplingTest(unittest.TestCase):
    def test_album_groups(self):
        """album_frac 0.5, groups of 4: the first half of the batch is 8 same-album groups of
        4; albums with one song never form a group."""
        songs = [np.full(60000, 0.1 * (i + 1), dtype=np.float32) for i in range(5)]
        albums = ["a", "a", "b", "b", "solo"]
        noise = [np.zeros(20000, dtype=np.float32)]
        sampler = sampling.Sampler(songs, ["n"], noise, seed=3, pre_samples=1000,
                                albums=albums, album_frac=0.5, group=4)
        seen_albums = set()
        for _ in range(20):
            _, _, _, song_idx, _, _ = sampler.batch(64)
            for g in range(8):
                group = {albums[i] for i in song_idx[g * 4:(g + 1) * 4].tolist()}
                self.assertEqual(len(group), 1, group)
                seen_albums |= group
        self.assertEqual(seen_albums, {"a", "b"})

    def test_no_album_groups_by_default(self):
        songs = [np.ones(60000, dtype=np.float32) for _ in range(3)]
        sampler = sampling.Sampler(songs, ["n"], [np.zeros(20000, dtype=np.float32)], seed=0,
                                pre_samples=1000, albums=["a", "a", "a"])
        self.assertEqual(sampler.album_songs, [])

    def test_excluded_and_holdout(self):
        album_of = {f"m{i}": "midi" for i in range(8)}
        album_of.update({"x1": "dup", "x2": "dup", "o1": "ogg"})
        excluded, holdout = splits.excluded_and_holdout(album_of, "dup", "midi", 0.25, seed=1)
        self.assertEqual(excluded, {"x1", "x2"})
        self.assertEqual(len(holdout), 2)
        self.assertTrue(set(holdout) <= {f"m{i}" for i in range(8)})
        # Seeded: the same seed holds out the same songs, another seed (here) others.
        self.assertEqual(splits.excluded_and_holdout(album_of, "dup", "midi", 0.25, 1)[1], holdout)
        self.assertNotEqual(splits.excluded_and_holdout(album_of, "dup", "midi", 0.25, 2)[1],
                            holdout)
        self.assertEqual(splits.excluded_and_holdout(album_of, "", "", 0.25, 1), (set(), []))
        # "*": a seeded share of every album's songs
        _, everywhere = splits.excluded_and_holdout(album_of, "", "*", 0.5, seed=1)
        self.assertEqual(len(everywhere), 6)
        self.assertTrue(set(everywhere) <= set(album_of))

    def test_speed_variants(self):
        """Each factor adds every song resampled (f times faster: a tone's frequency times f,
        the length divided by f) as a new song of the same album."""
        t = np.arange(32000) / 16000.0
        songs = [np.sin(2 * np.pi * 1000.0 * t).astype(np.float32),
                 np.sin(2 * np.pi * 500.0 * t).astype(np.float32)]
        out, albums = sampling.speed_variants(songs, ["a", "b"], [0.9, 1.1])
        self.assertEqual(albums, ["a", "b", "a", "b", "a", "b"])
        self.assertIs(out[0], songs[0])
        for k, (f, base) in enumerate([(0.9, 1000.0), (0.9, 500.0), (1.1, 1000.0),
                                       (1.1, 500.0)]):
            x = out[2 + k]
            self.assertEqual(x.dtype, np.float32)
            self.assertAlmostEqual(len(x) / 32000, 1 / f, delta=0.001)
            peak_hz = np.argmax(np.abs(np.fft.rfft(x))) * 16000 / len(x)
            self.assertAlmostEqual(peak_hz, base * f, delta=2.0)

    def test_synthetic_noise_share(self):
        """synthetic_noise=1: every noise segment is synthetic (finite, not a train file);
        0 (default): every one comes from the files."""
        songs = [np.ones(60000, dtype=np.float32)]
        files = [np.full(20000, 0.25, dtype=np.float32)]
        synth = sampling.Sampler(songs, ["n"], files, seed=2, pre_samples=1000, synthetic_noise=1.0)
        plain = sampling.Sampler(songs, ["n"], files, seed=2, pre_samples=1000)
        _, _, noise, _, _, _ = synth.batch(16)
        self.assertTrue(torch.isfinite(noise).all())
        self.assertTrue((noise != 0.25).any(1).all())
        _, _, noise, _, _, _ = plain.batch(16)
        self.assertTrue((noise == 0.25).all())

    def test_resampled_window(self):
        """A window played 3 % faster: a tone's frequency times 1.03, and the window's centre
        on the requested source sample (a click there lands in the middle)."""
        t = np.arange(160000) / 16000.0
        tone = np.sin(2 * np.pi * 1000.0 * t).astype(np.float32)
        out = sampling.resampled_window(tone, 80000, 4000, 16000, 1.03)
        self.assertEqual(out.shape, (20000,))
        peak_hz = np.argmax(np.abs(np.fft.rfft(out * np.hanning(len(out))))) * 16000 / len(out)
        self.assertAlmostEqual(peak_hz, 1030.0, delta=2.0)
        click = np.zeros(160000, dtype=np.float32)
        click[80000] = 1.0
        out = sampling.resampled_window(click, 80000, 4000, 16000, 0.97)
        self.assertLessEqual(abs(int(np.argmax(out)) - (4000 + 8000)), 1)
        # Before the song's start: zeros, no wrap-around.
        out = sampling.resampled_window(click, 1000, 4000, 16000, 1.03)
        self.assertEqual(out.shape, (20000,))
        self.assertTrue(np.all(out[:2000] == 0))

    def test_tempo_frames(self):
        """Tempo 1 is the centred crop; tempo 1.05 reads frames 5 % further apart about the
        centre (a ramp's slope times 1.05)."""
        x = torch.arange(66, dtype=torch.float32)[None, :, None].repeat(2, 1, 3)
        out = sampling.tempo_frames(x, torch.tensor([1.0, 1.05]), 62)
        self.assertEqual(tuple(out.shape), (2, 62, 3))
        self.assertTrue(torch.allclose(out[0, :, 0], torch.arange(2, 64, dtype=torch.float32)))
        slope = (out[1, -1, 0] - out[1, 0, 0]) / 61
        self.assertAlmostEqual(slope.item(), 1.05, places=4)
        self.assertAlmostEqual(out[1, :, 0].mean().item(), 32.5, places=4)

    def test_speed_batches(self):
        """With speed_range, positives carry SPEED_PAD_FRAMES more frames on each side, about
        p_speed of them change speed (half by the tempo factor returned), and every start
        leaves room for the longest source span."""
        songs = [np.random.default_rng(i).standard_normal(120000).astype(np.float32) * 0.1
                 for i in range(3)]
        sampler = sampling.Sampler(songs, ["n"], [np.ones(20000, dtype=np.float32)], seed=4,
                                   pre_samples=1000, speed_range=0.03, p_speed=1.0)
        pad = sampling.SPEED_PAD_FRAMES * sampling.HOP_LENGTH
        self.assertEqual(sampler.pad, pad)
        anchors, raws, noise, _, starts, tempo = sampler.batch(200)
        self.assertEqual(tuple(raws.shape), (200, 1000 + sampling.SEG_SAMPLES + 2 * pad))
        self.assertEqual(tuple(noise.shape), (200, sampling.SEG_SAMPLES + 2 * pad))
        self.assertEqual(tuple(anchors.shape), (200, sampling.SEG_SAMPLES))
        changed = (tempo != 1.0).float().mean().item()
        self.assertGreater(changed, 0.35)
        self.assertLess(changed, 0.65)
        self.assertTrue(((tempo - 1).abs() <= 0.03 + 1e-6).all())
        plain = sampling.Sampler(songs, ["n"], [np.ones(20000, dtype=np.float32)], seed=4,
                                 pre_samples=1000)
        self.assertEqual(plain.pad, 0)
        self.assertEqual(tuple(plain.batch(4)[1].shape), (4, 1000 + sampling.SEG_SAMPLES))

    def test_valid_starts(self):
        """Frame-aligned starts, at least one shift from either end, none in silence."""
        audio = np.zeros(5 * 16000, dtype=np.float32)
        audio[2 * 16000:] = 0.1
        starts = sampling.valid_starts(audio)
        self.assertTrue(len(starts) > 0)
        self.assertTrue(np.all(starts % sampling.HOP_LENGTH == 0))
        self.assertGreater(starts.min(), sampling.MAX_SHIFT)
        self.assertLessEqual(starts.max() + sampling.SEG_SAMPLES + sampling.MAX_SHIFT, len(audio))
        # Every start's segment reaches the loud part (RMS over -45 dBFS).
        self.assertGreater(starts.min() + sampling.SEG_SAMPLES, 2 * 16000)
        self.assertEqual(len(sampling.valid_starts(audio[:20000])), 0)


class SplitsTest(unittest.TestCase):
    def setUp(self):
        self.ids = [f"s{i:02d}" for i in range(40)]
        self.album_of = {s: ("midi" if i >= 30 else "dup" if i >= 27 else f"a{i % 3}")
                         for i, s in enumerate(self.ids)}
        self.indexed = self.ids[:20]
        self.sources = set(self.ids[:26]) | {"not-in-the-corpus"}

    def split(self, seed=1):
        return splits.split_songs(self.ids, self.album_of, self.indexed, self.sources, seed,
                                  n_dev_songs=5, n_dev_seen=3, exclude_albums="dup",
                                  holdout_albums="midi", holdout_frac=0.5)

    def test_split_songs(self):
        split = self.split()
        train = set(split.train_ids)
        self.assertEqual(len(split.dev_unseen), 5)
        self.assertTrue(set(split.dev_unseen) <= set(self.indexed))
        # Out-of-catalog dev songs: sources of the dev clips in the corpus but not indexed.
        self.assertEqual(len(split.dev_neg), splits.N_DEV_NEGATIVE_SONGS)
        self.assertTrue(set(split.dev_neg) <= set(self.ids[20:26]))
        self.assertEqual(split.excluded, {"s27", "s28", "s29"})
        self.assertEqual(len(split.holdout), 5)
        held_out = set(split.dev_unseen) | set(split.dev_neg) | split.excluded | \
            set(split.holdout)
        self.assertEqual(train, set(self.ids) - held_out)
        self.assertEqual(split.train_ids, [s for s in self.ids if s in train])  # catalog order
        self.assertEqual(len(split.dev_seen), 3)
        self.assertTrue(set(split.dev_seen) <= train & set(self.indexed))
        self.assertEqual(split.dev_seen, splits.seen_dev_songs(split.train_ids,
                                                               set(self.indexed), 1, 3))

    def test_split_is_seeded(self):
        self.assertEqual(self.split(1), self.split(1))
        self.assertNotEqual(self.split(1).dev_unseen, self.split(2).dev_unseen)

    def test_dev_queries_folder(self):
        if not os.path.exists(os.path.join(REPO, "..", "shared", "eval", "evallib.py")) and \
                "EVAL" not in os.environ:
            self.skipTest("the evaluation tools (../shared/eval) are not present")
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "index-catalog.tsv"), "w") as f:
                f.write("id\tpath\na\t/x/a.ogg\nb\t/x/b.ogg\n")
            with open(os.path.join(tmp, "details.tsv"), "w") as f:
                f.write("query\tsong\tsource_song\nq1.flac\ta\ta\nq2.flac\t-\tc\n")
            queries = splits.DevQueries(tmp)
        self.assertEqual(queries.indexed, ["a", "b"])
        self.assertEqual(queries.source_of, {"q1.flac": "a", "q2.flac": "c"})
        self.assertEqual(queries.sources(), {"a", "c"})


class EvalToolsTest(unittest.TestCase):
    def test_evallib_is_loaded_without_touching_sys_path(self):
        if not os.path.exists(os.path.join(REPO, "..", "shared", "eval", "evallib.py")) and \
                "EVAL" not in os.environ:
            self.skipTest("the evaluation tools (../shared/eval) are not present")
        before = list(sys.path)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "t.tsv")
            with open(path, "w") as f:
                f.write("id\tcategory\nn1\tcity\n")
            self.assertEqual(data.read_catalog(path), [{"id": "n1", "category": "city"}])
        self.assertEqual(sys.path, before)


class CommandLineTest(unittest.TestCase):
    """Every tool runs as a module of the package from the repository root."""

    def run_module(self, module, *args):
        """Runs `python3 -m models.MODULE ARGS` in this process; returns (exit code, output)."""
        out, err = io.StringIO(), io.StringIO()
        argv = sys.argv
        sys.argv = [module, *args]
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                runpy.run_module(f"models.{module}", run_name="__main__", alter_sys=False)
            code = 0
        except SystemExit as e:
            code = e.code
        finally:
            sys.argv = argv
        return code, out.getvalue() + err.getvalue()

    def test_help(self):
        for module in ("train", "export", "dev_eval", "calibrate_threshold", "false_positives",
                       "make_random_model"):
            code, text = self.run_module(module, "--help")
            self.assertEqual(code, 0, text)
            self.assertIn(f"python3 -m models.{module}", text)

    def test_train_needs_its_folders(self):
        code, text = self.run_module("train", "--run", "x")
        self.assertNotEqual(code, 0)
        self.assertIn("--corpus", text)

    def test_runs_from_the_repository_root(self):
        out = subprocess.run(["/usr/bin/python3", "-m", "models.export", "--help"], cwd=REPO,
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)

class AugmentTest(unittest.TestCase):
    def test_rir_bank(self):
        bank = augment.synthetic_rir_bank(6, 12000, np.random.default_rng(0))
        self.assertEqual(bank.shape, (6, 12000))
        np.testing.assert_allclose((bank.astype(np.float64) ** 2).sum(1), 1.0, rtol=1e-5)
        self.assertTrue(np.all(np.abs(bank).argmax(1) == 0), "direct path is the largest tap")
        # Direct-to-reverberant ratio within the drawn -6..+6 dB.
        direct = bank[:, :40].astype(np.float64) ** 2
        drr = 10 * np.log10(direct.sum(1) / (bank[:, 40:].astype(np.float64) ** 2).sum(1))
        self.assertTrue(np.all((drr > -6.5) & (drr < 6.5)), drr)

    def test_degrader_levels_and_snr(self):
        pre, seg = 12000, 15762
        d = augment.Degrader(0, pre, seg, n_rirs=4, n_bandpass=4, p_room=0.0, p_bandpass=0.0,
                             p_tilt=0.0, p_clip=0.0, p_noise=1.0, snr_db_range=(10.0, 10.0))
        g = torch.Generator().manual_seed(0)
        t = torch.arange(pre + seg) / 16000.0
        clean = torch.sin(2 * math.pi * 440.0 * t)[None].repeat(8, 1)
        noise = torch.randn(8, seg, generator=g)
        out = d(clean, noise, g)
        self.assertEqual(out.shape, (8, seg))
        level = rms_db(out)
        self.assertTrue(torch.all((level > -30.1) & (level < -11.9)), level)
        self.assertTrue(torch.all(out.abs().max(1).values <= 0.99 + 1e-6))
        self.assertTrue(torch.equal(out, torch.round(out * 32768) / 32768))  # 16-bit grid
        # SNR: project out the (known) clean part.
        scale = out.norm(dim=1) / torch.sqrt(torch.tensor(1 + 10 ** -1.0)) / \
            clean[:, pre:].norm(dim=1)
        residual = out - scale[:, None] * clean[:, pre:]
        snr = 20 * torch.log10(scale * clean[:, pre:].norm(dim=1) / residual.norm(dim=1))
        self.assertTrue(torch.all((snr - 10.0).abs() < 0.5), snr)

    def test_synthetic_noise(self):
        """Finite, the requested length, and varied: spectral slopes from brown to slightly
        blue, so the low/high band energy ratio spreads over orders of magnitude."""
        rng = np.random.default_rng(5)
        ratios = []
        for _ in range(200):
            x = augment.synthetic_noise(rng, 15762)
            self.assertEqual(x.shape, (15762,))
            self.assertEqual(x.dtype, np.float32)
            self.assertTrue(np.isfinite(x).all() and np.abs(x).max() > 0)
            p = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
            f = np.fft.rfftfreq(len(x), 1 / 16000)
            ratios.append(p[(f > 100) & (f < 500)].mean() / p[(f > 3000) & (f < 7000)].mean())
        self.assertLess(np.percentile(ratios, 10), 3.0)
        self.assertGreater(np.percentile(ratios, 90), 100.0)

    def test_room_keeps_timing(self):
        """With the room stage only, the output correlates best with the input at lag 0
        (direct path at sample 0, no wrap-around from the FFT convolution)."""
        pre, seg = 12000, 15762
        d = augment.Degrader(1, pre, seg, n_rirs=8, n_bandpass=4, p_room=1.0, p_bandpass=0.0,
                             p_tilt=0.0, p_clip=0.0, p_noise=0.0)
        g = torch.Generator().manual_seed(1)
        x = torch.randn(4, pre + seg, generator=g)
        out = d(x, torch.zeros(4, seg), g)
        ref = x[:, pre:]
        corr = [float((out[:, 400:] * ref[:, 400 - lag:seg - lag]).sum())
                for lag in range(0, 200)]
        self.assertEqual(int(np.argmax(corr)), 0)

    def test_degrader_stages_draw_in_order_on_their_own_rows(self):
        """The linear stages (room, device, band-pass, tilt) draw in the chain's order and apply
        each drawn response to its own rows only: the output equals the stage-by-stage chain
        written out here with the same draws (which a recipe's reproducibility rests on)."""
        pre, seg, b = 4000, 3000, 12
        d = augment.Degrader(2, pre, seg, n_rirs=8, rir_samples=4000, n_bandpass=8,
                             p_room=0.5, p_bandpass=0.5, p_tilt=0.5, p_clip=0.0, p_noise=0.0,
                             level_dbfs_range=(-20.0, -20.0), p_device=0.5, n_devices=8)
        raw = torch.randn(b, pre + seg, generator=torch.Generator().manual_seed(4))
        out = d(raw, torch.zeros(b, seg), torch.Generator().manual_seed(9))

        g = torch.Generator().manual_seed(9)
        x = raw / raw[:, pre:].square().mean(1, keepdim=True).sqrt()
        spec = torch.fft.rfft(x, n=d.n_fft)
        for bank, p in ((d.rir_f, 0.5), (d.device_f, 0.5), (d.bandpass_f, 0.5)):
            use = torch.rand(b, generator=g) < p
            pick = bank[torch.randint(len(bank), (b,), generator=g)]
            spec = torch.where(use[:, None], spec * pick, spec)
        tilt_db = (-6.0 + 12.0 * torch.rand(b, generator=g)) * (torch.rand(b, generator=g) < 0.5)
        spec = spec * 10.0 ** (tilt_db[:, None] * d.tilt_shape[None] / 20.0)
        x = torch.fft.irfft(spec, n=d.n_fft)[:, pre:pre + seg]
        gain = torch.minimum(0.1 / x.square().mean(1).sqrt(), 0.99 / x.abs().amax(1))
        want = torch.round(x * gain[:, None] * 32768.0) / 32768.0
        self.assertLessEqual(float((out - want).abs().max()), 2 / 32768)
        self.assertGreater(float(out.abs().max()), 0.01)

    def test_device_responses_and_rooms(self):
        """Device responses are smooth, finite, within +-25 dB of flat above 600 Hz; rooms keep
        their drawn DRR range (a -15 dB room is mostly tail) and log-uniform RT60 rooms run up
        to the maximum."""
        rng = np.random.default_rng(5)
        bank = augment.device_response_bank(32, 4096, rng)
        freqs = np.arange(2049) * 16000 / 4096
        band = (freqs > 600) & (freqs < 7000)
        db = 20 * np.log10(bank[:, band])
        self.assertTrue(np.isfinite(bank).all() and (bank > 0).all())
        self.assertLess(np.abs(db).max(), 25.0)
        self.assertGreater(db.std(axis=1).mean(), 1.0)  # not flat
        direct = int(0.0025 * 16000)
        for drr in (-15.0, 10.0):
            rirs = augment.synthetic_rir_bank(8, 16000, rng, (0.5, 3.0), (drr, drr), rt60_log=True)
            e_direct = (rirs[:, :direct] ** 2).sum(1)
            e_tail = (rirs[:, direct:] ** 2).sum(1)
            self.assertTrue(np.allclose(10 * np.log10(e_direct / e_tail), drr, atol=0.5))

    def test_spec_mask(self):
        """About p of the items are masked; a masked item has whole mel bands (<= 2 x 10 bins)
        and whole frame runs (<= 8 frames) set to its mean, and nothing else changes."""
        g = torch.Generator().manual_seed(3)
        x = torch.randn(2000, 62, 64) + 0.01 * torch.arange(2000.0)[:, None, None]
        y = augment.spec_mask(x, g, 0.5)
        changed = y != x
        hit = changed.flatten(1).any(1)
        self.assertAlmostEqual(hit.float().mean().item(), 0.5, delta=0.05)
        self.assertTrue(torch.equal(y[~hit], x[~hit]))
        mean = x.mean(dim=(1, 2), keepdim=True).expand_as(x)
        self.assertTrue(torch.equal(y[changed], mean[changed]))
        at_mean = y == mean
        bands = at_mean.all(1).sum(1)    # mel bins at the mean in every frame
        frames = at_mean.all(2).sum(1)   # frames at the mean in every bin
        self.assertLessEqual(bands.max().item(), 20)
        self.assertLessEqual(frames.max().item(), 8)
        self.assertGreater(bands[hit].float().mean().item(), 5)
        self.assertGreater(frames[hit].float().mean().item(), 2)
        # Every changed cell lies in a masked band or a masked frame run.
        in_mask = at_mean.all(1, keepdim=True) | at_mean.all(2, keepdim=True)
        self.assertTrue(torch.equal(changed, changed & in_mask))
        self.assertTrue(torch.equal(augment.spec_mask(x, g, 0.0), x))


if __name__ == "__main__":
    unittest.main()
