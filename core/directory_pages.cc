#include "core/directory_pages.h"

#include <algorithm>
#include <cstring>

#include "core/container.h"
#include "core/json_read.h"
#include "core/little_endian.h"
#include "core/sha256.h"

namespace earshot {
namespace {

constexpr char kKind[] = "DPAG";
constexpr char kFormat[] = "earshot-directory-pages";

uint64_t page_stride(uint32_t blocks_per_page) {
    return uint64_t(blocks_per_page) * kDirectoryPageBlockBytes + kDirectoryPageEndBytes;
}

uint32_t blocks_on_page(uint32_t n_blocks, uint32_t blocks_per_page, uint32_t page) {
    const uint64_t first = uint64_t(page) * blocks_per_page;
    return uint32_t(std::min<uint64_t>(blocks_per_page, n_blocks - first));
}

std::string page_name(uint32_t page) { return "directory page " + std::to_string(page); }

}  // namespace

Result<DirectoryPagesFiles> write_directory_pages(const BlockDirectoryFields& d,
                                                  uint32_t blocks_per_page) {
    if (blocks_per_page < 1 || blocks_per_page > kMaxDirectoryPageBlocks)
        return Status::error("directory pages: blocks per page must be in [1, " +
                             std::to_string(kMaxDirectoryPageBlocks) + "]");
    const size_t n = d.offsets.size() - 1;
    if (d.offsets.size() < 2 || d.first_song.size() != n + 1 || d.sha256.size() != n * kSha256Bytes)
        return Status::error("directory pages: the block directory is empty or its parts differ");
    const uint32_t n_pages = uint32_t((n + blocks_per_page - 1) / blocks_per_page);
    DirectoryPagesFiles out;
    std::vector<uint32_t> page_first_song;
    std::vector<uint8_t> page_sha256;
    for (uint32_t p = 0; p < n_pages; ++p) {
        const size_t start = out.pages.size();
        const size_t first = size_t(p) * blocks_per_page;
        const size_t end = first + blocks_on_page(uint32_t(n), blocks_per_page, p);
        for (size_t b = first; b < end; ++b) {
            put_u64(&out.pages, d.offsets[b]);
            put_u32(&out.pages, d.first_song[b]);
            out.pages.insert(out.pages.end(), d.sha256.begin() + b * kSha256Bytes,
                             d.sha256.begin() + (b + 1) * kSha256Bytes);
        }
        put_u64(&out.pages, d.offsets[end]);
        put_u32(&out.pages, d.first_song[end]);
        page_first_song.push_back(d.first_song[first]);
        const auto digest = sha256(out.pages.data() + start, out.pages.size() - start);
        page_sha256.insert(page_sha256.end(), digest.begin(), digest.end());
    }
    page_first_song.push_back(d.first_song[n]);
    const nlohmann::json meta = {{"format", kFormat},
                                 {"version", kDirectoryPagesVersion},
                                 {"model_hash", d.model_hash},
                                 {"quantizer_sha256", d.quantizer_sha256},
                                 {"blocks_file", d.blocks_file},
                                 {"n_blocks", n},
                                 {"n_songs", d.first_song[n]},
                                 {"blocks_per_page", blocks_per_page},
                                 {"n_pages", n_pages},
                                 {"pages_bytes", out.pages.size()}};
    ContainerWriter writer(kKind, meta);
    writer.add("page_first_song", DType::kU32, {n_pages + 1}, page_first_song.data(),
               page_first_song.size() * sizeof(uint32_t));
    writer.add("page_sha256", DType::kU8, {n_pages, uint32_t(kSha256Bytes)}, page_sha256.data(),
               page_sha256.size());
    out.header = writer.finish();
    return out;
}

Result<std::optional<DirectoryPagesManifest>> parse_directory_pages_manifest(
    const std::string& manifest_text, const std::string& where) {
    const auto manifest = nlohmann::json::parse(manifest_text, nullptr, false);
    if (!manifest.is_object()) return Status::error(where + " is not a JSON object");
    if (!manifest.contains("directory_pages")) return std::optional<DirectoryPagesManifest>();
    const std::string at = where + " directory_pages";
    const nlohmann::json* entry = nullptr;
    if (Status s = json_read_object(manifest, "directory_pages", where, &entry); !s) return s;
    DirectoryPagesManifest m;
    uint64_t blocks_per_page = 0;
    for (Status s : {json_read_file_entry(*entry, "header", at, &m.header_file, &m.header_bytes),
                     json_read_file_entry(*entry, "pages", at, &m.pages_file, &m.pages_bytes),
                     json_read_uint64(*entry, "blocks_per_page", kMaxDirectoryPageBlocks, at,
                                      &blocks_per_page)})
        if (!s) return s;
    if (Status s =
            json_read_string(entry->at("header"), "sha256", at + " header", &m.header_sha256);
        !s)
        return s;
    if (blocks_per_page == 0) return Status::error(at + ": blocks_per_page must be at least 1");
    m.blocks_per_page = uint32_t(blocks_per_page);
    return std::optional<DirectoryPagesManifest>(std::move(m));
}

ByteRange DirectoryPagesHeader::page_range(uint32_t page) const {
    if (page >= n_pages) return {};
    return {uint64_t(page) * page_stride(blocks_per_page),
            blocks_on_page(n_blocks, blocks_per_page, page) * kDirectoryPageBlockBytes +
                kDirectoryPageEndBytes};
}

uint32_t DirectoryPagesHeader::page_of_song(uint32_t song) const {
    return uint32_t(std::upper_bound(page_first_song.begin(), page_first_song.end(), song) -
                    page_first_song.begin() - 1);
}

Result<DirectoryPagesHeader> read_directory_pages_header(const DirectoryPagesManifest& entry,
                                                         const uint8_t* bytes, size_t size,
                                                         const std::string& what) {
    if (size != entry.header_bytes || index_file_sha256_hex(bytes, size) != entry.header_sha256)
        return Status::error(what +
                             ": its size or SHA-256 is not the manifest's (changed, cut short or "
                             "from another index)");
    Result<ContainerView> parsed = parse_container(bytes, size, kKind, what);
    if (!parsed) return parsed.status();
    const ContainerView& c = parsed.value();
    const std::string where = what + " metadata";
    if (!c.meta.is_object()) return Status::error(where + " is not a JSON object");
    DirectoryPagesHeader h;
    std::string format;
    int version = 0;
    uint64_t n_blocks = 0, n_songs = 0, per_page = 0, n_pages = 0;
    for (Status s :
         {json_read_string(c.meta, "format", where, &format),
          json_read_int(c.meta, "version", 0, 1 << 30, where, &version),
          json_read_string(c.meta, "model_hash", where, &h.model_hash),
          json_read_string(c.meta, "quantizer_sha256", where, &h.quantizer_sha256),
          json_read_string(c.meta, "blocks_file", where, &h.blocks_file),
          json_read_uint64(c.meta, "n_blocks", kMaxShards, where, &n_blocks),
          json_read_uint64(c.meta, "n_songs", UINT32_MAX, where, &n_songs),
          json_read_uint64(c.meta, "blocks_per_page", kMaxDirectoryPageBlocks, where, &per_page),
          json_read_uint64(c.meta, "n_pages", kMaxShards, where, &n_pages),
          json_read_uint64(c.meta, "pages_bytes", uint64_t(1) << 52, where, &h.pages_bytes)})
        if (!s) return s;
    if (format != kFormat) return Status::error(what + ": not directory pages (" + format + ")");
    if (version != int(kDirectoryPagesVersion))
        return Status::error(what + ": version " + std::to_string(version) +
                             ", this reader reads version " +
                             std::to_string(kDirectoryPagesVersion) + " (rebuild the index)");
    if (per_page != entry.blocks_per_page || per_page == 0 || n_blocks == 0 ||
        n_pages != (n_blocks + per_page - 1) / per_page)
        return Status::error(what + ": its page count or blocks per page are wrong");
    h.n_blocks = uint32_t(n_blocks);
    h.n_songs = uint32_t(n_songs);
    h.blocks_per_page = uint32_t(per_page);
    h.n_pages = uint32_t(n_pages);
    const ByteRange last = h.page_range(h.n_pages - 1);
    if (h.pages_bytes != entry.pages_bytes || last.offset + last.size != h.pages_bytes)
        return Status::error(what + ": the pages file's size is not " +
                             std::to_string(last.offset + last.size) + " bytes");
    Result<const Section*> songs = c.require("page_first_song", DType::kU32, {h.n_pages + 1});
    if (!songs) return songs.status();
    h.page_first_song.resize(h.n_pages + 1);  // payloads may be unaligned: read through memcpy
    std::memcpy(h.page_first_song.data(), songs.value()->data,
                h.page_first_song.size() * sizeof(uint32_t));
    Result<const Section*> hashes =
        c.require("page_sha256", DType::kU8, {h.n_pages, uint32_t(kSha256Bytes)});
    if (!hashes) return hashes.status();
    h.page_sha256.assign(hashes.value()->data,
                         hashes.value()->data + size_t(h.n_pages) * kSha256Bytes);
    if (h.page_first_song.front() != 0 || h.page_first_song.back() != h.n_songs)
        return Status::error(what + ": page songs do not run from 0 to " +
                             std::to_string(h.n_songs));
    for (uint32_t p = 0; p < h.n_pages; ++p)
        if (h.page_first_song[p + 1] <= h.page_first_song[p])
            return Status::error(what + ": " + page_name(p) + " holds no song");
    return h;
}

uint32_t DirectoryPage::block_of_song(uint32_t song) const {
    return first_block + uint32_t(std::upper_bound(first_song.begin(), first_song.end(), song) -
                                  first_song.begin() - 1);
}

Index::FileRange DirectoryPage::block_range(const std::string& blocks_file, uint32_t block) const {
    const uint32_t i = block - first_block;
    Index::FileRange r;
    r.file = blocks_file;
    r.offset = offsets[i];
    r.bytes = offsets[i + 1] - offsets[i];
    r.sha256 = to_hex(sha256.data() + size_t(i) * kSha256Bytes, kSha256Bytes);
    r.songs = first_song[i + 1] - first_song[i];
    return r;
}

Result<DirectoryPage> read_directory_page(const DirectoryPagesHeader& header, uint32_t page,
                                          const uint8_t* bytes, size_t size,
                                          uint64_t blocks_file_bytes) {
    const std::string what = page_name(page);
    if (page >= header.n_pages)
        return Status::error(what + ": the index has " + std::to_string(header.n_pages) + " pages");
    if (size != header.page_range(page).size)
        return Status::error(what + ": " + std::to_string(size) + " bytes where the header says " +
                             std::to_string(header.page_range(page).size));
    const auto digest = sha256(bytes, size);
    if (!std::equal(digest.begin(), digest.end(),
                    header.page_sha256.begin() + size_t(page) * kSha256Bytes))
        return Status::error(what +
                             ": its SHA-256 is not the header's (changed or truncated in "
                             "transit, or from another index)");
    // Verified: what follows only guards against a writer that broke its own format.
    DirectoryPage out;
    out.page = page;
    out.first_block = page * header.blocks_per_page;
    const uint32_t n = blocks_on_page(header.n_blocks, header.blocks_per_page, page);
    out.offsets.resize(n + 1);
    out.first_song.resize(n + 1);
    out.sha256.resize(size_t(n) * kSha256Bytes);
    for (uint32_t i = 0; i <= n; ++i) {
        const uint8_t* record = bytes + size_t(i) * kDirectoryPageBlockBytes;
        out.offsets[i] = get_u64(record);
        out.first_song[i] = get_u32(record + 8);
        if (i < n)
            std::memcpy(out.sha256.data() + size_t(i) * kSha256Bytes, record + 12, kSha256Bytes);
        if (i > 0 &&
            (out.offsets[i] <= out.offsets[i - 1] || out.first_song[i] <= out.first_song[i - 1]))
            return Status::error(what + ": block " + std::to_string(out.first_block + i - 1) +
                                 " is empty or its range or songs go backwards");
    }
    if (out.first_song.front() != header.page_first_song[page] ||
        out.first_song.back() != header.page_first_song[page + 1])
        return Status::error(what + ": its songs are not the header's");
    if ((page == 0 && out.offsets.front() != 0) || out.offsets.back() > blocks_file_bytes ||
        (page + 1 == header.n_pages && out.offsets.back() != blocks_file_bytes))
        return Status::error(what + ": its blocks do not lie in the songs file's " +
                             std::to_string(blocks_file_bytes) + " bytes");
    return out;
}

}  // namespace earshot
