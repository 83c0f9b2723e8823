#include "core/native/pair_key_folder.h"

#include <filesystem>
#include <fstream>

#include "core/index.h"
#include "core/native/index_folder.h"

namespace earshot {
namespace {

namespace fs = std::filesystem;

Status check_file_size(const std::string& path, uint64_t expected) {
    std::error_code ec;
    const uintmax_t size = fs::file_size(path, ec);
    if (ec) return Status::error("cannot read " + path + ": " + ec.message());
    if (size != expected)
        return Status::error(path + ": " + std::to_string(size) + " bytes where the index says " +
                             std::to_string(expected) + " (cut short or replaced)");
    return Status::ok();
}

}  // namespace

Result<std::vector<uint8_t>> read_file_range(const std::string& path, ByteRange range) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::error("cannot open " + path);
    std::vector<uint8_t> bytes(range.size);
    in.seekg(std::streamoff(range.offset));
    if (!in || !in.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(range.size)))
        return Status::error(path + ": cannot read bytes " + std::to_string(range.offset) + "-" +
                             std::to_string(range.offset + range.size) + " (file cut short?)");
    return bytes;
}

Result<std::vector<uint8_t>> PairKeyFolder::read_directory(ByteRange range) const {
    return read_file_range(directory_path, range);
}

Result<std::vector<uint8_t>> PairKeyFolder::read_postings(ByteRange range) const {
    return read_file_range(postings_path, range);
}

Result<std::optional<PairKeyFolder>> open_pair_key_folder(const std::string& dir) {
    const std::string manifest_path = (fs::path(dir) / "manifest.json").string();
    Result<std::vector<uint8_t>> text = read_file_bytes(manifest_path);
    if (!text) return text.status();
    Result<std::optional<PairKeyManifest>> entry =
        parse_pair_key_manifest(std::string(text->begin(), text->end()), manifest_path);
    if (!entry) return entry.status();
    if (!entry->has_value()) return std::optional<PairKeyFolder>();
    const PairKeyManifest& m = **entry;

    const std::string header_path = (fs::path(dir) / m.header_file).string();
    Result<std::vector<uint8_t>> h = read_file_bytes(header_path);
    if (!h) return h.status();
    Result<PairKeyHeader> header = read_pair_key_header(m, h->data(), h->size(), header_path);
    if (!header) return header.status();

    PairKeyFolder folder;
    folder.header = std::move(header.value());
    folder.header_bytes = m.header_bytes;
    folder.span = m.span;
    folder.directory_path = (fs::path(dir) / m.directory_file).string();
    folder.postings_path = (fs::path(dir) / m.postings_file).string();
    for (Status s : {check_file_size(folder.directory_path, m.directory_bytes),
                     check_file_size(folder.postings_path, m.postings_bytes)})
        if (!s) return s;
    return std::optional<PairKeyFolder>(std::move(folder));
}

Status verify_pair_key_folder(const PairKeyFolder& folder, size_t n_songs, uint32_t n_lists) {
    const PairKeyHeader& h = folder.header;
    if (h.n_songs != n_songs || h.n_lists != n_lists)
        return Status::error("pair-key level: " + std::to_string(h.n_songs) + " songs and " +
                             std::to_string(h.n_lists) + " lists where the index has " +
                             std::to_string(n_songs) + " and " + std::to_string(n_lists));
    uint64_t postings = 0, keys = 0;
    for (uint32_t p = 0; p < h.n_pages; ++p) {
        Result<std::vector<uint8_t>> record = folder.read_directory(h.page_record(p));
        if (!record) return record.status();
        Result<PairKeyPage> page = read_pair_key_page(h, p, record->data(), record->size());
        if (!page) return page.status();
        // A page's units lie one after the other: read them in one range.
        const uint32_t first = page->first_key, n = uint32_t(page->counts.size());
        ByteRange all{0, 0};
        for (uint32_t k = first; k < first + n; ++k) {
            const ByteRange r = page->unit_range(k);
            if (!r.size) continue;
            if (!all.size) all.offset = r.offset;
            all.size = r.offset + r.size - all.offset;
        }
        if (!all.size) continue;
        Result<std::vector<uint8_t>> units = folder.read_postings(all);
        if (!units) return units.status();
        for (uint32_t k = first; k < first + n; ++k) {
            const ByteRange r = page->unit_range(k);
            if (!r.size) continue;
            Result<std::vector<PairPosting>> unit =
                read_pair_key_unit(*page, k, units->data() + (r.offset - all.offset), r.size);
            if (!unit) return unit.status();
            for (const PairPosting& posting : unit.value())
                if (posting.song >= n_songs)
                    return Status::error("pair key " + std::to_string(k) + ": song " +
                                         std::to_string(posting.song) + " of " +
                                         std::to_string(n_songs));
            postings += unit->size();
            ++keys;
        }
    }
    if (postings != h.n_postings || keys != h.n_keys)
        return Status::error("pair-key level: " + std::to_string(keys) + " keys and " +
                             std::to_string(postings) + " postings where the header says " +
                             std::to_string(h.n_keys) + " and " + std::to_string(h.n_postings));
    return Status::ok();
}

}  // namespace earshot
