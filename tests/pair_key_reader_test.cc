#include "core/pair_key_reader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "tests/pair_key_test_util.h"

namespace earshot {
namespace {

constexpr uint32_t kLists = 32, kSpan = 4, kStep = 2;

// 32 lists (1 024 keys), span 4, 60 songs of 80-200 windows: each song a walk that stays in a
// list for a few windows, as music's embeddings do, with a few windows not stored.
struct Catalogue {
    std::vector<std::vector<uint32_t>> songs;
    PairKeyIndex index = PairKeyIndex::create(kLists, kSpan).value();
};

Catalogue make_catalogue(uint32_t seed = 5) {
    std::mt19937 rng(seed);
    Catalogue c;
    for (int s = 0; s < 60; ++s) {
        std::vector<uint32_t> lists(80 + rng() % 121);
        uint32_t list = rng() % kLists;
        for (auto& l : lists) {
            if (rng() % 3 == 0) list = rng() % kLists;
            l = rng() % 17 == 0 ? kPairNoList : list;
        }
        EXPECT_TRUE(c.index.add_song(lists.data(), lists.size()).is_ok());
        c.songs.push_back(std::move(lists));
    }
    EXPECT_TRUE(c.index.finish().is_ok());
    return c;
}

// A query of n embeddings at kStep index hops from `song`'s window `start`, one in five lists
// changed (noise).
std::vector<uint32_t> make_query(const Catalogue& c, size_t song, size_t start, size_t n,
                                 uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint32_t> q;
    for (size_t i = 0; i < n; ++i) {
        uint32_t l = c.songs[song][start + i * kStep];
        if (rng() % 5 == 0) l = rng() % kLists;
        q.push_back(l);
    }
    return q;
}

using Files = testing::PairKeyLaidOut;

Files lay_out(const PairKeyIndex& index, uint32_t keys_per_page) {
    return testing::lay_out_pair_keys(index, keys_per_page);
}

// What a page or the CLI does: the two rounds of fetches, from the files in memory. Returns
// the bytes fetched.
uint64_t fetch_for(PairKeyReader* reader, const Files& f, const std::vector<uint32_t>& q) {
    uint64_t fetched = 0;
    Result<std::vector<uint32_t>> keys = reader->query_keys(q.data(), q.size(), kStep);
    EXPECT_TRUE(keys.is_ok()) << keys.message();
    for (uint32_t page : reader->missing_pages(keys.value())) {
        const ByteRange r = f.header.page_record(page);
        const Status s = reader->add_page(page, f.files.directory.data() + r.offset, r.size);
        EXPECT_TRUE(s.is_ok()) << s.message();
        fetched += r.size;
    }
    Result<std::vector<PairKeyUnitFetch>> units = reader->missing_units(keys.value());
    EXPECT_TRUE(units.is_ok()) << units.message();
    for (const PairKeyUnitFetch& u : units.value()) {
        const Status s =
            reader->add_unit(u.key, f.files.postings.data() + u.range.offset, u.range.size);
        EXPECT_TRUE(s.is_ok()) << s.message();
        fetched += u.range.size;
    }
    return fetched;
}

void expect_same(const std::vector<PairCandidate>& got, const std::vector<PairCandidate>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].song, want[i].song) << i;
        EXPECT_EQ(got[i].delta, want[i].delta) << i;
        EXPECT_EQ(got[i].votes, want[i].votes) << i;
    }
}

TEST(PairKeyReader, VotesAsTheIndexInMemoryFetchingOnlyWhatTheQueryNeeds) {
    const Catalogue c = make_catalogue();
    for (uint32_t keys_per_page : {1u, 16u, 100u, 1024u}) {
        const Files f = lay_out(c.index, keys_per_page);
        PairKeyReader reader(f.header, uint64_t(1) << 30);
        for (size_t song : {0, 17, 59}) {
            const std::vector<uint32_t> q = make_query(c, song, 10, 30, uint32_t(song));
            const uint64_t fetched = fetch_for(&reader, f, q);
            Result<std::vector<PairCandidate>> got = reader.vote(q.data(), q.size(), kStep, 16);
            ASSERT_TRUE(got.is_ok()) << got.message();
            Result<std::vector<PairCandidate>> want = c.index.vote(q.data(), q.size(), kStep, 16);
            ASSERT_TRUE(want.is_ok());
            expect_same(got.value(), want.value());
            ASSERT_FALSE(got->empty());
            EXPECT_EQ(got.value()[0].song, song);
            EXPECT_EQ(got.value()[0].delta, 10);
            // Far less than the files: a query's pages and units.
            EXPECT_LT(fetched, (f.files.directory.size() + f.files.postings.size()) / 2);
        }
        EXPECT_EQ(reader.stats().bytes_added, reader.cached_bytes());
        EXPECT_EQ(reader.stats().rejected, 0u);
        EXPECT_EQ(reader.stats().evicted, 0u);
    }
}

TEST(PairKeyReader, ASecondLookFetchesNothing) {
    const Catalogue c = make_catalogue();
    const Files f = lay_out(c.index, 16);
    PairKeyReader reader(f.header, uint64_t(1) << 30);
    const std::vector<uint32_t> q = make_query(c, 3, 0, 40, 1);
    EXPECT_GT(fetch_for(&reader, f, q), 0u);
    const PairKeyReaderStats first = reader.stats();
    const std::vector<uint32_t> keys = reader.query_keys(q.data(), q.size(), kStep).value();
    EXPECT_TRUE(reader.missing_pages(keys).empty());
    EXPECT_TRUE(reader.missing_units(keys).value().empty());
    EXPECT_EQ(reader.stats().bytes_added, first.bytes_added);
    EXPECT_GT(reader.stats().page_hits, first.page_hits);
    EXPECT_GT(reader.stats().unit_hits, first.unit_hits);
    // A query that is a part of the first one needs nothing more either.
    const std::vector<uint32_t> part(q.begin() + 5, q.begin() + 25);
    EXPECT_EQ(fetch_for(&reader, f, part), 0u);
    EXPECT_TRUE(reader.vote(part.data(), part.size(), kStep, 16).is_ok());
}

TEST(PairKeyReader, TheBudgetDropsTheLeastRecentlyUsedFirst) {
    const Catalogue c = make_catalogue();
    const Files f = lay_out(c.index, 16);
    const std::vector<uint32_t> a = make_query(c, 5, 0, 30, 2), b = make_query(c, 40, 0, 30, 3);
    // The budget: what the larger query alone fetches, plus a little.
    uint64_t most = 0;
    for (const auto* q : {&a, &b}) {
        PairKeyReader probe(f.header, uint64_t(1) << 30);
        most = std::max(most, fetch_for(&probe, f, *q));
    }
    PairKeyReader reader(f.header, most + 64);
    const uint64_t a_bytes = fetch_for(&reader, f, a);
    ASSERT_TRUE(reader.vote(a.data(), a.size(), kStep, 16).is_ok());
    fetch_for(&reader, f, b);
    EXPECT_LE(reader.cached_bytes(), reader.budget_bytes());
    EXPECT_GT(reader.stats().evicted, 0u);
    // b's entries are the most recent: its vote is whole and equals the index's.
    Result<std::vector<PairCandidate>> got = reader.vote(b.data(), b.size(), kStep, 16);
    ASSERT_TRUE(got.is_ok()) << got.message();
    expect_same(got.value(), c.index.vote(b.data(), b.size(), kStep, 16).value());
    // a has to fetch again what was dropped (what it shares with b stayed).
    const uint64_t again = fetch_for(&reader, f, a);
    EXPECT_GT(again, 0u);
    EXPECT_LE(again, a_bytes);
    EXPECT_LE(reader.cached_bytes(), reader.budget_bytes());
    got = reader.vote(a.data(), a.size(), kStep, 16);
    ASSERT_TRUE(got.is_ok()) << got.message();
    expect_same(got.value(), c.index.vote(a.data(), a.size(), kStep, 16).value());
}

TEST(PairKeyReader, ARejectedFetchKeepsNothing) {
    const Catalogue c = make_catalogue();
    const Files f = lay_out(c.index, 16);
    PairKeyReader reader(f.header, uint64_t(1) << 30);
    const std::vector<uint32_t> q = make_query(c, 8, 4, 30, 4);
    const std::vector<uint32_t> keys = reader.query_keys(q.data(), q.size(), kStep).value();

    // Before any page: units cannot be named or checked, and the vote says what is missing.
    EXPECT_FALSE(reader.missing_units(keys).is_ok());
    Result<std::vector<PairCandidate>> early = reader.vote(q.data(), q.size(), kStep, 16);
    ASSERT_FALSE(early.is_ok());
    EXPECT_NE(early.message().find("not held"), std::string::npos) << early.message();
    const uint8_t nothing[4] = {};
    EXPECT_FALSE(reader.add_unit(keys[0], nothing, sizeof nothing).is_ok());

    const std::vector<uint32_t> pages = reader.missing_pages(keys);
    ASSERT_FALSE(pages.empty());
    const ByteRange r = f.header.page_record(pages[0]);
    std::vector<uint8_t> record(f.files.directory.begin() + r.offset,
                                f.files.directory.begin() + r.offset + r.size);
    record[record.size() / 2] ^= 0x10;  // changed in transit
    EXPECT_FALSE(reader.add_page(pages[0], record.data(), record.size()).is_ok());
    EXPECT_FALSE(reader.add_page(pages[0], record.data(), record.size() - 1).is_ok());  // cut
    record[record.size() / 2] ^= 0x10;
    if (pages.size() > 1) {  // another page's record
        EXPECT_FALSE(reader.add_page(pages[1], record.data(), record.size()).is_ok());
    }
    EXPECT_EQ(reader.cached_bytes(), 0u);
    EXPECT_EQ(reader.missing_pages(keys), pages);
    EXPECT_GE(reader.stats().rejected, 3u);

    fetch_for(&reader, f, q);  // now whole
    const uint64_t held = reader.cached_bytes();
    // A unit's changed byte, or another key's unit, is refused and leaves the cache as it was.
    PairKeyReader fresh(f.header, uint64_t(1) << 30);
    for (uint32_t page : fresh.missing_pages(keys)) {
        const ByteRange p = f.header.page_record(page);
        ASSERT_TRUE(fresh.add_page(page, f.files.directory.data() + p.offset, p.size).is_ok());
    }
    const std::vector<PairKeyUnitFetch> units = fresh.missing_units(keys).value();
    ASSERT_GE(units.size(), 2u);
    std::vector<uint8_t> unit(
        f.files.postings.begin() + units[0].range.offset,
        f.files.postings.begin() + units[0].range.offset + units[0].range.size);
    const uint64_t pages_only = fresh.cached_bytes();
    unit[0] ^= 1;
    EXPECT_FALSE(fresh.add_unit(units[0].key, unit.data(), unit.size()).is_ok());
    unit[0] ^= 1;
    EXPECT_FALSE(fresh.add_unit(units[1].key, unit.data(), unit.size()).is_ok());
    EXPECT_EQ(fresh.cached_bytes(), pages_only);
    EXPECT_EQ(fresh.missing_units(keys).value().size(), units.size());
    EXPECT_EQ(reader.cached_bytes(), held);
}

}  // namespace
}  // namespace earshot
