// What the fuzz targets (tests/fuzz/*_fuzz.cc) share: the checksum fix-up that lets mutated
// containers reach the parsers behind the SHA-256 check, and a small but complete model and
// index written by the real writers (ContainerWriter, IndexBuilder) in the real formats. Seed
// corpora are these files (earshot_fuzz_seeds writes them) plus real audio files; they are
// small so that each execution takes microseconds, not the milliseconds of a 2.6 MB model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/container.h"
#include "core/index.h"
#include "core/index_builder.h"
#include "core/model.h"
#include "core/sha256.h"
#include "tests/model_test_util.h"

namespace earshot::fuzz {

// The input with its trailing 32 bytes replaced by the SHA-256 of everything before them: the
// fuzz-only way past the checksum (a mutated file otherwise fails it and nothing behind it runs).
// Inputs shorter than a checksum are returned as they are.
inline std::vector<uint8_t> with_checksum(const uint8_t* data, size_t size) {
    std::vector<uint8_t> out(data, data + size);
    if (size < kSha256Bytes) return out;
    const auto digest = sha256(out.data(), size - kSha256Bytes);
    std::memcpy(out.data() + size - kSha256Bytes, digest.data(), kSha256Bytes);
    return out;
}

// A two-conv + dense model like the shipped one in kind (conv2d, dense, l2norm; f32), 8-d
// embeddings (the index needs a multiple of 4), 5-frame patches, with a music detector
// (4 * 64 - 1 features -> 8 -> 1) so the live gate runs too.
inline test::ModelSpec model_spec() {
    test::ModelSpec spec = test::tiny_model(11);
    std::mt19937 rng(13);
    spec.meta["embedding_dim"] = 8;
    spec.meta["layers"][2]["out"] = 8;
    spec.find("fc.weight")->shape = {8, 240};
    spec.find("fc.weight")->values = test::random_values(8 * 240, rng, 0.1f);
    spec.find("fc.bias")->shape = {8};
    spec.find("fc.bias")->values = test::random_values(8, rng, 0.1f);
    const uint32_t n_features = 4 * 64 - 1;
    spec.meta["music_detector"] = {{"format_version", 1},
                                   {"feature_kind", "band_mean_std_tdiff_fdiff"},
                                   {"context_frames", 5},
                                   {"n_mels", 64},
                                   {"layer_sizes", {n_features, 8, 1}},
                                   {"threshold", 0.5}};
    std::vector<float> mean(n_features, -6.0f), std(n_features, 2.0f);
    spec.tensors.push_back({"music_detector.feature_mean", DType::kF32, {n_features}, mean});
    spec.tensors.push_back({"music_detector.feature_std", DType::kF32, {n_features}, std});
    spec.tensors.push_back({"music_detector.dense1.weight", DType::kF32, {8, n_features},
                            test::random_values(8 * n_features, rng, 0.1f)});
    spec.tensors.push_back(
        {"music_detector.dense1.bias", DType::kF32, {8}, test::random_values(8, rng, 0.1f)});
    spec.tensors.push_back({"music_detector.dense2.weight", DType::kF32, {1, 8},
                            test::random_values(8, rng, 0.5f)});
    spec.tensors.push_back({"music_detector.dense2.bias", DType::kF32, {1}, {0.2f}});
    return spec;
}

inline std::shared_ptr<const Model> load_model() {
    const std::vector<uint8_t> bytes = model_spec().build();
    auto model = Model::load(bytes.data(), bytes.size(), "fuzz.emod");
    if (!model) {
        std::fprintf(stderr, "fuzz fixture model: %s\n", model.message().c_str());
        std::abort();
    }
    return model.value();
}

// Unit vectors around a few cluster centres: the embeddings of `n_songs` songs of 40 windows.
inline std::vector<float> song_embeddings(int song, int dim) {
    std::mt19937 rng(100 + song);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> out(size_t(40) * dim);
    for (size_t i = 0; i < 40; ++i) {
        float norm = 0.0f;
        for (int d = 0; d < dim; ++d) {
            float& v = out[i * dim + d];
            v = normal(rng) + (d == (song + int(i) / 10) % dim ? 3.0f : 0.0f);
            norm += v * v;
        }
        for (int d = 0; d < dim; ++d) out[i * dim + d] /= std::sqrt(norm);
    }
    return out;
}

// A 6-song index (8 lists, PQ 4 x 8 bits, two shards, one song with a silent run) built by
// IndexBuilder for `model`: manifest.json, quantizer.eq, shard-*. opq_rounds > 0: with a learned
// rotation before PQ, and unit_norm scores. pair_span > 0 (format 2): with the pair-key level
// and directory pages of 2 blocks, what a lazy client reads.
inline IndexFiles build_index(const ModelInfo& model, int opq_rounds = 0,
                              int format_version = kIndexVersion1, uint32_t pair_span = 0) {
    IndexBuildParams params = index_build_default_params();
    params.format_version = format_version;
    params.pair_span = pair_span;
    params.pair_keys_per_page = 4;
    params.directory_page_blocks = 2;
    params.n_lists = 8;
    params.pq_m = 4;
    params.opq_rounds = opq_rounds;
    params.unit_norm = opq_rounds > 0;
    params.kmeans_iterations = 4;
    params.max_shard_bytes = 1500;
    auto builder = IndexBuilder::create(model, params);
    if (!builder) {
        std::fprintf(stderr, "fuzz fixture index: %s\n", builder.message().c_str());
        std::abort();
    }
    for (int s = 0; s < 6; ++s) {
        SongInfo info;
        info.id = "song-" + std::to_string(s);
        info.title = "Song " + std::to_string(s);
        info.album = s % 2 ? "Album" : "";
        info.duration_s = 20.0;
        const std::vector<float> e = song_embeddings(s, model.embedding_dim);
        std::vector<uint8_t> stored(40, 1);
        if (s == 2) std::fill(stored.begin() + 10, stored.begin() + 16, uint8_t(0));
        Status st = builder->add_song(info, e.data(), 40, s == 2 ? stored.data() : nullptr);
        if (!st) {
            std::fprintf(stderr, "fuzz fixture index: %s\n", st.message().c_str());
            std::abort();
        }
    }
    auto files = builder->finish();
    if (!files) {
        std::fprintf(stderr, "fuzz fixture index: %s\n", files.message().c_str());
        std::abort();
    }
    return std::move(files.value());
}

}  // namespace earshot::fuzz
