#include "core/pair_key_layout.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "tests/pair_key_test_util.h"

namespace earshot {
namespace {

// 16 lists (256 keys), span 2, 40 songs of 30-90 windows with a few unstored ones.
PairKeyIndex make_index(uint32_t seed = 3) {
    std::mt19937 rng(seed);
    PairKeyIndex index = PairKeyIndex::create(16, 2).value();
    for (int s = 0; s < 40; ++s) {
        std::vector<uint32_t> lists(30 + rng() % 61);
        for (auto& l : lists) l = rng() % 13 == 0 ? kPairNoList : rng() % 16;
        EXPECT_TRUE(index.add_song(lists.data(), lists.size()).is_ok());
    }
    EXPECT_TRUE(index.finish().is_ok());
    return index;
}

using Layout = testing::PairKeyLaidOut;

Layout lay_out(const PairKeyIndex& index, uint32_t keys_per_page) {
    return testing::lay_out_pair_keys(index, keys_per_page);
}

Result<PairKeyPage> read_page(const Layout& l, uint32_t page) {
    const ByteRange r = l.header.page_record(page);
    return read_pair_key_page(l.header, page, l.files.directory.data() + r.offset, r.size);
}

TEST(PairKeyLayout, EveryKeyReadsBackThroughItsPage) {
    const PairKeyIndex index = make_index();
    for (uint32_t keys_per_page : {1u, 7u, 64u, 256u, 1000u}) {
        const Layout l = lay_out(index, keys_per_page);
        EXPECT_EQ(l.header.n_lists, 16u);
        EXPECT_EQ(l.header.span, 2u);
        EXPECT_EQ(l.header.n_pages, (256 + keys_per_page - 1) / keys_per_page);
        EXPECT_EQ(l.header.n_keys, index.n_keys());
        EXPECT_EQ(l.header.n_postings, index.n_postings());
        EXPECT_EQ(l.header.postings_bytes, l.files.postings.size());
        size_t postings_seen = 0;
        for (uint32_t key = 0; key < 256; ++key) {
            Result<PairKeyPage> page = read_page(l, l.header.page_of(key));
            ASSERT_TRUE(page.is_ok()) << page.message();
            const ByteRange r = page->unit_range(key);
            ASSERT_LE(r.offset + r.size, l.files.postings.size());
            Result<std::vector<PairPosting>> got =
                read_pair_key_unit(page.value(), key, l.files.postings.data() + r.offset, r.size);
            ASSERT_TRUE(got.is_ok()) << got.message();
            const PairKeyIndex::Span want = index.postings(key);
            ASSERT_EQ(got->size(), want.size) << "key " << key;
            for (size_t j = 0; j < want.size; ++j) {
                EXPECT_EQ(got.value()[j].song, want.data[j].song);
                EXPECT_EQ(got.value()[j].window, want.data[j].window);
            }
            postings_seen += want.size;
        }
        EXPECT_EQ(postings_seen, index.n_postings());
    }
}

TEST(PairKeyLayout, RejectsChangedCutOrMisplacedBytes) {
    const PairKeyIndex index = make_index();
    const Layout l = lay_out(index, 7);
    // Every byte of two page records (the first and the shorter last one), changed.
    for (uint32_t page : {0u, l.header.n_pages - 1}) {
        const ByteRange r = l.header.page_record(page);
        for (size_t b = 0; b < r.size; ++b) {
            std::vector<uint8_t> record(l.files.directory.begin() + r.offset,
                                        l.files.directory.begin() + r.offset + r.size);
            record[b] ^= 0x01;
            EXPECT_FALSE(read_pair_key_page(l.header, page, record.data(), record.size()).is_ok())
                << "page " << page << " byte " << b;
        }
        const uint8_t* record = l.files.directory.data() + r.offset;
        EXPECT_FALSE(read_pair_key_page(l.header, page, record, r.size - 1).is_ok());
        EXPECT_FALSE(read_pair_key_page(l.header, page + 1, record, r.size).is_ok());
    }
    // Every byte of every unit of page 3, changed; a unit read for a neighbouring key.
    const PairKeyPage page = read_page(l, 3).value();
    size_t units = 0;
    for (uint32_t key = page.first_key; key < page.first_key + 7; ++key) {
        const ByteRange r = page.unit_range(key);
        if (r.size == 0) continue;
        ++units;
        for (size_t b = 0; b < r.size; ++b) {
            std::vector<uint8_t> unit(l.files.postings.begin() + r.offset,
                                      l.files.postings.begin() + r.offset + r.size);
            unit[b] ^= 0x10;
            EXPECT_FALSE(read_pair_key_unit(page, key, unit.data(), unit.size()).is_ok())
                << "key " << key << " byte " << b;
        }
        EXPECT_FALSE(
            read_pair_key_unit(page, key, l.files.postings.data() + r.offset, r.size - 4).is_ok());
        EXPECT_FALSE(
            read_pair_key_unit(page, page.first_key + 7, l.files.postings.data() + r.offset, r.size)
                .is_ok());
    }
    EXPECT_GT(units, 1u);
    // The header is a checked container: one changed byte, or a cut, is refused.
    std::vector<uint8_t> header = l.files.header;
    header[header.size() / 2] ^= 0x01;
    EXPECT_FALSE(parse_pair_key_header(header.data(), header.size(), "pairs.ekh").is_ok());
    EXPECT_FALSE(
        parse_pair_key_header(l.files.header.data(), l.files.header.size() - 1, "h").is_ok());
    // A page of another index with the same shape does not verify against this header.
    const Layout other = lay_out(make_index(4), 7);
    const ByteRange r = other.header.page_record(3);
    EXPECT_FALSE(
        read_pair_key_page(l.header, 3, other.files.directory.data() + r.offset, r.size).is_ok());
}

TEST(PairKeyLayout, RefusesWhatAPostingCannotHold) {
    PairKeyIndex unfinished = PairKeyIndex::create(4, 1).value();
    EXPECT_FALSE(write_pair_key_files(unfinished, 8).is_ok());
    ASSERT_TRUE(unfinished.finish().is_ok());
    EXPECT_FALSE(write_pair_key_files(unfinished, 0).is_ok());
    EXPECT_FALSE(write_pair_key_files(unfinished, kPairLayoutMaxKeysPerPage + 1).is_ok());
    EXPECT_TRUE(write_pair_key_files(unfinished, 8).is_ok());  // empty: every key empty

    // A song longer than 2^12 windows has keys past a posting's window bits.
    PairKeyIndex long_song = PairKeyIndex::create(4, 1).value();
    std::vector<uint32_t> lists((1u << kPairLayoutWindowBits) + 10, 2);
    ASSERT_TRUE(long_song.add_song(lists.data(), lists.size()).is_ok());
    ASSERT_TRUE(long_song.finish().is_ok());
    Result<PairKeyFiles> refused = write_pair_key_files(long_song, 8);
    ASSERT_FALSE(refused.is_ok());
    EXPECT_NE(refused.message().find("split longer songs"), std::string::npos);
}

}  // namespace
}  // namespace earshot
