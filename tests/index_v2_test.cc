// Index format v2: blocks of songs in one file, each block's range and SHA-256 in a directory.
// A v2 build holds exactly the songs and codes of a v1 build with the same parameters; every
// block is checked against the directory (a tampered, swapped or out-of-place block is refused
// with a message naming it, and the other blocks still load); the directory is checked against
// the manifest and the quantizer.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "core/container.h"
#include "core/index.h"
#include "core/index_builder.h"
#include "core/sha256.h"
#include "tests/index_test_util.h"

namespace earshot {
namespace {

using testing::build_catalog;
using testing::fake_model_info;
using testing::load_all;
using testing::small_build_params;
using testing::synthetic_catalog;

constexpr int kDim = 128;

IndexBuildParams v2_params(size_t block_bytes) {
    IndexBuildParams p = small_build_params();
    p.format_version = kIndexVersion2;
    p.max_shard_bytes = block_bytes;
    return p;
}

nlohmann::json manifest_of(const IndexFiles& files) {
    const auto& m = files.files.at("manifest.json");
    return nlohmann::json::parse(std::string(m.begin(), m.end()));
}

std::string text(const std::vector<uint8_t>& bytes) {
    return std::string(bytes.begin(), bytes.end());
}

TEST(IndexV2Test, HoldsWhatV1HoldsInHashedBlocks) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(24, 60, kDim, 7);
    const IndexFiles v1 = build_catalog(songs, small_build_params(), model);
    const IndexFiles v2 = build_catalog(songs, v2_params(3000), model);

    EXPECT_EQ(v2.files.size(), 4u);  // manifest, quantizer, directory, blocks
    ASSERT_EQ(v2.files.count("directory.ed"), 1u);
    ASSERT_EQ(v2.files.count("songs.esb"), 1u);
    EXPECT_EQ(v2.files.at("quantizer.eq"), v1.files.at("quantizer.eq"));
    const nlohmann::json m = manifest_of(v2);
    EXPECT_EQ(m["version"], 2);
    EXPECT_FALSE(m.contains("shards"));
    EXPECT_EQ(m["blocks"]["file"], "songs.esb");
    EXPECT_EQ(m["blocks"]["bytes"], v2.files.at("songs.esb").size());
    const auto& directory = v2.files.at("directory.ed");
    const auto dsha = sha256(directory.data(), directory.size());
    EXPECT_EQ(m["directory"]["sha256"], to_hex(dsha.data(), dsha.size()));
    EXPECT_EQ(m["songs"], 24);

    Index a(model), b(model);
    ASSERT_TRUE(load_all(v1, &a));
    Status st = load_all(v2, &b);
    ASSERT_TRUE(st) << st.message();
    EXPECT_EQ(b.version(), kIndexVersion2);
    // Small blocks: several of them, each a few songs, each hashed as a whole.
    ASSERT_GE(b.n_shards_expected(), 4u);
    EXPECT_EQ(m["blocks"]["count"], b.n_shards_expected());
    size_t songs_in_blocks = 0;
    uint64_t next_offset = 0;
    for (size_t i = 0; i < b.n_shards_expected(); ++i) {
        const Index::FileRange r = b.shard_range(i);
        EXPECT_EQ(r.file, "songs.esb");
        EXPECT_EQ(r.offset, next_offset);
        next_offset += r.bytes;
        const auto h = sha256(v2.files.at("songs.esb").data() + r.offset, r.bytes);
        EXPECT_EQ(r.sha256, to_hex(h.data(), h.size()));
        EXPECT_GE(r.songs, 1u);
        songs_in_blocks += r.songs;
    }
    EXPECT_EQ(next_offset, v2.files.at("songs.esb").size());
    EXPECT_EQ(songs_in_blocks, 24u);

    ASSERT_EQ(a.n_songs(), b.n_songs());
    ASSERT_EQ(a.n_embeddings(), b.n_embeddings());
    for (size_t s = 0; s < a.n_songs(); ++s) {
        EXPECT_EQ(a.song(s).id, b.song(s).id);
        EXPECT_EQ(a.song(s).title, b.song(s).title);
        EXPECT_EQ(a.song_first_embedding(s), b.song_first_embedding(s));
    }
    for (uint32_t g = 0; g < a.n_embeddings(); ++g) {
        ASSERT_EQ(a.embedding_list(g), b.embedding_list(g));
        ASSERT_EQ(std::memcmp(a.embedding_codes(g), b.embedding_codes(g), size_t(a.pq_m())), 0);
    }
    // The directory's postings per list are exact, and the lists were reserved once from them
    // (no spare room left by doubling).
    Result<ContainerView> view = parse_container(directory.data(), directory.size(), "DIRC", "d");
    ASSERT_TRUE(view);
    const Section* sizes = view->find("list_sizes");
    ASSERT_NE(sizes, nullptr);
    ASSERT_EQ(sizes->element_count(), size_t(b.n_lists()));
    uint64_t postings = 0;
    for (int l = 0; l < b.n_lists(); ++l) {
        uint32_t expected = 0;
        std::memcpy(&expected, sizes->data + 4 * size_t(l), 4);
        EXPECT_EQ(b.list(l).embedding_ids.size(), expected) << l;
        EXPECT_EQ(b.list(l).embedding_ids.capacity(), expected) << l;
        EXPECT_EQ(b.list(l).codes.capacity(), size_t(expected) * b.pq_m()) << l;
        postings += expected;
    }
    // What a page asks before it commits: every stored window's share of the reservation.
    Result<uint64_t> reserve = b.directory_reserve_bytes(directory.data(), directory.size(), "d");
    ASSERT_TRUE(reserve) << reserve.message();
    EXPECT_EQ(reserve.value(), postings * b.bytes_per_posting());
    // id, codes, score scale (unit-length codes only), list
    EXPECT_EQ(b.bytes_per_posting(),
              4u + size_t(b.pq_m()) + (b.quantizer().unit_norm ? 4u : 0u) + 2u);
    EXPECT_GE(b.n_embeddings(), postings);
}

// A dense index, a few bytes a window (codes over 8 windows, list ids as runs), loads: the
// directory's posting count is bounded by what such blocks can hold, not by a byte a window
// more.
TEST(IndexV2Test, ADenseGroupedIndexLoads) {
    const ModelInfo model = fake_model_info();
    auto songs = synthetic_catalog(2, 3000, kDim, 17);
    IndexBuildParams params = v2_params(64 << 10);
    params.pq_m = 32;
    params.code_group = 8;
    params.opq_rounds = 1;
    params.unit_norm = true;
    const IndexFiles files = build_catalog(songs, params, model);
    const size_t n_windows = songs[0].n + songs[1].n;
    EXPECT_LT(files.files.at("songs.esb").size(), n_windows * (1 + 32 / 8));
    Index index(model);
    Status st = load_all(files, &index);
    ASSERT_TRUE(st) << st.message();
    EXPECT_EQ(index.n_stored(), n_windows);
}

class IndexV2CorruptTest : public ::testing::Test {
protected:
    void SetUp() override {
        model_ = fake_model_info();
        files_ = build_catalog(synthetic_catalog(12, 60, kDim, 3), v2_params(3000), model_);
    }
    // Manifest and quantizer loaded; the directory too unless `directory` is false.
    std::unique_ptr<Index> fresh(bool directory = true) {
        auto index = std::make_unique<Index>(model_);
        EXPECT_TRUE(index->load_manifest(text(files_.files.at("manifest.json"))));
        const auto& q = files_.files.at("quantizer.eq");
        EXPECT_TRUE(index->add_quantizer(q.data(), q.size(), "quantizer.eq"));
        if (directory) {
            const auto& d = files_.files.at("directory.ed");
            Status st = index->add_directory(d.data(), d.size(), "directory.ed");
            EXPECT_TRUE(st) << st.message();
        }
        return index;
    }
    std::vector<uint8_t> block(const Index& index, size_t b) const {
        const Index::FileRange r = index.shard_range(b);
        const auto& all = files_.files.at("songs.esb");
        return std::vector<uint8_t>(all.begin() + r.offset, all.begin() + r.offset + r.bytes);
    }
    static void expect_error(const Status& st, const std::string& needle) {
        ASSERT_FALSE(st);
        EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
    }

    ModelInfo model_;
    IndexFiles files_;
};

TEST_F(IndexV2CorruptTest, TamperedBlockIsRefusedAndTheOthersLoad) {
    auto index = fresh();
    ASSERT_GE(index->n_shards_expected(), 3u);
    auto bad = block(*index, 1);
    bad[bad.size() / 2] ^= 0x01;
    expect_error(index->add_shard(bad.data(), bad.size(), "songs.esb block 1"),
                 "songs.esb block 1");
    EXPECT_EQ(index->n_songs(), 0u);
    // Any order; block 1 (untampered) last.
    for (size_t b = index->n_shards_expected(); b-- > 0;) {
        auto bytes = block(*index, b);
        ASSERT_TRUE(index->add_shard(bytes.data(), bytes.size(), "block"));
    }
    EXPECT_EQ(index->n_songs(), 12u);
    auto again = block(*index, 0);
    expect_error(index->add_shard(again.data(), again.size(), "block 0"), "already loaded");
}

// A reader that adds only the blocks a query needs (a lazy page) reserves nothing up front,
// and a block it adds holds the same songs as in a full load.
TEST_F(IndexV2CorruptTest, ADirectoryWithoutReservationTakesAnyFewBlocks) {
    auto index = std::make_unique<Index>(model_);
    ASSERT_TRUE(index->load_manifest(text(files_.files.at("manifest.json"))));
    const auto& q = files_.files.at("quantizer.eq");
    ASSERT_TRUE(index->add_quantizer(q.data(), q.size(), "quantizer.eq"));
    const auto& d = files_.files.at("directory.ed");
    ASSERT_TRUE(index->add_directory(d.data(), d.size(), "directory.ed", false));
    for (int l = 0; l < index->n_lists(); ++l)
        EXPECT_EQ(index->list(l).embedding_ids.capacity(), 0u) << l;
    ASSERT_GE(index->n_shards_expected(), 3u);
    const size_t last = index->n_shards_expected() - 1;
    auto bytes = block(*index, last);
    ASSERT_TRUE(index->add_shard(bytes.data(), bytes.size(), "block"));
    EXPECT_EQ(index->n_songs(), index->shard_range(last).songs);
    auto full = fresh();
    for (size_t b = 0; b <= last; ++b) {
        auto all = block(*full, b);
        ASSERT_TRUE(full->add_shard(all.data(), all.size(), "block"));
    }
    EXPECT_EQ(index->song(0).id, full->song(full->n_songs() - index->n_songs()).id);
}

TEST_F(IndexV2CorruptTest, BlocksNeedTheDirectoryAndTheRightRange) {
    auto index = fresh(false);
    const auto& all = files_.files.at("songs.esb");
    // Block 0 alone, cut at the directory's range (read before the directory is loaded).
    auto with_dir = fresh();
    auto first = block(*with_dir, 0);
    expect_error(index->add_shard(first.data(), first.size(), "block 0"), "directory");
    // The whole file is not a block.
    expect_error(with_dir->add_shard(all.data(), all.size(), "songs.esb"), "songs.esb");
    // A block cut one byte short.
    expect_error(with_dir->add_shard(first.data(), first.size() - 1, "block 0"), "block 0");
}

TEST_F(IndexV2CorruptTest, ABlockDigestGivenByTheCallerMustBeTheDirectorys) {
    // A lazy client hands over the SHA-256 it checked the block with: another digest is refused
    // as a changed block would be, the directory's is taken without hashing again.
    auto index = fresh();
    auto first = block(*index, 0);
    const std::string right = index->shard_range(0).sha256;
    std::string wrong = right;
    wrong[0] = wrong[0] == '0' ? '1' : '0';
    expect_error(index->add_shard(first.data(), first.size(), "block 0", wrong),
                 "do not match the manifest");
    EXPECT_EQ(index->n_songs(), 0u);
    ASSERT_TRUE(index->add_shard(first.data(), first.size(), "block 0", right));
    EXPECT_EQ(index->n_songs(), index->shard_range(0).songs);
}

TEST_F(IndexV2CorruptTest, DirectoryIsCheckedAgainstManifestAndQuantizer) {
    // Tampered directory bytes: the manifest's hash catches them.
    {
        auto index = fresh(false);
        auto d = files_.files.at("directory.ed");
        d[d.size() / 2] ^= 0x10;
        expect_error(index->add_directory(d.data(), d.size(), "directory.ed"),
                     "do not match the manifest");
    }
    // The directory of another build (another quantizer): refused by the manifest's hash, and,
    // with that hash patched in, by the quantizer check.
    {
        IndexBuildParams other = v2_params(3000);
        other.seed = 99;
        const IndexFiles o = build_catalog(synthetic_catalog(12, 60, kDim, 3), other, model_);
        const auto& od = o.files.at("directory.ed");
        auto index = fresh(false);
        expect_error(index->add_directory(od.data(), od.size(), "directory.ed"), "manifest");
        nlohmann::json m = manifest_of(files_);
        const auto h = sha256(od.data(), od.size());
        m["directory"]["sha256"] = to_hex(h.data(), h.size());
        m["directory"]["bytes"] = od.size();
        m["blocks"]["bytes"] = o.files.at("songs.esb").size();
        m["blocks"]["count"] = manifest_of(o)["blocks"]["count"];
        Index patched(model_);
        ASSERT_TRUE(patched.load_manifest(m.dump()));
        const auto& q = files_.files.at("quantizer.eq");
        ASSERT_TRUE(patched.add_quantizer(q.data(), q.size(), "quantizer.eq"));
        expect_error(patched.add_directory(od.data(), od.size(), "directory.ed"), "quantizer");
    }
    // A directory claiming more postings than the songs file can hold (so that a reader would
    // reserve memory for them) is refused, its hash in the manifest notwithstanding.
    {
        const auto& d = files_.files.at("directory.ed");
        Result<ContainerView> view = parse_container(d.data(), d.size(), "DIRC", "d");
        ASSERT_TRUE(view);
        ContainerWriter writer("DIRC", view->meta);
        for (const Section& section : view->sections) {
            std::vector<uint8_t> data(section.data, section.data + section.bytes);
            if (section.name == "list_sizes") {
                const uint32_t huge = 1u << 30;
                std::memcpy(data.data(), &huge, 4);
            }
            writer.add(section.name, section.dtype, section.shape, data.data(), data.size());
        }
        const std::vector<uint8_t> forged = writer.finish();
        nlohmann::json m = manifest_of(files_);
        const auto h = sha256(forged.data(), forged.size());
        m["directory"]["sha256"] = to_hex(h.data(), h.size());
        m["directory"]["bytes"] = forged.size();
        Index index(model_);
        ASSERT_TRUE(index.load_manifest(m.dump()));
        const auto& q = files_.files.at("quantizer.eq");
        ASSERT_TRUE(index.add_quantizer(q.data(), q.size(), "quantizer.eq"));
        // Asked first (as a page does), the forged count is corruption, not a memory figure.
        expect_error(
            index.directory_reserve_bytes(forged.data(), forged.size(), "directory.ed").status(),
            "postings, more than songs.esb can hold");
        expect_error(index.add_directory(forged.data(), forged.size(), "directory.ed"),
                     "more than songs.esb can hold");
    }
    // A manifest whose block count or file size disagrees with the directory.
    for (const char* key : {"count", "bytes"}) {
        nlohmann::json m = manifest_of(files_);
        m["blocks"][key] = m["blocks"][key].get<uint64_t>() + 1;
        Index index(model_);
        ASSERT_TRUE(index.load_manifest(m.dump()));
        const auto& q = files_.files.at("quantizer.eq");
        ASSERT_TRUE(index.add_quantizer(q.data(), q.size(), "quantizer.eq"));
        const auto& d = files_.files.at("directory.ed");
        EXPECT_FALSE(index.add_directory(d.data(), d.size(), "directory.ed")) << key;
        EXPECT_EQ(index.n_shards_expected(), 0u);
    }
    // Order: the directory needs a v2 manifest and the quantizer first, and comes once.
    {
        const auto& d = files_.files.at("directory.ed");
        Index no_manifest(model_);
        expect_error(no_manifest.add_directory(d.data(), d.size(), "directory.ed"), "manifest");
        Index no_quantizer(model_);
        ASSERT_TRUE(no_quantizer.load_manifest(text(files_.files.at("manifest.json"))));
        expect_error(no_quantizer.add_directory(d.data(), d.size(), "directory.ed"), "quantizer");
        expect_error(
            no_quantizer.directory_reserve_bytes(d.data(), d.size(), "directory.ed").status(),
            "quantizer");
        auto twice = fresh();
        expect_error(twice->add_directory(d.data(), d.size(), "directory.ed"), "already");
        // Not a directory: no figure.
        const auto& q = files_.files.at("quantizer.eq");
        expect_error(twice->directory_reserve_bytes(q.data(), q.size(), "quantizer.eq").status(),
                     "DIRC");
        // Nor can a second manifest replace the one the directory was checked against.
        expect_error(twice->load_manifest(text(files_.files.at("manifest.json"))),
                     "already holds a directory");
        EXPECT_EQ(twice->version(), kIndexVersion2);
    }
    // A v2 manifest lacking its directory or blocks entry, or with an unsafe file name.
    for (const char* key : {"directory", "blocks"}) {
        nlohmann::json m = manifest_of(files_);
        m.erase(key);
        Index index(model_);
        expect_error(index.load_manifest(m.dump()), key);
        m = manifest_of(files_);
        m[key]["file"] = "../songs.esb";
        expect_error(index.load_manifest(m.dump()), "plain file name");
    }
    // The songs file is only read in block ranges: it may pass 4 GB (a million songs: 20 GB)
    // even where size_t is 32 bits (WASM); a file read whole may not.
    {
        nlohmann::json m = manifest_of(files_);
        m["blocks"]["bytes"] = uint64_t(20) << 30;
        Index index(model_);
        EXPECT_TRUE(index.load_manifest(m.dump()));
        EXPECT_EQ(index.manifest_blocks_bytes(), uint64_t(20) << 30);
        if (sizeof(size_t) == 4) {
            m = manifest_of(files_);
            m["quantizer"]["bytes"] = uint64_t(5) << 30;
            Index whole(model_);
            expect_error(whole.load_manifest(m.dump()), "bytes");
        }
    }
}

}  // namespace
}  // namespace earshot
