#include "core/pair_key_layout.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/container.h"
#include "core/index.h"
#include "core/json_read.h"
#include "core/little_endian.h"

namespace earshot {
namespace {

constexpr char kKind[] = "PKEY";
constexpr char kFormat[] = "earshot-pair-keys";
constexpr size_t kPageFixedBytes = 4 + 4 + 8;  // page number, keys, first unit's offset

void put_leb128(std::vector<uint8_t>* out, uint64_t v) {
    do {
        uint8_t byte = v & 0x7f;
        v >>= 7;
        out->push_back(v ? byte | 0x80 : byte);
    } while (v);
}

// A LEB128 value below 2^32 from [*p, end); advances *p. False when cut off or too large.
bool get_leb128_u32(const uint8_t** p, const uint8_t* end, uint32_t* out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 35; shift += 7) {
        if (*p == end) return false;
        const uint8_t byte = *(*p)++;
        v |= uint64_t(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            if (v > std::numeric_limits<uint32_t>::max()) return false;
            *out = static_cast<uint32_t>(v);
            return true;
        }
    }
    return false;
}

uint64_t n_pages_for(uint32_t n_lists, uint32_t short_span, uint32_t keys_per_page) {
    const uint64_t n_keys = pair_key_space(n_lists, short_span);
    return (n_keys + keys_per_page - 1) / keys_per_page;
}

// Keys on page `page` (< n_pages_for): keys_per_page, fewer on the last page.
uint32_t keys_on_page(uint32_t n_lists, uint32_t short_span, uint32_t keys_per_page,
                      uint64_t page) {
    const uint64_t n_keys = pair_key_space(n_lists, short_span);
    return static_cast<uint32_t>(std::min<uint64_t>(keys_per_page, n_keys - page * keys_per_page));
}

// Bytes of a unit of `count` postings, leaf `number` of its page's tree of n_units leaves.
uint64_t unit_bytes(uint32_t count, uint32_t number, uint32_t n_units) {
    return uint64_t(count) * 4 + 32 * merkle_proof_length(number, n_units);
}

// Whether bytes[0, body_bytes) followed by an audit path of n_hashes hashes (what a page record
// and a unit hold) proves leaf `index` of a tree of tree_size leaves with root `root`.
bool verify_with_trailing_proof(const uint8_t* bytes, size_t body_bytes, size_t n_hashes,
                                uint64_t index, uint64_t tree_size, const MerkleDigest& root) {
    std::vector<MerkleDigest> path(n_hashes);
    for (size_t k = 0; k < n_hashes; ++k)
        std::memcpy(path[k].data(), bytes + body_bytes + 32 * k, 32);
    return merkle_verify(merkle_leaf_hash(bytes, body_bytes), index, tree_size, path.data(),
                         path.size(), root);
}

std::string page_name(uint32_t page) { return "pair-key page " + std::to_string(page); }

// OK when a posting's song bits can number n_songs songs.
Status check_song_count(uint64_t n_songs) {
    if (n_songs <= (uint64_t(1) << kPairLayoutSongBits)) return Status::ok();
    return Status::error("pair-key layout: " + std::to_string(n_songs) +
                         " songs, more than a posting's " + std::to_string(kPairLayoutSongBits) +
                         " bits can number");
}

}  // namespace

Result<PairKeyLayoutWriter> PairKeyLayoutWriter::create(uint32_t n_lists, uint32_t span,
                                                        uint32_t keys_per_page, Sink postings_sink,
                                                        uint32_t short_span) {
    if (keys_per_page < 1 || keys_per_page > kPairLayoutMaxKeysPerPage)
        return Status::error("pair-key layout: keys_per_page must be in [1, " +
                             std::to_string(kPairLayoutMaxKeysPerPage) + "]");
    if (Status st = check_pair_spans(n_lists, span, short_span); !st) return st;
    if (!postings_sink) return Status::error("pair-key layout: no sink for the postings");
    const uint64_t n_pages = n_pages_for(n_lists, short_span, keys_per_page);
    if (n_pages + 1 > std::numeric_limits<uint32_t>::max())
        return Status::error("pair-key layout: too many pages; use more keys per page");
    PairKeyLayoutWriter w(n_lists, span, short_span, keys_per_page, n_pages,
                          std::move(postings_sink));
    if (Status st = w.start_page(0); !st) return st;
    return w;
}

PairKeyLayoutWriter::PairKeyLayoutWriter(uint32_t n_lists, uint32_t span, uint32_t short_span,
                                         uint32_t keys_per_page, uint64_t n_pages, Sink sink)
    : n_lists_(n_lists),
      span_(span),
      short_span_(short_span),
      keys_per_page_(keys_per_page),
      n_pages_(n_pages),
      sink_(std::move(sink)) {
    pages_.reserve(n_pages);
    page_leaves_.reserve(n_pages);
}

Status PairKeyLayoutWriter::start_page(uint64_t page) {
    page_ = page;
    counts_.assign(page < n_pages_ ? keys_on_page(n_lists_, short_span_, keys_per_page_, page) : 0,
                   0);
    units_.clear();
    unit_leaves_.clear();
    return Status::ok();
}

Status PairKeyLayoutWriter::close_page() {
    std::vector<uint8_t> page;
    put_u32(&page, static_cast<uint32_t>(page_));
    put_u32(&page, static_cast<uint32_t>(counts_.size()));
    put_u64(&page, postings_bytes_);
    for (uint32_t count : counts_) put_leb128(&page, count);
    const MerkleTree unit_tree = MerkleTree::build(std::move(unit_leaves_));
    const MerkleDigest units_root = unit_tree.root();
    page.insert(page.end(), units_root.begin(), units_root.end());
    std::vector<uint8_t> unit;
    for (size_t u = 0; u < units_.size(); ++u) {
        unit.swap(units_[u]);
        for (const MerkleDigest& h : unit_tree.proof(u))
            unit.insert(unit.end(), h.begin(), h.end());
        if (Status st = sink_(unit.data(), unit.size()); !st) return st;
        postings_bytes_ += unit.size();
        std::vector<uint8_t>().swap(units_[u]);
    }
    page_leaves_.push_back(merkle_leaf_hash(page.data(), page.size()));
    pages_.push_back(std::move(page));
    return start_page(page_ + 1);
}

Status PairKeyLayoutWriter::add_key(uint32_t key, const PairPosting* postings, size_t n) {
    if (finished_) return Status::error("pair-key layout: add_key after finish");
    if (int64_t(key) <= last_key_)
        return Status::error("pair-key layout: key " + std::to_string(key) + " after key " +
                             std::to_string(last_key_) +
                             ": keys must be added in ascending order, each once");
    if (uint64_t(key) >= pair_key_space(n_lists_, short_span_))
        return Status::error("pair-key layout: key " + std::to_string(key) + " is not below " +
                             std::to_string(pair_key_space(n_lists_, short_span_)));
    if (n == 0)
        return Status::error("pair-key layout: key " + std::to_string(key) + " has no postings");
    if (n > std::numeric_limits<uint32_t>::max())
        return Status::error("pair-key layout: key " + std::to_string(key) +
                             " has too many postings");
    std::vector<uint8_t> unit;
    unit.reserve(4 * n);
    uint64_t songs_below = songs_below_;
    for (size_t j = 0; j < n; ++j) {
        const PairPosting& posting = postings[j];
        if (posting.window >= kPairLayoutMaxWindows)
            return Status::error("pair-key layout: song " + std::to_string(posting.song) +
                                 " has a key at window " + std::to_string(posting.window) +
                                 ", beyond a posting's " + std::to_string(kPairLayoutWindowBits) +
                                 " bits: split longer songs into parts");
        if (posting.song >> kPairLayoutSongBits)
            return Status::error("pair-key layout: song " + std::to_string(posting.song) +
                                 " is beyond a posting's " + std::to_string(kPairLayoutSongBits) +
                                 " bits");
        put_u32(&unit, pack_pair_posting(posting));
        songs_below = std::max<uint64_t>(songs_below, uint64_t(posting.song) + 1);
    }
    const uint64_t page = key / keys_per_page_;
    while (page_ < page)
        if (Status st = close_page(); !st) return st;
    counts_[key - page * keys_per_page_] = static_cast<uint32_t>(n);
    songs_below_ = songs_below;
    unit_leaves_.push_back(merkle_leaf_hash(unit.data(), unit.size()));
    units_.push_back(std::move(unit));
    last_key_ = key;
    ++n_keys_;
    n_postings_ += n;
    return Status::ok();
}

Result<PairKeyFiles> PairKeyLayoutWriter::finish(uint64_t n_songs) {
    if (finished_) return Status::error("pair-key layout: finish called twice");
    if (Status st = check_song_count(n_songs); !st) return st;
    if (songs_below_ > n_songs)
        return Status::error("pair-key layout: a posting names song " +
                             std::to_string(songs_below_ - 1) + " of " + std::to_string(n_songs));
    while (page_ < n_pages_)
        if (Status st = close_page(); !st) return st;
    finished_ = true;

    PairKeyFiles files;
    const MerkleTree page_tree = MerkleTree::build(std::move(page_leaves_));
    std::vector<uint64_t> offsets;
    offsets.reserve(n_pages_ + 1);
    for (uint64_t p = 0; p < n_pages_; ++p) {
        offsets.push_back(files.directory.size());
        files.directory.insert(files.directory.end(), pages_[p].begin(), pages_[p].end());
        std::vector<uint8_t>().swap(pages_[p]);
        for (const MerkleDigest& h : page_tree.proof(p))
            files.directory.insert(files.directory.end(), h.begin(), h.end());
    }
    offsets.push_back(files.directory.size());

    nlohmann::json meta = {
        {"format", kFormat},
        {"version", kPairLayoutVersion},
        {"n_lists", n_lists_},
        {"span", span_},
        {"short_span", short_span_},
        {"keys_per_page", keys_per_page_},
        {"n_pages", n_pages_},
        {"n_keys", n_keys_},
        {"n_postings", n_postings_},
        {"n_songs", n_songs},
        {"directory_bytes", files.directory.size()},
        {"postings_bytes", postings_bytes_},
    };
    ContainerWriter writer(kKind, meta);
    const MerkleDigest root = page_tree.root();
    writer.add("root", DType::kU8, {32}, root.data(), root.size());
    writer.add("page_offsets", DType::kU64, {static_cast<uint32_t>(n_pages_ + 1)}, offsets.data(),
               offsets.size() * sizeof(uint64_t));
    files.header = writer.finish();
    return files;
}

Result<PairKeyFiles> write_pair_key_files(const PairKeyIndex& index, uint32_t keys_per_page) {
    if (!index.finished()) return Status::error("pair-key layout: the index is not finished");
    std::vector<uint8_t> postings;
    Result<PairKeyLayoutWriter> writer = PairKeyLayoutWriter::create(
        index.n_lists(), index.span(), keys_per_page,
        [&postings](const uint8_t* data, size_t n) {
            postings.insert(postings.end(), data, data + n);
            return Status::ok();
        },
        index.short_span());
    if (!writer) return writer.status();
    if (Status st = check_song_count(index.n_songs()); !st) return st;  // before any key
    for (uint32_t key : index.keys()) {
        const PairKeyIndex::Span p = index.postings(key);
        if (Status st = writer->add_key(key, p.data, p.size); !st) return st;
    }
    Result<PairKeyFiles> files = writer->finish(index.n_songs());
    if (!files) return files.status();
    files->postings = std::move(postings);
    return files;
}

Result<std::optional<PairKeyManifest>> parse_pair_key_manifest(const std::string& manifest_text,
                                                               const std::string& where) {
    const auto manifest = nlohmann::json::parse(manifest_text, nullptr, false);
    if (!manifest.is_object()) return Status::error(where + " is not a JSON object");
    if (!manifest.contains("pair_keys")) return std::optional<PairKeyManifest>();
    const std::string at = where + " pair_keys";
    const nlohmann::json* pairs = nullptr;
    if (Status s = json_read_object(manifest, "pair_keys", where, &pairs); !s) return s;
    PairKeyManifest m;
    uint64_t span = 0;
    for (Status s :
         {json_read_file_entry(*pairs, "header", at, &m.header_file, &m.header_bytes),
          json_read_file_entry(*pairs, "directory", at, &m.directory_file, &m.directory_bytes),
          json_read_file_entry(*pairs, "postings", at, &m.postings_file, &m.postings_bytes),
          json_read_uint64(*pairs, "span", uint64_t(1) << 20, at, &span)})
        if (!s) return s;
    // The header entry is an object now (json_read_file_entry checked it).
    if (Status s =
            json_read_string(pairs->at("header"), "sha256", at + " header", &m.header_sha256);
        !s)
        return s;
    m.span = static_cast<uint32_t>(span);
    if (pairs->contains("short_span")) {  // absent: none (a level written without one)
        uint64_t short_span = 0;
        if (Status s = json_read_uint64(*pairs, "short_span", uint64_t(1) << 20, at, &short_span);
            !s)
            return s;
        m.short_span = static_cast<uint32_t>(short_span);
    }
    return std::optional<PairKeyManifest>(std::move(m));
}

Result<PairKeyHeader> read_pair_key_header(const PairKeyManifest& entry, const uint8_t* bytes,
                                           size_t size, const std::string& what) {
    if (size != entry.header_bytes || index_file_sha256_hex(bytes, size) != entry.header_sha256)
        return Status::error(what +
                             ": its size or SHA-256 is not the manifest's (changed, cut short or "
                             "from another index)");
    Result<PairKeyHeader> header = parse_pair_key_header(bytes, size, what);
    if (!header) return header.status();
    if (entry.span != header->span || entry.short_span != header->short_span)
        return Status::error(what + ": spans " + std::to_string(header->span) + " and " +
                             std::to_string(header->short_span) + " where the manifest says " +
                             std::to_string(entry.span) + " and " +
                             std::to_string(entry.short_span));
    if (entry.directory_bytes != header->directory_bytes ||
        entry.postings_bytes != header->postings_bytes)
        return Status::error(what + ": file sizes differ from the manifest's");
    return header;
}

ByteRange PairKeyHeader::page_record(uint32_t page) const {
    if (page >= n_pages) return {};
    return {page_offsets[page], page_offsets[page + 1] - page_offsets[page]};
}

Result<PairKeyHeader> parse_pair_key_header(const uint8_t* bytes, size_t size,
                                            const std::string& what) {
    Result<ContainerView> parsed = parse_container(bytes, size, kKind, what);
    if (!parsed) return parsed.status();
    const ContainerView& c = parsed.value();
    const std::string where = what + " metadata";
    std::string format;
    int version = 0, n_lists = 0, span = 0, keys_per_page = 0;
    uint64_t n_pages = 0;
    PairKeyHeader h;
    for (Status s :
         {json_read_string(c.meta, "format", where, &format),
          json_read_int(c.meta, "version", 0, 1 << 30, where, &version),
          json_read_int(c.meta, "n_lists", 1, int(kPairMaxLists), where, &n_lists),
          json_read_int(c.meta, "span", 1, 1 << 20, where, &span),
          json_read_int(c.meta, "keys_per_page", 1, int(kPairLayoutMaxKeysPerPage), where,
                        &keys_per_page),
          json_read_uint64(c.meta, "n_pages", std::numeric_limits<uint32_t>::max() - 1, where,
                           &n_pages),
          json_read_uint64(c.meta, "n_keys", uint64_t(1) << 32, where, &h.n_keys),
          json_read_uint64(c.meta, "n_postings", uint64_t(1) << 48, where, &h.n_postings),
          json_read_uint64(c.meta, "n_songs", uint64_t(1) << kPairLayoutSongBits, where,
                           &h.n_songs),
          json_read_uint64(c.meta, "directory_bytes", uint64_t(1) << 52, where, &h.directory_bytes),
          json_read_uint64(c.meta, "postings_bytes", uint64_t(1) << 52, where,
                           &h.postings_bytes)}) {
        if (!s) return s;
    }
    if (format != kFormat)
        return Status::error(what + ": format is \"" + format + "\", not " + kFormat);
    if (version != int(kPairLayoutVersion))
        return Status::error(what + ": pair-key layout version " + std::to_string(version) +
                             "; this reader reads version " + std::to_string(kPairLayoutVersion));
    h.n_lists = static_cast<uint32_t>(n_lists);
    h.span = static_cast<uint32_t>(span);
    h.keys_per_page = static_cast<uint32_t>(keys_per_page);
    if (c.meta.contains("short_span")) {  // absent: none (a header written without one)
        int short_span = 0;
        if (Status s = json_read_int(c.meta, "short_span", 0, 1 << 20, where, &short_span); !s)
            return s;
        h.short_span = static_cast<uint32_t>(short_span);
    }
    if (Status s = check_pair_spans(h.n_lists, h.span, h.short_span); !s)
        return Status::error(what + ": " + s.message());
    const uint64_t want_pages = n_pages_for(h.n_lists, h.short_span, h.keys_per_page);
    if (n_pages != want_pages)
        return Status::error(what + ": " + std::to_string(n_pages) + " pages where " +
                             std::to_string(h.n_lists) + " lists make " +
                             std::to_string(want_pages));
    h.n_pages = static_cast<uint32_t>(n_pages);
    Result<const Section*> root = c.require("root", DType::kU8, {32});
    if (!root) return root.status();
    std::memcpy(h.root.data(), root.value()->data, 32);
    Result<const Section*> offsets =
        c.require("page_offsets", DType::kU64, {static_cast<uint32_t>(n_pages + 1)});
    if (!offsets) return offsets.status();
    h.page_offsets.resize(n_pages + 1);  // payloads may be unaligned: read through memcpy
    std::memcpy(h.page_offsets.data(), offsets.value()->data,
                h.page_offsets.size() * sizeof(uint64_t));
    if (h.page_offsets[0] != 0 || h.page_offsets[n_pages] != h.directory_bytes)
        return Status::error(what + ": page offsets do not span the directory's " +
                             std::to_string(h.directory_bytes) + " bytes");
    for (size_t p = 0; p < n_pages; ++p) {
        if (h.page_offsets[p + 1] < h.page_offsets[p] + kPageFixedBytes + 32)
            return Status::error(what + ": page " + std::to_string(p) + "'s record is too short");
    }
    return h;
}

std::optional<uint32_t> PairKeyPage::count(uint32_t key) const {
    if (key < first_key || key - first_key >= counts.size()) return std::nullopt;
    return counts[key - first_key];
}

ByteRange PairKeyPage::unit_range(uint32_t key) const {
    if (count(key).value_or(0) == 0) return {};
    const uint32_t i = key - first_key;
    return {unit_offsets[i], unit_bytes(counts[i], unit_number[i], n_units)};
}

Result<PairKeyPage> read_pair_key_page(const PairKeyHeader& header, uint32_t page,
                                       const uint8_t* record, size_t size) {
    const std::string what = page_name(page);
    if (page >= header.n_pages)
        return Status::error(what + ": the index has " + std::to_string(header.n_pages) + " pages");
    if (size != header.page_record(page).size)
        return Status::error(what + ": " + std::to_string(size) + " bytes where the header says " +
                             std::to_string(header.page_record(page).size));
    const size_t proof_bytes = 32 * merkle_proof_length(page, header.n_pages);
    if (size < kPageFixedBytes + 32 + proof_bytes)
        return Status::error(what + ": too short for a page and its proof");
    const size_t page_bytes = size - proof_bytes;
    if (!verify_with_trailing_proof(record, page_bytes, proof_bytes / 32, page, header.n_pages,
                                    header.root))
        return Status::error(what +
                             ": does not match the index's hash tree (changed or "
                             "truncated in transit, or from another index)");

    // Verified: what follows only guards against a writer that broke its own format.
    PairKeyPage out;
    out.page = page;
    out.first_key = page * header.keys_per_page;
    const uint32_t expected =
        keys_on_page(header.n_lists, header.short_span, header.keys_per_page, page);
    if (get_u32(record) != page || get_u32(record + 4) != expected)
        return Status::error(what + ": its number or key count is wrong");
    uint64_t offset = get_u64(record + 8);
    const uint8_t* p = record + kPageFixedBytes;
    const uint8_t* end = record + page_bytes - 32;
    out.counts.resize(expected);
    for (uint32_t i = 0; i < expected; ++i) {
        if (!get_leb128_u32(&p, end, &out.counts[i]))
            return Status::error(what + ": its posting counts are cut off");
        if (out.counts[i]) ++out.n_units;
    }
    if (p != end) return Status::error(what + ": bytes after its posting counts");
    std::memcpy(out.units_root.data(), end, 32);
    out.unit_offsets.resize(expected);
    out.unit_number.resize(expected);
    uint32_t number = 0;
    for (uint32_t i = 0; i < expected; ++i) {
        out.unit_offsets[i] = offset;
        out.unit_number[i] = number;
        if (!out.counts[i]) continue;
        offset += unit_bytes(out.counts[i], number, out.n_units);
        ++number;
    }
    if (offset > header.postings_bytes)
        return Status::error(what + ": its units run past the postings file");
    return out;
}

Result<std::vector<PairPosting>> read_pair_key_unit(const PairKeyPage& page, uint32_t key,
                                                    const uint8_t* unit, size_t size) {
    const std::string what = "pair key " + std::to_string(key);
    if (key < page.first_key || key - page.first_key >= page.counts.size())
        return Status::error(what + ": not on " + page_name(page.page));
    const uint32_t i = key - page.first_key;
    std::vector<PairPosting> postings;
    if (page.counts[i] == 0) {
        if (size)
            return Status::error(what + ": has no postings, but " + std::to_string(size) +
                                 " bytes were given");
        return postings;
    }
    const ByteRange range = page.unit_range(key);
    if (size != range.size)
        return Status::error(what + ": " + std::to_string(size) + " bytes where its page says " +
                             std::to_string(range.size));
    const size_t posting_bytes = size_t(page.counts[i]) * 4;
    if (!verify_with_trailing_proof(unit, posting_bytes, (size - posting_bytes) / 32,
                                    page.unit_number[i], page.n_units, page.units_root))
        return Status::error(what + ": its postings do not match " + page_name(page.page) +
                             " (changed or truncated in transit)");
    postings.resize(page.counts[i]);
    for (size_t j = 0; j < postings.size(); ++j) {
        const uint32_t v = get_u32(unit + 4 * j);
        postings[j] = unpack_pair_posting(v);
    }
    return postings;
}

}  // namespace earshot
