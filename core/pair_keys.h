// Time-pair keys: the coarse level a page can fetch list by list from a million-song index
// (docs/SCALE.md, "Fewer probes, and keys that pair two moments"). A stored window's key is
// the pair (its coarse list, the coarse list of the window `span` index hops later in the same
// song), n_lists^2 keys, as landmark fingerprinters pair spectral peaks: a pair of moments is
// far rarer than either moment, so the postings a query fetches are few. A window whose
// partner lies past the song's end or is not stored has no key. A query pairs its embeddings
// the same time apart, looks up one key per pair, and each posting of that key votes once for
// (song, offset): the postings carry no PQ code, so a client fetches a few bytes per posting
// and re-scores the best candidates with their codes (phase 2 of the matcher).
//
//   auto keys = PairKeyIndex::create(n_lists, span);        // e.g. 4096 lists, 8 hops (2 s)
//   keys->add_song(lists.data(), lists.size());             // each song in order
//   keys->finish();                                         // list-major: sorted by key
//   auto candidates = keys->vote(query_lists.data(), n, query_step, 16);
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/status.h"

namespace earshot {

// A window's list id when it is not stored (no key; pairs with it have none either).
constexpr uint32_t kPairNoList = 0xffffffffu;
// Lists at most: a key (a * n_lists + b) fits 32 bits, as a page's fetch request names it.
constexpr uint32_t kPairMaxLists = 65536;
// Lists at most with a second, shorter span (the key space is then twice n_lists^2).
constexpr uint32_t kPairMaxListsTwoSpans = 46340;

// A level may key each window twice: with its partner `span` index hops later (the keys
// a * n_lists + b) and, where short_span > 0, with its partner short_span hops later (the keys
// n_lists^2 + a * n_lists + b, the short keys). A query too short to hold a pair `span` apart
// looks up short keys instead: a 2 s clip holds a pair 1 s apart but none 2 s apart. Both
// kinds of posting name the pair's earlier window, so they vote alike.
// The keys a level numbers: n_lists^2, twice that with a short span.
inline uint64_t pair_key_space(uint32_t n_lists, uint32_t short_span) {
    return uint64_t(n_lists) * n_lists * (short_span > 0 ? 2 : 1);
}
// Where a span's keys start: 0 for the span, n_lists^2 for the short span.
inline uint32_t pair_key_base(uint32_t n_lists, bool short_keys) {
    return short_keys ? n_lists * n_lists : 0;
}
// Ok, or why (n_lists, span, short_span) is no level: n_lists in [1, kPairMaxLists] (with a
// short span, kPairMaxListsTwoSpans), span >= 1, short_span 0 or in [1, span).
Status check_pair_spans(uint32_t n_lists, uint32_t span, uint32_t short_span);

struct PairPosting {
    uint32_t song = 0;    // order of add_song()
    uint32_t window = 0;  // the earlier window of the pair, in index hops from the song's start
};

struct PairCandidate {
    uint32_t song = 0;
    int64_t delta = 0;   // song window - query time, in index hops (the query's offset in the song)
    uint32_t votes = 0;  // query pairs whose key holds (song, window = delta + query time)
    float score = 0;     // what candidates are ranked by: votes, or their keys' summed weights
};

// A key's postings, sorted by (song, window), as a reader holds them.
struct PairPostingSpan {
    const PairPosting* data = nullptr;
    size_t size = 0;
};

// The query side, shared by the index in memory and the lazy reader (core/pair_key_reader.h):
// the distinct keys a query looks up, and phase 1 by count over any source of postings. See
// PairKeyIndex::query_keys and PairKeyIndex::vote.
Result<std::vector<uint32_t>> pair_query_keys(uint32_t n_lists, uint32_t span,
                                              const uint32_t* query_lists, size_t n,
                                              uint32_t query_step);
// postings_of(key) gives the key's postings (none for an empty key); it is called only for
// keys pair_query_keys names.
Result<std::vector<PairCandidate>> pair_vote(
    uint32_t n_lists, uint32_t span, const uint32_t* query_lists, size_t n, uint32_t query_step,
    size_t max_candidates, const std::function<PairPostingSpan(uint32_t)>& postings_of);

// One lookup of a query: a key of the pair whose earlier embedding is at query time t (index
// hops). A pair may look up several keys (pair_query_probes), and a stored window pair may
// have several (a second list): a query pair still votes once for a (song, delta).
struct PairProbe {
    int64_t t = 0;
    uint32_t key = 0;
    uint32_t rank = 0;  // among its pair's keys, by summed distance: 0 the nearest
    uint32_t span = 0;  // the pair's span in index hops: (t, span) names the query pair
};

// The lookups of a query whose embeddings each come with their `per_embedding` nearest coarse
// lists (lists and sq_dists: [n, per_embedding], nearest first; kPairNoList where none): each
// pair (i, i + span / query_step) looks up the keys_per_pair (list of i, list of the partner)
// combinations of smallest summed squared distance (ties: the nearer first list, then the
// nearer second), where both lists are known. keys_per_pair in [1, per_embedding^2]; with one
// list per embedding and one key per pair these are pair_query_keys's keys. sq_dists may be
// null when per_embedding is 1. key_base: added to every key (pair_key_base: the short keys
// start at n_lists^2; span is then the level's short span).
Result<std::vector<PairProbe>> pair_query_probes(uint32_t n_lists, uint32_t span,
                                                 const uint32_t* lists, const float* sq_dists,
                                                 size_t n, size_t per_embedding,
                                                 uint32_t query_step, size_t keys_per_pair,
                                                 uint32_t key_base = 0);
// The distinct keys of `probes`, sorted: what a lazy client fetches.
std::vector<uint32_t> pair_probe_keys(const std::vector<PairProbe>& probes);
// Phase 1 by count over probes: every query pair (t, span) with a posting of one of its
// probes' keys votes once for (song, the posting's window - t); the max_candidates best (song,
// delta) by votes, ties by the summed rank of the best key of each pair that voted (nearer
// keys first), then song, then delta (pair_vote is this with one key per pair).
// With delta_slack > 0, a candidate is instead a song's best window of deltas [d, d + slack]:
// its votes are the distinct query pairs with a posting there (a query embedding lies
// between two stored windows, and either one's pair may be the one that matched, so the
// song's votes split over neighbouring deltas), its delta the window's most voted, and each
// song is a candidate once. With key_weight W > 0 (so too), a pair's vote weighs
// ln(1 + W / postings of its key), the heaviest of its keys that hold the song: a pair of
// rare lists says more than a pair of common ones, as a rare term does in text retrieval.
std::vector<PairCandidate> pair_vote_probes(
    const std::vector<PairProbe>& probes, size_t max_candidates,
    const std::function<PairPostingSpan(uint32_t)>& postings_of, uint32_t delta_slack = 0,
    double key_weight = 0);

class PairKeyIndex {
public:
    // n_lists in [1, kPairMaxLists]; span >= 1 index hops; short_span: 0 (none) or a shorter
    // span whose keys the level holds too (check_pair_spans).
    static Result<PairKeyIndex> create(uint32_t n_lists, uint32_t span, uint32_t short_span = 0);

    // One song's coarse list per window (kPairNoList where not stored), in song order.
    // Refused after finish() or with a list id >= n_lists (the index is then unchanged).
    // `second`, optional: each window's second nearest list (kPairNoList for none); a window
    // pair then has a posting under each distinct key of its windows' one or two lists (up to
    // four), so a query whose embedding falls in either list finds it.
    Status add_song(const uint32_t* lists, size_t n_windows, const uint32_t* second = nullptr);
    // Sorts the postings by key (then song, window): after this, lookups and votes.
    Status finish();

    bool finished() const { return finished_; }
    uint32_t n_lists() const { return n_lists_; }
    uint32_t span() const { return span_; }
    uint32_t short_span() const { return short_span_; }
    size_t n_songs() const { return n_songs_; }
    size_t n_keys() const { return keys_.size(); }  // keys with at least one posting
    // The keys with at least one posting, sorted (after finish()).
    const std::vector<uint32_t>& keys() const { return keys_; }
    size_t n_postings() const { return postings_.size(); }
    uint32_t key(uint32_t a, uint32_t b) const { return a * n_lists_ + b; }
    // The postings of `key` (none for an empty key), sorted by (song, window); valid until the
    // index is destroyed. Empty before finish().
    using Span = PairPostingSpan;
    Span postings(uint32_t key) const;

    // The distinct keys a query looks up, sorted: its embeddings' lists (kPairNoList for none)
    // taken every `query_step` index hops, paired `span / query_step` embeddings apart (span
    // must be a multiple of query_step). What a lazy client asks the server for.
    Result<std::vector<uint32_t>> query_keys(const uint32_t* query_lists, size_t n,
                                             uint32_t query_step) const;
    // Phase 1 by count: every posting of every query pair's key votes once for (song, its
    // window - the pair's query time); the max_candidates best (song, delta) by votes, ties by
    // song then delta. Needs finish().
    Result<std::vector<PairCandidate>> vote(const uint32_t* query_lists, size_t n,
                                            uint32_t query_step, size_t max_candidates) const;

private:
    PairKeyIndex(uint32_t n_lists, uint32_t span, uint32_t short_span)
        : n_lists_(n_lists), span_(span), short_span_(short_span) {}

    uint32_t n_lists_ = 0, span_ = 0, short_span_ = 0;
    size_t n_songs_ = 0;
    bool finished_ = false;
    std::vector<uint32_t> pending_keys_;  // before finish(): one per posting
    std::vector<uint32_t> keys_;          // after: the occupied keys, sorted
    std::vector<size_t> offsets_;         // [n_keys + 1] into postings_
    std::vector<PairPosting> postings_;
};

// Where PairKeyBuilder keeps its postings between add_song() and finish(): per bucket of keys,
// the records appended, read back once. MemoryPairKeySpill holds them in memory (WASM, tests,
// small catalogues); core/native/pair_key_spill_files.h writes them to temporary files.
class PairKeySpill {
public:
    virtual ~PairKeySpill() = default;
    virtual Status append(uint32_t bucket, const uint64_t* records, size_t n) = 0;
    // Every record appended to `bucket`, in order; the bucket's storage is then released.
    virtual Result<std::vector<uint64_t>> take(uint32_t bucket) = 0;
};

class MemoryPairKeySpill : public PairKeySpill {
public:
    Status append(uint32_t bucket, const uint64_t* records, size_t n) override;
    Result<std::vector<uint64_t>> take(uint32_t bucket) override;

private:
    std::vector<std::vector<uint64_t>> buckets_;
};

class PairKeyLayoutWriter;  // core/pair_key_layout.h

// Builds the same level as PairKeyIndex for PairKeyLayoutWriter, in bounded memory whatever the
// catalogue's size (an external sort): each posting becomes an 8-byte record (key, song,
// window) appended to the bucket of its key's range of directory pages, through a small buffer
// per bucket, to a spill; finish() reads back one bucket at a time, sorts it and hands its keys
// to the writer in order. Memory: the buffers (n_buckets x buffer_records x 8 bytes) and the
// largest bucket, about 1/n_buckets of the catalogue's postings (a million songs: 611 M
// postings, 4.9 GB of records, 19 MB a bucket of 256 on average).
//
//   auto b = PairKeyBuilder::create(n_lists, span, 512, std::make_shared<TempFilePairKeySpill>());
//   b->add_song(lists.data(), lists.size());      // each song in order, as PairKeyIndex
//   b->finish(&writer);                           // then writer.finish(b->n_songs())
constexpr uint32_t kPairBuilderBuckets = 256;
constexpr size_t kPairBuilderBufferRecords = 8192;

class PairKeyBuilder {
public:
    // keys_per_page: the writer's (buckets hold whole pages). spill: null = in memory.
    // short_span: as PairKeyIndex's.
    static Result<PairKeyBuilder> create(uint32_t n_lists, uint32_t span, uint32_t keys_per_page,
                                         std::shared_ptr<PairKeySpill> spill,
                                         uint32_t n_buckets = kPairBuilderBuckets,
                                         size_t buffer_records = kPairBuilderBufferRecords,
                                         uint32_t short_span = 0);

    // As PairKeyIndex::add_song; also refused: song numbers or windows beyond a posting's
    // bits (kPairLayoutSongBits, kPairLayoutWindowBits in core/pair_key_layout.h).
    Status add_song(const uint32_t* lists, size_t n_windows, const uint32_t* second = nullptr);
    // Hands every key with its postings, sorted by (song, window), to `writer` in ascending
    // key order (the writer's n_lists and keys_per_page must be this builder's). Once.
    Status finish(PairKeyLayoutWriter* writer);

    size_t n_songs() const { return n_songs_; }
    uint64_t n_postings() const { return n_postings_; }
    // The most records one bucket held in finish() (its sort's memory: 8 bytes each).
    uint64_t largest_bucket() const { return largest_bucket_; }

private:
    PairKeyBuilder() = default;
    Status flush(uint32_t bucket);

    uint32_t n_lists_ = 0, span_ = 0, short_span_ = 0, keys_per_page_ = 0;
    uint64_t keys_per_bucket_ = 1;
    std::shared_ptr<PairKeySpill> spill_;
    size_t buffer_records_ = 0;
    std::vector<std::vector<uint64_t>> buffers_;
    size_t n_songs_ = 0;
    uint64_t n_postings_ = 0, largest_bucket_ = 0;
    bool finished_ = false;
};

}  // namespace earshot
