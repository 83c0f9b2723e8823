// Index format v1: build -> bytes -> load round trips, quantizer quality, shard bounds, and
// corrupt inputs (each must give a clean error while the other shards keep working).
#include "core/index.h"

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "core/container.h"
#include "core/sha256.h"
#include "tests/index_test_util.h"

namespace earshot {
namespace {

using testing::fake_model_info;
using testing::load_all;
using testing::synthetic_catalog;

constexpr int kDim = 128;

IndexBuildParams small_params() {
    IndexBuildParams p = index_build_default_params();
    p.n_lists = 32;
    p.kmeans_iterations = 10;
    return p;
}

IndexFiles build_catalog(const std::vector<testing::SyntheticSong>& songs,
                         const IndexBuildParams& params, const ModelInfo& model) {
    IndexBuilder builder(model, params);
    for (const auto& s : songs) EXPECT_TRUE(builder.add_song(s.info, s.embeddings.data(), s.n));
    Result<IndexFiles> files = builder.finish();
    EXPECT_TRUE(files.is_ok()) << files.message();
    return std::move(files.value());
}

std::vector<std::string> shard_names(const IndexFiles& files) {
    std::vector<std::string> names;
    for (const auto& [name, bytes] : files.files)
        if (name.rfind("shard-", 0) == 0) names.push_back(name);
    return names;
}

std::string status_text(const Status& s) { return s.message(); }

TEST(IndexTest, DefaultParams) {
    IndexBuildParams p = index_build_default_params();
    EXPECT_EQ(p.n_lists, 0);  // by catalogue size when the quantizer is trained
    EXPECT_EQ(p.pq_m, 16);
    EXPECT_EQ(p.pq_nbits, 8);
    EXPECT_EQ(p.max_shard_bytes, size_t(8) << 20);
    ModelInfo model;
    model.index_pq_m = 32;  // the resolution the model's thresholds were calibrated for
    EXPECT_EQ(index_build_default_params(model).pq_m, 32);
    EXPECT_EQ(index_build_default_params(model).n_lists, 0);
}

TEST(IndexTest, AutoListsFollowTheCatalogueSize) {
    EXPECT_EQ(index_auto_lists(0), 256);
    EXPECT_EQ(index_auto_lists(1125), 256);     // the demo's 3 songs
    EXPECT_EQ(index_auto_lists(131071), 256);   // sqrt < 256 * sqrt(2)
    EXPECT_EQ(index_auto_lists(131072), 512);
    EXPECT_EQ(index_auto_lists(7200000), 2048);  // 10 000 songs x 720 embeddings
    EXPECT_EQ(index_auto_lists(100000000), 4096);
    // (IndexTest.FewerVectorsThanCentroids: a default build of 7 vectors gets 256 lists.)
}

TEST(IndexTest, RoundTripAndReconstruction) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(24, 60, kDim, 7);
    IndexFiles files = build_catalog(songs, small_params(), model);
    ASSERT_EQ(files.files.count("manifest.json"), 1u);
    ASSERT_EQ(files.files.count("quantizer.eq"), 1u);
    ASSERT_EQ(files.files.count("shard-00000.es"), 1u);
    EXPECT_EQ(files.n_songs, 24u);
    EXPECT_GT(files.bytes_per_song, 0.0);
    EXPECT_GT(files.bytes_per_minute, 0.0);

    const auto& mbytes = files.files.at("manifest.json");
    nlohmann::json manifest = nlohmann::json::parse(std::string(mbytes.begin(), mbytes.end()));
    EXPECT_EQ(manifest["format"], "earshot-index");
    EXPECT_EQ(manifest["version"], 1);
    EXPECT_EQ(manifest["model_hash"], model.hash_hex);
    EXPECT_EQ(manifest["embedding_dim"], kDim);
    EXPECT_DOUBLE_EQ(manifest["hop_s"].get<double>(), 0.5);
    EXPECT_EQ(manifest["songs"], 24);
    const auto& q = files.files.at("quantizer.eq");
    // sha256 = SHA-256 of the whole file.
    auto qsha = sha256(q.data(), q.size());
    EXPECT_EQ(manifest["quantizer"]["sha256"], to_hex(qsha.data(), 32));
    EXPECT_EQ(manifest["quantizer"]["bytes"], q.size());
    const auto& shard = files.files.at("shard-00000.es");
    auto ssha = sha256(shard.data(), shard.size());
    EXPECT_EQ(manifest["shards"][0]["sha256"], to_hex(ssha.data(), 32));
    EXPECT_EQ(manifest["shards"][0]["bytes"], shard.size());

    Index index(model);
    {
        Status st = load_all(files, &index);
        ASSERT_TRUE(st) << st.message();
    }
    ASSERT_EQ(index.n_songs(), 24u);
    size_t total = 0;
    for (size_t s = 0; s < songs.size(); ++s) {
        EXPECT_EQ(index.song(s).id, songs[s].info.id);
        EXPECT_EQ(index.song(s).title, songs[s].info.title);
        EXPECT_EQ(index.song(s).album, songs[s].info.album);
        EXPECT_DOUBLE_EQ(index.song(s).duration_s, songs[s].info.duration_s);
        EXPECT_EQ(index.song_frames(s), songs[s].n);
        total += songs[s].n;
    }
    EXPECT_EQ(index.n_frames(), total);

    // Stored frame -> song mapping, and reconstruction quality: residual PQ with 16 x 8-bit
    // codes on 128-d unit vectors keeps mean cosine >= 0.9 on the training data.
    const Quantizer& quant = index.quantizer();
    std::vector<float> rec(kDim);
    double cos_sum = 0.0;
    size_t n = 0;
    for (size_t s = 0; s < songs.size(); ++s) {
        for (size_t j = 0; j < songs[s].n; ++j) {
            uint32_t g = index.song_first_frame(s) + uint32_t(j);
            ASSERT_EQ(index.song_of_frame(g), s);
            quant.decode(index.frame_list(g), index.frame_codes(g), rec.data());
            const float* x = &songs[s].embeddings[j * kDim];
            double dot = 0, nr = 0;
            for (int d = 0; d < kDim; ++d) dot += x[d] * rec[d], nr += rec[d] * rec[d];
            cos_sum += dot / std::sqrt(nr);
            ++n;
        }
    }
    EXPECT_GE(cos_sum / n, 0.9);
}

TEST(IndexTest, TrainingIsDeterministic) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(10, 40, kDim, 3);
    IndexFiles a = build_catalog(songs, small_params(), model);
    IndexFiles b = build_catalog(songs, small_params(), model);
    EXPECT_EQ(a.files, b.files);
    IndexBuildParams other = small_params();
    other.seed = 99;
    IndexFiles c = build_catalog(songs, other, model);
    EXPECT_NE(a.files.at("quantizer.eq"), c.files.at("quantizer.eq"));
}

TEST(IndexTest, SampledTrainingAndTrainOnFirst) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(12, 50, kDim, 5);
    IndexBuildParams params = small_params();
    params.max_training_vectors = 200;  // < 600 vectors: sampled
    IndexFiles sampled = build_catalog(songs, params, model);
    Index index(model);
    {
        Status st = load_all(sampled, &index);
        ASSERT_TRUE(st) << st.message();
    }
    EXPECT_EQ(index.n_songs(), 12u);

    // train_on() a sample first, then stream songs in (encoded at add time).
    IndexBuilder builder(model, small_params());
    ASSERT_TRUE(builder.train_on(songs[0].embeddings.data(), songs[0].n));
    EXPECT_TRUE(builder.trained());
    for (const auto& s : songs) ASSERT_TRUE(builder.add_song(s.info, s.embeddings.data(), s.n));
    Result<IndexFiles> files = builder.finish();
    ASSERT_TRUE(files) << files.message();
    Index index2(model);
    {
        Status st = load_all(files.value(), &index2);
        ASSERT_TRUE(st) << st.message();
    }
    EXPECT_EQ(index2.n_songs(), 12u);
}

// A quantizer reused from a loaded index (appending songs to a catalogue) and songs added as
// codes give byte-identical files.
TEST(IndexTest, SetQuantizerAndAddCodesReproduceTheIndex) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(6, 30, kDim, 9);
    IndexFiles original = build_catalog(songs, small_params(), model);
    Index index(model);
    {
        Status st = load_all(original, &index);
        ASSERT_TRUE(st) << st.message();
    }

    IndexBuilder again(model, small_params());
    ASSERT_TRUE(again.add_song(songs[0].info, songs[0].embeddings.data(), songs[0].n));
    ASSERT_TRUE(again.set_quantizer(index.quantizer()));
    EXPECT_FALSE(again.set_quantizer(index.quantizer()));  // only once
    for (size_t s = 1; s < songs.size(); ++s)
        ASSERT_TRUE(again.add_song(songs[s].info, songs[s].embeddings.data(), songs[s].n));
    Result<IndexFiles> rebuilt = again.finish();
    ASSERT_TRUE(rebuilt) << rebuilt.message();
    EXPECT_EQ(rebuilt->files, original.files);

    IndexBuilder codes(model, small_params());
    std::vector<uint16_t> ids = {0, 1};
    std::vector<uint8_t> pq(2 * 16, 7);
    EXPECT_FALSE(codes.add_song_codes(songs[0].info, ids.data(), pq.data(), 2));  // no quantizer
    ASSERT_TRUE(codes.set_quantizer(index.quantizer()));
    ASSERT_TRUE(codes.add_song_codes(songs[0].info, ids.data(), pq.data(), 2));
    ids[1] = 999;
    EXPECT_FALSE(codes.add_song_codes(songs[0].info, ids.data(), pq.data(), 2));
    Quantizer bad = index.quantizer();
    bad.pq_codebooks.pop_back();
    IndexBuilder rejects(model, small_params());
    EXPECT_FALSE(rejects.set_quantizer(bad));
}

// Past max_pending_vectors the builder trains on what it has and encodes later songs at once.
TEST(IndexTest, TrainsWhenPendingVectorsExceedBound) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(8, 40, kDim, 15);
    IndexBuildParams params = small_params();
    params.max_pending_vectors = 100;  // 40+ vectors per song: trains during the third song
    IndexBuilder builder(model, params);
    ASSERT_TRUE(builder.add_song(songs[0].info, songs[0].embeddings.data(), songs[0].n));
    ASSERT_TRUE(builder.add_song(songs[1].info, songs[1].embeddings.data(), songs[1].n));
    EXPECT_FALSE(builder.trained());
    ASSERT_TRUE(builder.add_song(songs[2].info, songs[2].embeddings.data(), songs[2].n));
    EXPECT_TRUE(builder.trained());
    for (size_t s = 3; s < songs.size(); ++s)
        ASSERT_TRUE(builder.add_song(songs[s].info, songs[s].embeddings.data(), songs[s].n));
    Result<IndexFiles> files = builder.finish();
    ASSERT_TRUE(files) << files.message();
    Index index(model);
    {
        Status st = load_all(files.value(), &index);
        ASSERT_TRUE(st) << st.message();
    }
    EXPECT_EQ(index.n_songs(), 8u);
}

TEST(IndexTest, FewerVectorsThanCentroids) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(2, 3, kDim, 11);  // 7 vectors; n_lists 0 = auto = 256
    IndexFiles files = build_catalog(songs, index_build_default_params(), model);
    Index index(model);
    {
        Status st = load_all(files, &index);
        ASSERT_TRUE(st) << st.message();
    }
    EXPECT_EQ(index.n_lists(), 256);
    EXPECT_EQ(index.n_frames(), songs[0].n + songs[1].n);
    // With a centroid per point the reconstruction is exact up to float rounding.
    std::vector<float> rec(kDim);
    index.quantizer().decode(index.frame_list(0), index.frame_codes(0), rec.data());
    for (int d = 0; d < kDim; ++d) EXPECT_NEAR(rec[d], songs[0].embeddings[d], 1e-5f);
}

TEST(IndexTest, WideListIds) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(4, 100, kDim, 13);
    IndexBuildParams params = small_params();
    params.n_lists = 300;  // > 256: u16 list ids
    params.kmeans_iterations = 3;
    IndexFiles files = build_catalog(songs, params, model);
    const auto& shard = files.files.at("shard-00000.es");
    Result<ContainerView> view = parse_container(shard.data(), shard.size(), "SHRD", "shard");
    ASSERT_TRUE(view) << view.message();
    ASSERT_NE(view->find("list_ids"), nullptr);
    EXPECT_EQ(view->find("list_ids")->dtype, DType::kU16);
    Index index(model);
    {
        Status st = load_all(files, &index);
        ASSERT_TRUE(st) << st.message();
    }
    EXPECT_EQ(index.n_lists(), 300);
    size_t total = 0;
    for (int l = 0; l < 300; ++l) total += index.list(l).frame_ids.size();
    EXPECT_EQ(total, index.n_frames());
}

TEST(IndexTest, ShardsAreBoundedAndSongsNotSplit) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(40, 60, kDim, 17);
    IndexBuildParams params = small_params();
    params.max_shard_bytes = 6000;  // ~4 songs of 60 x 17 bytes
    IndexFiles files = build_catalog(songs, params, model);
    std::vector<std::string> names = shard_names(files);
    ASSERT_GE(names.size(), 5u);
    size_t songs_seen = 0;
    for (const std::string& name : names) {
        const auto& bytes = files.files.at(name);
        Result<ContainerView> view = parse_container(bytes.data(), bytes.size(), "SHRD", name);
        ASSERT_TRUE(view) << view.message();
        const size_t n_songs = view->meta["n_songs"].get<size_t>();
        if (n_songs > 1) EXPECT_LE(bytes.size(), params.max_shard_bytes) << name;
        songs_seen += n_songs;
    }
    EXPECT_EQ(songs_seen, 40u);

    // Shards arrive in any order; song ids stay attached to their frames.
    Index index(model);
    const auto& q = files.files.at("quantizer.eq");
    ASSERT_TRUE(index.add_quantizer(q.data(), q.size(), "quantizer.eq"));
    for (auto it = names.rbegin(); it != names.rend(); ++it) {
        const auto& bytes = files.files.at(*it);
        ASSERT_TRUE(index.add_shard(bytes.data(), bytes.size(), *it));
    }
    EXPECT_EQ(index.n_songs(), 40u);
    EXPECT_EQ(index.n_shards_loaded(), names.size());
    for (size_t s = 0; s < index.n_songs(); ++s) {
        const std::string& id = index.song(s).id;
        const size_t original = std::stoul(id.substr(5));
        EXPECT_EQ(index.song_frames(s), songs[original].n);
    }
}

TEST(IndexTest, InvalidUtf8TitlesAreSanitized) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(1, 10, kDim, 19);
    songs[0].info.title = std::string("bad \xff\xfe title");
    IndexFiles files = build_catalog(songs, small_params(), model);
    Index index(model);
    {
        Status st = load_all(files, &index);
        ASSERT_TRUE(st) << st.message();
    }
    EXPECT_NE(index.song(0).title.find("title"), std::string::npos);
}

TEST(IndexTest, BuilderRejectsBadInput) {
    const ModelInfo model = fake_model_info();
    IndexBuilder empty(model, small_params());
    Result<IndexFiles> none = empty.finish();
    ASSERT_FALSE(none);
    EXPECT_NE(none.message().find("no embeddings"), std::string::npos) << none.message();

    IndexBuildParams bad = small_params();
    bad.pq_m = 12;  // does not divide 128
    auto songs = synthetic_catalog(1, 10, kDim, 23);
    IndexBuilder b(model, bad);
    ASSERT_TRUE(b.add_song(songs[0].info, songs[0].embeddings.data(), songs[0].n));
    Status st = b.train();
    ASSERT_FALSE(st);
    EXPECT_NE(st.message().find("pq_m"), std::string::npos) << st.message();

    std::vector<float> nan_embedding(kDim, std::nanf(""));
    IndexBuilder c(model, small_params());
    EXPECT_FALSE(c.add_song(songs[0].info, nan_embedding.data(), 1));
}

// ---- corrupt inputs ----------------------------------------------------------------------

class IndexCorruptTest : public ::testing::Test {
protected:
    void SetUp() override {
        model_ = fake_model_info();
        songs_ = synthetic_catalog(12, 40, kDim, 29);
        IndexBuildParams params = small_params();
        params.max_shard_bytes = 3000;  // several shards
        files_ = build_catalog(songs_, params, model_);
        names_ = shard_names(files_);
        ASSERT_GE(names_.size(), 3u);
    }
    // An index with manifest + quantizer loaded, no shards.
    std::unique_ptr<Index> fresh(bool with_manifest = true) {
        auto index = std::make_unique<Index>(model_);
        if (with_manifest) {
            const auto& m = files_.files.at("manifest.json");
            EXPECT_TRUE(index->load_manifest(std::string(m.begin(), m.end())));
        }
        const auto& q = files_.files.at("quantizer.eq");
        EXPECT_TRUE(index->add_quantizer(q.data(), q.size(), "quantizer.eq"));
        return index;
    }
    std::vector<uint8_t> shard(size_t i) const { return files_.files.at(names_[i]); }
    // Rewrites a shard with edited metadata/sections but a valid checksum.
    std::vector<uint8_t> rewrite(const std::vector<uint8_t>& bytes,
                                 void (*edit)(nlohmann::json&, std::vector<uint32_t>&,
                                              std::vector<uint8_t>&)) {
        Result<ContainerView> view = parse_container(bytes.data(), bytes.size(), "SHRD", "x");
        EXPECT_TRUE(view);
        nlohmann::json meta = view->meta;
        const Section* off = view->find("song_offsets");
        const Section* ids = view->find("list_ids");
        const Section* codes = view->find("pq_codes");
        std::vector<uint32_t> offsets(off->element_count());
        std::memcpy(offsets.data(), off->data, off->bytes);
        std::vector<uint8_t> list_ids(ids->data, ids->data + ids->bytes);
        edit(meta, offsets, list_ids);
        ContainerWriter w("SHRD", meta);
        w.add("song_offsets", DType::kU32, {uint32_t(offsets.size())}, offsets.data(),
              offsets.size() * 4);
        w.add("list_ids", DType::kU8, {uint32_t(list_ids.size())}, list_ids.data(),
              list_ids.size());
        w.add("pq_codes", DType::kU8, codes->shape, codes->data, codes->bytes);
        return w.finish();
    }
    void expect_error(Index& index, const std::vector<uint8_t>& bytes, const std::string& needle) {
        const size_t songs_before = index.n_songs(), frames_before = index.n_frames();
        Status st = index.add_shard(bytes.data(), bytes.size(), "bad-shard.es");
        ASSERT_FALSE(st) << "expected an error containing '" << needle << "'";
        EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
        EXPECT_NE(st.message().find("bad-shard.es"), std::string::npos) << st.message();
        EXPECT_EQ(index.n_songs(), songs_before);
        EXPECT_EQ(index.n_frames(), frames_before);
    }
    // The good shards (all but `skip`) still load and map frames to the right songs.
    void expect_others_work(Index& index, size_t skip) {
        for (size_t i = 0; i < names_.size(); ++i) {
            if (i == skip) continue;
            auto bytes = shard(i);
            ASSERT_TRUE(index.add_shard(bytes.data(), bytes.size(), names_[i]));
        }
        const bool skipped = skip < names_.size();
        EXPECT_EQ(index.n_shards_loaded(), names_.size() - (skipped ? 1 : 0));
        if (skipped) {
            EXPECT_LT(index.n_songs(), songs_.size());
        } else {
            EXPECT_EQ(index.n_songs(), songs_.size());
        }
        for (uint32_t g = 0; g < index.n_frames(); ++g)
            ASSERT_LT(index.song_of_frame(g), index.n_songs());
    }

    ModelInfo model_;
    std::vector<testing::SyntheticSong> songs_;
    IndexFiles files_;
    std::vector<std::string> names_;
};

TEST_F(IndexCorruptTest, Truncated) {
    auto index = fresh();
    auto bytes = shard(0);
    for (size_t keep : {size_t(0), size_t(7), size_t(40), bytes.size() / 2, bytes.size() - 1}) {
        std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + keep);
        Status st = index->add_shard(cut.data(), cut.size(), "bad-shard.es");
        EXPECT_FALSE(st) << "kept " << keep;
    }
    EXPECT_EQ(index->n_songs(), 0u);
    expect_others_work(*index, 0);
}

TEST_F(IndexCorruptTest, BitFlips) {
    auto index = fresh(/*with_manifest=*/false);
    auto bytes = shard(1);
    for (size_t pos : {size_t(3), size_t(12), size_t(40), bytes.size() / 2, bytes.size() - 40,
                       bytes.size() - 1}) {
        auto flipped = bytes;
        flipped[pos] ^= 0x10;
        Status st = index->add_shard(flipped.data(), flipped.size(), "bad-shard.es");
        EXPECT_FALSE(st) << "flip at " << pos;
    }
    EXPECT_EQ(index->n_songs(), 0u);
    expect_others_work(*index, 1);
}

TEST_F(IndexCorruptTest, WrongKind) {
    auto index = fresh();
    const auto& q = files_.files.at("quantizer.eq");
    expect_error(*index, q, "QUAN");
    expect_others_work(*index, names_.size());  // nothing skipped
}

TEST_F(IndexCorruptTest, WrongModelHash) {
    // A quantizer for another model is refused with both hashes in the message.
    const ModelInfo other = fake_model_info(std::string(64, 'b'));
    auto songs = synthetic_catalog(3, 20, kDim, 31);
    IndexFiles other_files = build_catalog(songs, small_params(), other);
    Index index(model_);
    const auto& oq = other_files.files.at("quantizer.eq");
    Status st = index.add_quantizer(oq.data(), oq.size(), "quantizer.eq");
    ASSERT_FALSE(st);
    EXPECT_NE(st.message().find(other.hash_hex), std::string::npos) << st.message();
    EXPECT_NE(st.message().find(model_.hash_hex), std::string::npos) << st.message();
    const auto& om = other_files.files.at("manifest.json");
    st = index.load_manifest(std::string(om.begin(), om.end()));
    ASSERT_FALSE(st);
    EXPECT_NE(st.message().find(other.hash_hex), std::string::npos) << st.message();

    // A shard of another model next to our quantizer.
    auto ours = fresh(/*with_manifest=*/false);
    expect_error(*ours, other_files.files.at("shard-00000.es"), other.hash_hex);
    // Same model hash in the metadata but another quantizer build.
    auto songs2 = synthetic_catalog(3, 20, kDim, 37);
    IndexFiles rebuilt = build_catalog(songs2, small_params(), model_);
    expect_error(*ours, rebuilt.files.at("shard-00000.es"), "quantizer");
    expect_others_work(*ours, names_.size());
}

TEST_F(IndexCorruptTest, SongOffsetsInconsistent) {
    auto index = fresh(/*with_manifest=*/false);  // rewritten shards are not in the manifest
    auto decreasing = rewrite(shard(0), [](nlohmann::json&, std::vector<uint32_t>& off,
                                           std::vector<uint8_t>&) { off[1] = off.back() + 1; });
    expect_error(*index, decreasing, "decrease");
    auto past_end = rewrite(shard(0), [](nlohmann::json&, std::vector<uint32_t>& off,
                                         std::vector<uint8_t>&) { off.back() += 1; });
    expect_error(*index, past_end, "song_offsets");
    auto not_zero = rewrite(shard(0), [](nlohmann::json&, std::vector<uint32_t>& off,
                                         std::vector<uint8_t>&) { off[0] = 1; });
    expect_error(*index, not_zero, "song_offsets");
    auto count = rewrite(shard(0), [](nlohmann::json& meta, std::vector<uint32_t>&,
                                      std::vector<uint8_t>&) { meta["n_songs"] = 1; });
    expect_error(*index, count, "songs");
    auto bad_list = rewrite(shard(0), [](nlohmann::json&, std::vector<uint32_t>&,
                                         std::vector<uint8_t>& ids) { ids[3] = 200; });
    expect_error(*index, bad_list, "n_lists");
    auto no_songs = rewrite(shard(0), [](nlohmann::json& meta, std::vector<uint32_t>&,
                                         std::vector<uint8_t>&) { meta.erase("songs"); });
    expect_error(*index, no_songs, "songs");
    expect_others_work(*index, 0);
}

TEST_F(IndexCorruptTest, ManifestMismatchDuplicateAndOrder) {
    // Rewritten (valid) shard that is not the one the manifest lists.
    auto index = fresh();
    auto rewritten = rewrite(shard(0), [](nlohmann::json& meta, std::vector<uint32_t>&,
                                          std::vector<uint8_t>&) { meta["extra"] = 1; });
    expect_error(*index, rewritten, "manifest");
    auto good = shard(0);
    ASSERT_TRUE(index->add_shard(good.data(), good.size(), names_[0]));
    expect_error(*index, good, "already loaded");

    Index no_quantizer(model_);
    Status st = no_quantizer.add_shard(good.data(), good.size(), names_[0]);
    ASSERT_FALSE(st);
    EXPECT_NE(st.message().find("quantizer"), std::string::npos) << st.message();

    Index garbage(model_);
    EXPECT_FALSE(garbage.load_manifest("not json"));
    EXPECT_FALSE(garbage.load_manifest("{\"format\": \"something-else\"}"));
    EXPECT_FALSE(garbage.load_manifest("[]"));
    nlohmann::json m = nlohmann::json::parse(std::string(files_.files.at("manifest.json").begin(),
                                                         files_.files.at("manifest.json").end()));
    m["shards"] = 3;
    EXPECT_FALSE(garbage.load_manifest(m.dump()));

    // Quantizer with the wrong bytes for the manifest.
    Index wrong_q(model_);
    const auto& mtext = files_.files.at("manifest.json");
    ASSERT_TRUE(wrong_q.load_manifest(std::string(mtext.begin(), mtext.end())));
    auto q = files_.files.at("quantizer.eq");
    q.resize(q.size() - 1);
    EXPECT_FALSE(wrong_q.add_quantizer(q.data(), q.size(), "quantizer.eq"));
    EXPECT_FALSE(wrong_q.has_quantizer());
}

}  // namespace
}  // namespace earshot
