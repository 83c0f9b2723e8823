// The scale harness's generator (bench/code_space_catalogue.h): deterministic for a seed, the
// real songs copied byte for byte, and an output that `earshot verify` accepts.
#include "bench/code_space_catalogue.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "tests/index_test_util.h"

namespace {

namespace fs = std::filesystem;
using namespace earshot;
using namespace earshot::testing;

// A small index of a synthetic catalogue with some windows not stored (absent runs).
IndexFiles build_with_gaps(size_t n_songs, uint64_t seed, const ModelInfo& model,
                           const IndexBuildParams& params = small_build_params()) {
    const auto songs = synthetic_catalog(n_songs, 60, model.embedding_dim, seed);
    IndexBuilder builder = new_builder(model, params);
    for (size_t s = 0; s < songs.size(); ++s) {
        std::vector<uint8_t> stored(songs[s].n, 1);
        for (size_t j = 10 + s; j < 20 + 2 * s && j < stored.size(); ++j) stored[j] = 0;
        EXPECT_TRUE(
            builder.add_song(songs[s].info, songs[s].embeddings.data(), songs[s].n, stored.data()));
    }
    Result<IndexFiles> files = builder.finish();
    EXPECT_TRUE(files.is_ok()) << files.message();
    return files ? std::move(files.value()) : IndexFiles();
}

// Written to a temporary folder, the files pass `earshot verify`.
void expect_cli_verifies(const IndexFiles& files) {
    const fs::path dir =
        fs::temp_directory_path() / ("earshot-code-space-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    for (const auto& [name, bytes] : files.files) {
        std::ofstream out(dir / name, std::ios::binary);
        out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    }
    const std::string cmd =
        std::string(EARSHOT_CLI_PATH) + " verify " + dir.string() + " >/dev/null 2>&1";
    const int status = std::system(cmd.c_str());
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cmd;
    fs::remove_all(dir);
}

class CodeSpaceCatalogueTest : public ::testing::Test {
protected:
    void SetUp() override {
        real_files_ = build_with_gaps(6, 1, model_);
        ASSERT_TRUE(load_all(real_files_, &real_));
        // Another catalogue, quantizer and model hash: its codes are re-encoded.
        source_files_ = build_with_gaps(5, 2, source_model_);
        ASSERT_TRUE(load_all(source_files_, &source_));
        ASSERT_FALSE(real_.quantizer().coarse_centroids == source_.quantizer().coarse_centroids);
        params_.n_synthetic_songs = 23;
        params_.seed = 7;
        params_.list_block = 8;
        params_.max_shard_bytes = 16 << 10;  // several shards
    }
    IndexFiles generate(const CodeSpaceCatalogueParams& params) {
        Result<IndexFiles> files = make_code_space_catalogue(model_, real_, source_, params);
        EXPECT_TRUE(files.is_ok()) << files.message();
        return files ? std::move(files.value()) : IndexFiles();
    }

    ModelInfo model_ = fake_model_info();
    ModelInfo source_model_ = fake_model_info(std::string(64, 'b'));
    IndexFiles real_files_, source_files_;
    Index real_{model_}, source_{source_model_};
    CodeSpaceCatalogueParams params_ = code_space_catalogue_default_params();
};

TEST_F(CodeSpaceCatalogueTest, SameSeedSameBytesOtherSeedOtherCodes) {
    const IndexFiles a = generate(params_), b = generate(params_);
    EXPECT_EQ(a.files, b.files);
    EXPECT_GT(shard_names(a).size(), 1u);
    CodeSpaceCatalogueParams other = params_;
    other.seed = 8;
    const IndexFiles c = generate(other);
    EXPECT_EQ(c.files.at("quantizer.eq"), a.files.at("quantizer.eq"));
    EXPECT_NE(c.files, a.files);
}

TEST_F(CodeSpaceCatalogueTest, ShardSinkTakesTheShardsAsTheyFill) {
    const IndexFiles whole = generate(params_);
    CodeSpaceCatalogueParams streamed = params_;
    std::map<std::string, std::vector<uint8_t>> sunk;
    streamed.shard_sink = [&](const std::string& name, std::vector<uint8_t> bytes) {
        sunk[name] = std::move(bytes);
        return Status::ok();
    };
    IndexFiles rest = generate(streamed);
    EXPECT_EQ(rest.files.size(), 2u);  // manifest.json and quantizer.eq
    EXPECT_GT(sunk.size(), 1u);
    for (auto& [name, bytes] : rest.files) sunk[name] = bytes;
    EXPECT_EQ(sunk, whole.files);
}

TEST_F(CodeSpaceCatalogueTest, RealSongsCopiedExactlyAndSyntheticKeepSourceTimelines) {
    const IndexFiles files = generate(params_);
    EXPECT_EQ(files.files.at("quantizer.eq"), real_files_.files.at("quantizer.eq"));
    Index out(model_);
    ASSERT_TRUE(load_all(files, &out));
    ASSERT_EQ(out.n_songs(), real_.n_songs() + params_.n_synthetic_songs);
    const size_t pq_m = size_t(real_.pq_m());
    // The real songs lie spread among the synthetic ones, in order; the rest are synthetic
    // songs 0, 1, ... in order.
    const size_t total = out.n_songs();
    std::vector<size_t> real_at, synthetic_at;
    for (size_t r = 0; r < real_.n_songs(); ++r)
        real_at.push_back(real_song_position(r, real_.n_songs(), total));
    EXPECT_GT(real_at.front(), 0u);  // not first: 2, 7, 12, 16, 21, 26 of 29
    EXPECT_LT(real_at.back(), total - 1);
    for (size_t s = 0; s < total; ++s)
        if (std::find(real_at.begin(), real_at.end(), s) == real_at.end())
            synthetic_at.push_back(s);
    ASSERT_EQ(synthetic_at.size(), params_.n_synthetic_songs);
    for (size_t r = 0; r < real_.n_songs(); ++r) {
        const size_t s = real_at[r];
        if (r > 0) {
            ASSERT_GT(s, real_at[r - 1]);
        }
        EXPECT_EQ(out.song(s).id, real_.song(r).id);
        EXPECT_EQ(out.song(s).title, real_.song(r).title);
        EXPECT_EQ(out.song(s).album, real_.song(r).album);
        EXPECT_EQ(out.song(s).duration_s, real_.song(r).duration_s);
        ASSERT_EQ(out.song_n_embeddings(s), real_.song_n_embeddings(r));
        for (size_t j = 0; j < real_.song_n_embeddings(r); ++j) {
            const uint32_t g = real_.song_first_embedding(r) + uint32_t(j);
            const uint32_t h = out.song_first_embedding(s) + uint32_t(j);
            ASSERT_EQ(out.embedding_stored(h), real_.embedding_stored(g)) << s << " " << j;
            if (!real_.embedding_stored(g)) continue;
            EXPECT_EQ(out.embedding_list(h), real_.embedding_list(g));
            EXPECT_EQ(
                std::vector<uint8_t>(out.embedding_codes(h), out.embedding_codes(h) + pq_m),
                std::vector<uint8_t>(real_.embedding_codes(g), real_.embedding_codes(g) + pq_m));
        }
    }
    size_t n_differing_codes = 0, n_stored = 0;
    for (size_t k = 0; k < params_.n_synthetic_songs; ++k) {
        const size_t s = synthetic_at[k], src = k % source_.n_songs();
        char id[32];
        std::snprintf(id, sizeof id, "synthetic-%07zu", k);
        EXPECT_EQ(out.song(s).id, id);
        ASSERT_EQ(out.song_n_embeddings(s), source_.song_n_embeddings(src));
        EXPECT_EQ(out.song(s).duration_s, source_.song(src).duration_s);
        for (size_t j = 0; j < out.song_n_embeddings(s); ++j) {
            const uint32_t g = source_.song_first_embedding(src) + uint32_t(j);
            const uint32_t h = out.song_first_embedding(s) + uint32_t(j);
            ASSERT_EQ(out.embedding_stored(h), source_.embedding_stored(g));
            if (!out.embedding_stored(h)) continue;
            ++n_stored;
            n_differing_codes +=
                std::memcmp(out.embedding_codes(h), source_.embedding_codes(g), pq_m) != 0;
        }
    }
    EXPECT_GT(n_differing_codes, n_stored * 9 / 10);  // relabeled, not copied
}

TEST_F(CodeSpaceCatalogueTest, OutputVerifiesWithTheCli) { expect_cli_verifies(generate(params_)); }

// Codes over groups of 4 windows: a real song's group rows copied as they are, a source song's
// windows decoded slot by slot and coded again in groups with the real index's quantizer (its
// rotation, code words and lists), then relabeled row by row; the output verifies.
TEST(CodeSpaceCatalogueGroupedTest, GroupRowsCopiedOrRecodedAndRelabeled) {
    const ModelInfo model = fake_model_info(), source_model = fake_model_info(std::string(64, 'b'));
    IndexBuildParams grouped = small_build_params();
    grouped.pq_m = 32;
    grouped.code_group = 4;
    grouped.opq_rounds = 2;
    grouped.unit_norm = true;
    const IndexFiles real_files = build_with_gaps(6, 1, model, grouped);
    // The source: songs like the real ones (the same seed), under another quantizer.
    IndexBuildParams other = grouped;
    other.opq_rounds = 3;
    const IndexFiles source_files = build_with_gaps(5, 1, source_model, other);
    Index real(model), source(source_model);
    ASSERT_TRUE(load_all(real_files, &real));
    ASSERT_TRUE(load_all(source_files, &source));
    ASSERT_FALSE(real.quantizer().rotation == source.quantizer().rotation);
    CodeSpaceCatalogueParams params = code_space_catalogue_default_params();
    params.n_synthetic_songs = 15;
    params.seed = 3;
    // The catalogue for p, loaded into *out.
    auto generate_loaded = [&](const CodeSpaceCatalogueParams& p, Index* out) {
        Result<IndexFiles> files = make_code_space_catalogue(model, real, source, p);
        EXPECT_TRUE(files) << files.message();
        if (!files) return IndexFiles();
        EXPECT_TRUE(load_all(*files, out));
        return std::move(files.value());
    };
    Index out(model);
    const IndexFiles files = generate_loaded(params, &out);
    EXPECT_EQ(out.quantizer().code_name(), "32-g4-opq-unit");
    ASSERT_EQ(out.n_songs(), real.n_songs() + params.n_synthetic_songs);

    const size_t total = out.n_songs();
    size_t n_windows = 0, n_differing = 0, k = 0;
    for (size_t s = 0, r = 0; s < total; ++s) {
        const bool is_real =
            r < real.n_songs() && s == real_song_position(r, real.n_songs(), total);
        const Index& from = is_real ? real : source;
        const size_t f = is_real ? r++ : k++ % source.n_songs();
        ASSERT_EQ(out.song_n_embeddings(s), from.song_n_embeddings(f));
        for (size_t j = 0; j < out.song_n_embeddings(s); ++j) {
            const uint32_t g = from.song_first_embedding(f) + uint32_t(j);
            const uint32_t h = out.song_first_embedding(s) + uint32_t(j);
            ASSERT_EQ(out.embedding_stored(h), from.embedding_stored(g));
            if (!out.embedding_stored(h)) continue;
            float scale;
            int slot_out, slot_from;
            const uint8_t* a = out.embedding_codes(h, &scale, &slot_out);
            const uint8_t* b = from.embedding_codes(g, &scale, &slot_from);
            EXPECT_EQ(slot_out, slot_from);  // the same groups over the same stored windows
            if (is_real) {
                EXPECT_EQ(out.embedding_list(h), from.embedding_list(g));
                EXPECT_EQ(std::vector<uint8_t>(a, a + 32), std::vector<uint8_t>(b, b + 32));
            } else {
                ++n_windows;
                n_differing += std::memcmp(a, b, 32) != 0;
            }
        }
    }
    EXPECT_GT(n_differing, n_windows * 9 / 10);

    // Without relabeling (strata of one), a synthetic window decodes near its source window:
    // nearer than to the window after it.
    CodeSpaceCatalogueParams same_labels = params;
    same_labels.list_block = 1;
    same_labels.code_block = 1;
    Index copy(model);
    generate_loaded(same_labels, &copy);
    const size_t song = real_song_position(0, real.n_songs(), total) == 0 ? 1 : 0;  // synthetic 0
    const size_t dim = size_t(model.embedding_dim);
    auto decoded = [dim](const Index& index, uint32_t g) {
        float scale;
        int slot;
        const uint8_t* codes = index.embedding_codes(g, &scale, &slot);
        std::vector<float> x(dim);
        index.quantizer().decode(index.embedding_list(g), codes, x.data(), slot);
        return x;
    };
    auto sq_distance = [](const std::vector<float>& a, const std::vector<float>& b) {
        double d = 0;
        for (size_t i = 0; i < a.size(); ++i) d += double(a[i] - b[i]) * (a[i] - b[i]);
        return d;
    };
    double same = 0, next = 0;
    for (size_t j = 0; j + 1 < copy.song_n_embeddings(song); ++j) {
        const uint32_t h = copy.song_first_embedding(song) + uint32_t(j);
        const uint32_t g = source.song_first_embedding(0) + uint32_t(j);
        if (!copy.embedding_stored(h) || !source.embedding_stored(g + 1)) continue;
        const std::vector<float> x = decoded(copy, h);
        same += sq_distance(x, decoded(source, g));
        next += sq_distance(x, decoded(source, g + 1));
    }
    EXPECT_LT(same, 0.5 * next) << same << " " << next;

    expect_cli_verifies(files);
}

TEST_F(CodeSpaceCatalogueTest, RejectsBadParams) {
    CodeSpaceCatalogueParams bad = params_;
    bad.code_block = 0;
    EXPECT_FALSE(make_code_space_catalogue(model_, real_, source_, bad));
    bad = params_;
    bad.list_block = 0;
    EXPECT_FALSE(make_code_space_catalogue(model_, real_, source_, bad));
}

}  // namespace
