// The pair-key level of an index folder (pairs.ekh, pairs.ekd, pairs.ekp: `earshot build
// --pair-keys`, core/pair_key_layout.h) read from disk, as a page reads it over HTTP: the header
// whole, checked against the manifest's hash; the directory's page records and the postings'
// units as byte ranges, each checked by the caller (core/pair_key_reader.h) before use.
// Native only; shared by `earshot verify` and the benchmark tools.
//
//   auto folder = open_pair_key_folder(dir);       // none: the index has no pair level
//   if (folder && *folder) auto record = (*folder)->read_directory(header.page_record(p));
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/pair_key_layout.h"
#include "core/status.h"

namespace earshot {

// The bytes of `range` of the file at `path` (an error if the file is shorter than its end):
// what a page's `Range` request returns.
Result<std::vector<uint8_t>> read_file_range(const std::string& path, ByteRange range);

struct PairKeyFolder {
    PairKeyHeader header;
    uint64_t header_bytes = 0;  // the header file's size (downloaded whole)
    uint32_t span = 0;  // index hops, as the manifest says (the header's)
    std::string directory_path, postings_path;

    // The bytes of `range` of the directory or the postings file (an error if the file is
    // shorter than the range's end).
    Result<std::vector<uint8_t>> read_directory(ByteRange range) const;
    Result<std::vector<uint8_t>> read_postings(ByteRange range) const;
};

// Reads the manifest's "pair_keys" entry of the index folder `dir` and its header: the header's
// SHA-256 is the manifest's, and the directory and postings files have the sizes the header
// and the manifest give. Without such an entry: an empty optional.
Result<std::optional<PairKeyFolder>> open_pair_key_folder(const std::string& dir);

// Checks every page record and every unit against the header's root, and the level's shape
// against the index it belongs to: its songs and coarse lists.
Status verify_pair_key_folder(const PairKeyFolder& folder, size_t n_songs, uint32_t n_lists);

}  // namespace earshot
