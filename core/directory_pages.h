// The block directory of a format 2 index cut into pages that a lazy client fetches one at a
// time with HTTP `Range` requests (docs/DESIGN.md section 5), so that what it downloads before
// the first query does not grow with the catalogue as directory.ed does (44 bytes a block:
// 44 MB at a million songs, one song a block). `earshot build` writes the pages beside a pair-key
// level. Two files:
//
// - the header (container kind "DPAG", downloaded whole and checked against the manifest's
//   SHA-256): metadata {format, version, model_hash, quantizer_sha256, blocks_file, n_blocks,
//   n_songs, blocks_per_page, n_pages, pages_bytes}, sections "page_first_song" u32
//   [n_pages + 1] (the songs before each page's first block; n_songs last) and "page_sha256"
//   u8 [n_pages, 32] (SHA-256 of each page's bytes);
// - the pages, one after the other: page p holds blocks [p K, min(n_blocks, (p + 1) K)) for K
//   = blocks_per_page, a 44-byte record per block (u64 its offset in the songs file, u32 the
//   songs before it, its 32-byte SHA-256; little-endian), then 12 bytes for the end (u64 the
//   next block's offset, u32 the songs before it: the songs file's size and n_songs after the
//   last block). Page p starts at byte p (44 K + 12).
//
// A query's candidate song names its page through page_first_song, and the page, checked
// against its hash, names the song's block with its range and hash. At a million songs (one
// song a block) and 32 blocks a page the header is 1.1 MB and a page 1.4 KB.
//
//   auto files = write_directory_pages(fields, 32);
//   auto entry = parse_directory_pages_manifest(manifest_text, "manifest.json");  // optional
//   auto header = read_directory_pages_header(**entry, h.data(), h.size(), "directory-pages.edh");
//   auto page = read_directory_page(*header, header->page_of_song(song), bytes, size);
//   auto block = page->block_of_song(song);  page->block_range(block);
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/index.h"
#include "core/pair_key_layout.h"
#include "core/status.h"

namespace earshot {

constexpr uint32_t kDirectoryPagesVersion = 1;
constexpr uint32_t kDefaultDirectoryPageBlocks = 32;
constexpr uint32_t kMaxDirectoryPageBlocks = 1u << 16;
constexpr size_t kDirectoryPageBlockBytes = 8 + 4 + 32;  // offset, songs before, SHA-256
constexpr size_t kDirectoryPageEndBytes = 8 + 4;         // the next block's offset and songs

// What a block directory holds, the pages' source (IndexBuilder::directory_file's fields).
struct BlockDirectoryFields {
    std::string model_hash, quantizer_sha256, blocks_file;
    std::vector<uint64_t> offsets;     // [n_blocks + 1]: 0 first, the songs file's size last
    std::vector<uint32_t> first_song;  // [n_blocks + 1]: songs before each block, n_songs last
    std::vector<uint8_t> sha256;       // [n_blocks * 32]
};

struct DirectoryPagesFiles {
    std::vector<uint8_t> header, pages;
};

// blocks_per_page in [1, kMaxDirectoryPageBlocks]; at least one block.
Result<DirectoryPagesFiles> write_directory_pages(const BlockDirectoryFields& directory,
                                                  uint32_t blocks_per_page);

// The manifest's "directory_pages" entry: {"header": {file, bytes, sha256}, "pages": {file,
// bytes}, "blocks_per_page"}.
struct DirectoryPagesManifest {
    std::string header_file, header_sha256, pages_file;
    uint64_t header_bytes = 0, pages_bytes = 0;
    uint32_t blocks_per_page = 0;
};
// None when the index has no directory pages; every file must be a plain name.
Result<std::optional<DirectoryPagesManifest>> parse_directory_pages_manifest(
    const std::string& manifest_text, const std::string& where);

struct DirectoryPagesHeader {
    std::string model_hash, quantizer_sha256, blocks_file;
    uint32_t n_blocks = 0, n_songs = 0, blocks_per_page = 0, n_pages = 0;
    uint64_t pages_bytes = 0;
    std::vector<uint32_t> page_first_song;  // [n_pages + 1], rising
    std::vector<uint8_t> page_sha256;       // [n_pages * 32]

    // Bytes of page p in the pages file (size 0 when p >= n_pages).
    ByteRange page_range(uint32_t page) const;
    uint32_t page_of_block(uint32_t block) const { return block / blocks_per_page; }
    // The page holding song `song` (< n_songs).
    uint32_t page_of_song(uint32_t song) const;
};

// Checks a header file against the manifest entry (size, SHA-256) and its own consistency
// (every page holds at least one song, the pages file's size).
Result<DirectoryPagesHeader> read_directory_pages_header(const DirectoryPagesManifest& entry,
                                                         const uint8_t* bytes, size_t size,
                                                         const std::string& what);

struct DirectoryPage {
    uint32_t page = 0, first_block = 0;
    std::vector<uint64_t> offsets;     // [blocks + 1]
    std::vector<uint32_t> first_song;  // [blocks + 1]
    std::vector<uint8_t> sha256;       // [blocks * 32]

    uint32_t n_blocks() const { return uint32_t(first_song.size() - 1); }
    bool holds_song(uint32_t song) const {
        return song >= first_song.front() && song < first_song.back();
    }
    // The block holding `song` (holds_song(song) must be true).
    uint32_t block_of_song(uint32_t song) const;
    // Where block `block` (of this page) lies, with its hash and song count: what
    // Index::add_shard() checks a block against.
    Index::FileRange block_range(const std::string& blocks_file, uint32_t block) const;
    size_t bytes() const { return n_blocks() * kDirectoryPageBlockBytes + kDirectoryPageEndBytes; }
};

// Reads page `page` (the bytes of header.page_range(page)): checks them against the header's
// hash and that the records rise and meet the header's songs; blocks_file_bytes is the songs
// file's size (the manifest's), which the last page must end at.
Result<DirectoryPage> read_directory_page(const DirectoryPagesHeader& header, uint32_t page,
                                          const uint8_t* bytes, size_t size,
                                          uint64_t blocks_file_bytes);

}  // namespace earshot
