// Index building: parameters and their validation, training through the builder (sampled,
// streamed, reused quantizers), shard bounds and metadata clean-up. Files are checked by loading
// them with core/index.
#include "core/index_builder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

#include "core/container.h"
#include "core/matcher.h"
#include "core/pair_key_layout.h"
#include "tests/index_test_util.h"

namespace earshot {
namespace {

using testing::build_catalog;
using testing::fake_model_info;
using testing::load_all;
using testing::new_builder;
using testing::noisy_copy;
using testing::shard_names;
using testing::small_build_params;
using testing::synthetic_catalog;

constexpr int kDim = 128;

// add_shard() of `bytes` into a fresh index holding only the built index's quantizer.
Status add_to_fresh_index(const IndexFiles& files, const ModelInfo& model,
                          const std::vector<uint8_t>& bytes, const std::string& what) {
    Index fresh(model);
    const auto& q = files.files.at("quantizer.eq");
    if (Status st = fresh.add_quantizer(q.data(), q.size(), "quantizer.eq"); !st) return st;
    return fresh.add_shard(bytes.data(), bytes.size(), what);
}

TEST(IndexBuilderTest, DefaultParams) {
    IndexBuildParams p = index_build_default_params();
    EXPECT_EQ(p.n_lists, 0);  // by catalogue size when the quantizer is trained
    EXPECT_EQ(p.pq_m, 16);
    EXPECT_EQ(p.pq_nbits, 8);
    EXPECT_EQ(p.max_shard_bytes, size_t(8) << 20);
    ModelInfo model;
    model.index_pq_m = 32;  // the code the model's main thresholds were calibrated for
    EXPECT_EQ(index_build_default_params(model).pq_m, 32);
    EXPECT_EQ(index_build_default_params(model).n_lists, 0);
    EXPECT_EQ(index_build_default_params(model).opq_rounds, 0);
    EXPECT_FALSE(index_build_default_params(model).unit_norm);
    EXPECT_EQ(model.index_code_name(), "32");
    model.index_opq_rounds = 10;
    model.index_unit_norm = true;
    EXPECT_EQ(index_build_default_params(model).opq_rounds, 10);
    EXPECT_TRUE(index_build_default_params(model).unit_norm);
    EXPECT_EQ(model.index_code_name(), "32-opq-unit");
    EXPECT_EQ(index_build_default_params(model).code_group, 1);
    model.index_code_group = 5;
    EXPECT_EQ(index_build_default_params(model).code_group, 5);
    EXPECT_EQ(model.index_code_name(), "32-g5-opq-unit");
}

TEST(IndexBuilderTest, CodeOptionsNameACodeAsAWhole) {
    ModelInfo model;
    model.index_pq_m = 32;
    model.index_opq_rounds = 10;
    model.index_unit_norm = true;
    model.index_code_group = 5;
    const auto code = [&](int pq_m, int opq_rounds, int unit_norm, int group) {
        IndexBuildParams p = index_build_default_params(model);
        apply_code_options(&p, pq_m, opq_rounds, unit_norm, group);
        return std::tuple(p.pq_m, p.opq_rounds, p.unit_norm, p.code_group);
    };
    EXPECT_EQ(code(0, -1, -1, 0), std::tuple(32, 10, true, 5));   // none: the model's code
    EXPECT_EQ(code(16, -1, -1, 0), std::tuple(16, 0, false, 1));  // --pq-m 16: a plain code
    EXPECT_EQ(code(0, -1, -1, 3), std::tuple(32, 0, false, 3));   // --group 3: the model's bytes
    EXPECT_EQ(code(0, 4, 1, 0), std::tuple(32, 4, true, 1));
}

TEST(IndexBuilderTest, AutoListsFollowTheCatalogueSize) {
    EXPECT_EQ(index_auto_lists(0), 256);
    EXPECT_EQ(index_auto_lists(1125), 256);    // the demo's 3 songs
    EXPECT_EQ(index_auto_lists(131071), 256);  // sqrt < 256 * sqrt(2)
    EXPECT_EQ(index_auto_lists(131072), 512);
    EXPECT_EQ(index_auto_lists(7200000), 2048);  // 10 000 songs x 720 embeddings
    EXPECT_EQ(index_auto_lists(100000000), 4096);
    // (IndexTest.FewerVectorsThanCentroids: a default build of 7 vectors gets 256 lists.)
}

TEST(IndexBuilderTest, TrainingIsDeterministic) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(10, 40, kDim, 3);
    IndexFiles a = build_catalog(songs, small_build_params(), model);
    IndexFiles b = build_catalog(songs, small_build_params(), model);
    EXPECT_EQ(a.files, b.files);
    IndexBuildParams other = small_build_params();
    other.seed = 99;
    IndexFiles c = build_catalog(songs, other, model);
    EXPECT_NE(a.files.at("quantizer.eq"), c.files.at("quantizer.eq"));
}

TEST(IndexBuilderTest, SampledTrainingAndTrainOnFirst) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(12, 50, kDim, 5);
    IndexBuildParams params = small_build_params();
    params.max_training_vectors = 200;  // < 600 vectors: sampled
    IndexFiles sampled = build_catalog(songs, params, model);
    Index index(model);
    {
        Status st = load_all(sampled, &index);
        ASSERT_TRUE(st) << st.message();
    }
    EXPECT_EQ(index.n_songs(), 12u);

    // train_on() a sample first, then stream songs in (encoded at add time).
    IndexBuilder builder = new_builder(model, small_build_params());
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
TEST(IndexBuilderTest, SetQuantizerAndAddCodesReproduceTheIndex) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(6, 30, kDim, 9);
    IndexFiles original = build_catalog(songs, small_build_params(), model);
    Index index(model);
    {
        Status st = load_all(original, &index);
        ASSERT_TRUE(st) << st.message();
    }

    IndexBuilder again = new_builder(model, small_build_params());
    ASSERT_TRUE(again.add_song(songs[0].info, songs[0].embeddings.data(), songs[0].n));
    ASSERT_TRUE(again.set_quantizer(index.quantizer()));
    EXPECT_FALSE(again.set_quantizer(index.quantizer()));  // only once
    for (size_t s = 1; s < songs.size(); ++s)
        ASSERT_TRUE(again.add_song(songs[s].info, songs[s].embeddings.data(), songs[s].n));
    Result<IndexFiles> rebuilt = again.finish();
    ASSERT_TRUE(rebuilt) << rebuilt.message();
    EXPECT_EQ(rebuilt->files, original.files);

    IndexBuilder codes = new_builder(model, small_build_params());
    std::vector<uint16_t> ids = {0, 1};
    std::vector<uint8_t> pq(2 * 16, 7);
    EXPECT_FALSE(codes.add_song_codes(songs[0].info, ids.data(), pq.data(), 2));  // no quantizer
    ASSERT_TRUE(codes.set_quantizer(index.quantizer()));
    ASSERT_TRUE(codes.add_song_codes(songs[0].info, ids.data(), pq.data(), 2));
    ids[1] = 999;
    EXPECT_FALSE(codes.add_song_codes(songs[0].info, ids.data(), pq.data(), 2));
    Quantizer bad = index.quantizer();
    bad.pq_codebooks.pop_back();
    IndexBuilder rejects = new_builder(model, small_build_params());
    EXPECT_FALSE(rejects.set_quantizer(bad));
}

// Past max_pending_vectors the builder trains on what it has and encodes later songs at once.
TEST(IndexBuilderTest, TrainsWhenPendingVectorsExceedBound) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(8, 40, kDim, 15);
    IndexBuildParams params = small_build_params();
    params.max_pending_vectors = 100;  // 40+ vectors per song: trains during the third song
    IndexBuilder builder = new_builder(model, params);
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

TEST(IndexBuilderTest, FewerVectorsThanCentroids) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(2, 3, kDim, 11);  // 7 vectors; n_lists 0 = auto = 256
    IndexFiles files = build_catalog(songs, index_build_default_params(), model);
    Index index(model);
    {
        Status st = load_all(files, &index);
        ASSERT_TRUE(st) << st.message();
    }
    EXPECT_EQ(index.n_lists(), 256);
    EXPECT_EQ(index.n_embeddings(), songs[0].n + songs[1].n);
    // With a centroid per point the reconstruction is exact up to float rounding.
    std::vector<float> rec(kDim);
    index.quantizer().decode(index.embedding_list(0), index.embedding_codes(0), rec.data());
    for (int d = 0; d < kDim; ++d) EXPECT_NEAR(rec[d], songs[0].embeddings[d], 1e-5f);
}

TEST(IndexBuilderTest, WideListIds) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(4, 100, kDim, 13);
    IndexBuildParams params = small_build_params();
    params.n_lists = 300;  // > 256: u16 list ids
    params.kmeans_iterations = 3;
    IndexFiles files = build_catalog(songs, params, model);
    const auto& shard = files.files.at("shard-00000.es");
    Result<ContainerView> view = parse_container(shard.data(), shard.size(), "SHRD", "shard");
    ASSERT_TRUE(view) << view.message();
    // Whichever form the writer picked (core/index.h), its ids are u16.
    const Section* ids = view->find("list_ids");
    if (ids == nullptr) ids = view->find("list_run_ids");
    ASSERT_NE(ids, nullptr);
    EXPECT_EQ(ids->dtype, DType::kU16);
    Index index(model);
    {
        Status st = load_all(files, &index);
        ASSERT_TRUE(st) << st.message();
    }
    EXPECT_EQ(index.n_lists(), 300);
    size_t total = 0;
    for (int l = 0; l < 300; ++l) total += index.list(l).embedding_ids.size();
    EXPECT_EQ(total, index.n_embeddings());
}

TEST(IndexBuilderTest, ShardsAreBoundedAndSongsNotSplit) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(40, 60, kDim, 17);
    IndexBuildParams params = small_build_params();
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
        if (n_songs > 1) {
            EXPECT_LE(bytes.size(), params.max_shard_bytes) << name;
        }
        songs_seen += n_songs;
    }
    EXPECT_EQ(songs_seen, 40u);

    // Shards arrive in any order; song ids stay attached to their embeddings.
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
        EXPECT_EQ(index.song_n_embeddings(s), songs[original].n);
    }
}

TEST(IndexBuilderTest, ShardSinkGetsEachShardOnceFullAndTheSameFiles) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(40, 60, kDim, 17);
    IndexBuildParams params = small_build_params();
    params.max_shard_bytes = 6000;     // ~4 songs per shard
    params.max_pending_vectors = 500;  // trains during the ninth song
    const IndexFiles kept = build_catalog(songs, params, model);

    IndexBuilder builder = new_builder(model, params);
    std::map<std::string, std::vector<uint8_t>> sunk;
    std::vector<size_t> songs_added_when;  // per shard: songs added when it left
    size_t added = 0, most_held = 0;
    builder.set_shard_sink([&](const std::string& file, std::vector<uint8_t> bytes) {
        EXPECT_EQ(sunk.count(file), 0u) << file;
        sunk[file] = std::move(bytes);
        songs_added_when.push_back(added);
        return Status::ok();
    });
    for (const auto& song : songs) {
        ++added;
        ASSERT_TRUE(builder.add_song(song.info, song.embeddings.data(), song.n));
        most_held = std::max(most_held, builder.held_shard_bytes());
    }
    ASSERT_GE(songs_added_when.size(), 5u);
    EXPECT_LT(songs_added_when.front(), songs.size());  // before the last song, not at finish()
    EXPECT_LE(most_held, params.max_shard_bytes);
    Result<IndexFiles> files = builder.finish();
    ASSERT_TRUE(files) << files.message();
    // finish() keeps only what the sink did not take; together: the same files, byte for byte.
    EXPECT_EQ(files->files.size(), 2u);
    for (auto& [name, bytes] : files->files) sunk[name] = bytes;
    ASSERT_EQ(sunk.size(), kept.files.size());
    for (const auto& [name, bytes] : kept.files) EXPECT_EQ(sunk.at(name), bytes) << name;
    EXPECT_EQ(files->n_files, kept.files.size());
    EXPECT_EQ(files->total_bytes, kept.total_bytes);
    EXPECT_EQ(files->n_songs, kept.n_songs);
    EXPECT_EQ(files->n_embeddings, kept.n_embeddings);
}

TEST(IndexBuilderTest, ShardSinkErrorIsReturned) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(12, 60, kDim, 19);
    IndexBuildParams params = small_build_params();
    params.max_shard_bytes = 6000;
    IndexBuilder builder = new_builder(model, params);
    builder.set_shard_sink([](const std::string& file, std::vector<uint8_t>) {
        return Status::error("disk full writing " + file);
    });
    for (const auto& song : songs)
        ASSERT_TRUE(builder.add_song(song.info, song.embeddings.data(), song.n));
    Result<IndexFiles> files = builder.finish();  // trains, then the first full shard fails
    ASSERT_FALSE(files);
    EXPECT_NE(files.message().find("disk full writing shard-00000.es"), std::string::npos)
        << files.message();
}

TEST(IndexBuilderTest, ExpectedSongsSetTheListsWhenTrainingEarly) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(4, 50, kDim, 21);
    IndexBuildParams params = small_build_params();
    params.n_lists = 0;
    params.kmeans_iterations = 1;
    params.max_pending_vectors = 120;  // trains during the third song: 150 vectors so far
    params.expected_songs = 0;         // unknown: lists for the 150 vectors seen
    {
        IndexBuilder builder = new_builder(model, params);
        for (int s = 0; s < 3; ++s)
            ASSERT_TRUE(builder.add_song(songs[s].info, songs[s].embeddings.data(), songs[s].n));
        ASSERT_TRUE(builder.trained());
        EXPECT_EQ(builder.quantizer().n_lists, 256);
    }
    params.expected_songs = 3 * 4000;  // 150 * 4000 = 600 000 vectors expected
    IndexBuilder builder = new_builder(model, params);
    for (int s = 0; s < 3; ++s)
        ASSERT_TRUE(builder.add_song(songs[s].info, songs[s].embeddings.data(), songs[s].n));
    ASSERT_TRUE(builder.trained());
    EXPECT_EQ(builder.quantizer().n_lists, index_auto_lists(600000));
    EXPECT_EQ(builder.quantizer().n_lists, 1024);
}

TEST(IndexBuilderTest, InvalidUtf8TitlesAreSanitized) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(1, 10, kDim, 19);
    songs[0].info.title = std::string("bad \xff\xfe title");
    IndexFiles files = build_catalog(songs, small_build_params(), model);
    Index index(model);
    {
        Status st = load_all(files, &index);
        ASSERT_TRUE(st) << st.message();
    }
    EXPECT_NE(index.song(0).title.find("title"), std::string::npos);
}

TEST(IndexBuilderTest, BuilderRejectsBadInput) {
    const ModelInfo model = fake_model_info();
    IndexBuilder empty = new_builder(model, small_build_params());
    Result<IndexFiles> none = empty.finish();
    ASSERT_FALSE(none);
    EXPECT_NE(none.message().find("no embeddings"), std::string::npos) << none.message();

    // Invalid parameters are refused at creation, before any song is added.
    IndexBuildParams bad = small_build_params();
    bad.pq_m = 12;  // does not divide 128
    Result<IndexBuilder> refused = IndexBuilder::create(model, bad);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.message().find("pq_m"), std::string::npos) << refused.message();

    auto songs = synthetic_catalog(1, 10, kDim, 23);
    std::vector<float> nan_embedding(kDim, std::nanf(""));
    IndexBuilder c = new_builder(model, small_build_params());
    EXPECT_FALSE(c.add_song(songs[0].info, nan_embedding.data(), 1));
}

TEST(IndexBuilderTest, ValidateParams) {
    const ModelInfo model = fake_model_info();  // embedding_dim 128
    EXPECT_TRUE(validate_index_build_params(index_build_default_params(), model));
    EXPECT_TRUE(validate_index_build_params(index_build_default_params(model), model));
    for (int pq_m : {1, 2, 4, 8, 16, 32, 64, 128}) {
        IndexBuildParams p = index_build_default_params();
        p.pq_m = pq_m;
        EXPECT_TRUE(validate_index_build_params(p, model)) << "pq_m " << pq_m;
    }
    for (int n_lists : {0, 1, 256, kMaxLists}) {
        IndexBuildParams p = index_build_default_params();
        p.n_lists = n_lists;
        EXPECT_TRUE(validate_index_build_params(p, model)) << "n_lists " << n_lists;
    }

    // Each invalid field alone: the message starts with the field's name.
    struct Case {
        const char* field;
        void (*edit)(IndexBuildParams&);
    };
    const Case cases[] = {
        {"pq_m", [](IndexBuildParams& p) { p.pq_m = 7; }},
        {"pq_m", [](IndexBuildParams& p) { p.pq_m = 0; }},
        {"pq_m", [](IndexBuildParams& p) { p.pq_m = -16; }},
        {"pq_m", [](IndexBuildParams& p) { p.pq_m = 256; }},
        {"n_lists", [](IndexBuildParams& p) { p.n_lists = -1; }},
        {"n_lists", [](IndexBuildParams& p) { p.n_lists = kMaxLists + 1; }},
        {"pq_nbits", [](IndexBuildParams& p) { p.pq_nbits = 4; }},
        {"kmeans_iterations", [](IndexBuildParams& p) { p.kmeans_iterations = -1; }},
        {"max_shard_bytes", [](IndexBuildParams& p) { p.max_shard_bytes = 0; }},
    };
    for (const Case& c : cases) {
        IndexBuildParams p = index_build_default_params();
        c.edit(p);
        const Status st = validate_index_build_params(p, model);
        ASSERT_FALSE(st) << c.field;
        EXPECT_EQ(st.message().rfind(std::string(c.field) + " ", 0), 0u) << st.message();
        EXPECT_FALSE(IndexBuilder::create(model, p)) << c.field;
    }
    IndexBuildParams seven = index_build_default_params();
    seven.pq_m = 7;
    EXPECT_EQ(validate_index_build_params(seven, model).message(),
              "pq_m 7 must divide the model's embedding_dim 128: use 1, 2, 4, 8, 16, 32, 64 or "
              "128");

    // Embedding sizes the index cannot store.
    for (int dim : {0, 130, 1024}) {
        ModelInfo odd = model;
        odd.embedding_dim = dim;
        IndexBuildParams p = index_build_default_params();
        p.pq_m = 2;
        const Status st = validate_index_build_params(p, odd);
        ASSERT_FALSE(st) << dim;
        EXPECT_EQ(st.message().rfind("embedding_dim ", 0), 0u) << st.message();
    }
}

// Windows the builder is told not to store (silence, not music) leave the song's timeline as it
// is: shard section absent_runs, no list entry, no codes; the matcher scores them like positions
// outside the song, and a tampered run table is rejected.
// The pair-key level (pair_span > 0, format 2): its keys pair each stored window's list with the
// list of the window pair_span hops later in the same song, its songs numbered as the index
// numbers them, whatever the block size; it is refused with format 1.
TEST(IndexBuilderTest, PairKeysFollowTheIndexsSongsAndLists) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(7, 30, kDim, 73);
    std::vector<uint8_t> stored(songs[2].n, 1);
    stored[3] = stored[4] = stored[20] = 0;
    IndexBuildParams params = small_build_params();
    params.format_version = kIndexVersion2;
    params.max_shard_bytes = 1024;  // a few songs a block
    params.pair_span = 3;
    params.pair_keys_per_page = 10;
    IndexBuilder builder = new_builder(model, params);
    for (size_t s = 0; s < songs.size(); ++s)
        ASSERT_TRUE(builder.add_song(songs[s].info, songs[s].embeddings.data(), songs[s].n,
                                     s == 2 ? stored.data() : nullptr));
    Result<IndexFiles> files = builder.finish();
    ASSERT_TRUE(files) << files.message();
    for (const char* name : {"pairs.ekh", "pairs.ekd", "pairs.ekp"})
        ASSERT_TRUE(files->files.count(name)) << name;
    const auto manifest = nlohmann::json::parse(files->files.at("manifest.json"));
    EXPECT_EQ(manifest["pair_keys"]["span"], 3);
    EXPECT_EQ(manifest["pair_keys"]["header"]["sha256"],
              index_file_sha256_hex(files->files.at("pairs.ekh").data(),
                                    files->files.at("pairs.ekh").size()));

    Index index(model);
    Status st = load_all(*files, &index);
    ASSERT_TRUE(st) << st.message();
    PairKeyIndex want = PairKeyIndex::create(uint32_t(index.n_lists()), 3).value();
    for (size_t s = 0; s < index.n_songs(); ++s) {
        std::vector<uint32_t> lists(index.song_n_embeddings(s), kPairNoList);
        for (size_t j = 0; j < lists.size(); ++j) {
            const uint32_t g = index.song_first_embedding(s) + uint32_t(j);
            if (index.embedding_stored(g)) lists[j] = uint32_t(index.embedding_list(g));
        }
        ASSERT_TRUE(want.add_song(lists.data(), lists.size()));
    }
    ASSERT_TRUE(want.finish());
    const PairKeyFiles expected = write_pair_key_files(want, 10).value();
    EXPECT_EQ(files->files.at("pairs.ekh"), expected.header);
    EXPECT_EQ(files->files.at("pairs.ekd"), expected.directory);
    EXPECT_EQ(files->files.at("pairs.ekp"), expected.postings);

    // With a shard sink the postings leave through it (appended) and the rest is the same.
    std::map<std::string, std::vector<uint8_t>> sunk;
    IndexBuilder sinking = new_builder(model, params);
    sinking.set_shard_sink([&](const std::string& file, std::vector<uint8_t> bytes) {
        std::vector<uint8_t>& f = sunk[file];
        f.insert(f.end(), bytes.begin(), bytes.end());
        return Status::ok();
    });
    for (size_t s = 0; s < songs.size(); ++s)
        ASSERT_TRUE(sinking.add_song(songs[s].info, songs[s].embeddings.data(), songs[s].n,
                                     s == 2 ? stored.data() : nullptr));
    Result<IndexFiles> sunk_files = sinking.finish();
    ASSERT_TRUE(sunk_files) << sunk_files.message();
    EXPECT_EQ(sunk_files->files.count("pairs.ekp"), 0u);
    EXPECT_EQ(sunk["pairs.ekp"], expected.postings);
    EXPECT_EQ(sunk_files->files.at("pairs.ekh"), expected.header);
    EXPECT_EQ(sunk_files->files.at("manifest.json"), files->files.at("manifest.json"));
    EXPECT_EQ(sunk_files->total_bytes, files->total_bytes);

    params.format_version = kIndexVersion1;
    Status v1 = validate_index_build_params(params, model);
    EXPECT_FALSE(v1);
    EXPECT_EQ(v1.message().rfind("pair_span", 0), 0u) << v1.message();
}

TEST(IndexBuilderTest, WindowsNotStoredKeepTheTimeline) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(6, 40, kDim, 71);
    std::vector<uint8_t> stored(songs[0].n, 1);
    for (size_t j : {size_t(0), size_t(1), size_t(2), size_t(3), size_t(4), size_t(10), size_t(11)}) {
        stored[j] = 0;
        songs[0].embeddings[j * kDim] = std::nanf("");  // ignored: never read
    }
    IndexBuilder builder = new_builder(model, small_build_params());
    ASSERT_TRUE(builder.add_song(songs[0].info, songs[0].embeddings.data(), songs[0].n,
                                 stored.data()));
    for (size_t s = 1; s < songs.size(); ++s)
        ASSERT_TRUE(builder.add_song(songs[s].info, songs[s].embeddings.data(), songs[s].n));
    Result<IndexFiles> files = builder.finish();
    ASSERT_TRUE(files) << files.message();
    size_t n_windows = 0;
    for (const auto& s : songs) n_windows += s.n;
    EXPECT_EQ(files->n_windows, n_windows);
    EXPECT_EQ(files->n_embeddings, n_windows - 7);

    const std::vector<uint8_t>& shard = files->files.at("shard-00000.es");
    Result<ContainerView> view = parse_container(shard.data(), shard.size(), "SHRD", "shard");
    ASSERT_TRUE(view) << view.message();
    const Section* runs = view->find("absent_runs");
    ASSERT_NE(runs, nullptr);
    std::vector<uint32_t> run_values(runs->element_count());
    std::memcpy(run_values.data(), runs->data, runs->bytes);
    EXPECT_EQ(run_values, (std::vector<uint32_t>{0, 5, 10, 2}));
    EXPECT_EQ(view->meta["n_frames"], n_windows);
    EXPECT_EQ(
        read_shard_list_ids(*view, n_windows - 7, small_build_params().n_lists, "s").value().size(),
        n_windows - 7);

    Index index(model);
    Status st = load_all(*files, &index);
    ASSERT_TRUE(st) << st.message();
    EXPECT_EQ(index.n_embeddings(), n_windows);
    EXPECT_EQ(index.n_stored(), n_windows - 7);
    EXPECT_EQ(index.song_n_embeddings(0), songs[0].n);
    for (uint32_t g = 0; g < index.n_embeddings(); ++g)
        EXPECT_EQ(index.embedding_stored(g), g >= songs[0].n || stored[g] != 0) << g;
    size_t in_lists = 0;
    for (int l = 0; l < index.n_lists(); ++l)
        for (uint32_t g : index.list(l).embedding_ids) {
            EXPECT_TRUE(index.embedding_stored(g));
            ++in_lists;
        }
    EXPECT_EQ(in_lists, n_windows - 7);

    // A query over stored and absent windows of song 0 still finds it at the right offset, in
    // the IVF and the exhaustive paths.
    for (bool exhaustive : {false, true}) {
        MatchParams params = match_default_params();
        params.exhaustive = exhaustive;
        Matcher matcher(index, params);
        auto query = noisy_copy(&songs[0].embeddings[5 * kDim], 10, kDim, 0.3f, 5);
        Result<MatchResult> r = matcher.match(query.data(), 10, 0.5);
        ASSERT_TRUE(r) << r.message();
        EXPECT_EQ(r->best.id, songs[0].info.id);
        EXPECT_DOUBLE_EQ(r->best.offset_s, 2.5);
    }

    // Tampered run tables: overlapping, past the end, empty.
    auto with_runs = [&](std::vector<uint32_t> new_runs) {
        ContainerWriter w("SHRD", view->meta);
        for (const Section& s : view->sections) {
            if (s.name == "absent_runs") continue;
            w.add(s.name, s.dtype, s.shape, s.data, s.bytes);
        }
        w.add("absent_runs", DType::kU32, {uint32_t(new_runs.size() / 2), 2u}, new_runs.data(),
              new_runs.size() * 4);
        return w.finish();
    };
    for (const auto& bad : {std::vector<uint32_t>{0, 5, 4, 8},
                            std::vector<uint32_t>{0, 5, uint32_t(n_windows) - 1, 3},
                            std::vector<uint32_t>{0, 5, 10, 0}}) {
        Index fresh(model);
        const auto& q = files->files.at("quantizer.eq");
        ASSERT_TRUE(fresh.add_quantizer(q.data(), q.size(), "quantizer.eq"));
        const std::vector<uint8_t> bytes = with_runs(bad);
        Status bad_st = fresh.add_shard(bytes.data(), bytes.size(), "bad.es");
        ASSERT_FALSE(bad_st);
        EXPECT_NE(bad_st.message().find("absent run"), std::string::npos) << bad_st.message();
        EXPECT_EQ(fresh.n_songs(), 0u);
    }

    // Absent windows cost no bytes: a small shard claiming 2^21 of them for one song is refused
    // before anything is allocated for them.
    {
        const uint32_t extra = 1u << 21;
        nlohmann::json meta = view->meta;
        meta["n_frames"] = meta["n_frames"].get<uint64_t>() + extra;
        ContainerWriter w("SHRD", meta);
        for (const Section& s : view->sections) {
            if (s.name == "song_offsets") {
                std::vector<uint32_t> off(s.element_count());
                std::memcpy(off.data(), s.data, s.bytes);
                for (size_t i = 1; i < off.size(); ++i) off[i] += extra;
                w.add(s.name, s.dtype, s.shape, off.data(), off.size() * 4);
            } else if (s.name == "absent_runs") {
                std::vector<uint32_t> r = {0, extra + 5, extra + 10, 2};
                w.add(s.name, s.dtype, {2u, 2u}, r.data(), r.size() * 4);
            } else {
                w.add(s.name, s.dtype, s.shape, s.data, s.bytes);
            }
        }
        const std::vector<uint8_t> bytes = w.finish();
        Status big = add_to_fresh_index(*files, model, bytes, "big.es");
        ASSERT_FALSE(big);
        EXPECT_NE(big.message().find("more than 1048576"), std::string::npos) << big.message();
        EXPECT_LT(bytes.size(), shard.size() + 64);
    }
}

// A grouped code (--group): a code per group of up to 4 consecutive stored windows of a song (a
// group ends at an absent window or the song's end, filled up with its last window). Every
// stored window finds its group's code and its slot, the file holds each group's code once,
// and the matcher's IVF and exhaustive paths score each window as its slot's reconstruction.
TEST(IndexBuilderTest, GroupedCodesCoverConsecutiveStoredWindows) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(12, 60, kDim, 83);  // 60 .. 64 windows: partial last groups
    std::vector<uint8_t> stored(songs[0].n, 1);
    for (size_t j : {size_t(0), size_t(1), size_t(9)}) stored[j] = 0;
    for (int format : {kIndexVersion1, kIndexVersion2}) {
        IndexBuildParams params = small_build_params();
        params.pq_m = 32;
        params.code_group = 4;
        params.opq_rounds = 2;
        params.unit_norm = true;
        params.format_version = format;
        IndexBuilder builder = new_builder(model, params);
        ASSERT_TRUE(
            builder.add_song(songs[0].info, songs[0].embeddings.data(), songs[0].n, stored.data()));
        for (size_t s = 1; s < songs.size(); ++s)
            ASSERT_TRUE(builder.add_song(songs[s].info, songs[s].embeddings.data(), songs[s].n));
        Result<IndexFiles> files = builder.finish();
        ASSERT_TRUE(files) << files.message();
        Index index(model);
        Status st = load_all(*files, &index);
        ASSERT_TRUE(st) << st.message();
        const Quantizer& q = index.quantizer();
        ASSERT_EQ(q.group, 4);
        EXPECT_EQ(q.code_name(), "32-g4-opq-unit");

        size_t n_groups = 0;
        for (size_t s = 0; s < songs.size(); ++s) {
            const uint32_t first = index.song_first_embedding(s);
            // The song's groups: runs of stored windows cut into fours (song 0: windows 2..8,
            // then 10..), as (first window, windows).
            std::vector<std::pair<uint32_t, uint32_t>> groups;
            for (uint32_t j = 0; j < songs[s].n; ++j) {
                if (!index.embedding_stored(first + j)) continue;
                const bool joins = !groups.empty() && groups.back().second < 4 &&
                                   groups.back().first + groups.back().second == j;
                if (joins)
                    ++groups.back().second;
                else
                    groups.push_back({j, 1});
            }
            if (s == 0) {
                EXPECT_EQ(groups[0], std::make_pair(2u, 4u));
                EXPECT_EQ(groups[1], std::make_pair(6u, 3u));  // ends before window 9
                EXPECT_EQ(groups[2], std::make_pair(10u, 4u));
            }
            n_groups += groups.size();
            for (const auto& [start, size] : groups) {
                // The group's windows, the last repeated where it has fewer than 4.
                std::vector<float> x(4 * kDim);
                int lists[4];
                for (uint32_t slot = 0; slot < 4; ++slot) {
                    const uint32_t j = start + std::min(slot, size - 1);
                    std::copy_n(&songs[s].embeddings[j * kDim], kDim, &x[slot * kDim]);
                    lists[slot] = q.assign(&x[slot * kDim]);
                }
                std::vector<uint8_t> want(q.pq_m);
                q.encode_group(x.data(), lists, want.data());
                for (uint32_t k = 0; k < size; ++k) {
                    float scale;
                    int slot;
                    const uint8_t* codes = index.embedding_codes(first + start + k, &scale, &slot);
                    ASSERT_EQ(slot, int(k)) << s << " " << start;
                    ASSERT_EQ(std::vector<uint8_t>(codes, codes + q.pq_m), want)
                        << s << " " << start;
                    EXPECT_EQ(index.embedding_list(first + start + k), lists[k]);
                }
            }
        }
        EXPECT_EQ(files->n_embeddings, index.n_stored());
        if (format == kIndexVersion1) {
            const std::vector<uint8_t>& shard = files->files.at("shard-00000.es");
            Result<ContainerView> view = parse_container(shard.data(), shard.size(), "SHRD", "s");
            ASSERT_TRUE(view) << view.message();
            EXPECT_EQ(view->find("pq_codes")->shape[0], n_groups);  // once per group
            Result<std::vector<uint16_t>> ids =
                read_shard_list_ids(*view, index.n_stored(), index.n_lists(), "s");
            ASSERT_TRUE(ids) << ids.message();
            EXPECT_EQ(ids->size(), index.n_stored());

            // A shard whose pq_codes has a row per window (not per group) is refused.
            ContainerWriter w("SHRD", view->meta);
            std::vector<uint8_t> per_window(index.n_stored() * 32, 0);
            for (const Section& section : view->sections) {
                if (section.name == "pq_codes")
                    w.add("pq_codes", DType::kU8, {uint32_t(index.n_stored()), 32u},
                          per_window.data(), per_window.size());
                else
                    w.add(section.name, section.dtype, section.shape, section.data, section.bytes);
            }
            Status refused = add_to_fresh_index(*files, model, w.finish(), "bad shard");
            EXPECT_FALSE(refused);
            EXPECT_NE(refused.message().find("pq_codes"), std::string::npos) << refused.message();
        }

        // Phase 1 by IVF and by scanning everything give the same scores: the window's slot's
        // reconstruction, scaled to unit length; a noisy clip of song 5 is found where it was cut.
        MatchParams params_ivf = match_default_params();
        params_ivf.nprobe = q.n_lists;
        MatchParams params_all = params_ivf;
        params_all.exhaustive = true;
        Matcher ivf(index, params_ivf), all(index, params_all);
        auto query = noisy_copy(&songs[5].embeddings[21 * kDim], 12, kDim, 0.3f, 7);
        std::vector<std::vector<Posting>> a, b;
        ASSERT_TRUE(ivf.search(query.data(), 12, 5, &a));
        ASSERT_TRUE(all.search(query.data(), 12, 5, &b));
        for (size_t i = 0; i < 12; ++i) {
            ASSERT_EQ(a[i].size(), b[i].size());
            for (size_t k = 0; k < a[i].size(); ++k) {
                EXPECT_EQ(a[i][k].score, b[i][k].score);
                const uint32_t g =
                    index.song_first_embedding(a[i][k].song_index) + a[i][k].embedding;
                float scale;
                int slot;
                const uint8_t* codes = index.embedding_codes(g, &scale, &slot);
                std::vector<float> rec(kDim);
                q.decode(index.embedding_list(g), codes, rec.data(), slot);
                double dot = 0.0, norm = 0.0;
                for (int d = 0; d < kDim; ++d)
                    dot += query[i * kDim + d] * rec[d], norm += double(rec[d]) * rec[d];
                EXPECT_NEAR(a[i][k].score, dot / std::sqrt(norm), 1e-4);
            }
        }
        Result<MatchResult> r = ivf.match(query.data(), 12, 0.5);
        ASSERT_TRUE(r) << r.message();
        EXPECT_EQ(r->best.id, songs[5].info.id);
        EXPECT_DOUBLE_EQ(r->best.offset_s, 10.5);
    }
}

}  // namespace
}  // namespace earshot
