// Synthetic catalogues for the index and matcher tests: no model, no audio, deterministic.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/index.h"
#include "core/index_builder.h"
#include "core/model.h"

namespace earshot::testing {

// A ModelInfo as Model::load would fill it for a v1 model (dim 128, hop 32 frames = 0.5 s).
inline ModelInfo fake_model_info(const std::string& hash_hex = std::string(64, 'a')) {
    ModelInfo info;
    info.name = "fake-test-model";
    info.hash_hex = hash_hex;
    info.embedding_dim = 128;
    info.hop_frames = 32;
    info.context_frames = 62;
    return info;
}

inline void normalize(float* x, int dim) {
    double n = 0;
    for (int d = 0; d < dim; ++d) n += double(x[d]) * x[d];
    const float inv = float(1.0 / std::sqrt(std::max(n, 1e-24)));
    for (int d = 0; d < dim; ++d) x[d] *= inv;
}

// Unit vectors drawn around n_clusters random unit centres (noise of norm ~spread: cosine to the
// centre ~1/sqrt(1 + spread^2), 0.7 by default), so the data has the cluster structure IVF
// relies on.
inline std::vector<float> clustered_vectors(size_t n, int dim, int n_clusters, uint64_t seed,
                                            float spread = 1.0f) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> centres(size_t(n_clusters) * dim);
    for (float& v : centres) v = normal(rng);
    for (int c = 0; c < n_clusters; ++c) normalize(&centres[size_t(c) * dim], dim);
    std::vector<float> out(n * dim);
    const float per_dim = spread / std::sqrt(float(dim));
    for (size_t i = 0; i < n; ++i) {
        const float* c = &centres[(i * 7919 + rng() % 3) % n_clusters * dim];
        for (int d = 0; d < dim; ++d) out[i * dim + d] = c[d] + per_dim * normal(rng);
        normalize(&out[i * dim], dim);
    }
    return out;
}

// A song as a slow random walk on the unit sphere (neighbouring embeddings are similar, like
// 1 s windows hopped by 0.5 s), starting near one of n_clusters "genre" centres.
struct SyntheticSong {
    SongInfo info;
    std::vector<float> embeddings;  // n x dim
    size_t n = 0;
};

inline std::vector<SyntheticSong> synthetic_catalog(size_t n_songs, size_t embeddings_per_song,
                                                    int dim, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> centres = clustered_vectors(16, dim, 16, seed + 1);
    std::vector<SyntheticSong> songs(n_songs);
    for (size_t s = 0; s < n_songs; ++s) {
        SyntheticSong& song = songs[s];
        song.info.id = "song-" + std::to_string(s);
        song.info.title = "Title " + std::to_string(s);
        song.info.album = "Album " + std::to_string(s % 7);
        song.n = embeddings_per_song + (s % 5);  // lengths differ a little
        song.info.duration_s = 0.5 * double(song.n) + 0.5;
        song.embeddings.resize(song.n * dim);
        std::vector<float> x(dim);
        const float* centre = &centres[(s % 16) * dim];
        for (int d = 0; d < dim; ++d) x[d] = centre[d] + 1.2f * normal(rng) / std::sqrt(float(dim));
        normalize(x.data(), dim);
        for (size_t j = 0; j < song.n; ++j) {
            for (int d = 0; d < dim; ++d)
                x[d] = 0.8f * x[d] + 0.6f * normal(rng) / std::sqrt(float(dim));
            normalize(x.data(), dim);
            std::copy(x.begin(), x.end(), song.embeddings.begin() + j * dim);
        }
    }
    return songs;
}

// A noisy copy of embeddings (cosine to the original ~ 1 / sqrt(1 + noise^2)).
inline std::vector<float> noisy_copy(const float* x, size_t n, int dim, float noise,
                                     uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> out(x, x + n * dim);
    for (size_t i = 0; i < n; ++i) {
        for (int d = 0; d < dim; ++d)
            out[i * dim + d] += noise * normal(rng) / std::sqrt(float(dim));
        normalize(&out[i * dim], dim);
    }
    return out;
}

// Quick builds: 32 lists, PQ 16 x 8 bits.
inline IndexBuildParams small_build_params() {
    IndexBuildParams p = index_build_default_params();
    p.n_lists = 32;
    p.kmeans_iterations = 10;
    return p;
}

// IndexBuilder::create() for parameters a test knows are valid (aborts otherwise).
inline IndexBuilder new_builder(const ModelInfo& model, const IndexBuildParams& params) {
    Result<IndexBuilder> builder = IndexBuilder::create(model, params);
    if (!builder) {
        std::fprintf(stderr, "IndexBuilder::create: %s\n", builder.message().c_str());
        std::abort();
    }
    return std::move(builder.value());
}

// Builds the index files of a synthetic catalogue (test failures on any error).
inline IndexFiles build_catalog(const std::vector<SyntheticSong>& songs,
                                const IndexBuildParams& params, const ModelInfo& model) {
    IndexBuilder builder = new_builder(model, params);
    for (const auto& s : songs) EXPECT_TRUE(builder.add_song(s.info, s.embeddings.data(), s.n));
    Result<IndexFiles> files = builder.finish();
    EXPECT_TRUE(files.is_ok()) << files.message();
    return files ? std::move(files.value()) : IndexFiles();
}

// The names of the shard files, in name order.
inline std::vector<std::string> shard_names(const IndexFiles& files) {
    std::vector<std::string> names;
    for (const auto& [name, bytes] : files.files)
        if (name.rfind("shard-", 0) == 0) names.push_back(name);
    return names;
}

// Loads every file of a built index into `index` (manifest, quantizer, all shards; for format
// v2 the directory, then every block of songs.esb).
inline Status load_all(const IndexFiles& files, Index* index) {
    const auto& manifest = files.files.at("manifest.json");
    Status st = index->load_manifest(std::string(manifest.begin(), manifest.end()));
    if (!st) return st;
    const auto& q = files.files.at("quantizer.eq");
    st = index->add_quantizer(q.data(), q.size(), "quantizer.eq");
    if (!st) return st;
    if (index->version() == kIndexVersion2) {
        const auto& directory = files.files.at("directory.ed");
        st = index->add_directory(directory.data(), directory.size(), "directory.ed");
        if (!st) return st;
        const auto& blocks = files.files.at("songs.esb");
        for (size_t b = 0; b < index->n_shards_expected(); ++b) {
            const Index::FileRange r = index->shard_range(b);
            if (r.offset + r.bytes > blocks.size()) return Status::error("block past the end");
            st = index->add_shard(blocks.data() + r.offset, r.bytes, "block " + std::to_string(b));
            if (!st) return st;
        }
        return Status::ok();
    }
    for (const auto& [name, bytes] : files.files) {
        if (name.rfind("shard-", 0) != 0) continue;
        st = index->add_shard(bytes.data(), bytes.size(), name);
        if (!st) return st;
    }
    return Status::ok();
}

}  // namespace earshot::testing
