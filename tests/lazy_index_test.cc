// The lazy client's steps (core/lazy_index.h): what it names to fetch, round by round, what it
// refuses, what it keeps cached, and that its answer is the whole index's.
#include "core/lazy_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/matcher.h"
#include "tests/index_test_util.h"

namespace earshot {
namespace {

using namespace earshot::testing;

constexpr int kDim = 128;

struct Built {
    ModelInfo model = fake_model_info();
    std::vector<SyntheticSong> songs;
    IndexFiles files;
};

// 60 songs of ~120 windows (0.5 s), 32 lists, blocks of a few songs, pairs 4 hops apart
// (and short keys short_span apart); code_group > 1: 32 bytes for each group of that many
// windows.
Built build(size_t n_songs = 60, uint32_t short_span = 0, int n_lists = 32, int code_group = 1,
            uint32_t pair_lists = 1) {
    Built b;
    b.songs = synthetic_catalog(n_songs, 120, kDim, 91);
    IndexBuildParams params = small_build_params();
    params.n_lists = n_lists;
    if (code_group > 1) {
        params.pq_m = 32;
        params.code_group = code_group;
    }
    params.format_version = kIndexVersion2;
    params.max_shard_bytes = code_group > 1 ? 4 * 1024 : 8 * 1024;  // a few songs either way
    params.pair_span = 4;
    params.pair_short_span = short_span;
    params.pair_lists = pair_lists;
    params.pair_keys_per_page = 16;
    params.directory_page_blocks = 4;
    b.files = build_catalog(b.songs, params, b.model);
    return b;
}

const std::vector<uint8_t>& file(const Built& b, const std::string& name) {
    return b.files.files.at(name);
}

LazyIndexParams no_background() {
    LazyIndexParams p;
    p.background_blocks = 0;
    return p;
}

// Phase 1 by count of exact (song, offset) votes, for tests of what a query looks up: their
// vote counts are those of each query pair at its own offset (the other phase-1 modes are
// tested in pair_keys_test.cc and below).
LazyIndexParams by_count() {
    LazyIndexParams p = no_background();
    p.vote_slack = 0;
    p.key_weight = 0;
    return p;
}

std::unique_ptr<LazyIndex> open(const Built& b, LazyIndexParams params = no_background()) {
    const auto& m = file(b, "manifest.json");
    const auto& q = file(b, "quantizer.eq");
    const auto& d = file(b, "directory-pages.edh");
    const auto& h = file(b, "pairs.ekh");
    Result<std::unique_ptr<LazyIndex>> lazy =
        LazyIndex::create(b.model, std::string(m.begin(), m.end()), q.data(), q.size(), d.data(),
                          d.size(), h.data(), h.size(), params);
    EXPECT_TRUE(lazy.is_ok()) << lazy.message();
    return lazy ? std::move(lazy.value()) : nullptr;
}

// Fetches every round from the built files; returns the bytes and fetches per round.
struct Fetched {
    uint64_t bytes = 0;
    std::vector<size_t> rounds;  // fetches per round
};
Fetched run_rounds(const Built& b, LazyIndex* lazy) {
    Fetched f;
    for (int round = 0; round < 10; ++round) {
        Result<std::vector<LazyFetch>> next = lazy->next_fetches();
        EXPECT_TRUE(next.is_ok()) << next.message();
        if (!next || next->empty()) break;
        f.rounds.push_back(next->size());
        for (const LazyFetch& x : *next) {
            const std::vector<uint8_t>& whole = file(b, x.file);
            EXPECT_LE(x.range.offset + x.range.size, whole.size());
            Status st = lazy->provide(x, whole.data() + x.range.offset, x.range.size);
            EXPECT_TRUE(st.is_ok()) << st.message();
            f.bytes += x.range.size;
        }
    }
    return f;
}

// A query's few ranges answer as the whole index does; the same query again fetches nothing.
void answers_as_the_whole_index(const Built& b) {
    Index whole(b.model);
    ASSERT_TRUE(load_all(b.files, &whole).is_ok());
    const MatchParams params = match_default_params();
    std::unique_ptr<LazyIndex> lazy = open(b);
    ASSERT_TRUE(lazy);
    EXPECT_EQ(lazy->base().n_songs(), 0u);

    uint64_t all_bytes = 0;
    for (const char* name : {"pairs.ekd", "pairs.ekp", "directory-pages.edp", "songs.esb"})
        all_bytes += file(b, name).size();
    for (size_t s : {size_t(3), size_t(29), size_t(58)}) {
        SCOPED_TRACE("song " + std::to_string(s));
        const SyntheticSong& song = b.songs[s];
        const size_t start = 40, n = 20;  // 10 s at the 0.5 s hop
        const std::vector<float> query =
            noisy_copy(&song.embeddings[start * kDim], n, kDim, 0.3f, 7 + s);
        ASSERT_TRUE(lazy->begin_query(query.data(), n).is_ok());
        const Fetched f = run_rounds(b, lazy.get());
        // Pair pages, units, directory pages, blocks: four rounds (three when the directory
        // pages of its candidates came with an earlier query's), a small part of the files.
        if (s == 3) {
            EXPECT_EQ(f.rounds.size(), 4u);
        } else {
            EXPECT_GE(f.rounds.size(), 3u);
            EXPECT_LE(f.rounds.size(), 4u);
        }
        EXPECT_LT(f.bytes * 4, all_bytes);
        Result<std::shared_ptr<const Index>> index = lazy->query_index();
        ASSERT_TRUE(index.is_ok()) << index.message();
        EXPECT_LT((*index)->n_songs(), whole.n_songs() / 2);

        Matcher on_lazy(**index, params), on_whole(whole, params);
        const MatchResult got = on_lazy.match(query.data(), n, 0.5).value();
        const MatchResult want = on_whole.match(query.data(), n, 0.5).value();
        ASSERT_TRUE(want.has_candidates());
        ASSERT_TRUE(got.has_candidates());
        EXPECT_EQ(want.best.id, song.info.id);
        EXPECT_EQ(got.best.id, want.best.id);
        EXPECT_DOUBLE_EQ(got.best.offset_s, want.best.offset_s);
        EXPECT_FLOAT_EQ(got.best.score, want.best.score);

        // The same query again: everything is held, nothing to fetch.
        ASSERT_TRUE(lazy->begin_query(query.data(), n).is_ok());
        EXPECT_TRUE(lazy->next_fetches().value().empty());
        EXPECT_TRUE(lazy->query_index().is_ok());
        // With the cache cleared, it fetches what a new client fetches.
        lazy->clear_cache();
        EXPECT_EQ(lazy->cached_bytes(), 0u);
        ASSERT_TRUE(lazy->begin_query(query.data(), n).is_ok());
        std::unique_ptr<LazyIndex> fresh = open(b);
        ASSERT_TRUE(fresh->begin_query(query.data(), n).is_ok());
        const uint64_t cold = run_rounds(b, fresh.get()).bytes;
        EXPECT_EQ(run_rounds(b, lazy.get()).bytes, cold);
        EXPECT_GE(cold, f.bytes);
    }
    EXPECT_EQ(lazy->stats().rejected, 0u);
    EXPECT_GT(lazy->stats().block_hits, 0u);
}

// With per-window codes and with codes over groups of 4 windows.
TEST(LazyIndex, AnswersAsTheWholeIndexFromAFewRanges) {
    for (int code_group : {1, 4}) {
        SCOPED_TRACE("code group " + std::to_string(code_group));
        answers_as_the_whole_index(build(60, 0, 32, code_group));
    }
}

// A level whose windows also take their second nearest lists' keys: more postings, the
// manifest says so, and a lazy query still answers as the whole index.
TEST(LazyIndex, ALevelWithSecondListsAnswersAsTheWholeIndex) {
    const Built one = build(60, 0, 32, 1, 1), two = build(60, 0, 32, 1, 2);
    const auto manifest = [](const Built& b) {
        return nlohmann::json::parse(
            std::string(file(b, "manifest.json").begin(), file(b, "manifest.json").end()));
    };
    EXPECT_FALSE(manifest(one)["pair_keys"].contains("lists_per_window"));
    EXPECT_EQ(manifest(two)["pair_keys"]["lists_per_window"], 2);
    EXPECT_GT(file(two, "pairs.ekp").size(), file(one, "pairs.ekp").size());
    EXPECT_EQ(file(two, "songs.esb"), file(one, "songs.esb"));  // the songs are the same
    answers_as_the_whole_index(two);

    IndexBuildParams bad = small_build_params();
    bad.format_version = kIndexVersion2;
    bad.pair_span = 4;
    bad.pair_lists = 3;
    EXPECT_FALSE(validate_index_build_params(bad, fake_model_info()));
}

TEST(LazyIndex, RefusesChangedOrCutRangesAndKeepsNothingOfThem) {
    const Built b = build();
    std::unique_ptr<LazyIndex> lazy = open(b);
    ASSERT_TRUE(lazy);
    const SyntheticSong& song = b.songs[11];
    ASSERT_TRUE(lazy->begin_query(&song.embeddings[10 * kDim], 20).is_ok());
    for (int round = 0; round < 4; ++round) {  // pair pages, units, directory pages, blocks
        std::vector<LazyFetch> next = lazy->next_fetches().value();
        ASSERT_FALSE(next.empty()) << "round " << round;
        for (const LazyFetch& x : next) {
            const std::vector<uint8_t>& whole = file(b, x.file);
            std::vector<uint8_t> bytes(whole.begin() + long(x.range.offset),
                                       whole.begin() + long(x.range.offset + x.range.size));
            std::vector<uint8_t> changed = bytes;
            changed[changed.size() / 2] ^= 0x10;
            EXPECT_FALSE(lazy->provide(x, changed.data(), changed.size()).is_ok());
            EXPECT_FALSE(lazy->provide(x, bytes.data(), bytes.size() - 1).is_ok());
            LazyFetch elsewhere = x;  // another item's bytes under this one's name
            elsewhere.id = x.id + 1;
            EXPECT_FALSE(lazy->provide(elsewhere, bytes.data(), bytes.size()).is_ok());
        }
        // Nothing refused was kept: the same round is named again.
        std::vector<LazyFetch> again = lazy->next_fetches().value();
        ASSERT_EQ(again.size(), next.size());
        for (const LazyFetch& x : again) {
            const std::vector<uint8_t>& whole = file(b, x.file);
            ASSERT_TRUE(lazy->provide(x, whole.data() + x.range.offset, x.range.size).is_ok());
        }
    }
    EXPECT_TRUE(lazy->next_fetches().value().empty());
    EXPECT_TRUE(lazy->query_index().is_ok());
    EXPECT_GT(lazy->stats().rejected, 0u);
}

TEST(LazyIndex, TheBlockBudgetDropsTheOldestButNeverTheQuerysOwn) {
    const Built b = build();
    LazyIndexParams params = no_background();
    params.block_cache_bytes = 1;  // less than one block
    std::unique_ptr<LazyIndex> lazy = open(b, params);
    ASSERT_TRUE(lazy);
    const SyntheticSong& first = b.songs[5];
    ASSERT_TRUE(lazy->begin_query(&first.embeddings[30 * kDim], 20).is_ok());
    run_rounds(b, lazy.get());
    ASSERT_TRUE(lazy->query_index().is_ok());  // its blocks were all kept
    const SyntheticSong& second = b.songs[44];
    ASSERT_TRUE(lazy->begin_query(&second.embeddings[30 * kDim], 20).is_ok());
    run_rounds(b, lazy.get());
    ASSERT_TRUE(lazy->query_index().is_ok());
    // The first query's blocks made room: asked again, they are fetched again.
    ASSERT_TRUE(lazy->begin_query(&first.embeddings[30 * kDim], 20).is_ok());
    const Fetched again = run_rounds(b, lazy.get());
    ASSERT_FALSE(again.rounds.empty());
    EXPECT_TRUE(lazy->query_index().is_ok());
}

// Background blocks: fetched once (before the first query or in its first round), never
// dropped, and in every query's index; with every block one, the lazy decision is the whole
// index's, background and confidence included.
TEST(LazyIndex, BackgroundBlocksAreKeptAndJoinEveryQuery) {
    const Built b = build();
    Index whole(b.model);
    ASSERT_TRUE(load_all(b.files, &whole).is_ok());
    const size_t n_blocks = whole.n_shards_expected();
    ASSERT_GT(n_blocks, 8u);

    LazyIndexParams some;
    some.background_blocks = 4;
    some.block_cache_bytes = 1;
    std::unique_ptr<LazyIndex> lazy = open(b, some);
    ASSERT_TRUE(lazy);
    const std::vector<uint32_t> background = lazy->background_blocks();
    ASSERT_EQ(background.size(), 4u);
    EXPECT_EQ(background.back(), n_blocks - 1);  // spread from the last block back
    // Their directory pages first, then the blocks.
    const std::vector<LazyFetch> preload = lazy->preload_fetches();
    ASSERT_FALSE(preload.empty());
    for (const LazyFetch& f : preload) EXPECT_EQ(f.kind, LazyFetch::Kind::kDirectoryPage);
    const SyntheticSong& song = b.songs[20];
    ASSERT_TRUE(lazy->begin_query(&song.embeddings[30 * kDim], 20).is_ok());
    size_t background_named = 0;
    for (int round = 0; round < 2; ++round) {  // not preloaded: the first rounds name them
        const std::vector<LazyFetch> round_fetches = lazy->next_fetches().value();
        for (const LazyFetch& f : round_fetches) {
            background_named += f.kind == LazyFetch::Kind::kBlock &&
                                std::count(background.begin(), background.end(), f.id);
            const std::vector<uint8_t>& whole_file = file(b, f.file);
            ASSERT_TRUE(lazy->provide(f, whole_file.data() + f.range.offset, f.range.size).is_ok());
        }
    }
    EXPECT_EQ(background_named, 4u);
    EXPECT_TRUE(lazy->preload_fetches().empty());
    run_rounds(b, lazy.get());
    Result<std::shared_ptr<const Index>> index = lazy->query_index();
    ASSERT_TRUE(index.is_ok()) << index.message();
    // Its songs: the background blocks' and the candidates'.
    size_t background_songs = 0;
    for (uint32_t blk : background) background_songs += whole.shard_range(blk).songs;
    EXPECT_GT((*index)->n_songs(), background_songs);
    // A cleared cache and a tiny block budget keep them.
    lazy->clear_cache();
    EXPECT_TRUE(lazy->preload_fetches().empty());

    LazyIndexParams all;
    all.background_blocks = uint32_t(n_blocks) + 5;
    std::unique_ptr<LazyIndex> everything = open(b, all);
    ASSERT_EQ(everything->background_blocks().size(), n_blocks);
    const std::vector<float> query = noisy_copy(&song.embeddings[30 * kDim], 20, kDim, 0.3f, 3);
    ASSERT_TRUE(everything->begin_query(query.data(), 20).is_ok());
    run_rounds(b, everything.get());
    index = everything->query_index();
    ASSERT_TRUE(index.is_ok()) << index.message();
    EXPECT_EQ((*index)->n_songs(), whole.n_songs());
    const MatchParams params = match_default_params();
    const MatchResult got = Matcher(**index, params).match(query.data(), 20, 0.5).value();
    const MatchResult want = Matcher(whole, params).match(query.data(), 20, 0.5).value();
    EXPECT_EQ(got.best.id, want.best.id);
    EXPECT_FLOAT_EQ(got.background, want.background);
    EXPECT_FLOAT_EQ(got.confidence, want.confidence);
    EXPECT_EQ(got.matched, want.matched);
}

TEST(LazyIndex, ShortClipsNameNoKeyAndGetNoCandidate) {
    const Built b = build();
    std::unique_ptr<LazyIndex> lazy = open(b);
    ASSERT_TRUE(lazy);
    EXPECT_FALSE(lazy->next_fetches().is_ok());                            // no query begun
    ASSERT_TRUE(lazy->begin_query(&b.songs[2].embeddings[0], 4).is_ok());  // 4 < span + 1
    EXPECT_TRUE(lazy->next_fetches().value().empty());
    Result<std::shared_ptr<const Index>> index = lazy->query_index();
    ASSERT_TRUE(index.is_ok());
    EXPECT_EQ((*index)->n_songs(), 0u);
    EXPECT_TRUE(lazy->candidates().empty());
}

// With short keys, a query too short for a pair span apart looks its pairs up short_span
// apart, and answers as the whole index; one too short for those names no key still.
TEST(LazyIndex, ShortKeysAnswerClipsTooShortForAPair) {
    // These synthetic songs drift slowly and share 16 centres, so with 32 lists a query's two
    // short pairs give two votes to many (song, offset) of its centre's songs: 256 lists here.
    const Built b = build(60, 2, 256);
    Index whole(b.model);
    ASSERT_TRUE(load_all(b.files, &whole).is_ok());
    std::unique_ptr<LazyIndex> lazy = open(b, by_count());
    ASSERT_TRUE(lazy);
    EXPECT_EQ(lazy->pair_manifest().short_span, 2u);
    const MatchParams params = match_default_params();
    for (size_t s : {size_t(5), size_t(41)}) {
        SCOPED_TRACE("song " + std::to_string(s));
        const size_t start = 30, n = 4;  // 4 < span + 1: pairs (0, 2) and (1, 3)
        const std::vector<float> query =
            noisy_copy(&b.songs[s].embeddings[start * kDim], n, kDim, 0.2f, 3 + s);
        ASSERT_TRUE(lazy->begin_query(query.data(), n).is_ok());
        run_rounds(b, lazy.get());
        const auto found = std::find_if(
            lazy->candidates().begin(), lazy->candidates().end(),
            [&](const PairCandidate& c) { return c.song == s && c.delta == int64_t(start); });
        ASSERT_NE(found, lazy->candidates().end());
        EXPECT_EQ(found->votes, 2u);  // both short pairs
        EXPECT_EQ(found->votes, lazy->candidates()[0].votes);
        Result<std::shared_ptr<const Index>> index = lazy->query_index();
        ASSERT_TRUE(index.is_ok()) << index.message();
        const MatchResult got = Matcher(**index, params).match(query.data(), n, 0.5).value();
        const MatchResult want = Matcher(whole, params).match(query.data(), n, 0.5).value();
        ASSERT_TRUE(got.has_candidates());
        EXPECT_EQ(got.best.id, b.songs[s].info.id);
        EXPECT_EQ(got.best.id, want.best.id);
        EXPECT_DOUBLE_EQ(got.best.offset_s, want.best.offset_s);
    }
    // A listen's first look: at a pair (5 embeddings) by default, or at a short pair (3).
    EXPECT_EQ(lazy->early_looks(), (std::vector<size_t>{5}));
    LazyIndexParams short_look = no_background();
    short_look.short_look_pairs = 1;
    EXPECT_EQ(open(b, short_look)->early_looks(), (std::vector<size_t>{3}));
    // Two embeddings hold no pair 2 apart either.
    ASSERT_TRUE(lazy->begin_query(&b.songs[2].embeddings[0], 2).is_ok());
    EXPECT_TRUE(lazy->next_fetches().value().empty());
    EXPECT_TRUE(lazy->candidates().empty());
    // A query long enough for a pair span apart looks up the same keys as without short keys.
    const Built plain = build(60, 0, 256);
    std::unique_ptr<LazyIndex> lazy_plain = open(plain, by_count());
    const std::vector<float>& e = b.songs[7].embeddings;
    ASSERT_TRUE(lazy->begin_query(&e[10 * kDim], 12).is_ok());
    ASSERT_TRUE(lazy_plain->begin_query(&e[10 * kDim], 12).is_ok());
    run_rounds(b, lazy.get());
    run_rounds(plain, lazy_plain.get());
    ASSERT_EQ(lazy->candidates().size(), lazy_plain->candidates().size());
    for (size_t i = 0; i < lazy->candidates().size(); ++i) {
        EXPECT_EQ(lazy->candidates()[i].song, lazy_plain->candidates()[i].song);
        EXPECT_EQ(lazy->candidates()[i].delta, lazy_plain->candidates()[i].delta);
        EXPECT_EQ(lazy->candidates()[i].votes, lazy_plain->candidates()[i].votes);
    }
}

// A query with few pairs span apart may also look up its pairs short_span apart: the right
// (song, offset) then gets a vote from each, where a lone pair's candidates all tie at one.
TEST(LazyIndex, FewPairsAlsoLookUpTheirShortPairs) {
    LazyIndexParams both = by_count(), span_alone = by_count();
    both.both_spans_max_pairs = 1;
    span_alone.both_spans_max_pairs = 0;
    const auto spans = [&](size_t n, uint32_t short_span) {
        std::vector<std::pair<uint32_t, bool>> out;
        for (const LazySpan& s : lazy_query_spans(n, 1, 4, short_span, both))
            out.emplace_back(s.span, s.short_keys);
        return out;
    };
    using Spans = std::vector<std::pair<uint32_t, bool>>;
    EXPECT_EQ(spans(4, 2), (Spans{{2, true}}));              // no pair 4 apart: short keys alone
    EXPECT_EQ(spans(5, 2), (Spans{{4, false}, {2, true}}));  // one pair 4 apart: both
    EXPECT_EQ(spans(6, 2), (Spans{{4, false}}));             // two: the span alone
    EXPECT_EQ(spans(5, 0), (Spans{{4, false}}));             // a level without short keys
    EXPECT_EQ(spans(3, 0), (Spans{{4, false}}));             // no pair at all: names no key

    const Built b = build(60, 2, 256);
    std::unique_ptr<LazyIndex> one = open(b, span_alone), two = open(b, both);
    ASSERT_TRUE(one && two);
    for (size_t s : {size_t(9), size_t(33)}) {
        SCOPED_TRACE("song " + std::to_string(s));
        const size_t start = 40, n = 5;  // a pair (0, 4) and short pairs (0, 2), (1, 3), (2, 4)
        const std::vector<float> query =
            noisy_copy(&b.songs[s].embeddings[start * kDim], n, kDim, 0.2f, 5 + s);
        const auto votes = [&](LazyIndex* lazy) -> uint32_t {
            EXPECT_TRUE(lazy->begin_query(query.data(), n).is_ok());
            run_rounds(b, lazy);
            for (const PairCandidate& c : lazy->candidates())
                if (c.song == s && c.delta == int64_t(start)) return c.votes;
            return 0;
        };
        EXPECT_EQ(votes(one.get()), 1u);
        const uint32_t v = votes(two.get());
        EXPECT_EQ(v, 4u);
        EXPECT_EQ(two->candidates()[0].votes, v);
        EXPECT_EQ(two->candidates()[0].song, s);
        Result<std::shared_ptr<const Index>> index = two->query_index();
        ASSERT_TRUE(index.is_ok()) << index.message();
        const MatchResult got =
            Matcher(**index, match_default_params()).match(query.data(), n, 0.5).value();
        ASSERT_TRUE(got.has_candidates());
        EXPECT_EQ(got.best.id, b.songs[s].info.id);
    }
}

TEST(LazyIndex, RefusesIndexesItCannotReadLazily) {
    const Built b = build(12);
    const auto& m = file(b, "manifest.json");
    const std::string manifest(m.begin(), m.end());
    const auto& q = file(b, "quantizer.eq");
    std::vector<uint8_t> d = file(b, "directory-pages.edh");
    std::vector<uint8_t> h = file(b, "pairs.ekh");
    const auto create = [&](const std::string& text, const std::vector<uint8_t>& header) {
        return LazyIndex::create(b.model, text, q.data(), q.size(), d.data(), d.size(),
                                 header.data(), header.size(), LazyIndexParams());
    };
    ASSERT_TRUE(create(manifest, h).is_ok());
    // A manifest written before short keys existed names no short span: none.
    nlohmann::json older = nlohmann::json::parse(manifest);
    older["pair_keys"].erase("short_span");
    EXPECT_TRUE(create(older.dump(), h).is_ok());
    // One that names a short span the header does not have is refused.
    older["pair_keys"]["short_span"] = 2;
    EXPECT_FALSE(create(older.dump(), h).is_ok());
    std::vector<uint8_t> changed = h;
    changed[changed.size() / 3] ^= 1;
    Result<std::unique_ptr<LazyIndex>> bad = create(manifest, changed);
    ASSERT_FALSE(bad.is_ok());
    EXPECT_NE(bad.message().find("SHA-256"), std::string::npos) << bad.message();
    // The directory pages' header, changed or missing.
    d[d.size() / 3] ^= 1;
    bad = create(manifest, h);
    ASSERT_FALSE(bad.is_ok());
    EXPECT_NE(bad.message().find("directory-pages.edh"), std::string::npos) << bad.message();
    d = file(b, "directory-pages.edh");
    nlohmann::json no_pages = nlohmann::json::parse(manifest);
    no_pages.erase("directory_pages");
    bad = create(no_pages.dump(), h);
    ASSERT_FALSE(bad.is_ok());
    EXPECT_NE(bad.message().find("no directory pages"), std::string::npos) << bad.message();

    nlohmann::json without = nlohmann::json::parse(manifest);
    without.erase("pair_keys");
    bad = create(without.dump(), h);
    ASSERT_FALSE(bad.is_ok());
    EXPECT_NE(bad.message().find("--pair-keys"), std::string::npos) << bad.message();

    IndexBuildParams v1 = small_build_params();
    const IndexFiles v1_files = build_catalog(b.songs, v1, b.model);
    const auto& m1 = v1_files.files.at("manifest.json");
    bad = create(std::string(m1.begin(), m1.end()), h);
    ASSERT_FALSE(bad.is_ok());
    EXPECT_NE(bad.message().find("format 1"), std::string::npos) << bad.message();

    LazyIndexParams none;
    none.max_candidates = 0;
    EXPECT_FALSE(LazyIndex::create(b.model, manifest, q.data(), q.size(), d.data(), d.size(),
                                   h.data(), h.size(), none)
                     .is_ok());
}

// A budget of postings keeps a query's rarest keys and fetches only their units; the answer
// still comes from them. Without a budget every key is looked up.
TEST(LazyIndex, ABudgetOfPostingsKeepsTheRarestKeys) {
    const Built b = build();
    const auto& h = file(b, "pairs.ekh");
    Result<PairKeyHeader> header = parse_pair_key_header(h.data(), h.size(), "pairs.ekh");
    ASSERT_TRUE(header.is_ok()) << header.message();
    PairKeyReader counts(header.value(), uint64_t(1) << 30);  // every key's count, from its page
    const auto count_of = [&](uint32_t key) {
        const uint32_t page = counts.header().page_of(key);
        if (counts.missing_pages({key}).size() == 1) {
            const ByteRange r = counts.header().page_record(page);
            EXPECT_TRUE(counts.add_page(page, file(b, "pairs.ekd").data() + r.offset, r.size));
        }
        return counts.posting_count(key).value();
    };
    LazyIndexParams wide = no_background();
    wide.pair_key_budget = 64;
    wide.max_query_postings = 0;
    std::unique_ptr<LazyIndex> all = open(b, wide);
    const SyntheticSong& song = b.songs[21];
    const size_t start = 30, n = 20;
    const std::vector<float> query = noisy_copy(&song.embeddings[start * kDim], n, kDim, 0.2f, 8);
    ASSERT_TRUE(all->begin_query(query.data(), n).is_ok());
    run_rounds(b, all.get());
    const std::vector<uint32_t> every = all->query_keys();
    uint64_t total = 0;
    for (uint32_t key : every) total += count_of(key);
    ASSERT_GT(every.size(), 8u);

    LazyIndexParams budget = wide;
    budget.max_query_postings = total / 2;
    std::unique_ptr<LazyIndex> rare = open(b, budget);
    ASSERT_TRUE(rare->begin_query(query.data(), n).is_ok());
    run_rounds(b, rare.get());
    const std::vector<uint32_t>& kept = rare->query_keys();
    ASSERT_FALSE(kept.empty());
    EXPECT_LT(kept.size(), every.size());
    EXPECT_LT(rare->pair_stats().units_added, all->pair_stats().units_added);
    uint64_t kept_postings = 0, most_kept = 0, least_left = UINT64_MAX;
    for (uint32_t key : every) {
        const uint64_t c = count_of(key);
        if (std::binary_search(kept.begin(), kept.end(), key)) {
            kept_postings += c;
            most_kept = std::max(most_kept, c);
        } else {
            least_left = std::min(least_left, c);
        }
    }
    EXPECT_LE(kept_postings, budget.max_query_postings);
    EXPECT_LE(most_kept, least_left);  // the commonest keys are the ones left out
    ASSERT_FALSE(rare->candidates().empty());
    EXPECT_EQ(rare->candidates()[0].song, 21u);
}

// The same (song, offset) candidates in the same order.
void expect_same_candidates(const std::vector<PairCandidate>& got,
                            const std::vector<PairCandidate>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(got[i].song, want[i].song) << i;
        EXPECT_EQ(got[i].delta, want[i].delta) << i;
    }
}

// A query that widens gets phase 1's next candidates, as a query keeping that many in all
// would, and (no more keys) fetches only their directory pages and blocks; once a query.
TEST(LazyIndex, ASecondRoundFetchesTheNextCandidatesOnce) {
    const Built b = build();
    LazyIndexParams all_at_once = no_background();
    all_at_once.max_candidates = 8;
    all_at_once.wide_keys_per_pair = 0;
    LazyIndexParams two_then_six = all_at_once;
    two_then_six.max_candidates = 2;
    two_then_six.more_candidates = 6;
    std::unique_ptr<LazyIndex> once = open(b, all_at_once), twice = open(b, two_then_six);
    const SyntheticSong& song = b.songs[17];
    const size_t start = 30, n = 20;
    const std::vector<float> query = noisy_copy(&song.embeddings[start * kDim], n, kDim, 0.6f, 9);
    ASSERT_TRUE(once->begin_query(query.data(), n).is_ok());
    run_rounds(b, once.get());
    const std::vector<PairCandidate> want = once->candidates();
    ASSERT_GT(want.size(), 2u);
    LazyIndexParams one_round = no_background();
    one_round.more_candidates = 0;  // no second round, whatever wide_keys_per_pair
    std::unique_ptr<LazyIndex> single = open(b, one_round);
    ASSERT_TRUE(single->begin_query(query.data(), n).is_ok());
    run_rounds(b, single.get());
    EXPECT_FALSE(single->widen());

    ASSERT_TRUE(twice->begin_query(query.data(), n).is_ok());
    EXPECT_FALSE(twice->widen());  // nothing ranked yet
    const Fetched first = run_rounds(b, twice.get());
    ASSERT_EQ(twice->candidates().size(), 2u);
    const uint64_t units = twice->pair_stats().units_added;
    Result<std::shared_ptr<const Index>> narrow = twice->query_index();
    ASSERT_TRUE(narrow.is_ok()) << narrow.message();

    ASSERT_TRUE(twice->widen());
    EXPECT_FALSE(twice->query_index().is_ok());  // its blocks are not held yet
    const Fetched second = run_rounds(b, twice.get());
    EXPECT_GE(second.rounds.size(), 1u);
    EXPECT_LE(second.rounds.size(), 2u);                // directory pages not held yet, then blocks
    EXPECT_EQ(twice->pair_stats().units_added, units);  // no key looked up again
    EXPECT_LT(second.bytes, first.bytes * 4);
    const std::vector<PairCandidate>& got = twice->candidates();
    expect_same_candidates(got, want);
    Result<std::shared_ptr<const Index>> wide = twice->query_index();
    ASSERT_TRUE(wide.is_ok()) << wide.message();
    EXPECT_GT((*wide)->n_songs(), (*narrow)->n_songs());
    EXPECT_FALSE(twice->widen());  // once a query

    // A new query may widen again.
    ASSERT_TRUE(twice->begin_query(query.data(), n).is_ok());
    run_rounds(b, twice.get());
    EXPECT_TRUE(twice->widen());
    EXPECT_TRUE(run_rounds(b, twice.get()).rounds.empty());  // its blocks are cached
}

// A short query spreads the key budget over its few pairs: more keys, found by both.
TEST(LazyIndex, AKeyBudgetGivesShortQueriesMoreKeysAPair) {
    LazyIndexParams one_key = by_count(), budget = by_count();
    one_key.pair_key_budget = 0;
    budget.pair_key_budget = 16;
    EXPECT_EQ(lazy_keys_per_pair(1, one_key), 1u);  // no budget: one key a pair
    EXPECT_EQ(lazy_keys_per_pair(16, budget), 1u);
    EXPECT_EQ(lazy_keys_per_pair(5, budget), 3u);
    EXPECT_EQ(lazy_keys_per_pair(1, budget), 8u);   // at most 8
    EXPECT_EQ(lazy_keys_per_pair(0, budget), 1u);   // no pair
    EXPECT_EQ(lazy_keys_per_pair(40, budget), 1u);  // at least one
    budget.max_keys_per_pair = 2;
    EXPECT_EQ(lazy_keys_per_pair(1, budget), 2u);
    budget.max_keys_per_pair = 8;

    const Built b = build();
    std::unique_ptr<LazyIndex> plain = open(b, one_key), wide = open(b, budget);
    ASSERT_TRUE(plain && wide);
    const SyntheticSong& song = b.songs[17];
    const size_t start = 30, n = 5;  // one pair (span 4 hops, the query's hop the index's)
    const std::vector<float> query = noisy_copy(&song.embeddings[start * kDim], n, kDim, 0.3f, 4);
    ASSERT_TRUE(plain->begin_query(query.data(), n).is_ok());
    ASSERT_TRUE(wide->begin_query(query.data(), n).is_ok());
    run_rounds(b, plain.get());
    run_rounds(b, wide.get());
    EXPECT_GT(wide->pair_stats().units_added + wide->pair_stats().pages_added,
              plain->pair_stats().units_added + plain->pair_stats().pages_added);
    const auto votes_for_song = [&](const LazyIndex& lazy) {
        for (const PairCandidate& c : lazy.candidates())
            if (c.song == 17 && c.delta == int64_t(start)) return c.votes;
        return 0u;
    };
    // Here the one pair's nearest key misses the song's window pair; one of its next keys holds
    // it, and its votes rank it among the candidates.
    EXPECT_EQ(votes_for_song(*plain), 0u);
    EXPECT_EQ(votes_for_song(*wide), 1u);
}

// With more keys a pair, the second round looks up the wider keys too (the first round's held)
// and ranks as a query with those keys and all the candidates would in one round.
TEST(LazyIndex, ASecondRoundWithMoreKeysRanksAsOneWideRound) {
    const Built b = build();
    LazyIndexParams narrow = no_background();
    narrow.pair_key_budget = 16;
    narrow.max_keys_per_pair = 1;
    narrow.max_candidates = 2;
    narrow.more_candidates = 6;
    narrow.wide_pair_key_budget = 64;
    narrow.wide_keys_per_pair = 4;
    LazyIndexParams wide = narrow;
    wide.pair_key_budget = 64;
    wide.max_keys_per_pair = 4;
    wide.max_candidates = 8;
    wide.more_candidates = 0;
    std::unique_ptr<LazyIndex> twice = open(b, narrow), once = open(b, wide);
    const SyntheticSong& song = b.songs[40];
    const size_t start = 20, n = 20;
    const std::vector<float> query = noisy_copy(&song.embeddings[start * kDim], n, kDim, 0.6f, 10);
    ASSERT_TRUE(once->begin_query(query.data(), n).is_ok());
    run_rounds(b, once.get());
    ASSERT_TRUE(twice->begin_query(query.data(), n).is_ok());
    run_rounds(b, twice.get());
    const std::vector<uint32_t> first_keys = twice->query_keys();
    const uint64_t units = twice->pair_stats().units_added;
    ASSERT_TRUE(twice->widen());
    run_rounds(b, twice.get());
    EXPECT_GT(twice->pair_stats().units_added, units);  // the wider keys' units
    EXPECT_EQ(twice->query_keys(), once->query_keys());
    for (uint32_t key : first_keys)  // the first round's keys are among them
        EXPECT_TRUE(
            std::binary_search(twice->query_keys().begin(), twice->query_keys().end(), key));
    const std::vector<PairCandidate>& got = twice->candidates();
    const std::vector<PairCandidate>& want = once->candidates();
    expect_same_candidates(got, want);
    ASSERT_TRUE(twice->query_index().is_ok());
    EXPECT_FALSE(twice->widen());  // once a query
}

// A second round comes at a listen's last look or at a whole window, not at its early looks.
TEST(LazyIndex, ASecondRoundWaitsForTheLastLookOrAWholeWindow) {
    const size_t max_window = 19;
    EXPECT_FALSE(lazy_widen_due(6, max_window, false));
    EXPECT_FALSE(lazy_widen_due(18, max_window, false));
    EXPECT_TRUE(lazy_widen_due(19, max_window, false));
    EXPECT_TRUE(lazy_widen_due(6, max_window, true));
}

// A lazy listen's looks: at half the query window, then every half window more, and at the
// end unless the last look saw the same window.
TEST(LazyIndex, LooksComeEveryHalfWindowAndOnceAtTheEnd) {
    const size_t max_window = 19;  // 10 s at a 0.5 s hop: a look every 10 embeddings
    EXPECT_FALSE(lazy_look_due(0, 0, max_window, {}, -1, false));
    EXPECT_FALSE(lazy_look_due(0, 30, max_window, {}, -1, true));  // no music: nothing to look at
    EXPECT_FALSE(lazy_look_due(9, 12, max_window, {}, -1, false));
    EXPECT_TRUE(lazy_look_due(10, 12, max_window, {}, -1, false));  // lead-in embeddings count not
    EXPECT_FALSE(lazy_look_due(15, 17, max_window, {}, 12, false));
    EXPECT_TRUE(lazy_look_due(19, 22, max_window, {}, 12, false));
    EXPECT_TRUE(lazy_look_due(19, 32, max_window, {}, 22, false));  // a full window slides on
    EXPECT_FALSE(lazy_look_due(19, 22, max_window, {}, 22, true));  // the end saw that window
    EXPECT_TRUE(lazy_look_due(19, 25, max_window, {}, 22, true));
    EXPECT_TRUE(lazy_look_due(3, 3, max_window, {}, -1, true));  // a short listen: one look
    EXPECT_TRUE(lazy_look_due(1, 1, 1, {}, -1, false));          // a one-embedding window
    // A first look at one pair (5 embeddings with pairs 4 apart), then at half a window, then
    // every half window.
    EXPECT_FALSE(lazy_look_due(4, 6, max_window, {5}, -1, false));
    EXPECT_TRUE(lazy_look_due(5, 7, max_window, {5}, -1, false));
    EXPECT_FALSE(lazy_look_due(9, 11, max_window, {5}, 7, false));
    EXPECT_TRUE(lazy_look_due(10, 12, max_window, {5}, 7, false));
    EXPECT_FALSE(lazy_look_due(19, 21, max_window, {5}, 12, false));
    EXPECT_TRUE(lazy_look_due(19, 22, max_window, {5}, 12, false));
    EXPECT_TRUE(lazy_look_due(10, 12, max_window, {30}, -1, false));  // never later than half
    // Early looks at a short pair (3 embeddings with pairs 2 apart) and at a pair (5), then
    // every half window.
    const std::vector<size_t> early = {3, 5};
    EXPECT_FALSE(lazy_look_due(2, 4, max_window, early, -1, false));
    EXPECT_TRUE(lazy_look_due(3, 5, max_window, early, -1, false));
    EXPECT_FALSE(lazy_look_due(4, 6, max_window, early, 5, false));
    EXPECT_TRUE(lazy_look_due(5, 7, max_window, early, 5, false));
    EXPECT_FALSE(lazy_look_due(9, 11, max_window, early, 7, false));
    EXPECT_TRUE(lazy_look_due(10, 12, max_window, early, 7, false));
    EXPECT_FALSE(lazy_look_due(19, 21, max_window, early, 12, false));
    EXPECT_TRUE(lazy_look_due(19, 22, max_window, early, 12, false));
    // Music that stops and starts again (a new window) gets the early looks again.
    EXPECT_TRUE(lazy_look_due(3, 40, max_window, early, 22, false));
}

// Every round of the preload (the background blocks' directory pages, then the blocks).
void preload(const Built& b, LazyIndex* lazy) {
    for (std::vector<LazyFetch> round = lazy->preload_fetches(); !round.empty();
         round = lazy->preload_fetches()) {
        for (const LazyFetch& f : round) {
            const std::vector<uint8_t>& whole_file = file(b, f.file);
            ASSERT_TRUE(lazy->provide(f, whole_file.data() + f.range.offset, f.range.size).is_ok());
        }
    }
}

TEST(LazyIndex, ARehearsalMatchesTheBackgroundWithoutAFetchAndLeavesTheQueryAsItWas) {
    const Built b = build();
    Index whole(b.model);
    ASSERT_TRUE(load_all(b.files, &whole).is_ok());
    const MatchParams params = match_default_params();
    const SyntheticSong& song = b.songs[20];
    const std::vector<float> query = noisy_copy(&song.embeddings[30 * kDim], 20, kDim, 0.3f, 3);

    // Every block a background one: the whole index's answer.
    LazyIndexParams all;
    all.background_blocks = uint32_t(whole.n_shards_expected());
    std::unique_ptr<LazyIndex> lazy = open(b, all);
    ASSERT_TRUE(lazy);
    EXPECT_FALSE(lazy->rehearse(query.data(), 20, params).is_ok());  // none held yet
    preload(b, lazy.get());
    const LazyIndexStats before = lazy->stats();
    const uint64_t cached = lazy->cached_bytes();
    const MatchResult got = lazy->rehearse(query.data(), 20, params).value();
    const MatchResult want = Matcher(whole, params).match(query.data(), 20, 0.5).value();
    EXPECT_EQ(want.best.id, song.info.id);
    EXPECT_EQ(got.best.id, want.best.id);
    EXPECT_FLOAT_EQ(got.best.score, want.best.score);
    EXPECT_FLOAT_EQ(got.confidence, want.confidence);
    EXPECT_EQ(got.matched, want.matched);
    EXPECT_EQ(lazy->stats().fetches, before.fetches);
    EXPECT_EQ(lazy->stats().bytes, before.bytes);
    EXPECT_EQ(lazy->cached_bytes(), cached);

    // Between a query's rounds, it changes neither what the query fetches nor its answer.
    LazyIndexParams some;
    some.background_blocks = 4;
    std::unique_ptr<LazyIndex> plain = open(b, some), warmed = open(b, some);
    preload(b, plain.get());
    preload(b, warmed.get());
    const std::vector<float> other =
        noisy_copy(&b.songs[45].embeddings[20 * kDim], 20, kDim, 0.3f, 5);
    ASSERT_TRUE(plain->begin_query(other.data(), 20).is_ok());
    ASSERT_TRUE(warmed->begin_query(other.data(), 20).is_ok());
    ASSERT_TRUE(warmed->rehearse(query.data(), 20, params).is_ok());
    EXPECT_EQ(warmed->query_keys(), plain->query_keys());
    const Fetched plain_rounds = run_rounds(b, plain.get());
    const Fetched warmed_rounds = run_rounds(b, warmed.get());
    EXPECT_EQ(warmed_rounds.rounds, plain_rounds.rounds);
    EXPECT_EQ(warmed_rounds.bytes, plain_rounds.bytes);
    const MatchResult plain_answer = plain->match(other.data(), 20, params).value();
    const MatchResult warmed_answer = warmed->match(other.data(), 20, params).value();
    EXPECT_EQ(plain_answer.best.id, b.songs[45].info.id);
    EXPECT_EQ(warmed_answer.best.id, plain_answer.best.id);
    EXPECT_FLOAT_EQ(warmed_answer.confidence, plain_answer.confidence);
}

TEST(LazyIndex, FetchKindsAreNamedBothWays) {
    for (LazyFetch::Kind kind : {LazyFetch::Kind::kPairPage, LazyFetch::Kind::kPairUnit,
                                 LazyFetch::Kind::kDirectoryPage, LazyFetch::Kind::kBlock})
        EXPECT_EQ(lazy_fetch_kind_from_name(lazy_fetch_kind_name(kind)), kind);
    EXPECT_STREQ(lazy_fetch_kind_name(LazyFetch::Kind::kDirectoryPage), "directory");
    EXPECT_FALSE(lazy_fetch_kind_from_name("blocks").has_value());
    EXPECT_FALSE(lazy_fetch_kind_from_name("").has_value());
}

}  // namespace
}  // namespace earshot
