// The `lazy` way to use an index (docs/SCALE.md, "Lazy answers"): a client downloads once what
// every query needs (the manifest, the quantizer, the directory pages' header, the pair-key
// header and a few background blocks with their directory pages), then per query only the
// pair-key pages and units its embeddings name, the directory pages (core/directory_pages.h)
// of the songs phase 1 by count (core/pair_key_reader.h) picks, and the blocks that hold those
// songs; the matcher's phase 2 and decision then run on an index of those songs and the
// background blocks (LazyIndexParams::background_blocks). It does no I/O: it names the byte
// ranges it needs, round by round, and checks every range handed to it before keeping it (a
// pair page and unit against the pair level's hash tree, a directory page against the pages'
// header, a block against its directory page's SHA-256), so a page (HTTP `Range` requests) and
// the CLI (`earshot query --lazy`, reading files) run the same steps:
//
//   auto lazy = LazyIndex::create(model, manifest_text, quantizer, pages_header, pair_header, {});
//   lazy->begin_query(embeddings, n);                  // at the model's query hop
//   for (auto round = lazy->next_fetches(); !round->empty(); round = lazy->next_fetches())
//       for (const LazyFetch& f : *round)              // one round: fetch in parallel
//           lazy->provide(f, bytes_of(f.file, f.range), f.range.size);
//   auto answer = lazy->match(embeddings, n, params);  // on the candidates' songs
//
// What was fetched stays cached (pair pages and units, directory pages, blocks) under byte
// budgets, least recently used out first; a query's own entries are never dropped before it
// has matched.
// Clips too short to hold a pair of embeddings `span` apart (under about 2.5 s with span 2 s)
// look up the level's short keys (`earshot build --pair-short-keys`, pairs 1 s apart: from
// about 1.5 s), and one holding a single such pair (a 3 s clip) looks up both
// (LazyIndexParams::both_spans_max_pairs); a clip too short for short keys too (a 1 s clip is
// one embedding), or on a level without short keys, names no key and so no candidate: it gets
// no answer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/directory_pages.h"
#include "core/index.h"
#include "core/matcher.h"
#include "core/model.h"
#include "core/pair_key_reader.h"
#include "core/status.h"

namespace earshot {

struct LazyIndexParams {
    uint64_t pair_cache_bytes = 4u << 20;       // pair pages and units kept
    uint64_t block_cache_bytes = 16u << 20;     // blocks kept
    uint64_t directory_cache_bytes = 1u << 20;  // directory pages kept (the background's too)
    // Phase 1's four settings below (candidates, keys, neighbouring offsets, weighed votes)
    // were chosen together on train clips of songs the index's quantizer never saw, against
    // 100 000 generated songs (docs/SCALE.md, "The lazy defaults, chosen on train clips"): the
    // best mean top-1 over 2-10 s clips among the settings reading at most 300 KB for a 10 s
    // clip, 10 s clips 67.6 -> 90.8 % against 16 keys and 16 candidates by count.
    size_t max_candidates = 8;  // (song, offset) kept by phase 1; each costs its song's block
    // > 0: a query whose candidates give no match may widen() once: a second round whose
    // candidates are the next this many of phase 1's ranking (their blocks fetched), matched
    // again over all of them. A song whose lists were not cut for it gets fewer votes than its
    // match in phase 2 deserves; the round costs only the queries the first leaves unanswered
    // (out-of-catalogue ones among them), and a listen makes it only at a look that
    // lazy_widen_due allows. 0: no second round (whatever wide_keys_per_pair).
    size_t more_candidates = 112;
    // The second round's keys: when wide_keys_per_pair > max_keys_per_pair, it also looks up
    // up to that many keys a pair within wide_pair_key_budget a query (the first round's are
    // held), votes again over all of them and takes the best max_candidates + more_candidates.
    // 112 more candidates, 32 keys a pair within 512: chosen on train clips against a million
    // songs (docs/SCALE.md, "A second round of candidates"): top-1 at 2 / 3 / 5 / 10 s 23.1 /
    // 65.0 / 71.4 / 88.7 -> 50.6 / 79.8 / 84.2 / 94.8 %, 10 s clips reading 284 KB (median;
    // 263 without) but 2.3 MB at p90, 2 and 3 s clips about 1.8 MB, a listen whose song is not
    // in the index 2.4 MB, on blocks of 2.65 songs; with one song a block the public
    // listens not in the index read 1.5 MB (docs/SCALE.md, "One song a block").
    size_t wide_pair_key_budget = 512;
    size_t wide_keys_per_pair = 32;
    // Phase 1's votes over windows of this many neighbouring offsets, a song a candidate
    // (pair_vote_probes); 0: each (song, offset) apart. A query embedding lies between two
    // stored windows, either of whose pairs may match.
    uint32_t vote_slack = 1;
    // > 0: a vote weighs ln(1 + key_weight / its key's postings) (pair_vote_probes), so a pair
    // of rare lists counts more than a pair of common ones; 0: votes count alike.
    double key_weight = 1000;
    // Blocks spread evenly over the songs file, fetched once and never dropped, that every
    // query's index holds beside its candidates. The decision subtracts how well the other
    // loaded songs match (the background, core/matcher.h); with only the candidates loaded
    // that background is lower than the one the model's thresholds were calibrated with
    // (indexes of about a hundred songs), and out-of-catalogue clips pass. 32 blocks hold 32
    // songs of a lazy index (one song a block: 0.7 MB once), about a hundred with 64 KB blocks;
    // both kept the false positives of the whole index in docs/SCALE.md's runs. 0 = none.
    uint32_t background_blocks = 32;
    // Keys a query looks up in all, spread over its pairs: a pair looks up its
    // min(max_keys_per_pair, pair_key_budget / pairs) best keys (the combinations of its two
    // embeddings' nearest lists of smallest summed distance), at least one. A short query has
    // few pairs, and one key a pair finds the song's window pair only when both of its
    // embeddings fall in the song's lists; a long one has pairs to spare. 128: a 3 s clip's
    // one pair looks up 8 keys, a 5 s clip's 5 pairs and a 10 s clip's 15 pairs 8 each, which
    // reaches songs whose lists were not cut for them (docs/SCALE.md, "Songs the quantizer
    // never saw"). 0: one key a pair.
    size_t pair_key_budget = 128;
    size_t max_keys_per_pair = 8;
    // > 0: a query fetches the units of its keys from the rarest up while their postings stay
    // within this many, and leaves the commonest keys out (their page records give each key's
    // count before any unit is fetched; with key_weight their votes weigh least). Cold or warm,
    // a query looks up the same keys. 0: every key. 20 000 (80 KB of postings; chosen on train
    // clips against a million songs, docs/SCALE.md "A budget of postings a query"): 10 s clips
    // read 269 instead of 516 KB (median) with the same top-1.
    uint64_t max_query_postings = 20000;
    // On a level with short keys, a query that holds at least one and at most this many pairs
    // `span` apart also looks up its pairs short_span apart (the budget above spread over all
    // of them): a 3 s clip's one pair 2 s apart gives each of its candidates one vote, so they
    // tie, while its three pairs 1 s apart vote again for the right (song, offset). 0: a query
    // that holds a pair span apart looks up those alone. 1 (chosen on train clips against
    // 100 000 songs, docs/SCALE.md "Both spans for 3 s clips"): 3 s clips 73.1 -> 86.2 % top-1,
    // reading less; 5 and 15 gave 5 and 10 s clips nothing more.
    size_t both_spans_max_pairs = 1;
    // A lazy listen's first look (lazy_look_due): once the music window holds this many pairs
    // of embeddings (1: about 3 s of music with pairs 2 s apart); 0: at half the query window
    // (5 s). On train listens a first look at one pair brought the music heard before a right
    // answer from 5.5 to 3.1 s (median; p90 5.8 to 4.9 s) with the same top-1 and false
    // positives (docs/SCALE.md, "Lazy listens in the CLI").
    size_t first_look_pairs = 1;
    // On a level with short keys (built with --pair-short-keys), > 0: the first look instead
    // comes once the music window holds this many pairs short_span apart (1: about 2 s of
    // music with pairs 1 s apart), then at half the query window; 0: as without short keys.
    // 0 by default, chosen on train listens against 100 000 songs (docs/SCALE.md, "Both spans
    // for 3 s clips"): a 2 s look is right too rarely at scale (2 s clips 55.5 % there), so
    // the music heard before a right answer was 5.0 s (median) with it and 3.1 s without,
    // reading 298 against 183 KB. With about a hundred songs it answers sooner (2.15 against
    // 3.11 s), but a catalogue that small is better used whole.
    size_t short_look_pairs = 0;
};

// The keys each pair of a query holding n_pairs pairs looks up (LazyIndexParams::
// pair_key_budget).
size_t lazy_keys_per_pair(size_t n_pairs, const LazyIndexParams& params);

// The spans (in index hops) whose pairs a query of n embeddings at query_step hops looks up on
// a level of `span` and short_span (0: no short keys): span alone; short_span alone when the
// query holds no pair span apart; both when it holds at least one and at most
// params.both_spans_max_pairs. Each with its key base (pair_key_base).
struct LazySpan {
    uint32_t span = 0;
    bool short_keys = false;
};
std::vector<LazySpan> lazy_query_spans(size_t n, uint32_t query_step, uint32_t span,
                                       uint32_t short_span, const LazyIndexParams& params);

// A lazy listen's samples pushed at a time between two checks of lazy_look_due (0.25 s at
// 16 kHz), so a look comes within a quarter second of its window.
constexpr size_t kLazyListenPieceSamples = 4000;
// When a lazy listen makes a *look* (the page's Worker and `earshot query --live --lazy` both
// ask this): once the window holds each of early_looks' embeddings (LazyIndex::early_looks;
// those of at least half the query window, max_query_embeddings, are ignored), then once it
// holds half the query window, then whenever half a window of embeddings came since the last
// look (last_look: the recognizer's embedding count at that look, -1 before the first); so at
// about 5 s of music, 10 s, then every 5 s more (2 s, 3 s, 5 s, 10 s, ... with early looks at
// a short pair and a pair); and at the listen's end (final), once more unless the last look
// saw the same window.
bool lazy_look_due(size_t n_window, uint64_t n_embeddings, size_t max_query_embeddings,
                   const std::vector<size_t>& early_looks, int64_t last_look, bool final);
// Whether a look that found no song may make a second round (LazyIndex::widen): a listen's
// last look (final; a clip's answer is one), or a look at a whole query window. A listen's
// earlier looks wait for more music instead (docs/SCALE.md, "A second round of candidates").
bool lazy_widen_due(size_t n_window, size_t max_query_embeddings, bool final);

struct LazyFetch {
    enum class Kind { kPairPage, kPairUnit, kDirectoryPage, kBlock };
    Kind kind = Kind::kBlock;
    uint32_t id = 0;  // the page number, key, directory page number or block number
    // The manifest's file name: the pair directory, the postings, the directory pages, the
    // blocks.
    std::string file;
    ByteRange range;
};

// "page", "unit", "directory" or "block": a fetch's kind as the page's Worker and `earshot
// query --lazy-log` name it.
const char* lazy_fetch_kind_name(LazyFetch::Kind kind);
// The kind lazy_fetch_kind_name names so; none for any other name.
std::optional<LazyFetch::Kind> lazy_fetch_kind_from_name(const std::string& name);

struct LazyIndexStats {
    uint64_t fetches = 0, bytes = 0;  // provided and kept, since create()
    uint64_t rejected = 0;            // provided and refused
    uint64_t block_hits = 0;          // blocks a query needed and held already
};

class LazyIndex {
public:
    // The bytes fetched before any query, checked against the manifest by their SHA-256 (the
    // quantizer, the directory pages' header, the pair header); the manifest must be format 2
    // with a pair-key level and directory pages (`earshot build --pair-keys`) whose query hop
    // divides the span.
    static Result<std::unique_ptr<LazyIndex>> create(
        const ModelInfo& model, const std::string& manifest_text, const uint8_t* quantizer,
        size_t quantizer_size, const uint8_t* pages_header, size_t pages_header_size,
        const uint8_t* pair_header, size_t pair_header_size, const LazyIndexParams& params);

    // The preloaded index: manifest and quantizer, no songs (for the match parameters).
    const Index& base() const { return *base_; }
    const PairKeyManifest& pair_manifest() const { return pair_manifest_; }
    uint64_t preload_bytes() const { return preload_bytes_; }

    // The background blocks (LazyIndexParams::background_blocks) not held yet: first their
    // directory pages, then, once those are held, the blocks. Call it until it is empty,
    // providing each round (two rounds). A query that starts without them names them in its
    // first rounds.
    std::vector<LazyFetch> preload_fetches() const;
    const std::vector<uint32_t>& background_blocks() const { return background_; }
    // Forgets every cached page, unit and block (a cold cache, as a first visit's); the
    // preloaded files, the background blocks and their directory pages stay.
    void clear_cache();
    // Starts a query: n embeddings (n x dim, unit length) at the model's query hop. The
    // previous query's plan is dropped; the caches stay.
    Status begin_query(const float* embeddings, size_t n);
    // What the query needs next, one round (fetch them in parallel); empty once everything is
    // held and query_index() can be called. A fetch refused by provide() is named again.
    Result<std::vector<LazyFetch>> next_fetches();
    // Checks and keeps one fetch's bytes; an error (changed, cut or misplaced bytes) keeps
    // nothing and leaves the cache as it was.
    Status provide(const LazyFetch& fetch, const uint8_t* bytes, size_t size);
    // After a match() that found no song: whether a second round is left (once a query;
    // LazyIndexParams::more_candidates and wide_keys_per_pair). If so, next_fetches() names
    // what it needs (the wider keys' pages and units, then the candidates' directory pages and
    // blocks), and match() answers over all the candidates. False (nothing changed) when the
    // round was made, more_candidates is 0, or it would look up no more keys and phase 1
    // ranked no more songs.
    bool widen();
    // Once next_fetches() is empty: an index of the blocks that hold the query's candidate
    // songs and of the background blocks (no song at all when phase 1 found no candidate: the
    // matcher then answers no match).
    Result<std::shared_ptr<const Index>> query_index();
    // The matcher on query_index() for the query's embeddings (those begin_query() took, at the
    // model's query hop): the lazy answer.
    Result<MatchResult> match(const float* embeddings, size_t n, const MatchParams& params);
    // A look's own work on these embeddings with nothing fetched and neither the query nor
    // the caches changed: the keys begin_query() would plan (then dropped), and the matcher
    // on the background blocks alone, as match() runs it on a query's index (copied from the
    // background index, the block entries set); returns that match. A page runs it once
    // before its first listen, so that the browser's JIT has compiled a look's code by then
    // (Engine::warm_up in wasm/engine.h).
    Result<MatchResult> rehearse(const float* embeddings, size_t n, const MatchParams& params);

    // The windows of lazy_look_due's early looks, in embeddings: short_look_pairs pairs
    // short_span apart on a level with short keys, else first_look_pairs pairs span apart
    // (none when that is 0).
    std::vector<size_t> early_looks() const;
    const std::vector<PairCandidate>& candidates() const { return candidates_; }
    // The keys the current query looks up (ascending; after its pages, those within
    // max_query_postings).
    const std::vector<uint32_t>& query_keys() const { return keys_; }
    const LazyIndexStats& stats() const { return stats_; }
    const PairKeyReaderStats& pair_stats() const { return reader_.stats(); }
    uint64_t cached_bytes() const {
        return reader_.cached_bytes() + blocks_cached_ + directory_cached_;
    }

private:
    enum class Step { kIdle, kPages, kUnits, kDirectoryPages, kBlocks, kReady };
    LazyIndex(std::shared_ptr<Index> base, PairKeyManifest manifest, PairKeyHeader header,
              DirectoryPagesManifest pages_manifest, DirectoryPagesHeader pages_header,
              uint32_t query_step, const LazyIndexParams& params);
    void keep_block(uint32_t block, std::vector<uint8_t> bytes);
    const std::vector<uint8_t>* find_block(uint32_t block);  // and marks it used
    // Block b's range from its directory page; null when the page is not held.
    std::optional<Index::FileRange> block_range(uint32_t block) const;
    LazyFetch page_fetch(uint32_t page) const;
    void keep_page(DirectoryPage page);
    // Drops every directory page held but the background's and, with keep_query_pages, the
    // current query's.
    void drop_directory_pages(bool keep_query_pages);
    // With max_query_postings, leaves the query's commonest keys (and their probes) out once
    // its pages are held.
    Status keep_rarest_keys();
    // The candidates' directory pages (query_pages_; each song checked against the directory
    // when phase 1 ranked it).
    void plan_candidate_pages();
    // The probes of a query of n embeddings with `keys`' key budget, and their keys.
    Status plan_probes(const float* embeddings, size_t n, const LazyIndexParams& keys,
                       std::vector<PairProbe>* probes, std::vector<uint32_t>* keys_out) const;
    // background_index_, once every background block is held (when the last one arrives, or
    // at the first query_index()).
    Status make_background_index();
    // Gives `index` the directory entries of `entries` (ascending) and adds `blocks` (held,
    // ascending, among them).
    Status add_blocks(Index* index, const std::vector<uint32_t>& entries,
                      const std::vector<uint32_t>& blocks);

    std::shared_ptr<Index> base_;
    PairKeyManifest pair_manifest_;
    PairKeyReader reader_;
    uint32_t query_step_ = 1;
    double query_hop_s_ = 0.0;
    LazyIndexParams params_;
    uint64_t preload_bytes_ = 0;
    DirectoryPagesManifest pages_manifest_;
    DirectoryPagesHeader pages_header_;
    std::unordered_map<uint32_t, DirectoryPage> directory_pages_;  // held, by page number
    uint64_t directory_cached_ = 0;
    std::vector<uint32_t> background_pages_;  // ascending; never dropped
    std::vector<uint32_t> query_pages_;       // the candidates' pages, ascending

    Step step_ = Step::kIdle;
    std::vector<PairProbe> probes_;  // the query's lookups
    std::vector<uint32_t> keys_;
    std::vector<PairCandidate> candidates_;
    std::vector<PairCandidate> more_;  // phase 1's next candidates, for widen()
    std::vector<float> query_;         // begin_query's embeddings
    bool widened_ = false;             // widen() was made for this query
    std::vector<uint32_t> blocks_;  // the candidates' blocks, ascending
    std::vector<uint32_t> background_;                           // the background blocks, ascending
    std::unordered_map<uint32_t, std::vector<uint8_t>> pinned_;  // background blocks held
    // base_ with the background blocks added, made once they are all held (they are never
    // dropped): each query's index is a copy of it.
    std::shared_ptr<const Index> background_index_;

    using BlockLru = std::list<std::pair<uint32_t, std::vector<uint8_t>>>;  // most recent first
    BlockLru block_lru_;
    std::unordered_map<uint32_t, BlockLru::iterator> block_at_;
    uint64_t blocks_cached_ = 0;
    LazyIndexStats stats_;
};

}  // namespace earshot
