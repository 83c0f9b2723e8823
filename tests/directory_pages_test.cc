// The block directory read in pages (core/directory_pages.h): the pages say what the whole
// directory says, each page is checked before use, and an index given only some blocks'
// entries (Index::set_block_entries) adds those blocks and refuses the others.
#include "core/directory_pages.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/index_test_util.h"

namespace earshot {
namespace {

using namespace earshot::testing;

struct Built {
    ModelInfo model = fake_model_info();
    std::vector<SyntheticSong> songs;
    IndexFiles files;
};

Built build(uint32_t blocks_per_page) {
    Built b;
    b.songs = synthetic_catalog(40, 100, 128, 5);
    IndexBuildParams params = small_build_params();
    params.format_version = kIndexVersion2;
    params.max_shard_bytes = 6 * 1024;
    params.pair_span = 4;
    params.directory_page_blocks = blocks_per_page;
    b.files = build_catalog(b.songs, params, b.model);
    return b;
}

const std::vector<uint8_t>& file(const Built& b, const std::string& name) {
    return b.files.files.at(name);
}

DirectoryPagesHeader header_of(const Built& b) {
    const auto& m = file(b, "manifest.json");
    auto entry = parse_directory_pages_manifest(std::string(m.begin(), m.end()), "manifest");
    EXPECT_TRUE(entry.is_ok() && entry->has_value());
    const auto& h = file(b, (*entry)->header_file);
    auto header = read_directory_pages_header(**entry, h.data(), h.size(), "header");
    EXPECT_TRUE(header.is_ok()) << header.message();
    return header.value();
}

TEST(DirectoryPages, SayWhatTheWholeDirectorySays) {
    for (uint32_t per_page : {1u, 3u, 32u}) {
        SCOPED_TRACE("blocks per page " + std::to_string(per_page));
        const Built b = build(per_page);
        Index whole(b.model);
        ASSERT_TRUE(load_all(b.files, &whole).is_ok());
        const DirectoryPagesHeader h = header_of(b);
        ASSERT_EQ(h.n_blocks, whole.n_shards_expected());
        ASSERT_GT(h.n_blocks, 4u);
        EXPECT_EQ(h.n_songs, whole.n_songs());
        const auto& pages = file(b, "directory-pages.edp");
        const uint64_t songs_bytes = whole.manifest_blocks_bytes();
        uint32_t song = 0;
        for (uint32_t blk = 0; blk < h.n_blocks; ++blk) {
            const Index::FileRange want = whole.shard_range(blk);
            const uint32_t p = h.page_of_song(song);
            EXPECT_EQ(p, h.page_of_block(blk));
            const ByteRange r = h.page_range(p);
            auto page = read_directory_page(h, p, pages.data() + r.offset, r.size, songs_bytes);
            ASSERT_TRUE(page.is_ok()) << page.message();
            EXPECT_EQ(page->block_of_song(song), blk);
            const Index::FileRange got = page->block_range(h.blocks_file, blk);
            EXPECT_EQ(got.file, want.file);
            EXPECT_EQ(got.offset, want.offset);
            EXPECT_EQ(got.bytes, want.bytes);
            EXPECT_EQ(got.sha256, want.sha256);
            EXPECT_EQ(got.songs, want.songs);
            song += uint32_t(want.songs);
        }
        EXPECT_EQ(song, h.n_songs);
    }
}

TEST(DirectoryPages, RefuseAChangedCutOrMisplacedPage) {
    const Built b = build(3);
    const DirectoryPagesHeader h = header_of(b);
    ASSERT_GT(h.n_pages, 2u);
    const auto& pages = file(b, "directory-pages.edp");
    const uint64_t songs_bytes = file(b, "songs.esb").size();
    const ByteRange r = h.page_range(1);
    std::vector<uint8_t> bytes(pages.begin() + long(r.offset),
                               pages.begin() + long(r.offset + r.size));
    ASSERT_TRUE(read_directory_page(h, 1, bytes.data(), bytes.size(), songs_bytes).is_ok());
    EXPECT_FALSE(read_directory_page(h, 2, bytes.data(), bytes.size(), songs_bytes).is_ok());
    EXPECT_FALSE(read_directory_page(h, 1, bytes.data(), bytes.size() - 1, songs_bytes).is_ok());
    EXPECT_FALSE(
        read_directory_page(h, h.n_pages, bytes.data(), bytes.size(), songs_bytes).is_ok());
    for (size_t at : {size_t(0), size_t(9), bytes.size() - 1}) {
        std::vector<uint8_t> changed = bytes;
        changed[at] ^= 0x01;
        auto page = read_directory_page(h, 1, changed.data(), changed.size(), songs_bytes);
        ASSERT_FALSE(page.is_ok());
        EXPECT_NE(page.message().find("SHA-256"), std::string::npos) << page.message();
    }
    // A header that is not the manifest's.
    const auto& m = file(b, "manifest.json");
    auto entry = parse_directory_pages_manifest(std::string(m.begin(), m.end()), "manifest");
    ASSERT_TRUE(entry.is_ok());
    std::vector<uint8_t> header = file(b, "directory-pages.edh");
    header[header.size() / 2] ^= 1;
    EXPECT_FALSE(
        read_directory_pages_header(**entry, header.data(), header.size(), "header").is_ok());
    header.pop_back();
    EXPECT_FALSE(
        read_directory_pages_header(**entry, header.data(), header.size(), "header").is_ok());
}

TEST(DirectoryPages, AnIndexAddsOnlyTheBlocksItWasGiven) {
    const Built b = build(3);
    const DirectoryPagesHeader h = header_of(b);
    const auto& m = file(b, "manifest.json");
    const auto& q = file(b, "quantizer.eq");
    const auto& pages = file(b, "directory-pages.edp");
    const auto& songs = file(b, "songs.esb");
    Index index(b.model);
    ASSERT_TRUE(index.load_manifest(std::string(m.begin(), m.end())).is_ok());
    ASSERT_TRUE(index.add_quantizer(q.data(), q.size(), "quantizer.eq").is_ok());
    const ByteRange r = h.page_range(1);
    auto page = read_directory_page(h, 1, pages.data() + r.offset, r.size, songs.size());
    ASSERT_TRUE(page.is_ok());
    const uint32_t given = page->first_block, other = page->first_block + page->n_blocks();
    ASSERT_TRUE(
        index.set_block_entries({{given, page->block_range(h.blocks_file, given)}}).is_ok());
    EXPECT_EQ(index.n_shards_expected(), h.n_blocks);
    // Another block, with bytes that are right, is refused: its entry is unknown.
    Index whole(b.model);
    ASSERT_TRUE(load_all(b.files, &whole).is_ok());
    const Index::FileRange o = whole.shard_range(other);
    Status st = index.add_shard(songs.data() + o.offset, o.bytes, "block");
    ASSERT_FALSE(st.is_ok());
    EXPECT_NE(st.message().find("directory page"), std::string::npos) << st.message();
    const Index::FileRange g = index.shard_range(given);
    ASSERT_TRUE(index.add_shard(songs.data() + g.offset, g.bytes, "block").is_ok());
    EXPECT_EQ(index.n_songs(), g.songs);
    // An entry outside the songs file is refused.
    Index::FileRange outside = g;
    outside.offset = songs.size();
    EXPECT_FALSE(index.set_block_entries({{given, outside}}).is_ok());
}

}  // namespace
}  // namespace earshot
