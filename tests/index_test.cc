// The loaded index (format v1): build -> bytes -> load round trips, quantizer quality, and
// corrupt inputs (each must give a clean error while the other shards keep working).
#include "core/index.h"

#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/container.h"
#include "core/sha256.h"
#include "tests/index_test_util.h"

namespace earshot {
namespace {

using testing::build_catalog;
using testing::fake_model_info;
using testing::load_all;
using testing::shard_names;
using testing::small_build_params;
using testing::synthetic_catalog;

constexpr int kDim = 128;

TEST(IndexTest, RoundTripAndReconstruction) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(24, 60, kDim, 7);
    IndexFiles files = build_catalog(songs, small_build_params(), model);
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
        EXPECT_EQ(index.song_n_embeddings(s), songs[s].n);
        total += songs[s].n;
    }
    EXPECT_EQ(index.n_embeddings(), total);

    // Stored embedding -> song mapping, and reconstruction quality: residual PQ with 16 x 8-bit
    // codes on 128-d unit vectors keeps mean cosine >= 0.9 on the training data.
    const Quantizer& quant = index.quantizer();
    std::vector<float> rec(kDim);
    double cos_sum = 0.0;
    size_t n = 0;
    for (size_t s = 0; s < songs.size(); ++s) {
        for (size_t j = 0; j < songs[s].n; ++j) {
            uint32_t g = index.song_first_embedding(s) + uint32_t(j);
            ASSERT_EQ(index.song_of_embedding(g), s);
            quant.decode(index.embedding_list(g), index.embedding_codes(g), rec.data());
            const float* x = &songs[s].embeddings[j * kDim];
            double dot = 0, nr = 0;
            for (int d = 0; d < kDim; ++d) dot += x[d] * rec[d], nr += rec[d] * rec[d];
            cos_sum += dot / std::sqrt(nr);
            ++n;
        }
    }
    EXPECT_GE(cos_sum / n, 0.9);
}

// A quantizer with a learned rotation (OPQ) and unit_norm scores is written and read back bit for
// bit, each stored embedding scaled by 1 / |its reconstruction|; a rotation that is not orthogonal (checksum recomputed, so only the structure check can see it) or of the
// wrong shape, or a unit_norm that is not a boolean, is refused with a message that names it, and
// the index keeps no quantizer.
TEST(IndexTest, RotationRoundTripAndValidation) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(6, 40, kDim, 17);
    IndexBuildParams params = small_build_params();
    params.opq_rounds = 2;
    params.unit_norm = true;
    IndexBuilder builder = testing::new_builder(model, params);
    for (const auto& song : songs)
        ASSERT_TRUE(builder.add_song(song.info, song.embeddings.data(), song.n));
    Result<IndexFiles> files = builder.finish();
    ASSERT_TRUE(files) << files.message();
    ASSERT_TRUE(builder.quantizer().rotated());
    Index index(model);
    ASSERT_TRUE(load_all(files.value(), &index));
    EXPECT_EQ(index.quantizer().rotation, builder.quantizer().rotation);
    EXPECT_TRUE(index.quantizer().unit_norm);
    // Each stored embedding's score scale is 1 / |its reconstruction|.
    std::vector<float> rec(kDim);
    for (uint32_t g = 0; g < index.n_embeddings(); g += 7) {
        if (!index.embedding_stored(g)) continue;
        index.quantizer().decode(index.embedding_list(g), index.embedding_codes(g), rec.data());
        double norm = 0.0;
        for (float v : rec) norm += double(v) * v;
        EXPECT_NEAR(index.embedding_score_scale(g), 1.0 / std::sqrt(norm), 1e-4);
    }

    const auto& qbytes = files->files.at("quantizer.eq");
    auto with_rotation = [&](std::vector<uint32_t> shape, void (*edit)(std::vector<float>&)) {
        Result<ContainerView> view = parse_container(qbytes.data(), qbytes.size(), "QUAN", "q");
        EXPECT_TRUE(view);
        ContainerWriter w("QUAN", view->meta);
        for (const Section& section : view->sections) {
            if (section.name != "rotation") {
                w.add(section.name, section.dtype, section.shape, section.data, section.bytes);
                continue;
            }
            std::vector<float> r(section.element_count());
            std::memcpy(r.data(), section.data, section.bytes);
            edit(r);
            r.resize(size_t(shape[0]) * shape[1]);
            w.add("rotation", DType::kF32, shape, r.data(), r.size() * sizeof(float));
        }
        return w.finish();
    };
    const std::vector<uint8_t> skewed =
        with_rotation({kDim, kDim}, [](std::vector<float>& r) { r[5] += 0.01f; });
    const std::vector<uint8_t> not_finite = with_rotation(
        {kDim, kDim}, [](std::vector<float>& r) { r[0] = std::numeric_limits<float>::infinity(); });
    const std::vector<uint8_t> wrong_shape =
        with_rotation({kDim / 2, kDim}, [](std::vector<float>&) {});
    for (const auto& [bytes, needle] : {std::pair{&skewed, "not orthogonal"},
                                        std::pair{&not_finite, "not orthogonal"},
                                        std::pair{&wrong_shape, "rotation"}}) {
        Index fresh(model);
        Status st = fresh.add_quantizer(bytes->data(), bytes->size(), "quantizer.eq");
        ASSERT_FALSE(st) << needle;
        EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
        EXPECT_NE(st.message().find("quantizer.eq"), std::string::npos) << st.message();
        Status again = fresh.add_quantizer(qbytes.data(), qbytes.size(), "quantizer.eq");
        EXPECT_TRUE(again) << again.message();  // the page can retry with good bytes
    }
    // unit_norm must be a boolean.
    Result<ContainerView> view = parse_container(qbytes.data(), qbytes.size(), "QUAN", "q");
    ASSERT_TRUE(view);
    nlohmann::json meta = view->meta;
    meta["unit_norm"] = "yes";
    ContainerWriter w("QUAN", meta);
    for (const Section& section : view->sections)
        w.add(section.name, section.dtype, section.shape, section.data, section.bytes);
    const std::vector<uint8_t> bad_flag = w.finish();
    Index fresh(model);
    Status st = fresh.add_quantizer(bad_flag.data(), bad_flag.size(), "quantizer.eq");
    ASSERT_FALSE(st);
    EXPECT_NE(st.message().find("unit_norm"), std::string::npos) << st.message();
}

// Songs with a catalogue popularity keep it and their log prior in both formats (a log prior
// beyond kMaxLogPrior is clamped at build time); songs without one have neither. A shard whose
// song gives one without the other, or a log prior out of range, is refused by name.
TEST(IndexTest, PopularityRoundTripAndValidation) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(6, 40, kDim, 19);
    songs[0].info.popularity = 1200.0;
    songs[0].info.log_prior = 1.5;
    songs[1].info.popularity = 0.0;
    songs[1].info.log_prior = -9.0;  // clamped to -kMaxLogPrior
    for (int format : {kIndexVersion1, kIndexVersion2}) {
        IndexBuildParams params = small_build_params();
        params.format_version = format;
        IndexFiles files = build_catalog(songs, params, model);
        Index index(model);
        ASSERT_TRUE(load_all(files, &index)) << format;
        EXPECT_DOUBLE_EQ(index.song(0).popularity, 1200.0);
        EXPECT_DOUBLE_EQ(index.song(0).log_prior, 1.5);
        EXPECT_TRUE(index.song(1).has_prior());
        EXPECT_DOUBLE_EQ(index.song(1).log_prior, -kMaxLogPrior);
        EXPECT_FALSE(index.song(2).has_prior());
        EXPECT_DOUBLE_EQ(index.song(2).log_prior, 0.0);
    }

    IndexFiles files = build_catalog(songs, small_build_params(), model);
    const auto& shard = files.files.at(shard_names(files)[0]);
    auto edited = [&](void (*edit)(nlohmann::json & song)) {
        Result<ContainerView> view = parse_container(shard.data(), shard.size(), "SHRD", "s");
        EXPECT_TRUE(view) << view.message();
        nlohmann::json meta = view->meta;
        edit(meta["songs"][0]);
        ContainerWriter w("SHRD", meta);
        for (const Section& section : view->sections)
            w.add(section.name, section.dtype, section.shape, section.data, section.bytes);
        return w.finish();
    };
    const auto alone = edited([](nlohmann::json& song) { song.erase("log_prior"); });
    const auto far = edited([](nlohmann::json& song) { song["log_prior"] = 7.5; });
    const auto negative = edited([](nlohmann::json& song) { song["popularity"] = -3; });
    for (const auto& [bytes, needle] :
         {std::pair{&alone, "come together"}, std::pair{&far, "'log_prior'"},
          std::pair{&negative, "'popularity'"}}) {
        Index index(model);
        const auto& q = files.files.at("quantizer.eq");
        ASSERT_TRUE(index.add_quantizer(q.data(), q.size(), "quantizer.eq"));
        Status st = index.add_shard(bytes->data(), bytes->size(), "shard");
        ASSERT_FALSE(st) << needle;
        EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
    }
}

// A shard's list ids as runs where a song's windows keep their list, plain where they do not,
// read back the same either way; a tampered runs form is refused.
TEST(IndexTest, ListIdsAsRunsOrPlain) {
    auto write = [](const std::vector<uint16_t>& ids, int n_lists) {
        ContainerWriter w("SHRD", nlohmann::json::object());
        add_shard_list_ids(&w, ids, n_lists);
        return w.finish();
    };
    auto sections = [](const std::vector<uint8_t>& bytes) {
        Result<ContainerView> view = parse_container(bytes.data(), bytes.size(), "SHRD", "s");
        EXPECT_TRUE(view) << view.message();
        std::vector<std::string> names;
        for (const Section& section : view->sections) names.push_back(section.name);
        return names;
    };
    auto read = [](const std::vector<uint8_t>& bytes, size_t n, int n_lists) {
        Result<ContainerView> view = parse_container(bytes.data(), bytes.size(), "SHRD", "s");
        EXPECT_TRUE(view) << view.message();
        return read_shard_list_ids(*view, n, n_lists, "block 7");
    };
    const std::vector<std::string> runs_form = {"list_run_starts", "list_run_ids"};
    for (int n_lists : {256, 2048}) {
        std::vector<uint16_t> runs, alternating;
        for (uint16_t j = 0; j < 21; ++j) {
            runs.insert(runs.end(), 3 + j % 4, uint16_t(n_lists - 1 - 7 * j));
            alternating.push_back(uint16_t(j % 2 ? n_lists - 1 : j));
        }
        std::vector<uint8_t> bytes = write(runs, n_lists);
        EXPECT_EQ(sections(bytes), runs_form);
        Result<std::vector<uint16_t>> got = read(bytes, runs.size(), n_lists);
        ASSERT_TRUE(got) << got.message();
        EXPECT_EQ(got.value(), runs);
        bytes = write(alternating, n_lists);
        EXPECT_EQ(sections(bytes), std::vector<std::string>{"list_ids"});
        got = read(bytes, alternating.size(), n_lists);
        ASSERT_TRUE(got) << got.message();
        EXPECT_EQ(got.value(), alternating);
        EXPECT_FALSE(read(bytes, alternating.size() + 1, n_lists));  // a window more than stored
    }
    {  // no windows: nothing to read, either way
        const std::vector<uint8_t> bytes = write({}, 256);
        Result<std::vector<uint16_t>> got = read(bytes, 0, 256);
        ASSERT_TRUE(got) << got.message();
        EXPECT_TRUE(got->empty());
    }

    // 30 windows in three runs of 10 (bits in 4 bytes: windows 0, 10 and 20 start runs; bits 6
    // and 7 of the last byte are padding), their 3 lists.
    auto runs_shard = [](uint8_t b0, uint8_t b3, std::vector<uint8_t> ids, bool also_plain) {
        ContainerWriter w("SHRD", nlohmann::json::object());
        const std::vector<uint8_t> starts = {b0, 0x04, 0x10, b3};
        w.add("list_run_starts", DType::kU8, {4u}, starts.data(), starts.size());
        w.add("list_run_ids", DType::kU8, {uint32_t(ids.size())}, ids.data(), ids.size());
        if (also_plain) {
            const std::vector<uint8_t> plain(30, 1);
            w.add("list_ids", DType::kU8, {30u}, plain.data(), plain.size());
        }
        return w.finish();
    };
    const std::vector<uint8_t> good = runs_shard(0x01, 0x00, {5, 9, 200}, false);
    Result<std::vector<uint16_t>> got = read(good, 30, 256);
    ASSERT_TRUE(got) << got.message();
    EXPECT_EQ((*got)[9], 5);
    EXPECT_EQ((*got)[10], 9);
    EXPECT_EQ((*got)[29], 200);
    const std::pair<std::vector<uint8_t>, std::string> bad[] = {
        {runs_shard(0x00, 0x00, {5, 9, 200}, false), "does not start a run at window 0"},
        {runs_shard(0x01, 0x80, {5, 9, 200}, false), "bits set past its 30 windows"},
        {runs_shard(0x01, 0x00, {5, 9}, false), "list_run_ids"},
        {runs_shard(0x01, 0x00, {5, 9, 200}, true), "both list_ids and list runs"},
    };
    for (const auto& [bytes, needle] : bad) {
        Result<std::vector<uint16_t>> refused = read(bytes, 30, 256);
        ASSERT_FALSE(refused) << needle;
        EXPECT_NE(refused.message().find(needle), std::string::npos) << refused.message();
        EXPECT_NE(refused.message().find("block 7"), std::string::npos) << refused.message();
    }
    {  // run ids without their starts
        ContainerWriter w("SHRD", nlohmann::json::object());
        const std::vector<uint8_t> ids = {5, 9, 200};
        w.add("list_run_ids", DType::kU8, {3u}, ids.data(), ids.size());
        Result<std::vector<uint16_t>> refused = read(w.finish(), 30, 256);
        ASSERT_FALSE(refused);
        EXPECT_NE(refused.message().find("block 7: missing section 'list_run_starts'"),
                  std::string::npos)
            << refused.message();
    }
    Result<std::vector<uint16_t>> too_big = read(good, 30, 128);  // 200 >= n_lists
    ASSERT_FALSE(too_big);
    EXPECT_NE(too_big.message().find("list id 200 at stored embedding 20"), std::string::npos)
        << too_big.message();
}

// ---- corrupt inputs ----------------------------------------------------------------------

class IndexCorruptTest : public ::testing::Test {
protected:
    void SetUp() override {
        model_ = fake_model_info();
        songs_ = synthetic_catalog(12, 40, kDim, 29);
        IndexBuildParams params = small_build_params();
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
        const Section* codes = view->find("pq_codes");
        std::vector<uint32_t> offsets(off->element_count());
        std::memcpy(offsets.data(), off->data, off->bytes);
        // Written back as plain u8 list_ids, whichever form the builder picked (< 256 lists).
        Result<std::vector<uint16_t>> ids =
            read_shard_list_ids(*view, codes->shape[0], small_build_params().n_lists, "x");
        EXPECT_TRUE(ids) << ids.message();
        std::vector<uint8_t> list_ids(ids->begin(), ids->end());
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
        const size_t songs_before = index.n_songs(), embeddings_before = index.n_embeddings();
        Status st = index.add_shard(bytes.data(), bytes.size(), "bad-shard.es");
        ASSERT_FALSE(st) << "expected an error containing '" << needle << "'";
        EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
        EXPECT_NE(st.message().find("bad-shard.es"), std::string::npos) << st.message();
        EXPECT_EQ(index.n_songs(), songs_before);
        EXPECT_EQ(index.n_embeddings(), embeddings_before);
    }
    // The good shards (all but `skip`) still load and map embeddings to the right songs.
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
        for (uint32_t g = 0; g < index.n_embeddings(); ++g)
            ASSERT_LT(index.song_of_embedding(g), index.n_songs());
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
    IndexFiles other_files = build_catalog(songs, small_build_params(), other);
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
    IndexFiles rebuilt = build_catalog(songs2, small_build_params(), model_);
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
    auto numeric_title =
        rewrite(shard(0), [](nlohmann::json& meta, std::vector<uint32_t>&, std::vector<uint8_t>&) {
            meta["songs"][0]["title"] = 5;
        });
    expect_error(*index, numeric_title, "'title' must be a string");
    auto no_count = rewrite(shard(0), [](nlohmann::json& meta, std::vector<uint32_t>&,
                                         std::vector<uint8_t>&) { meta.erase("n_frames"); });
    expect_error(*index, no_count, "lacks 'n_frames'");
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

// File names come from a downloaded manifest: only plain names next to it, as the web loader
// accepts ([A-Za-z0-9._-], not "." or "..").
TEST_F(IndexCorruptTest, ManifestFileNamesArePlain) {
    const auto& mtext = files_.files.at("manifest.json");
    const nlohmann::json good = nlohmann::json::parse(std::string(mtext.begin(), mtext.end()));
    {
        Index index(model_);
        ASSERT_TRUE(index.load_manifest(good.dump()));
        EXPECT_EQ(index.manifest_quantizer_file(), "quantizer.eq");
        EXPECT_EQ(index.manifest_shard_file(0), names_[0]);
    }
    for (const char* bad : {"../quantizer.eq", "/etc/passwd", "sub/quantizer.eq", "..", ".", "",
                            "a\\b", "C:quantizer.eq", "quantizer.eq\n", "~user"}) {
        for (bool in_shard : {false, true}) {
            nlohmann::json m = good;
            (in_shard ? m["shards"][0] : m["quantizer"])["file"] = bad;
            Index index(model_);
            Status st = index.load_manifest(m.dump());
            ASSERT_FALSE(st) << "accepted \"" << bad << "\"";
            EXPECT_NE(st.message().find("plain file name"), std::string::npos) << st.message();
        }
    }
    nlohmann::json m = good;
    m["quantizer"]["file"] = 5;
    Index index(model_);
    EXPECT_FALSE(index.load_manifest(m.dump()));
    EXPECT_TRUE(is_index_file_name("shard-00012.es"));
    EXPECT_FALSE(is_index_file_name(".."));
}

// The shard number is a u64 in the file, kept as an int: it must be bounded, or 2^32 would pass
// for shard 0.
TEST_F(IndexCorruptTest, ShardNumberOutOfRange) {
    auto index = fresh(/*with_manifest=*/false);
    auto wrapped = rewrite(shard(0), [](nlohmann::json& meta, std::vector<uint32_t>&,
                                        std::vector<uint8_t>&) { meta["shard"] = uint64_t(1) << 32; });
    expect_error(*index, wrapped, "'shard'");
    auto huge = rewrite(shard(0), [](nlohmann::json& meta, std::vector<uint32_t>&,
                                     std::vector<uint8_t>&) { meta["shard"] = kMaxShards; });
    expect_error(*index, huge, "out of range");
    expect_others_work(*index, names_.size());  // nothing skipped: shard 0 is still free
}

}  // namespace
}  // namespace earshot
