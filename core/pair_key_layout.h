// The time-pair key level (core/pair_keys.h) laid out for a page that fetches it key by key with
// HTTP `Range` requests and checks every byte before use (docs/SCALE.md, "A lazy million-song
// index, costed"). Three files:
//
// - the header (container kind "PKEY", downloaded whole and checked against the manifest's
//   hash): metadata (n_lists, span, short_span (absent: 0), keys_per_page, counts, file sizes,
//   the root) and the
//   section "page_offsets" u64 [n_pages + 1], where each page's record lies in the directory;
// - the directory: per page of keys_per_page consecutive keys, a record = the page || the page's
//   audit path in the tree over all pages (core/merkle.h), whose root is the header's;
// - the postings: per key with postings, in key order, a unit = its postings, 4 bytes each
//   (u32 little-endian song << 12 | window) || its audit path in its page's own tree over
//   the page's units (whose root the page holds).
//
// A page (little-endian): u32 page number, u32 keys in the page (keys_per_page; fewer in the
// last), u64 where the page's first unit starts in the postings, then per key its posting count
// (LEB128; 0 = no postings), then the 32-byte root of the page's unit tree (SHA-256("") for a
// page without postings). From a verified page a reader knows every key's unit range and proof
// length, so a query fetches: the header once, then per key one page record and one unit, two
// rounds of parallel requests, each checked (a page against the root, a unit against its page).
//
// Postings hold a song number below 2^20 and a window below 2^12 (17 minutes at a 0.25 s hop):
// a catalogue of longer songs keys their parts as songs of their own.
//
//   auto files = write_pair_key_files(keys, 512);                 // keys: a finished PairKeyIndex
//   auto header = parse_pair_key_header(h.data(), h.size(), "pairs.ekh");
//   auto page = read_pair_key_page(*header, header->page_of(key), record, record_size);
//   auto range = page->unit_range(key);                           // bytes of the postings file
//   auto postings = read_pair_key_unit(*page, key, unit, unit_size);
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/merkle.h"
#include "core/pair_keys.h"
#include "core/status.h"

namespace earshot {

constexpr uint32_t kPairLayoutVersion = 1;
constexpr uint32_t kPairLayoutSongBits = 20;    // songs < 2^20 (1 048 576)
constexpr uint32_t kPairLayoutWindowBits = 12;  // windows < 2^12 per song (part)
constexpr uint32_t kPairLayoutMaxKeysPerPage = 1u << 16;
constexpr uint32_t kPairLayoutMaxWindows = 1u << kPairLayoutWindowBits;  // per song (part)

// A posting as the postings file stores it: song << kPairLayoutWindowBits | window (the song
// and window must fit their bits).
inline uint32_t pack_pair_posting(const PairPosting& p) {
    return p.song << kPairLayoutWindowBits | p.window;
}
inline PairPosting unpack_pair_posting(uint32_t v) {
    return {v >> kPairLayoutWindowBits, v & (kPairLayoutMaxWindows - 1)};
}

struct PairKeyFiles {
    std::vector<uint8_t> header, directory, postings;
};

// Lays out a finished index in memory (PairKeyLayoutWriter over its keys). keys_per_page in
// [1, kPairLayoutMaxKeysPerPage]. Errors: an unfinished index, a song or window number beyond
// the posting's bits.
Result<PairKeyFiles> write_pair_key_files(const PairKeyIndex& index, uint32_t keys_per_page);

// The same layout written as it goes, for a catalogue whose postings do not fit in memory
// (PairKeyBuilder in core/pair_keys.h feeds it bucket by bucket): keys arrive in ascending
// order, each page's units (postings and proofs) leave through the sink as soon as the page is
// complete, and only the pages themselves are held (about 1 KB per 512 keys: 20 MB at 4 096
// lists) until finish() proves them against the root:
//
//   auto w = PairKeyLayoutWriter::create(n_lists, span, 512, append_to_postings_file);
//   w->add_key(key, postings, n);                  // ascending keys, each once
//   Result<PairKeyFiles> files = w->finish(n_songs);  // header and directory; postings: empty
class PairKeyLayoutWriter {
public:
    // Receives the postings file's bytes in order; an error it returns is returned by the call
    // that completed the page (add_key or finish), and the layout should then be abandoned.
    using Sink = std::function<Status(const uint8_t* data, size_t size)>;
    // n_lists, span and short_span as check_pair_spans (core/pair_keys.h) takes them,
    // keys_per_page in [1, kPairLayoutMaxKeysPerPage].
    static Result<PairKeyLayoutWriter> create(uint32_t n_lists, uint32_t span,
                                              uint32_t keys_per_page, Sink postings_sink,
                                              uint32_t short_span = 0);
    // `key`'s postings, n >= 1, sorted by (song, window); keys strictly ascending, each below
    // pair_key_space(n_lists, short_span). Errors: a key out of order or range, no postings, a song
    // or window beyond the posting's bits.
    Status add_key(uint32_t key, const PairPosting* postings, size_t n);
    // Completes the remaining pages and returns the header and the directory (`postings` is
    // empty: it went to the sink). n_songs: the songs the postings number (every posting's
    // song is below it, and it is at most 2^kPairLayoutSongBits).
    Result<PairKeyFiles> finish(uint64_t n_songs);

    uint64_t n_keys() const { return n_keys_; }
    uint64_t n_postings() const { return n_postings_; }
    uint64_t postings_bytes() const { return postings_bytes_; }

private:
    PairKeyLayoutWriter(uint32_t n_lists, uint32_t span, uint32_t short_span,
                        uint32_t keys_per_page, uint64_t n_pages, Sink sink);
    Status start_page(uint64_t page);
    Status close_page();  // the page being filled: its units to the sink, the page kept

    uint32_t n_lists_ = 0, span_ = 0, short_span_ = 0, keys_per_page_ = 0;
    uint64_t n_pages_ = 0;
    Sink sink_;
    bool finished_ = false;
    uint64_t page_ = 0;             // the page being filled (n_pages_ once all are closed)
    int64_t last_key_ = -1;         // the last key added
    std::vector<uint32_t> counts_;  // the page's keys' posting counts
    std::vector<std::vector<uint8_t>> units_;  // the page's units' postings
    std::vector<MerkleDigest> unit_leaves_;
    std::vector<std::vector<uint8_t>> pages_;  // closed pages, without proofs
    std::vector<MerkleDigest> page_leaves_;
    uint64_t postings_bytes_ = 0, n_keys_ = 0, n_postings_ = 0;
    uint64_t songs_below_ = 0;  // 1 + the largest song met
};

struct ByteRange {
    uint64_t offset = 0;
    uint64_t size = 0;
};

struct PairKeyHeader {
    uint32_t n_lists = 0, span = 0, short_span = 0, keys_per_page = 0, n_pages = 0;
    uint64_t n_keys = 0, n_postings = 0, n_songs = 0;  // keys with postings, postings, songs
    uint64_t directory_bytes = 0, postings_bytes = 0;
    MerkleDigest root{};                 // of the tree over the pages
    std::vector<uint64_t> page_offsets;  // [n_pages + 1] into the directory

    uint32_t page_of(uint32_t key) const { return key / keys_per_page; }
    ByteRange page_record(uint32_t page) const;  // in the directory file; page < n_pages
};

// The manifest's "pair_keys" entry (docs/DESIGN.md section 5): the three files' plain names and
// sizes, the header's SHA-256 (lowercase hex), the span and keys a page.
struct PairKeyManifest {
    std::string header_file, directory_file, postings_file, header_sha256;
    uint64_t header_bytes = 0, directory_bytes = 0, postings_bytes = 0;
    uint32_t span = 0, short_span = 0;  // short_span 0: no short keys
};
// Reads the entry from a manifest's text (where: its name, for messages); none when the index
// has no pair-key level. Every file must be a plain name (index files sit next to the
// manifest).
Result<std::optional<PairKeyManifest>> parse_pair_key_manifest(const std::string& manifest_text,
                                                               const std::string& where);
// Checks a header file against the entry (size, SHA-256), parses it (parse_pair_key_header)
// and checks that its span and file sizes are the entry's.
Result<PairKeyHeader> read_pair_key_header(const PairKeyManifest& entry, const uint8_t* bytes,
                                           size_t size, const std::string& what);

// Parses and checks a header file (its container checksum, the metadata's ranges and that
// the page offsets rise within directory_bytes).
Result<PairKeyHeader> parse_pair_key_header(const uint8_t* bytes, size_t size,
                                            const std::string& what);

struct PairKeyPage {
    uint32_t page = 0;
    uint32_t first_key = 0;
    std::vector<uint32_t> counts;        // postings per key of the page
    std::vector<uint64_t> unit_offsets;  // per key, where its unit starts in the postings
    std::vector<uint32_t> unit_number;   // per key, its leaf in the page's unit tree
    uint32_t n_units = 0;                // keys of the page with postings
    MerkleDigest units_root{};

    // `key`'s postings; none when the key is not on this page.
    std::optional<uint32_t> count(uint32_t key) const;
    // Bytes of `key`'s unit in the postings file (size 0: the key has no postings, or it is
    // not on this page).
    ByteRange unit_range(uint32_t key) const;
};

// Reads page `page`'s record (the bytes of header.page_record(page)): checks the page against
// the header's root and parses it. Any changed, missing or extra byte is an error.
Result<PairKeyPage> read_pair_key_page(const PairKeyHeader& header, uint32_t page,
                                       const uint8_t* record, size_t size);

// Reads `key`'s unit (the bytes of page.unit_range(key)): checks it against the page and
// returns its postings in (song, window) order; none for a key without postings.
Result<std::vector<PairPosting>> read_pair_key_unit(const PairKeyPage& page, uint32_t key,
                                                    const uint8_t* unit, size_t size);

}  // namespace earshot
