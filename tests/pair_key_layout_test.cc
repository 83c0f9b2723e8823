#include "core/pair_key_layout.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tests/pair_key_test_util.h"

namespace earshot {
namespace {

// 16 lists (256 keys; 512 with short keys 1 apart), span 2, 40 songs of 30-90 windows with a
// few unstored ones.
PairKeyIndex make_index(uint32_t seed = 3, uint32_t short_span = 0) {
    std::mt19937 rng(seed);
    PairKeyIndex index = PairKeyIndex::create(16, 2, short_span).value();
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
    for (uint32_t short_span : {0u, 1u}) {
        SCOPED_TRACE("short span " + std::to_string(short_span));
        const PairKeyIndex index = make_index(3, short_span);
        const uint32_t n_keys = short_span > 0 ? 512 : 256;
        for (uint32_t keys_per_page : {1u, 7u, 64u, 256u, 1000u}) {
            const Layout l = lay_out(index, keys_per_page);
            EXPECT_EQ(l.header.n_lists, 16u);
            EXPECT_EQ(l.header.span, 2u);
            EXPECT_EQ(l.header.short_span, short_span);
            EXPECT_EQ(l.header.n_pages, (n_keys + keys_per_page - 1) / keys_per_page);
            EXPECT_EQ(l.header.n_keys, index.n_keys());
            EXPECT_EQ(l.header.n_postings, index.n_postings());
            EXPECT_EQ(l.header.postings_bytes, l.files.postings.size());
            size_t postings_seen = 0;
            for (uint32_t key = 0; key < n_keys; ++key) {
                Result<PairKeyPage> page = read_page(l, l.header.page_of(key));
                ASSERT_TRUE(page.is_ok()) << page.message();
                const ByteRange r = page->unit_range(key);
                ASSERT_LE(r.offset + r.size, l.files.postings.size());
                Result<std::vector<PairPosting>> got = read_pair_key_unit(
                    page.value(), key, l.files.postings.data() + r.offset, r.size);
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

// PairKeyBuilder sorts its postings bucket by bucket (an external sort through a spill) and the
// writer lays them out as it goes: the files are the in-memory layout's, byte for byte, for
// any number of buckets and any buffer size.
TEST(PairKeyLayout, ABucketedBuildWritesTheSameFiles) {
    for (uint32_t short_span : {0u, 1u}) {
        const PairKeyIndex index = make_index(3, short_span);
        std::vector<std::vector<uint32_t>> songs;  // make_index's songs again, same draws
        {
            std::mt19937 rng(3);
            for (int s = 0; s < 40; ++s) {
                std::vector<uint32_t> lists(30 + rng() % 61);
                for (auto& l : lists) l = rng() % 13 == 0 ? kPairNoList : rng() % 16;
                songs.push_back(lists);
            }
        }
        for (uint32_t keys_per_page : {1u, 10u, 512u}) {
            const PairKeyFiles want = write_pair_key_files(index, keys_per_page).value();
            for (auto [n_buckets, buffer] :
                 {std::pair<uint32_t, size_t>{1, 8192}, {3, 1}, {7, 5}, {256, 64}, {100000, 2}}) {
                SCOPED_TRACE(std::to_string(keys_per_page) + " keys a page, " +
                             std::to_string(n_buckets) + " buckets, buffer " +
                             std::to_string(buffer) + ", short span " + std::to_string(short_span));
                PairKeyBuilder builder = PairKeyBuilder::create(16, 2, keys_per_page, nullptr,
                                                                n_buckets, buffer, short_span)
                                             .value();
                for (const auto& lists : songs)
                    ASSERT_TRUE(builder.add_song(lists.data(), lists.size()).is_ok());
                std::vector<uint8_t> postings;
                size_t sink_calls = 0;
                PairKeyLayoutWriter writer =
                    PairKeyLayoutWriter::create(
                        16, 2, keys_per_page,
                        [&](const uint8_t* data, size_t n) {
                            postings.insert(postings.end(), data, data + n);
                            ++sink_calls;
                            return Status::ok();
                        },
                        short_span)
                        .value();
                ASSERT_TRUE(builder.finish(&writer).is_ok());
                EXPECT_FALSE(builder.finish(&writer).is_ok());  // once
                Result<PairKeyFiles> got = writer.finish(builder.n_songs());
                ASSERT_TRUE(got.is_ok()) << got.message();
                EXPECT_EQ(got->header, want.header);
                EXPECT_EQ(got->directory, want.directory);
                EXPECT_TRUE(got->postings.empty());
                EXPECT_EQ(postings, want.postings);
                EXPECT_EQ(sink_calls, index.n_keys());  // one unit at a time
                EXPECT_EQ(builder.n_postings(), index.n_postings());
                EXPECT_EQ(writer.n_keys(), index.n_keys());
                EXPECT_LE(builder.largest_bucket(), index.n_postings());
                if (n_buckets == 1) {
                    EXPECT_EQ(builder.largest_bucket(), index.n_postings());
                }
            }
        }
    }
}

// With second lists too, the bucketed builder and the index in memory write the same files.
TEST(PairKeyLayout, ABucketedBuildWithSecondListsWritesTheSameFiles) {
    std::mt19937 rng(5);
    PairKeyIndex index = PairKeyIndex::create(16, 2, 1).value();
    PairKeyBuilder builder = PairKeyBuilder::create(16, 2, 10, nullptr, 7, 5, 1).value();
    for (int s = 0; s < 40; ++s) {
        std::vector<uint32_t> lists(30 + rng() % 61), second(lists.size());
        for (size_t j = 0; j < lists.size(); ++j) {
            lists[j] = rng() % 13 == 0 ? kPairNoList : rng() % 16;
            second[j] = rng() % 5 == 0 ? kPairNoList : rng() % 16;  // sometimes the first
        }
        ASSERT_TRUE(index.add_song(lists.data(), lists.size(), second.data()).is_ok());
        ASSERT_TRUE(builder.add_song(lists.data(), lists.size(), second.data()).is_ok());
    }
    ASSERT_TRUE(index.finish().is_ok());
    EXPECT_GT(index.n_postings(), make_index(5, 1).n_postings());
    const PairKeyFiles want = write_pair_key_files(index, 10).value();
    std::vector<uint8_t> postings;
    PairKeyLayoutWriter writer = PairKeyLayoutWriter::create(
                                     16, 2, 10,
                                     [&](const uint8_t* data, size_t n) {
                                         postings.insert(postings.end(), data, data + n);
                                         return Status::ok();
                                     },
                                     1)
                                     .value();
    ASSERT_TRUE(builder.finish(&writer).is_ok());
    Result<PairKeyFiles> got = writer.finish(builder.n_songs());
    ASSERT_TRUE(got.is_ok()) << got.message();
    EXPECT_EQ(got->header, want.header);
    EXPECT_EQ(got->directory, want.directory);
    EXPECT_EQ(postings, want.postings);
    EXPECT_EQ(builder.n_postings(), index.n_postings());
}

TEST(PairKeyLayout, TheWriterRefusesWhatItCannotLayOut) {
    const auto keep = [](const uint8_t*, size_t) { return Status::ok(); };
    EXPECT_FALSE(PairKeyLayoutWriter::create(0, 2, 8, keep).is_ok());
    EXPECT_FALSE(PairKeyLayoutWriter::create(4, 0, 8, keep).is_ok());
    EXPECT_FALSE(PairKeyLayoutWriter::create(4, 2, 0, keep).is_ok());
    EXPECT_FALSE(PairKeyLayoutWriter::create(4, 2, 8, nullptr).is_ok());
    EXPECT_FALSE(PairKeyLayoutWriter::create(4, 2, 8, keep, 2).is_ok());  // short >= span

    PairKeyLayoutWriter w = PairKeyLayoutWriter::create(4, 2, 8, keep).value();
    const PairPosting p[2] = {{0, 1}, {2, 5}};
    ASSERT_TRUE(w.add_key(3, p, 2).is_ok());
    EXPECT_FALSE(w.add_key(3, p, 2).is_ok());   // twice
    EXPECT_FALSE(w.add_key(2, p, 2).is_ok());   // backwards
    EXPECT_FALSE(w.add_key(16, p, 2).is_ok());  // not below 4^2
    EXPECT_FALSE(w.add_key(5, p, 0).is_ok());   // no postings
    const PairPosting far_window{1, kPairLayoutMaxWindows};
    EXPECT_FALSE(w.add_key(6, &far_window, 1).is_ok());
    const PairPosting far_song{1u << kPairLayoutSongBits, 0};
    EXPECT_FALSE(w.add_key(6, &far_song, 1).is_ok());
    EXPECT_FALSE(w.finish(2).is_ok());  // a posting names song 2
    Result<PairKeyFiles> done = w.finish(3);
    ASSERT_TRUE(done.is_ok()) << done.message();
    EXPECT_FALSE(w.finish(3).is_ok());
    EXPECT_FALSE(w.add_key(9, p, 2).is_ok());
    Result<PairKeyHeader> header =
        parse_pair_key_header(done->header.data(), done->header.size(), "h");
    ASSERT_TRUE(header.is_ok()) << header.message();
    EXPECT_EQ(header->n_keys, 1u);
    EXPECT_EQ(header->n_postings, 2u);

    // A sink's error stops the writer at the page it completes.
    PairKeyLayoutWriter failing = PairKeyLayoutWriter::create(4, 2, 2, [](const uint8_t*, size_t) {
                                      return Status::error("disk full");
                                  }).value();
    ASSERT_TRUE(failing.add_key(0, p, 2).is_ok());  // held with its page
    Status st = failing.add_key(7, p, 2);           // closes page 0
    ASSERT_FALSE(st.is_ok());
    EXPECT_EQ(st.message(), "disk full");

    // The builder refuses songs a posting cannot number, as the layout does.
    PairKeyBuilder b = PairKeyBuilder::create(4, 1, 8, nullptr).value();
    std::vector<uint32_t> long_song((1u << kPairLayoutWindowBits) + 10, 2);
    Status too_long = b.add_song(long_song.data(), long_song.size());
    ASSERT_FALSE(too_long.is_ok());
    EXPECT_NE(too_long.message().find("split longer songs"), std::string::npos);
    const uint32_t bad_list[3] = {1, 4, 2};
    EXPECT_FALSE(b.add_song(bad_list, 3).is_ok());
    EXPECT_EQ(b.n_songs(), 0u);
    EXPECT_FALSE(PairKeyBuilder::create(4, 1, 0, nullptr).is_ok());
    EXPECT_FALSE(PairKeyBuilder::create(4, 1, 8, nullptr, 0).is_ok());
}

}  // namespace
}  // namespace earshot
