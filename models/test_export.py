"""Tests of the model package: container round trip and corrupt inputs, export parity (pure-numpy
reference of DESIGN.md section 3 over the .emod vs the PyTorch model), checkpoint export and its
training record, and the torch/numpy front-end against tests/data/frontend_golden.* (numpy
float64 reference by another engineer).

Run from the repository root: /usr/bin/python3 -m unittest discover -s models -t . -p 'test_*.py'
"""

import contextlib
import io
import json
import os
import struct
import sys
import tempfile
import unittest

import numpy as np
import torch

from models import make_random_model
from models.earshot_model import checkpoint, container, frontend, model_file, reference
from models.earshot_model.net import EarshotNet

MODELS_DIR = os.path.dirname(os.path.abspath(__file__))

REPO = os.path.dirname(MODELS_DIR)
GOLDEN = os.path.join(REPO, "tests", "data", "frontend_golden.json")
# float32 FFT + float32 mel matmul vs a float64 reference: |diff| of ln(mel) is the relative
# error of the mel power (~1e-6 for loud bands, larger for quiet bands near log_offset).
# Measured max 1.5e-5 (torch and numpy); tolerance 1e-4 absolute on ln values.
FRONTEND_ABS_TOL = 1e-4
PARITY_MIN_COSINE = 0.9999


def random_logmel(rng, frames=frontend.DEFAULT_GEOMETRY["context_frames"]):
    pcm = (rng.standard_normal(frontend.window_samples(frames)) *
           rng.uniform(0.01, 0.3)).astype(np.float32)
    pcm[: rng.integers(0, 4000)] *= 0.01
    return frontend.logmel_numpy(pcm)[:frames]


class ContainerTest(unittest.TestCase):
    def sample(self):
        return container.write_container("MODL", {"a": 1, "name": "é"}, [
            ("w", np.arange(12, dtype=np.float32).reshape(3, 4)),
            ("codes", np.arange(5, dtype=np.uint8)),
            ("ids", np.arange(7, dtype=np.uint16).reshape(7, 1, 1, 1)),
        ])

    def test_round_trip_and_layout(self):
        data = self.sample()
        c = container.read_container(data, "MODL")
        self.assertEqual(c.meta["name"], "é")
        np.testing.assert_array_equal(c["w"], np.arange(12, dtype=np.float32).reshape(3, 4))
        self.assertEqual(c["ids"].shape, (7, 1, 1, 1))
        magic, version, kind, meta_len, n, file_bytes = struct.unpack_from("<8sI4sIIQ", data)
        self.assertEqual((magic, version, kind, n, file_bytes),
                         (b"EARSHOT\x1a", 1, b"MODL", 3, len(data)))
        table = 32 + (meta_len + 7) // 8 * 8
        for i in range(n):
            offset, nbytes = struct.unpack_from("<QQ", data, table + 72 * i + 56)
            self.assertEqual(offset % 64, 0)

    def corrupt(self, data, at, value):
        buf = bytearray(data)
        buf[at:at + len(value)] = value
        return bytes(buf)

    def expect_error(self, data, text, kind="MODL"):
        with self.assertRaises(container.ContainerError) as ctx:
            container.read_container(data, kind)
        self.assertIn(text, str(ctx.exception))

    def test_rejects_corrupt_inputs(self):
        data = self.sample()
        self.expect_error(data[:20], "too short")
        self.expect_error(self.corrupt(data, 0, b"X"), "bad magic")
        self.expect_error(self.corrupt(data, 8, struct.pack("<I", 2)), "version")
        self.expect_error(data, "kind", kind="SHRD")
        self.expect_error(data[:-1], "header says")
        self.expect_error(self.corrupt(data, len(data) - 40, b"\x01"), "checksum")
        self.expect_error(self.corrupt(data, len(data) - 1, bytes([data[-1] ^ 1])), "checksum")

    def test_rejects_bad_tables_even_with_valid_checksum(self):
        import hashlib
        data = self.sample()
        meta_len = struct.unpack_from("<I", data, 16)[0]
        table = 32 + (meta_len + 7) // 8 * 8

        def resign(buf):
            buf = bytearray(buf)
            buf[-32:] = hashlib.sha256(bytes(buf[:-32])).digest()
            return bytes(buf)

        off0 = struct.unpack_from("<Q", data, table + 56)[0]
        self.expect_error(resign(self.corrupt(data, table + 56, struct.pack("<Q", off0 + 8))),
                          "aligned")
        off1 = struct.unpack_from("<Q", data, table + 72 + 56)[0]
        self.expect_error(resign(self.corrupt(data, table + 72 + 56, struct.pack("<Q", off0))),
                          "overlap")
        self.expect_error(resign(self.corrupt(data, table + 72 + 56, struct.pack("<Q", 1 << 40))),
                          "outside")
        self.expect_error(resign(self.corrupt(data, table + 64, struct.pack("<Q", 4))), "bytes")
        self.expect_error(resign(self.corrupt(data, table + 72, b"w\0")), "duplicate")
        self.expect_error(resign(self.corrupt(data, table + 32, struct.pack("<I", 9))), "dtype")
        self.expect_error(resign(self.corrupt(data, 32, b"}")), "JSON")
        del off1


class ExportParityTest(unittest.TestCase):
    def check_file(self, path, net=None):
        c = container.read_container_file(path, "MODL")
        meta = c.meta
        self.assertEqual(meta["format"], "earshot-model")
        # model_version 1: f32 weights; 2: f16 weights (half the file). Biases are f32.
        self.assertIn(meta["model_version"], (1, 2))
        weight_dtype = np.float16 if meta["model_version"] == 2 else np.float32
        # The music detector of the live listen, when the file carries one, is stored in f32
        # (docs/MUSIC_DETECTOR.md) and is not part of the embedding network.
        detector = {n: a for n, a in c.sections.items() if n.startswith("music_detector.")}
        self.assertEqual(bool(detector), "music_detector" in meta)
        for name, array in detector.items():
            self.assertEqual(array.dtype, np.float32, name)
        network = {n: a for n, a in c.sections.items() if n not in detector}
        for name, array in network.items():
            self.assertEqual(array.dtype, weight_dtype if name.endswith(".weight") else np.float32,
                             name)
        for key in frontend.DEFAULT_PARAMS:
            self.assertIn(key, meta)
        self.assertEqual(meta["input_norm"], "patch_mean")
        self.assertEqual(meta["layers"][-1]["type"], "l2norm")
        n_params = sum(a.size for a in network.values())
        self.assertLessEqual(n_params, 1_500_000)
        self.assertEqual(n_params, meta["n_params"])
        if net is None:  # rebuild the torch model from the file (unfolded: BN = identity)
            net = model_file.net_from_model_file(path)
        self.assertLessEqual(net.flops(), 30_000_000)
        net.eval()
        rng = np.random.default_rng(5)
        for _ in range(3):
            logmel = random_logmel(rng)
            ref = reference.embed(c, logmel)
            with torch.no_grad():
                out = net(torch.from_numpy(logmel)[None])[0].double().numpy()
            self.assertEqual(ref.shape, (meta["embedding_dim"],))
            self.assertAlmostEqual(float(np.linalg.norm(ref)), 1.0, places=6)
            cos = float(ref @ out / np.linalg.norm(out))
            self.assertGreaterEqual(cos, PARITY_MIN_COSINE)
        return c

    def test_export_of_trained_style_net_matches_torch(self):
        torch.manual_seed(3)
        net = EarshotNet()
        net.reset_he(torch.Generator().manual_seed(3))
        net.train()
        with torch.no_grad():  # give BatchNorm non-trivial running statistics
            for _ in range(3):
                net(torch.from_numpy(np.stack([random_logmel(np.random.default_rng(k))
                                               for k in range(8)])))
            for bn in net.norms:
                bn.weight.uniform_(0.5, 1.5)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "t.emod")
            model_file.write_model_file(path, net, "test", index_pq_m=32)
            c = self.check_file(path, net)
            self.assertEqual(c.meta["index_pq_m"], 32)

    def test_unfolded_batchnorm_trains_on_from_the_file(self):
        """A network rebuilt from a model file and unfolded (for a warm start) computes what
        the file does in eval mode, and nearly that in train mode on its unfolding batch; its
        convs have unit-variance outputs on that batch, as in training from scratch."""
        net = EarshotNet(channels=(8, 16, 16, 32, 32), embedding_dim=16)
        net.reset_he(torch.Generator().manual_seed(6))
        with torch.no_grad():
            for bn in net.norms:
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.2, 0.2)
                bn.running_mean.uniform_(-0.3, 0.3)
                bn.running_var.uniform_(0.5, 2.0)
        net.eval()
        x = torch.from_numpy(np.stack([random_logmel(np.random.default_rng(k))
                                       for k in range(32)]))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "t.emod")
            model_file.write_model_file(path, net, "test", weights="f32")
            warm = model_file.net_from_model_file(path).unfold_batchnorm(x)
        with torch.no_grad():
            want = net(x)
            cos_eval = (warm.eval()(x) * want).sum(1)
            cos_train = (warm.train()(x) * want).sum(1)
            first = warm.convs[0](x.sub(x.mean(dim=(1, 2), keepdim=True)).unsqueeze(1))
        self.assertGreater(float(cos_eval.min()), 0.99999)
        self.assertGreater(float(cos_train.min()), 0.999)
        np.testing.assert_allclose(first.var(dim=(0, 2, 3), unbiased=False).numpy(), 1.0,
                                   rtol=1e-3)

    def test_network_hash_ignores_metadata_and_the_detector(self):
        net = EarshotNet(channels=(4, 4, 4, 4, 8), embedding_dim=8)
        net.reset_he(torch.Generator().manual_seed(7))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "t.emod")
            model_file.write_model_file(path, net, "test")
            before = model_file.network_hash(path)
            c = container.read_container_file(path, "MODL")
            sections = list(c.sections.items()) + [
                ("music_detector.feature_mean", np.zeros(3, np.float32))]
            model_file.rewrite_model_file(path, dict(c.meta, threshold=0.4), sections)
            self.assertEqual(model_file.network_hash(path), before)
            with torch.no_grad():
                net.dense.bias[0] += 1.0
            model_file.write_model_file(path, net, "test")
            self.assertNotEqual(model_file.network_hash(path), before)

    def test_f32_and_f16_weight_storage(self):
        net = EarshotNet()
        net.reset_he(torch.Generator().manual_seed(4))
        net.eval()
        with tempfile.TemporaryDirectory() as tmp:
            paths = {w: os.path.join(tmp, f"{w}.emod") for w in model_file.WEIGHT_DTYPES}
            for weights, path in paths.items():
                model_file.write_model_file(path, net, "test", weights=weights)
            c16, c32 = (self.check_file(paths[w], net) for w in ("f16", "f32"))
            self.assertEqual((c16.meta["model_version"], c32.meta["model_version"]), (2, 1))
            # Weights are all but a few hundred of the parameters: the f16 file is about half.
            self.assertLess(os.path.getsize(paths["f16"]), 0.52 * os.path.getsize(paths["f32"]))
            for name, array in c32.sections.items():
                np.testing.assert_array_equal(c16[name], array.astype(c16[name].dtype))

    def test_export_copies_thresholds_of_the_same_network_only(self):
        net = EarshotNet()
        net.reset_he(torch.Generator().manual_seed(5))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "calibrated.emod")
            model_file.write_model_file(path, net, "test", index_pq_m=32)
            c = container.read_container_file(path, "MODL")
            meta = dict(c.meta, threshold_by_n=[0.5, 0.4], threshold=0.4,
                        threshold_by_n_by_code={"16": [0.45, 0.35]})
            with open(path, "wb") as f:
                f.write(container.write_container("MODL", meta, list(c.sections.items())))
            copied = model_file.thresholds_of(path, net.export_layers()[0])
            self.assertEqual(copied, {"threshold_by_n": [0.5, 0.4], "threshold": 0.4,
                                      "threshold_by_n_by_code": {"16": [0.45, 0.35]}})
            other = EarshotNet(channels=[8, 16, 32, 64, 96])
            with self.assertRaisesRegex(RuntimeError, "another network"):
                model_file.thresholds_of(path, other.export_layers()[0])

    def test_random_init_file(self):
        self.check_file(os.path.join(MODELS_DIR, "random-init-v0.emod"))

    def test_trained_file(self):
        # v1 and v2: the bases v2 and v3 are trained from
        for name in ("earshot-v1", "earshot-v2", "earshot-v3"):
            with self.subTest(name):
                self.check_trained_file(name)

    def check_trained_file(self, name):
        path = os.path.join(MODELS_DIR, name + ".emod")
        if not os.path.exists(path):
            self.skipTest(f"models/{name}.emod not exported yet")
        c = self.check_file(path)
        self.assertEqual(c.meta["name"], name)
        self.assertIn("seed", c.meta["training"])
        # Calibrated thresholds, and the PQ resolution they were calibrated for.
        self.assertTrue(c.meta["threshold_by_n"])
        self.assertEqual(c.meta["embedding_dim"] % c.meta["index_pq_m"], 0)


def train_config(**changes):
    """A checkpoint's config as train.py records it (its arguments), with folders of a machine."""
    config = {"run": "t", "corpus": "/mnt/corpora/earshot/train",
              "dev_queries": "/mnt/corpora/q-train-dev", "seed": 1, "batch": 8,
              "budget_min": 1.0, "lr": 0.002, "weight_decay": 1e-4, "loss": "ntxent", "tau": 0.05,
              "margin": 0.4, "memory": 0, "channels": "4,4,4,4,8", "dim": 8, "threads": 2,
              "ckpt_min": 5.0, "dev_min": 20.0, "export_min": 0.0, "n_dev_songs": 16,
              "n_dev_seen": 4, "rt60_max": 1.0, "snr_db": "-5,15", "rir_sec": 0.75,
              "exclude_albums": "", "holdout_albums": "", "holdout_frac": 0.25,
              "album_frac": 0.0, "album_group": 8, "synthetic_noise": 0.0, "speed_variants": "",
              "spec_mask": 0.0, "init_from": "", "init_from_model": ""}
    config.update(changes)
    return config


def write_checkpoint(path, config, seed=0):
    net = EarshotNet(channels=[int(c) for c in config["channels"].split(",")],
                     embedding_dim=config["dim"])
    net.reset_he(torch.Generator().manual_seed(seed))
    torch.save({"net": net.state_dict(), "config": config,
                "state": {"step": 12, "train_s": 90.0, "done": True,
                          "history": [{"unseen/all/all": 50.0, "step": 12}],
                          "pieces": [{"from_step": 0, "from_train_min": 0.0, "to_step": 12,
                                      "to_train_min": 1.5, "wall_min": 1.7}]},
                "train_ids": ["a", "b", "c"], "dev": {"unseen": ["d"], "seen": ["a"], "neg": []},
                "holdout": ["e"], "excluded": ["f"]}, path)
    net.eval()
    return net


class CheckpointExportTest(unittest.TestCase):
    def export(self, tmp, config, **kwargs):
        ckpt = os.path.join(tmp, "last.pt")
        net = write_checkpoint(ckpt, config)
        out = os.path.join(tmp, "m.emod")
        digest = checkpoint.export_checkpoint(ckpt, out, **kwargs)
        with open(out, "rb") as f:
            data = f.read()
        return net, data, digest

    def test_export_writes_the_network_and_geometry(self):
        with tempfile.TemporaryDirectory() as tmp:
            net, data, digest = self.export(tmp, train_config())
            c = container.read_container(data, "MODL")
            self.assertEqual(c.sha256_hex, digest)
            for name, array in model_file.export_tensors(net):
                np.testing.assert_array_equal(c[name], array)
            for key, value in frontend.DEFAULT_GEOMETRY.items():
                self.assertEqual(c.meta[key], value)
            self.assertEqual(c.meta["index_pq_m"], model_file.DEFAULT_INDEX_PQ_M)
            self.assertEqual(c.meta["model_version"], 2)
            # The same checkpoint always gives the same bytes.
            _, again, _ = self.export(tmp, train_config())
            self.assertEqual(again, data)

    def test_training_record_comes_from_the_arguments(self):
        config = train_config(snr_db="-8,8", rt60_max=2.5, synthetic_noise=0.25,
                              speed_variants="0.9,1.1", spec_mask=0.5,
                              spec_mask_shape={"n_freq": 3, "freq_max": 6, "n_time": 2,
                                               "time_max": 4},
                              album_frac=0.5, album_group=4)
        with tempfile.TemporaryDirectory() as tmp:
            _, data, _ = self.export(tmp, config)
        meta = container.read_container(data, "MODL").meta
        record = meta["training"]
        self.assertNotIn("/mnt", json.dumps(meta))  # folders by name, never by path
        self.assertEqual(record["data"], "earshot train set (train): 3 songs; dev songs held out")
        self.assertEqual(record["arguments"]["corpus"], "train")
        self.assertEqual(record["arguments"]["dev_queries"], "q-train-dev")
        expected = {k: v for k, v in config.items()
                    if k not in ("corpus", "dev_queries", "init_from", "init_from_model",
                                  "spec_mask_shape")}
        self.assertEqual({k: v for k, v in record["arguments"].items()
                          if k not in ("corpus", "dev_queries")}, expected)
        self.assertEqual((record["seed"], record["steps"], record["train_minutes"]), (1, 12, 1.5))
        self.assertEqual(record["album_groups"], {"share": 0.5, "size": 4})
        self.assertEqual(record["pieces"], [{"from_step": 0, "from_train_min": 0.0,
                                             "to_step": 12, "to_train_min": 1.5,
                                             "wall_min": 1.7}])
        text = record["augmentation"]
        for part in ("RT60 0.2-2.5 s", "train noise and synthetic noise (0.25 of the draws) "
                     "-8..+8 dB SNR", "speeds x0.9, x1.1", "masks on 0.5 of the degraded views "
                     "(3 mel bands of up to 6 bins, 2 runs of up to 4 frames)"):
            self.assertIn(part, text)

    def test_augmentation_of_speed_rooms_and_devices(self):
        text = checkpoint.describe_augmentation(train_config(
            rt60_max=3.0, rt60_log=True, rir_sec=2.0, drr_db="-15,10", p_device=0.5,
            speed_range=0.03, p_speed=0.5))
        for part in ("RT60 log-uniform 0.2-3.0 s, 2.0 s long, DRR -15..+10 dB",
                     "loudspeaker and microphone responses on 0.5 of the views",
                     "0.5 of the positives at speed 1+-0.03 (half pitch and tempo, half tempo "
                     "alone)"):
            self.assertIn(part, text)

    def test_augmentation_of_the_default_arguments(self):
        self.assertEqual(
            checkpoint.describe_augmentation(train_config()),
            "synthetic RIR (RT60 0.2-1.0 s, 0.75 s long, DRR -6..+6 dB), Butterworth "
            "band-pass, tilt +-6 dB, tanh soft clip 0-12 dB, train noise -5..+15 dB SNR, "
            "level -30..-12 dBFS, 16-bit, +-0.25 s shift")

    def test_committed_model_has_the_default_geometry(self):
        """The dev metric and the export defaults measure and write what ships."""
        with open(os.path.join(MODELS_DIR, "SHIPPED")) as f:
            name = f.read().strip()
        path = os.path.join(MODELS_DIR, name)
        self.assertTrue(os.path.exists(path), f"models/SHIPPED names {name}, which is missing")
        meta = container.read_container_file(path, "MODL").meta
        self.assertEqual(frontend.params_from_meta(meta), frontend.DEFAULT_PARAMS)
        for key, value in frontend.DEFAULT_GEOMETRY.items():
            self.assertEqual(meta[key], value, key)
        self.assertEqual(meta["index_pq_m"], model_file.DEFAULT_INDEX_PQ_M)

    def test_random_model_is_reproduced(self):
        """make_random_model writes the committed random-init-v0.emod's tensors and metadata;
        the file predates the query_hop_frames key (the core reads its absence as hop_frames,
        which the tool writes)."""
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "r.emod")
            argv = sys.argv
            sys.argv = ["make_random_model", "--out", out]
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    make_random_model.main()
            finally:
                sys.argv = argv
            made = container.read_container_file(out, "MODL")
        committed = container.read_container_file(
            os.path.join(MODELS_DIR, "random-init-v0.emod"), "MODL")
        self.assertEqual(made.meta.pop("query_hop_frames"), made.meta["hop_frames"])
        self.assertEqual(made.meta, committed.meta)
        self.assertEqual(list(made.meta), list(committed.meta))
        self.assertEqual(list(made.sections), list(committed.sections))
        for name, array in committed.sections.items():
            np.testing.assert_array_equal(made[name], array)


class FrontendGoldenTest(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(GOLDEN):
            self.skipTest("tests/data/frontend_golden.json not present")
        with open(GOLDEN) as f:
            self.meta = json.load(f)
        data_dir = os.path.dirname(GOLDEN)
        self.signal = np.fromfile(os.path.join(data_dir, self.meta["signal_file"]),
                                  dtype="<i2").astype(np.float32) / 32768.0
        self.golden = np.fromfile(os.path.join(data_dir, self.meta["logmel_file"]),
                                  dtype="<f4").reshape(self.meta["n_frames"], self.meta["n_mels"])
        self.params = frontend.params_from_meta(self.meta)

    def test_mel_weight_row_sums(self):
        sums = frontend.mel_weights(self.params).astype(np.float64).sum(axis=1)
        np.testing.assert_allclose(sums, self.meta["mel_weight_row_sums"], atol=1e-5)

    def test_numpy_frontend(self):
        out = frontend.logmel_numpy(self.signal, self.params)
        self.assertEqual(out.shape, self.golden.shape)
        np.testing.assert_allclose(out, self.golden, atol=FRONTEND_ABS_TOL, rtol=0)

    def test_torch_frontend(self):
        out = frontend.TorchFrontend(self.params)(torch.from_numpy(self.signal)).numpy()
        self.assertEqual(out.shape, self.golden.shape)
        np.testing.assert_allclose(out, self.golden, atol=FRONTEND_ABS_TOL, rtol=0)
        print(f"\ntorch front-end max |diff| vs golden: {np.abs(out - self.golden).max():.2e}")


if __name__ == "__main__":
    unittest.main()
