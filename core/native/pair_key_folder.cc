#include "core/native/pair_key_folder.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/index.h"
#include "core/json_read.h"
#include "core/native/index_folder.h"

namespace earshot {
namespace {

namespace fs = std::filesystem;

// The file entry `key` of the pair_keys object: its plain file name and byte count.
Status read_entry(const nlohmann::json& pairs, const char* key, const std::string& where,
                  std::string* file, uint64_t* bytes) {
    const nlohmann::json* entry = nullptr;
    const std::string at = where + " " + key;
    if (Status s = json_read_object(pairs, key, where, &entry); !s) return s;
    for (Status s : {json_read_string(*entry, "file", at, file),
                     json_read_uint64(*entry, "bytes", uint64_t(1) << 52, at, bytes)})
        if (!s) return s;
    if (!is_index_file_name(*file))
        return Status::error(at + ": \"" + *file +
                             "\" is not a plain file name: index files sit next to the manifest");
    return Status::ok();
}

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
    const auto manifest = nlohmann::json::parse(text->begin(), text->end(), nullptr, false);
    if (!manifest.is_object()) return Status::error(manifest_path + " is not a JSON object");
    if (!manifest.contains("pair_keys")) return std::optional<PairKeyFolder>();
    const std::string where = manifest_path + " pair_keys";
    const nlohmann::json* pairs = nullptr;
    if (Status s = json_read_object(manifest, "pair_keys", manifest_path, &pairs); !s) return s;

    std::string header_file, directory_file, postings_file, sha256;
    uint64_t header_bytes = 0, directory_bytes = 0, postings_bytes = 0, span = 0;
    for (Status s : {read_entry(*pairs, "header", where, &header_file, &header_bytes),
                     read_entry(*pairs, "directory", where, &directory_file, &directory_bytes),
                     read_entry(*pairs, "postings", where, &postings_file, &postings_bytes),
                     json_read_uint64(*pairs, "span", uint64_t(1) << 20, where, &span)})
        if (!s) return s;
    // The header entry is an object now (read_entry checked it).
    if (Status s = json_read_string(pairs->at("header"), "sha256", where + " header", &sha256); !s)
        return s;

    const std::string header_path = (fs::path(dir) / header_file).string();
    Result<std::vector<uint8_t>> header_bytes_read = read_file_bytes(header_path);
    if (!header_bytes_read) return header_bytes_read.status();
    const std::vector<uint8_t>& h = header_bytes_read.value();
    if (h.size() != header_bytes || index_file_sha256_hex(h.data(), h.size()) != sha256)
        return Status::error(header_path +
                             ": its size or SHA-256 is not the manifest's (changed, cut short or "
                             "from another index)");
    Result<PairKeyHeader> header = parse_pair_key_header(h.data(), h.size(), header_path);
    if (!header) return header.status();

    PairKeyFolder folder;
    folder.header = std::move(header.value());
    folder.header_bytes = header_bytes;
    folder.span = uint32_t(span);
    folder.directory_path = (fs::path(dir) / directory_file).string();
    folder.postings_path = (fs::path(dir) / postings_file).string();
    if (folder.span != folder.header.span)
        return Status::error(where + ": span " + std::to_string(span) + " where the header says " +
                             std::to_string(folder.header.span));
    if (directory_bytes != folder.header.directory_bytes ||
        postings_bytes != folder.header.postings_bytes)
        return Status::error(where + ": file sizes differ from the header's");
    for (Status s : {check_file_size(folder.directory_path, directory_bytes),
                     check_file_size(folder.postings_path, postings_bytes)})
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
