// The query side of the lazy pair-key level (core/pair_key_layout.h): which byte ranges a query
// needs, what they say once checked, and a cache of checked pages and units under a byte budget
// that drops the least recently used first. It does no I/O itself: a page fetches the ranges
// with HTTP `Range` requests (and keeps the bytes in the Cache API under the same budget), the
// CLI reads them from files, and both run the same steps, natively and in WASM:
//
//   PairKeyReader reader(header, 4 << 20);                       // a parsed header; the budget
//   auto keys = reader.query_keys(lists.data(), n, step);        // the distinct keys to look up
//   for (uint32_t page : reader.missing_pages(*keys))            // round 1, in parallel
//       reader.add_page(page, bytes, size);                      //   header.page_record(page)
//   for (const PairKeyUnitFetch& f : *reader.missing_units(*keys))  // round 2, in parallel
//       reader.add_unit(f.key, bytes, size);                     //   f.range of the postings
//   auto candidates = reader.vote(lists.data(), n, step, 16);    // phase 1 by count
//
// Every added page is checked against the header's root, every unit against its page, before
// anything is kept: a rejected fetch changes nothing. A query's own pages and units are its
// most recently used entries, so a budget of at least one query's bytes never drops what the
// query is about to vote with.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

#include "core/pair_key_layout.h"
#include "core/status.h"

namespace earshot {

struct PairKeyUnitFetch {
    uint32_t key = 0;
    ByteRange range;  // in the postings file
};

struct PairKeyReaderStats {
    uint64_t pages_added = 0, units_added = 0;  // checked and kept
    uint64_t bytes_added = 0;                   // their fetched bytes
    uint64_t rejected = 0;                      // fetches refused (changed, cut, misplaced)
    uint64_t page_hits = 0, unit_hits = 0;      // asked for and already held
    uint64_t evicted = 0;                       // entries dropped for the budget
};

class PairKeyReader {
public:
    // budget_bytes: the fetched bytes (page records and units) kept at most.
    PairKeyReader(PairKeyHeader header, uint64_t budget_bytes);

    const PairKeyHeader& header() const { return header_; }
    uint64_t budget_bytes() const { return budget_; }
    uint64_t cached_bytes() const { return cached_; }
    const PairKeyReaderStats& stats() const { return stats_; }

    // The distinct keys a query looks up (pair_query_keys over the header's lists and span).
    Result<std::vector<uint32_t>> query_keys(const uint32_t* query_lists, size_t n,
                                             uint32_t query_step) const;
    // The pages of `keys` (sorted, as query_keys gives them) not held, ascending, each once;
    // held ones count as used now.
    std::vector<uint32_t> missing_pages(const std::vector<uint32_t>& keys);
    // Checks page `page`'s record (the bytes of header().page_record(page)) and keeps it.
    Status add_page(uint32_t page, const uint8_t* record, size_t size);
    // The units of `keys` with postings that are not held, in key order. Every key's page must
    // be held (missing_pages first); keys without postings need no fetch.
    Result<std::vector<PairKeyUnitFetch>> missing_units(const std::vector<uint32_t>& keys);
    // Checks `key`'s unit against its held page and keeps its postings.
    Status add_unit(uint32_t key, const uint8_t* unit, size_t size);
    // How many postings `key` has, as its held page says; an error when the page is not held.
    Result<uint32_t> posting_count(uint32_t key);
    // The held postings of `key` (none for a key its held page says is empty); an error when
    // neither its unit nor its page is held. Valid until the next add or eviction.
    Result<PairPostingSpan> postings(uint32_t key);
    // Phase 1 by count (pair_vote) on held postings; an error names the first key of the query
    // whose page or unit is not held.
    Result<std::vector<PairCandidate>> vote(const uint32_t* query_lists, size_t n,
                                            uint32_t query_step, size_t max_candidates);
    // The same over a query's probes (pair_query_probes; several keys a pair): its keys are
    // pair_probe_keys(probes).
    Result<std::vector<PairCandidate>> vote(const std::vector<PairProbe>& probes,
                                            size_t max_candidates, uint32_t delta_slack = 0,
                                            double key_weight = 0);

private:
    struct Entry {
        bool is_page = false;
        uint32_t id = 0;  // page number or key
        uint64_t bytes = 0;
        PairKeyPage page;                   // is_page
        std::vector<PairPosting> postings;  // !is_page
    };
    using Lru = std::list<Entry>;  // most recently used first

    Entry* find(bool is_page, uint32_t id);  // and marks it used
    void keep(Entry entry);
    static uint64_t slot(bool is_page, uint32_t id) { return uint64_t(is_page) << 32 | id; }

    PairKeyHeader header_;
    uint64_t budget_ = 0, cached_ = 0;
    PairKeyReaderStats stats_;
    Lru lru_;
    std::unordered_map<uint64_t, Lru::iterator> where_;
};

}  // namespace earshot
