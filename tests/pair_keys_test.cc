#include "core/pair_keys.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace earshot {
namespace {

std::vector<uint32_t> random_lists(std::mt19937& rng, size_t n, uint32_t n_lists) {
    std::uniform_int_distribution<uint32_t> pick(0, n_lists - 1);
    std::vector<uint32_t> out(n);
    for (auto& x : out) x = pick(rng);
    return out;
}

// What a query at `query_step` index hops sees of `song` from window `start` on.
std::vector<uint32_t> query_of(const std::vector<uint32_t>& song, size_t start, size_t n,
                               uint32_t query_step) {
    std::vector<uint32_t> out;
    for (size_t i = 0; i < n; ++i) out.push_back(song[start + i * query_step]);
    return out;
}

// A finished level of n_songs random songs of n_windows windows each; their lists in *songs.
PairKeyIndex random_level(uint32_t seed, uint32_t n_lists, uint32_t span, int n_songs,
                          size_t n_windows, std::vector<std::vector<uint32_t>>* songs) {
    std::mt19937 rng(seed);
    auto keys = PairKeyIndex::create(n_lists, span);
    EXPECT_TRUE(keys.is_ok());
    for (int s = 0; s < n_songs; ++s) {
        songs->push_back(random_lists(rng, n_windows, n_lists));
        EXPECT_TRUE(keys->add_song(songs->back().data(), songs->back().size()));
    }
    EXPECT_TRUE(keys->finish());
    return std::move(keys.value());
}

TEST(PairKeys, RejectsBadParameters) {
    EXPECT_FALSE(PairKeyIndex::create(0, 8).is_ok());
    EXPECT_FALSE(PairKeyIndex::create(kPairMaxLists + 1, 8).is_ok());
    EXPECT_FALSE(PairKeyIndex::create(16, 0).is_ok());
    EXPECT_TRUE(PairKeyIndex::create(kPairMaxLists, 8).is_ok());
    // Short keys: below the span, and twice n_lists^2 keys must fit 32 bits.
    EXPECT_TRUE(PairKeyIndex::create(16, 8, 4).is_ok());
    EXPECT_FALSE(PairKeyIndex::create(16, 8, 8).is_ok());
    EXPECT_FALSE(PairKeyIndex::create(16, 8, 9).is_ok());
    EXPECT_TRUE(PairKeyIndex::create(kPairMaxListsTwoSpans, 8, 4).is_ok());
    EXPECT_FALSE(PairKeyIndex::create(kPairMaxListsTwoSpans + 1, 8, 4).is_ok());
    EXPECT_LE(pair_key_space(kPairMaxListsTwoSpans, 4), uint64_t(1) << 32);
}

TEST(PairKeys, ShortKeysPairWindowsShortSpanApartAboveTheSpansKeys) {
    auto keys = PairKeyIndex::create(10, 3, 1);
    ASSERT_TRUE(keys.is_ok()) << keys.message();
    const std::vector<uint32_t> song = {1, 2, 3, kPairNoList, 5};
    ASSERT_TRUE(keys->add_song(song.data(), song.size()));
    ASSERT_TRUE(keys->finish());
    // Span 3: (0,3) has no key, (1,4) = (2,5). Short span 1: (0,1) (1,2); (2,3) and (3,4) none.
    EXPECT_EQ(keys->n_postings(), 3u);
    const uint32_t base = pair_key_base(10, true);
    EXPECT_EQ(base, 100u);
    EXPECT_EQ(keys->postings(keys->key(2, 5)).size, 1u);
    ASSERT_EQ(keys->postings(base + keys->key(1, 2)).size, 1u);
    EXPECT_EQ(keys->postings(base + keys->key(1, 2)).data[0].window, 0u);
    ASSERT_EQ(keys->postings(base + keys->key(2, 3)).size, 1u);
    EXPECT_EQ(keys->postings(base + keys->key(2, 3)).data[0].window, 1u);
    EXPECT_EQ(keys->postings(keys->key(1, 2)).size, 0u);  // not a long key

    // A query of three embeddings (step 1) holds no pair 3 apart but two 1 apart: its short
    // probes find the song at its offset.
    const std::vector<uint32_t> q = {1, 2, 3};
    auto probes = pair_query_probes(10, 1, q.data(), nullptr, 3, 1, 1, 1, base);
    ASSERT_TRUE(probes.is_ok()) << probes.message();
    ASSERT_EQ(probes->size(), 2u);
    const auto votes = pair_vote_probes(*probes, 4, [&](uint32_t k) { return keys->postings(k); });
    ASSERT_EQ(votes.size(), 1u);
    EXPECT_EQ(votes[0].song, 0u);
    EXPECT_EQ(votes[0].delta, 0);
    EXPECT_EQ(votes[0].votes, 2u);
    EXPECT_TRUE(pair_query_probes(10, 3, q.data(), nullptr, 3, 1, 1, 1)->empty());
}

TEST(PairKeys, KeysPairWindowsSpanApartAndSkipWhatIsNotStored) {
    auto keys = PairKeyIndex::create(10, 2);
    ASSERT_TRUE(keys.is_ok()) << keys.message();
    // Windows 0..5, window 3 not stored: of the window pairs (0,2) (1,3) (2,4) (3,5), those
    // with window 3 have no key; windows 4 and 5 have no partner.
    const std::vector<uint32_t> song = {1, 2, 3, kPairNoList, 5, 6};
    ASSERT_TRUE(keys->add_song(song.data(), song.size()));
    ASSERT_TRUE(keys->finish());
    EXPECT_EQ(keys->n_postings(), 2u);
    EXPECT_EQ(keys->n_keys(), 2u);
    const auto p = keys->postings(keys->key(1, 3));
    ASSERT_EQ(p.size, 1u);
    EXPECT_EQ(p.data[0].song, 0u);
    EXPECT_EQ(p.data[0].window, 0u);
    const auto q = keys->postings(keys->key(3, 5));
    ASSERT_EQ(q.size, 1u);
    EXPECT_EQ(q.data[0].window, 2u);
    for (uint32_t x = 0; x < 10; ++x) {
        EXPECT_EQ(keys->postings(keys->key(2, x)).size, 0u);  // window 1 pairs with window 3
        EXPECT_EQ(keys->postings(keys->key(x, 6)).size, 0u);  // window 5 with window 3
    }
}

TEST(PairKeys, PostingsOfAKeyAreListMajorInSongOrder) {
    auto keys = PairKeyIndex::create(4, 1);
    ASSERT_TRUE(keys.is_ok());
    const std::vector<uint32_t> a = {0, 1, 0, 1}, b = {3, 0, 1};
    ASSERT_TRUE(keys->add_song(a.data(), a.size()));
    ASSERT_TRUE(keys->add_song(b.data(), b.size()));
    ASSERT_TRUE(keys->finish());
    const auto p = keys->postings(keys->key(0, 1));  // song 0 at 0 and 2, song 1 at 1
    ASSERT_EQ(p.size, 3u);
    EXPECT_EQ(p.data[0].song, 0u);
    EXPECT_EQ(p.data[0].window, 0u);
    EXPECT_EQ(p.data[1].song, 0u);
    EXPECT_EQ(p.data[1].window, 2u);
    EXPECT_EQ(p.data[2].song, 1u);
    EXPECT_EQ(p.data[2].window, 1u);
}

TEST(PairKeys, AQueryFindsItsSongAndOffsetAmongImpostors) {
    const uint32_t n_lists = 256, span = 8, query_step = 2;
    std::vector<std::vector<uint32_t>> songs;
    const PairKeyIndex level = random_level(5, n_lists, span, 200, 600, &songs);
    const PairKeyIndex* keys = &level;
    // A 10 s query (20 embeddings at 0.5 s) of song 37 from 30 s on (window 120), with a fifth
    // of its embeddings in another list, as noise moves them.
    auto query = query_of(songs[37], 120, 20, query_step);
    for (size_t i = 0; i < query.size(); i += 5) query[i] = (query[i] + 1) % n_lists;
    const auto candidates = keys->vote(query.data(), query.size(), query_step, 16);
    ASSERT_TRUE(candidates.is_ok()) << candidates.message();
    ASSERT_FALSE(candidates->empty());
    EXPECT_EQ(candidates.value()[0].song, 37u);
    EXPECT_EQ(candidates.value()[0].delta, 120);
    // 16 pairs, 7 of them touch a moved embedding (i or i + 4 a multiple of 5)
    EXPECT_EQ(candidates.value()[0].votes, 9u);
    for (size_t c = 1; c < candidates->size(); ++c)
        EXPECT_LT(candidates.value()[c].votes, candidates.value()[0].votes);
    const auto fetched = keys->query_keys(query.data(), query.size(), query_step);
    ASSERT_TRUE(fetched.is_ok());
    EXPECT_LE(fetched->size(), 16u);
    EXPECT_TRUE(std::is_sorted(fetched->begin(), fetched->end()));
}

TEST(PairKeys, TiesAreOrderedBySongThenOffsetAndTheListIsCut) {
    auto keys = PairKeyIndex::create(4, 1);
    ASSERT_TRUE(keys.is_ok());
    const std::vector<uint32_t> song = {2, 3, 2, 3, 2, 3};
    ASSERT_TRUE(keys->add_song(song.data(), song.size()));
    ASSERT_TRUE(keys->add_song(song.data(), song.size()));
    ASSERT_TRUE(keys->finish());
    const std::vector<uint32_t> query = {2, 3};  // key (2,3) at windows 0, 2, 4 of both songs
    const auto all = keys->vote(query.data(), query.size(), 1, 100);
    ASSERT_TRUE(all.is_ok());
    ASSERT_EQ(all->size(), 6u);
    EXPECT_EQ(all.value()[0].song, 0u);
    EXPECT_EQ(all.value()[0].delta, 0);
    EXPECT_EQ(all.value()[1].delta, 2);
    EXPECT_EQ(all.value()[3].song, 1u);
    const auto two = keys->vote(query.data(), query.size(), 1, 2);
    ASSERT_TRUE(two.is_ok());
    EXPECT_EQ(two->size(), 2u);
}

TEST(PairKeys, ClipsTooShortForAPairFetchNothing) {
    auto keys = PairKeyIndex::create(16, 8);
    ASSERT_TRUE(keys.is_ok());
    std::mt19937 rng(1);
    const auto song = random_lists(rng, 100, 16);
    ASSERT_TRUE(keys->add_song(song.data(), song.size()));
    ASSERT_TRUE(keys->finish());
    const auto query = query_of(song, 0, 4, 2);  // 4 embeddings, pairs need 5
    const auto fetched = keys->query_keys(query.data(), query.size(), 2);
    ASSERT_TRUE(fetched.is_ok());
    EXPECT_TRUE(fetched->empty());
    const auto votes = keys->vote(query.data(), query.size(), 2, 16);
    ASSERT_TRUE(votes.is_ok());
    EXPECT_TRUE(votes->empty());
}

TEST(PairKeys, BadInputGivesErrorsAndChangesNothing) {
    auto keys = PairKeyIndex::create(8, 4);
    ASSERT_TRUE(keys.is_ok());
    const std::vector<uint32_t> bad = {1, 2, 8, 3, 4, 5};
    const Status s = keys->add_song(bad.data(), bad.size());
    EXPECT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find("list 8"), std::string::npos) << s.message();
    EXPECT_EQ(keys->n_songs(), 0u);
    const std::vector<uint32_t> good = {1, 2, 3, 4, 5, 6};
    const auto early = keys->vote(good.data(), good.size(), 2, 4);
    EXPECT_FALSE(early.is_ok());  // before finish
    ASSERT_TRUE(keys->add_song(good.data(), good.size()));
    ASSERT_TRUE(keys->finish());
    EXPECT_FALSE(keys->finish().is_ok());
    EXPECT_FALSE(keys->add_song(good.data(), good.size()).is_ok());
    EXPECT_FALSE(keys->vote(good.data(), good.size(), 3, 4).is_ok());  // 3 does not divide 4
    EXPECT_FALSE(keys->query_keys(bad.data(), bad.size(), 2).is_ok());
}

TEST(PairKeys, APairLooksUpItsKeysOfSmallestSummedDistance) {
    // Two lists an embedding, nearest first; pairs 1 embedding apart (span 2, step 2).
    const std::vector<uint32_t> lists = {1, 2, /**/ 3, 4, /**/ 5, kPairNoList};
    const std::vector<float> d = {0.1f, 0.5f, /**/ 0.2f, 0.3f, /**/ 0.1f, 0.0f};
    auto probes = pair_query_probes(10, 2, lists.data(), d.data(), 3, 2, 2, 3);
    ASSERT_TRUE(probes.is_ok()) << probes.message();
    // Pair 0: (1,3) 0.3, (1,4) 0.4, (2,3) 0.7, (2,4) 0.8; pair 1 (t = 2): (3,5) 0.3, (4,5) 0.4,
    // and its partner's second list is unknown.
    const std::vector<std::pair<int64_t, uint32_t>> want = {
        {0, 13}, {0, 14}, {0, 23}, {2, 35}, {2, 45}};
    ASSERT_EQ(probes->size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(probes.value()[i].t, want[i].first) << i;
        EXPECT_EQ(probes.value()[i].key, want[i].second) << i;
    }
    EXPECT_EQ(pair_probe_keys(probes.value()), (std::vector<uint32_t>{13, 14, 23, 35, 45}));
    // One list an embedding and one key a pair: pair_query_keys's keys.
    const std::vector<uint32_t> one = {1, 3, 5};
    auto single = pair_query_probes(10, 2, one.data(), nullptr, 3, 1, 2, 1);
    ASSERT_TRUE(single.is_ok());
    EXPECT_EQ(pair_probe_keys(single.value()), pair_query_keys(10, 2, one.data(), 3, 2).value());
    // More keys than combinations, distances missing, or a list out of range: refused.
    EXPECT_FALSE(pair_query_probes(10, 2, lists.data(), d.data(), 3, 2, 2, 5).is_ok());
    EXPECT_FALSE(pair_query_probes(10, 2, lists.data(), nullptr, 3, 2, 2, 2).is_ok());
    EXPECT_FALSE(pair_query_probes(4, 2, lists.data(), d.data(), 3, 2, 2, 2).is_ok());
}

TEST(PairKeys, MoreKeysAPairFindTheSongWhereOneKeyMisses) {
    const uint32_t n_lists = 64, span = 8, query_step = 2;
    std::vector<std::vector<uint32_t>> songs;
    const PairKeyIndex keys = random_level(9, n_lists, span, 50, 400, &songs);
    // A short query of song 11 from window 40 (6 embeddings, 2 pairs) whose nearest list is
    // never the song's own: the song's list comes second.
    const auto truth = query_of(songs[11], 40, 6, query_step);
    std::vector<uint32_t> lists;
    std::vector<float> d;
    for (uint32_t l : truth) {
        lists.insert(lists.end(), {(l + 7) % n_lists, l});
        d.insert(d.end(), {0.4f, 0.5f});
    }
    auto postings = [&](uint32_t k) { return keys.postings(k); };
    auto one = pair_query_probes(n_lists, span, lists.data(), d.data(), 6, 2, query_step, 1);
    auto four = pair_query_probes(n_lists, span, lists.data(), d.data(), 6, 2, query_step, 4);
    ASSERT_TRUE(one.is_ok() && four.is_ok());
    for (const PairCandidate& c : pair_vote_probes(one.value(), 16, postings))
        EXPECT_FALSE(c.song == 11 && c.delta == 40);
    const auto found = pair_vote_probes(four.value(), 16, postings);
    ASSERT_FALSE(found.empty());
    EXPECT_EQ(found[0].song, 11u);
    EXPECT_EQ(found[0].delta, 40);
    EXPECT_EQ(found[0].votes, 2u);  // one vote a pair, though each pair looked up four keys
}

// With each window's second nearest list, a window pair is stored under every distinct key of
// its windows' lists: a query pair whose embeddings fall in the second lists finds it, and
// votes once for it however many of its keys hold it.
TEST(PairKeys, SecondListsStoreAWindowPairUnderEachDistinctKey) {
    auto keys = PairKeyIndex::create(10, 2);
    ASSERT_TRUE(keys.is_ok()) << keys.message();
    // Windows 0..3: pairs (0,2) and (1,3). Window 1's second list is its first: one list.
    const std::vector<uint32_t> first = {1, 2, 3, 4}, second = {5, 2, 7, kPairNoList};
    ASSERT_TRUE(keys->add_song(first.data(), first.size(), second.data()).is_ok());
    const std::vector<uint32_t> bad = {5, 2, 70, 1};
    EXPECT_FALSE(keys->add_song(first.data(), first.size(), bad.data()).is_ok());
    ASSERT_TRUE(keys->finish());
    // (0,2): {1,5} x {3,7} = 4 keys; (1,3): {2} x {4} = 1.
    EXPECT_EQ(keys->n_postings(), 5u);
    for (auto [a, b] : {std::pair{1u, 3u}, {1u, 7u}, {5u, 3u}, {5u, 7u}}) {
        ASSERT_EQ(keys->postings(keys->key(a, b)).size, 1u) << a << "," << b;
        EXPECT_EQ(keys->postings(keys->key(a, b)).data[0].window, 0u);
    }
    EXPECT_EQ(keys->postings(keys->key(2, 4)).size, 1u);
    EXPECT_EQ(keys->postings(keys->key(2, 7)).size, 0u);

    // A query pair (step 2: embeddings 0 and 1 are windows 0 and 2) in the second lists, and
    // one probing both its nearest and second lists: one vote either way.
    auto of = [&](uint32_t k) { return keys->postings(k); };
    const std::vector<uint32_t> in_second = {5, 7};
    auto probes = pair_query_probes(10, 2, in_second.data(), nullptr, 2, 1, 2, 1);
    ASSERT_TRUE(probes.is_ok());
    auto votes = pair_vote_probes(*probes, 4, of);
    ASSERT_EQ(votes.size(), 1u);
    EXPECT_EQ(votes[0].votes, 1u);
    const std::vector<uint32_t> both = {1, 5, 3, 7};
    const std::vector<float> d = {0.1f, 0.2f, 0.1f, 0.2f};
    probes = pair_query_probes(10, 2, both.data(), d.data(), 2, 2, 2, 4);
    ASSERT_TRUE(probes.is_ok());
    ASSERT_EQ(probes->size(), 4u);
    votes = pair_vote_probes(*probes, 4, of);
    ASSERT_EQ(votes.size(), 1u);
    EXPECT_EQ(votes[0].song, 0u);
    EXPECT_EQ(votes[0].delta, 0);
    EXPECT_EQ(votes[0].votes, 1u);
}

// A query embedding lies between two stored windows, so a song's votes may split over two
// neighbouring offsets: with delta_slack they count together, each query time once, and each
// song is a candidate once.
TEST(PairKeys, VotesOverNeighbouringOffsetsCountEachQueryTimeOnce) {
    enum : uint32_t { A = 1, B, C, D, E };
    std::map<uint32_t, std::vector<PairPosting>> postings = {{A, {{0, 10}, {1, 30}}},
                                                             {B, {{0, 13}, {1, 32}}},
                                                             {C, {{0, 14}, {1, 34}}},
                                                             {D, {{0, 17}}},
                                                             {E, {{0, 16}}}};
    auto of = [&](uint32_t k) {
        const auto& p = postings[k];
        return PairPostingSpan{p.data(), p.size()};
    };
    // Song 0: offsets 10, 11, 10, 11 at t = 0, 2, 4, 6 (and 10 again at t = 6 by a second key);
    // song 1: offset 30 at t = 0, 2, 4.
    const std::vector<PairProbe> probes = {{0, A, 0}, {2, B, 0}, {4, C, 0}, {6, D, 0}, {6, E, 1}};
    const auto exact = pair_vote_probes(probes, 8, of);
    ASSERT_EQ(exact.size(), 3u);
    EXPECT_EQ(exact[0].song, 1u);
    EXPECT_EQ(exact[0].votes, 3u);
    EXPECT_EQ(exact[1].song, 0u);  // offset 10: t = 0, 4 and 6 (key E)
    EXPECT_EQ(exact[1].delta, 10);
    EXPECT_EQ(exact[1].votes, 3u);
    EXPECT_EQ(exact[2].song, 0u);
    EXPECT_EQ(exact[2].delta, 11);
    EXPECT_EQ(exact[2].votes, 2u);

    const auto merged = pair_vote_probes(probes, 8, of, 1);
    ASSERT_EQ(merged.size(), 2u);
    EXPECT_EQ(merged[0].song, 0u);
    EXPECT_EQ(merged[0].votes, 4u);  // t = 0, 2, 4, 6: t = 6's two keys count once
    EXPECT_EQ(merged[0].delta, 10);  // the window's most voted offset
    EXPECT_EQ(merged[1].song, 1u);
    EXPECT_EQ(merged[1].votes, 3u);
    EXPECT_EQ(merged[1].delta, 30);
    EXPECT_EQ(pair_vote_probes(probes, 1, of, 1).size(), 1u);
}

// With a key weight, a vote from a rare key counts more than one from a common key: two songs
// with two votes each, one from keys of 51 postings, one from keys of 1.
TEST(PairKeys, AKeyWeightRanksVotesFromRareKeysFirst) {
    enum : uint32_t { A = 1, B, C, D };
    std::map<uint32_t, std::vector<PairPosting>> postings = {{C, {{1, 24}}}, {D, {{1, 26}}}};
    for (uint32_t k : {A, B}) {
        postings[k].push_back({0, k == A ? 10u : 12u});
        for (uint32_t other = 2; other < 52; ++other) postings[k].push_back({other, 100 + k});
    }
    auto of = [&](uint32_t k) {
        const auto& p = postings[k];
        return PairPostingSpan{p.data(), p.size()};
    };
    const std::vector<PairProbe> probes = {
        {0, A, 0, 8}, {2, B, 0, 8}, {20, C, 0, 8}, {22, D, 0, 8}};
    const auto counted = pair_vote_probes(probes, 2, of);
    ASSERT_EQ(counted.size(), 2u);
    EXPECT_EQ(counted[0].song, 0u);  // a tie on votes: the lower song first
    EXPECT_EQ(counted[1].song, 1u);
    EXPECT_FLOAT_EQ(counted[0].score, 2.0f);
    const auto weighted = pair_vote_probes(probes, 2, of, 0, 100.0);
    ASSERT_EQ(weighted.size(), 2u);
    EXPECT_EQ(weighted[0].song, 1u);
    EXPECT_EQ(weighted[0].delta, 4);
    EXPECT_EQ(weighted[0].votes, 2u);
    EXPECT_NEAR(weighted[0].score, 2 * std::log1p(100.0), 1e-4);
    EXPECT_EQ(weighted[1].song, 0u);
    EXPECT_NEAR(weighted[1].score, 2 * std::log1p(100.0 / 51), 1e-4);
}

}  // namespace
}  // namespace earshot
