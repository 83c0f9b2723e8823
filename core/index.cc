#include "core/index.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/container.h"
#include "core/json_read.h"
#include "core/sha256.h"

namespace earshot {

using json = nlohmann::json;

namespace {

constexpr uint64_t kMaxU32Count = std::numeric_limits<uint32_t>::max() - 1;

// A song's optional popularity and log_prior (SongInfo): both or neither; popularity finite and
// >= 0, |log_prior| <= kMaxLogPrior.
Status read_song_prior(const json& s, const std::string& where, SongInfo* info) {
    const bool has_popularity = s.contains("popularity"), has_prior = s.contains("log_prior");
    if (!has_popularity && !has_prior) return Status::ok();
    if (has_popularity != has_prior)
        return Status::error(where + ": 'popularity' and 'log_prior' come together");
    double popularity = 0.0, log_prior = 0.0;
    Status st;
    if (!(st = json_read_double(s, "popularity", where, &popularity)) ||
        !(st = json_read_double(s, "log_prior", where, &log_prior)))
        return st;
    if (!std::isfinite(popularity) || popularity < 0.0)
        return Status::error(where + ": 'popularity' must be a finite number >= 0");
    if (!std::isfinite(log_prior) || std::fabs(log_prior) > kMaxLogPrior)
        return Status::error(where + ": 'log_prior' must be a number in [-" +
                             std::to_string(int(kMaxLogPrior)) + ", " +
                             std::to_string(int(kMaxLogPrior)) + "]");
    info->popularity = popularity;
    info->log_prior = log_prior;
    return Status::ok();
}

Status model_mismatch(const std::string& what, const char* kind, const std::string& hash,
                      const std::string& model_hash) {
    return Status::error(what + ": " + kind + " built for model " + hash +
                         " but the loaded model is " + model_hash +
                         "; load the model the index was built with");
}

}  // namespace

bool is_index_file_name(const std::string& name) {
    if (name.empty() || name == "." || name == "..") return false;
    for (const char ch : name) {
        const bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                        (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok) return false;
    }
    return true;
}

namespace {

Status check_file_name(const std::string& where, const std::string& name) {
    if (is_index_file_name(name)) return Status::ok();
    return Status::error(where + ": file name \"" + name +
                         "\" is not a plain file name (letters, digits, '.', '_', '-'; no path "
                         "separators, not \".\" or \"..\"): index files must sit next to the "
                         "manifest");
}

}  // namespace

std::vector<std::pair<size_t, size_t>> code_groups(const uint8_t* stored, size_t n_windows,
                                                   size_t group) {
    std::vector<std::pair<size_t, size_t>> groups;
    size_t rank = 0, run = 0;  // stored windows before this one; this run's so far
    for (size_t j = 0; j <= n_windows; ++j) {
        if (j < n_windows && (stored == nullptr || stored[j])) {
            ++run;
            continue;
        }
        for (size_t first = 0; first < run; first += group)
            groups.emplace_back(rank + first, std::min(group, run - first));
        rank += run;
        run = 0;
    }
    return groups;
}

namespace {

// Bytes of n list ids as runs (add_shard_list_ids): the start bits and each run's id.
size_t list_run_bytes(const uint16_t* ids, size_t n, size_t width) {
    size_t runs = 0;
    for (size_t j = 0; j < n; ++j) runs += j == 0 || ids[j] != ids[j - 1];
    return (n + 7) / 8 + runs * width;
}

}  // namespace

size_t shard_list_id_bytes(const uint16_t* ids, size_t n, int n_lists) {
    const size_t width = n_lists > 256 ? 2 : 1;
    return std::min(n * width, list_run_bytes(ids, n, width));
}

void add_shard_list_ids(ContainerWriter* writer, const std::vector<uint16_t>& ids, int n_lists) {
    const bool wide = n_lists > 256;
    const size_t width = wide ? 2 : 1;
    const DType dtype = wide ? DType::kU16 : DType::kU8;
    if (list_run_bytes(ids.data(), ids.size(), width) < ids.size() * width) {
        std::vector<uint8_t> starts((ids.size() + 7) / 8, 0);
        std::vector<uint8_t> run_ids;
        for (size_t j = 0; j < ids.size(); ++j) {
            if (j > 0 && ids[j] == ids[j - 1]) continue;
            starts[j / 8] |= uint8_t(1u << (j % 8));
            run_ids.push_back(uint8_t(ids[j] & 0xff));
            if (wide) run_ids.push_back(uint8_t(ids[j] >> 8));  // little-endian, as every section
        }
        writer->add("list_run_starts", DType::kU8, {uint32_t(starts.size())}, starts.data(),
                    starts.size());
        writer->add("list_run_ids", dtype, {uint32_t(run_ids.size() / width)}, run_ids.data(),
                    run_ids.size());
        return;
    }
    std::vector<uint8_t> plain;
    plain.reserve(ids.size() * width);
    for (uint16_t id : ids) {
        plain.push_back(uint8_t(id & 0xff));
        if (wide) plain.push_back(uint8_t(id >> 8));
    }
    writer->add("list_ids", dtype, {uint32_t(ids.size())}, plain.data(), plain.size());
}

Result<std::vector<uint16_t>> read_shard_list_ids(const ContainerView& view, size_t n_stored,
                                                  int n_lists, const std::string& what) {
    const bool wide = n_lists > 256;
    const DType dtype = wide ? DType::kU16 : DType::kU8;
    auto id_at = [wide](const uint8_t* data, size_t i) {
        return wide ? uint16_t(data[2 * i] | (data[2 * i + 1] << 8)) : uint16_t(data[i]);
    };
    std::vector<uint16_t> ids(n_stored);
    const bool runs =
        view.find("list_run_starts") != nullptr || view.find("list_run_ids") != nullptr;
    if (runs && view.find("list_ids") != nullptr)
        return Status::error(what + ": both list_ids and list runs");
    if (!runs) {
        auto plain = view.require("list_ids", dtype, {uint32_t(n_stored)});
        if (!plain) return Status::error(what + ": " + plain.message());
        for (size_t j = 0; j < n_stored; ++j) ids[j] = id_at(plain.value()->data, j);
    } else {
        auto bits = view.require("list_run_starts", DType::kU8, {uint32_t((n_stored + 7) / 8)});
        if (!bits) return Status::error(what + ": " + bits.message());
        const uint8_t* b = bits.value()->data;
        size_t n_runs = 0;
        for (size_t j = 0; j < n_stored; ++j) n_runs += (b[j / 8] >> (j % 8)) & 1;
        if (n_stored > 0 && (b[0] & 1) == 0)
            return Status::error(what + ": list_run_starts does not start a run at window 0");
        if (n_stored % 8 != 0 && (b[n_stored / 8] >> (n_stored % 8)) != 0)
            return Status::error(what + ": list_run_starts has bits set past its " +
                                 std::to_string(n_stored) + " windows");
        auto run_ids = view.require("list_run_ids", dtype, {uint32_t(n_runs)});
        if (!run_ids) return Status::error(what + ": " + run_ids.message());
        size_t run = 0;
        for (size_t j = 0; j < n_stored; ++j) {
            if ((b[j / 8] >> (j % 8)) & 1) ++run;
            ids[j] = id_at(run_ids.value()->data, run - 1);
        }
    }
    for (size_t j = 0; j < n_stored; ++j)
        if (ids[j] >= n_lists)
            return Status::error(what + ": list id " + std::to_string(ids[j]) +
                                 " at stored embedding " + std::to_string(j) + " >= n_lists " +
                                 std::to_string(n_lists));
    return ids;
}

std::string index_file_sha256_hex(const uint8_t* bytes, size_t size) {
    const std::array<uint8_t, 32> digest = sha256(bytes, size);
    return to_hex(digest.data(), digest.size());
}

double model_hop_s(const ModelInfo& model) {
    return double(model.hop_frames) * model.frontend.hop_length / model.frontend.sample_rate_hz;
}

double model_query_hop_s(const ModelInfo& model) {
    return double(model.query_hop_frames) * model.frontend.hop_length /
           model.frontend.sample_rate_hz;
}

Index::Index(const ModelInfo& model)
    : model_hash_(model.hash_hex),
      model_name_(model.name),
      dim_(model.embedding_dim),
      hop_frames_(model.hop_frames),
      hop_s_(model_hop_s(model)) {}

Status Index::load_manifest(const std::string& json_text) {
    const std::string what = "manifest.json";
    // The shard table and the lists' reservations come from the manifest and its directory:
    // once either holds songs, a second manifest cannot describe them.
    if (has_directory_ || block_entries_ || !shards_loaded_.empty())
        return Status::error(what +
                             ": the index already holds a directory or shards; "
                             "load a new manifest into a new index");
    json m = json::parse(json_text, nullptr, false);
    if (m.is_discarded() || !m.is_object())
        return Status::error(what + ": not a JSON object (is this an earshot index manifest?)");
    std::string format, hash;
    uint64_t version = 0, dim = 0, hop_frames = 0;
    Status st;
    if (!json_read_string(m, "format", what, &format) || format != "earshot-index")
        return Status::error(what + ": 'format' is not \"earshot-index\"");
    if (!json_read_uint64(m, "version", UINT64_MAX, what, &version) ||
        (version != uint64_t(kIndexVersion1) && version != uint64_t(kIndexVersion2)))
        return Status::error(what + ": unsupported index version (this reader supports 1 and 2)");
    if (!(st = json_read_string(m, "model_hash", what, &hash))) return st;
    if (hash != model_hash_) return model_mismatch(what, "index", hash, model_hash_);
    if (!json_read_uint64(m, "embedding_dim", UINT64_MAX, what, &dim) || dim != uint64_t(dim_))
        return Status::error(what + ": embedding_dim missing or not the model's " +
                             std::to_string(dim_));
    if (!json_read_uint64(m, "hop_frames", UINT64_MAX, what, &hop_frames) ||
        hop_frames != uint64_t(hop_frames_))
        return Status::error(what + ": hop_frames missing or not the model's " +
                             std::to_string(hop_frames_));
    // A {file, bytes[, sha256]} entry; the file name is checked. A file read whole must fit
    // in memory (SIZE_MAX: 4 GB in WASM); the songs file is only ever read in block ranges.
    auto read_entry = [&](const json& parent, const char* key, bool with_sha, std::string* file,
                          std::string* sha, uint64_t* bytes,
                          uint64_t max_bytes = SIZE_MAX) -> Status {
        const std::string where = what + " " + key;
        const json* entry = nullptr;
        Status s;
        if (!(s = json_read_object(parent, key, what, &entry)) ||
            !(s = json_read_string(*entry, "file", where, file)) ||
            !(s = check_file_name(where, *file)) ||
            !(s = json_read_uint64(*entry, "bytes", max_bytes, where, bytes)))
            return s;
        if (with_sha && !(s = json_read_string(*entry, "sha256", where, sha))) return s;
        return Status::ok();
    };
    std::string qfile, qsha;
    uint64_t qbytes = 0;
    if (!(st = read_entry(m, "quantizer", true, &qfile, &qsha, &qbytes))) return st;
    std::vector<ManifestShard> shards;
    std::string dfile, dsha, bfile, unused;
    uint64_t dbytes = 0, bbytes = 0, bcount = 0;
    if (version == uint64_t(kIndexVersion2)) {
        if (!(st = read_entry(m, "directory", true, &dfile, &dsha, &dbytes)) ||
            !(st = read_entry(m, "blocks", false, &bfile, &unused, &bbytes, uint64_t(1) << 52)) ||
            !(st = json_read_uint64(m["blocks"], "count", kMaxShards, what + " blocks", &bcount)))
            return st;
    } else {
        const json* shard_list = nullptr;
        if (!(st = json_read_array(m, "shards", what, &shard_list))) return st;
        for (const json& s : *shard_list) {
            const std::string where = what + " shard entry " + std::to_string(shards.size());
            if (!s.is_object()) return Status::error(where + " is not an object");
            ManifestShard entry;
            uint64_t bytes = 0, songs = 0;
            if (!(st = json_read_string(s, "file", where, &entry.file)) ||
                !(st = check_file_name(where, entry.file)) ||
                !(st = json_read_string(s, "sha256", where, &entry.sha256)) ||
                !(st = json_read_uint64(s, "bytes", SIZE_MAX, where, &bytes)))
                return st;
            if (s.contains("songs") &&
                !(st = json_read_uint64(s, "songs", kMaxU32Count, where, &songs)))
                return st;
            entry.bytes = size_t(bytes);
            entry.songs = size_t(songs);
            shards.push_back(std::move(entry));
        }
    }
    if (has_quantizer_ && qsha != quantizer_sha256_)
        return Status::error(what + ": quantizer sha256 " + qsha +
                             " differs from the quantizer already loaded (" + quantizer_sha256_ +
                             ")");
    has_manifest_ = true;
    version_ = int(version);
    manifest_quantizer_file_ = qfile;
    manifest_quantizer_sha256_ = qsha;
    manifest_quantizer_bytes_ = size_t(qbytes);
    manifest_directory_file_ = dfile;
    manifest_directory_sha256_ = dsha;
    manifest_directory_bytes_ = size_t(dbytes);
    manifest_blocks_file_ = bfile;
    manifest_blocks_bytes_ = bbytes;
    manifest_blocks_count_ = bcount;
    manifest_shards_ = std::make_shared<const std::vector<ManifestShard>>(std::move(shards));
    return Status::ok();
}

const Index::ManifestShard* Index::block_entry(size_t b) const {
    if (block_entries_) {
        const auto it = block_entries_->find(uint32_t(b));
        return it == block_entries_->end() ? nullptr : &it->second;
    }
    return b < manifest_shards_->size() ? &(*manifest_shards_)[b] : nullptr;
}

Index::FileRange Index::shard_range(size_t i) const {
    const ManifestShard* e = block_entry(i);
    if (!e) return {};
    return {e->file, e->offset, e->bytes, e->sha256, e->songs};
}

Status Index::set_block_entries(const std::vector<std::pair<uint32_t, FileRange>>& entries) {
    if (version_ != kIndexVersion2)
        return Status::error("block entries need a format v2 manifest first");
    if (!has_quantizer_) return Status::error("add the quantizer before block entries");
    if (has_directory_)
        return Status::error("block entries: a whole block directory is loaded already");
    auto map = std::make_shared<std::unordered_map<uint32_t, ManifestShard>>();
    for (const auto& [block, r] : entries) {
        if (block >= manifest_blocks_count_ || r.file != manifest_blocks_file_ || r.bytes == 0 ||
            r.offset > manifest_blocks_bytes_ || r.bytes > manifest_blocks_bytes_ - r.offset ||
            r.songs == 0)
            return Status::error("block entry " + std::to_string(block) +
                                 ": not a block of the manifest's " + manifest_blocks_file_);
        (*map)[block] = {r.file, r.sha256, size_t(r.bytes), r.offset, r.songs};
    }
    block_entries_ = std::move(map);
    return Status::ok();
}

Status Index::read_list_sizes(const ContainerView& view, const std::string& what,
                              std::vector<uint32_t>* out, uint64_t* total) const {
    auto sizes = view.require("list_sizes", DType::kU32, {uint32_t(quantizer_.n_lists)});
    if (!sizes) return sizes.status();
    out->resize(size_t(quantizer_.n_lists));
    std::memcpy(out->data(), sizes.value()->data, out->size() * sizeof(uint32_t));
    *total = 0;
    for (uint32_t c : *out) *total += c;
    // A stored window costs at least pq_m / group bytes of code and a bit of its list id (as
    // runs, read_shard_list_ids) in a block, which bounds the postings by the songs file's size
    // whatever the directory claims: a forged count is corruption.
    if (*total * uint64_t(quantizer_.pq_m) / uint64_t(quantizer_.group) + *total / 8 >
        manifest_blocks_bytes_)
        return Status::error(what + ": list_sizes count " + std::to_string(*total) +
                             " postings, more than " + manifest_blocks_file_ + " can hold");
    return Status::ok();
}

size_t Index::bytes_per_posting() const {
    // A grouped code: a reference to the group's code (which also gives the id), and a share
    // of the group's code and first id.
    const int group = quantizer_.group;
    const size_t id_and_code =
        group > 1
            ? sizeof(uint32_t) + size_t(quantizer_.pq_m + sizeof(uint32_t) + group - 1) / group
            : sizeof(uint32_t) + size_t(quantizer_.pq_m);
    return id_and_code + (quantizer_.unit_norm ? sizeof(float) : 0) + sizeof(embedding_list_[0]);
}

Result<uint64_t> Index::directory_reserve_bytes(const uint8_t* bytes, size_t size,
                                                const std::string& what) const {
    if (!has_quantizer_)
        return Status::error(what + ": add the quantizer before the block directory");
    Result<ContainerView> parsed = parse_container(bytes, size, "DIRC", what);
    if (!parsed) return parsed.status();
    if (version_ != kIndexVersion2)
        return Status::error(what + ": a block directory needs a format v2 manifest first");
    std::vector<uint32_t> list_sizes;
    uint64_t total = 0;
    if (Status st = read_list_sizes(parsed.value(), what, &list_sizes, &total); !st) return st;
    return total * bytes_per_posting();
}

Status Index::add_directory(const uint8_t* bytes, size_t size, const std::string& what,
                            bool reserve_lists) {
    if (version_ != kIndexVersion2)
        return Status::error(what + ": a block directory needs a format v2 manifest first");
    if (!has_quantizer_)
        return Status::error(what + ": add the quantizer before the block directory");
    if (has_directory_) return Status::error(what + ": a block directory is already loaded");
    const std::string file_sha = index_file_sha256_hex(bytes, size);
    if (file_sha != manifest_directory_sha256_ || size != manifest_directory_bytes_)
        return Status::error(what + ": sha256 " + file_sha + " / " + std::to_string(size) +
                             " bytes do not match the manifest's " + manifest_directory_sha256_ +
                             " / " + std::to_string(manifest_directory_bytes_) +
                             " bytes (stale or mixed-up download?)");
    Result<ContainerView> parsed = parse_container(bytes, size, "DIRC", what);
    if (!parsed) return parsed.status();
    const ContainerView& view = parsed.value();
    const std::string where = what + " metadata";
    if (!view.meta.is_object()) return Status::error(where + " is not a JSON object");
    std::string hash, qsha;
    uint64_t n_blocks = 0;
    Status st;
    if (!(st = json_read_string(view.meta, "model_hash", where, &hash))) return st;
    if (hash != model_hash_) return model_mismatch(what, "directory", hash, model_hash_);
    if (!(st = json_read_string(view.meta, "quantizer_sha256", where, &qsha))) return st;
    if (qsha != quantizer_sha256_)
        return Status::error(what + ": directory belongs to quantizer " + qsha +
                             " but the loaded quantizer is " + quantizer_sha256_);
    if (!(st = json_read_uint64(view.meta, "n_blocks", kMaxShards, where, &n_blocks))) return st;
    if (n_blocks != manifest_blocks_count_)
        return Status::error(what + ": " + std::to_string(n_blocks) +
                             " blocks, the manifest says " +
                             std::to_string(manifest_blocks_count_));
    const uint32_t n = uint32_t(n_blocks);
    auto offsets = view.require("block_offsets", DType::kU64, {n + 1});
    if (!offsets) return offsets.status();
    auto hashes = view.require("block_sha256", DType::kU8, {n, uint32_t(kSha256Bytes)});
    if (!hashes) return hashes.status();
    auto songs = view.require("block_songs", DType::kU32, {n + 1});
    if (!songs) return songs.status();
    std::vector<uint64_t> off(n + 1);
    std::memcpy(off.data(), offsets.value()->data, off.size() * sizeof(uint64_t));
    std::vector<uint32_t> first_song(n + 1);
    std::memcpy(first_song.data(), songs.value()->data, first_song.size() * sizeof(uint32_t));
    if (off[0] != 0 || off[n] != manifest_blocks_bytes_)
        return Status::error(what + ": blocks must cover " + manifest_blocks_file_ + " from 0 to " +
                             std::to_string(manifest_blocks_bytes_) + " bytes, got " +
                             std::to_string(off[0]) + " .. " + std::to_string(off[n]));
    if (first_song[0] != 0) return Status::error(what + ": block_songs must start at 0");
    // Postings per list over all blocks: the index reserves them once, so a full load grows
    // no vector by doubling (in WASM the heap never shrinks: its peak is what a page pays).
    std::vector<uint32_t> list_sizes;
    uint64_t total_postings = 0;
    if (!(st = read_list_sizes(view, what, &list_sizes, &total_postings))) return st;
    std::vector<ManifestShard> blocks(n);
    for (uint32_t b = 0; b < n; ++b) {
        if (off[b + 1] <= off[b] || first_song[b + 1] <= first_song[b])
            return Status::error(what + ": block " + std::to_string(b) +
                                 " is empty or its range or songs go backwards");
        ManifestShard& e = blocks[b];
        e.file = manifest_blocks_file_;
        e.offset = off[b];
        e.bytes = size_t(off[b + 1] - off[b]);
        e.sha256 = to_hex(hashes.value()->data + size_t(b) * kSha256Bytes, kSha256Bytes);
        e.songs = first_song[b + 1] - first_song[b];
    }
    manifest_shards_ = std::make_shared<const std::vector<ManifestShard>>(std::move(blocks));
    has_directory_ = true;
    if (!reserve_lists) return Status::ok();
    for (size_t l = 0; l < lists_.size(); ++l) {
        if (quantizer_.group > 1) {
            lists_[l].code_refs.reserve(lists_[l].code_refs.size() + list_sizes[l]);
        } else {
            lists_[l].embedding_ids.reserve(lists_[l].embedding_ids.size() + list_sizes[l]);
            lists_[l].codes.reserve(lists_[l].codes.size() +
                                    size_t(list_sizes[l]) * quantizer_.pq_m);
        }
        if (quantizer_.unit_norm)
            lists_[l].inv_norms.reserve(lists_[l].inv_norms.size() + list_sizes[l]);
    }
    if (quantizer_.group > 1) {  // a row per group, and some groups are partial
        const size_t groups = size_t(total_postings / quantizer_.group);
        group_codes_.reserve(group_codes_.size() + groups * quantizer_.pq_m);
        group_first_embedding_.reserve(group_first_embedding_.size() + groups);
    }
    embedding_list_.reserve(embedding_list_.size() + total_postings);
    embedding_stored_.reserve(embedding_stored_.size() + total_postings);
    return Status::ok();
}

Status Index::add_quantizer(const uint8_t* bytes, size_t size, const std::string& what) {
    if (has_quantizer_) return Status::error(what + ": a quantizer is already loaded");
    Result<ContainerView> parsed = parse_container(bytes, size, "QUAN", what);
    if (!parsed) return parsed.status();
    const ContainerView& view = parsed.value();
    const std::string file_sha = index_file_sha256_hex(bytes, size);
    if (has_manifest_ &&
        (file_sha != manifest_quantizer_sha256_ || size != manifest_quantizer_bytes_))
        return Status::error(what + ": sha256 " + file_sha + " / " + std::to_string(size) +
                             " bytes do not match the manifest's " + manifest_quantizer_sha256_ +
                             " / " + std::to_string(manifest_quantizer_bytes_) +
                             " bytes (stale or mixed-up download?)");
    const std::string where = what + " metadata";
    if (!view.meta.is_object()) return Status::error(where + " is not a JSON object");
    std::string hash;
    uint64_t dim = 0, n_lists = 0, pq_m = 0, pq_nbits = 0;
    Status st;
    if (!(st = json_read_string(view.meta, "model_hash", where, &hash))) return st;
    if (hash != model_hash_) return model_mismatch(what, "quantizer", hash, model_hash_);
    if (!(st = json_read_uint64(view.meta, "dim", UINT64_MAX, where, &dim)) ||
        !(st = json_read_uint64(view.meta, "n_lists", UINT64_MAX, where, &n_lists)) ||
        !(st = json_read_uint64(view.meta, "pq_m", UINT64_MAX, where, &pq_m)) ||
        !(st = json_read_uint64(view.meta, "pq_nbits", UINT64_MAX, where, &pq_nbits)))
        return st;
    if (dim != uint64_t(dim_))
        return Status::error(what + ": dim " + std::to_string(dim) + " is not the model's " +
                             std::to_string(dim_));
    if (!quantizer_dim_supported(int64_t(dim)))
        return Status::error(what + ": dim " + std::to_string(dim) + " unsupported");
    if (n_lists < 1 || n_lists > uint64_t(kMaxLists))
        return Status::error(what + ": n_lists " + std::to_string(n_lists) + " out of [1, 65536]");
    if (pq_m < 1 || dim % pq_m != 0)
        return Status::error(what + ": pq_m " + std::to_string(pq_m) + " does not divide dim");
    if (pq_nbits != 8)
        return Status::error(what + ": pq_nbits " + std::to_string(pq_nbits) + " unsupported");
    // Optional: a grouped code's windows per code (core/quantizer.h); its codebooks have one
    // leading dimension more, the slot.
    uint64_t group = 1;
    if (view.meta.contains("group") &&
        !(st = json_read_uint64(view.meta, "group", UINT64_MAX, where, &group)))
        return st;
    if (group < 1 || group > uint64_t(kMaxCodeGroup))
        return Status::error(what + ": group " + std::to_string(group) + " out of [1, " +
                             std::to_string(kMaxCodeGroup) + "]");
    Quantizer q;
    q.dim = int(dim);
    q.n_lists = int(n_lists);
    q.pq_m = int(pq_m);
    q.sub_dim = int(dim / pq_m);
    q.group = int(group);
    auto coarse = view.require("coarse_centroids", DType::kF32, {uint32_t(n_lists), uint32_t(dim)});
    if (!coarse) return coarse.status();
    std::vector<uint32_t> book_shape = {uint32_t(pq_m), uint32_t(kPqCodebookSize),
                                        uint32_t(q.sub_dim)};
    if (group > 1) book_shape.insert(book_shape.begin(), uint32_t(group));
    auto books = view.require("pq_codebooks", DType::kF32, book_shape);
    if (!books) return books.status();
    q.coarse_centroids.resize(size_t(n_lists) * dim);
    std::memcpy(q.coarse_centroids.data(), coarse.value()->data, coarse.value()->bytes);
    q.pq_codebooks.resize(size_t(group) * pq_m * kPqCodebookSize * q.sub_dim);
    std::memcpy(q.pq_codebooks.data(), books.value()->data, books.value()->bytes);
    for (float v : q.coarse_centroids)
        if (!std::isfinite(v))
            return Status::error(what + ": coarse_centroids has non-finite values");
    for (float v : q.pq_codebooks)
        if (!std::isfinite(v)) return Status::error(what + ": pq_codebooks has non-finite values");
    // Optional: the residuals' rotation before PQ. Checked orthogonal, so that scores stay the
    // inner products the thresholds mean.
    if (view.find("rotation")) {
        auto rotation = view.require("rotation", DType::kF32, {uint32_t(dim), uint32_t(dim)});
        if (!rotation) return Status::error(what + ": " + rotation.message());
        q.rotation.resize(size_t(dim) * dim);
        std::memcpy(q.rotation.data(), rotation.value()->data, rotation.value()->bytes);
        const float error = orthogonality_error(q.rotation.data(), int(dim));
        if (!(error <= kMaxRotationError))
            return Status::error(what + ": rotation is not orthogonal (largest entry of R^T R - I: " +
                                 std::to_string(error) + ")");
    }
    bool unit_norm = false;
    if (!(st = json_read_optional_bool(view.meta, "unit_norm", where, &unit_norm))) return st;
    q.unit_norm = unit_norm;
    if (q.unit_norm) q.prepare_norms();
    quantizer_ = std::move(q);
    quantizer_sha256_ = file_sha;
    lists_.assign(quantizer_.n_lists, InvertedList());
    has_quantizer_ = true;
    return Status::ok();
}

Status Index::add_shard(const uint8_t* bytes, size_t size, const std::string& what,
                        const std::string& sha256_hex) {
    if (!has_quantizer_)
        return Status::error(what + ": add the quantizer (quantizer.eq) before any shard");
    Result<ContainerView> parsed = parse_container(bytes, size, "SHRD", what);
    if (!parsed) return parsed.status();
    const ContainerView& view = parsed.value();
    const json& meta = view.meta;
    const std::string where = what + " metadata";
    if (!meta.is_object()) return Status::error(where + " is not a JSON object");
    std::string hash, qsha;
    // n_embeddings: the format's key is "n_frames" (stored embeddings, see index.h).
    uint64_t shard = 0, n_songs = 0, n_embeddings = 0;
    Status st;
    if (!(st = json_read_string(meta, "model_hash", where, &hash))) return st;
    if (hash != model_hash_) return model_mismatch(what, "shard", hash, model_hash_);
    if (!(st = json_read_string(meta, "quantizer_sha256", where, &qsha))) return st;
    if (qsha != quantizer_sha256_)
        return Status::error(what + ": shard belongs to quantizer " + qsha +
                             " but the loaded quantizer is " + quantizer_sha256_ +
                             " (shards from another index build?)");
    if (!(st = json_read_uint64(meta, "shard", kMaxShards - 1, where, &shard)) ||
        !(st = json_read_uint64(meta, "n_songs", UINT64_MAX, where, &n_songs)) ||
        !(st = json_read_uint64(meta, "n_frames", UINT64_MAX, where, &n_embeddings)))
        return st;
    if (version_ == kIndexVersion2 && !has_directory_ && !block_entries_)
        return Status::error(what + ": add the block directory (" + manifest_directory_file_ +
                             ") before any block");
    if (has_manifest_) {
        const ManifestShard* known = block_entry(shard);
        if (!known)
            return Status::error(what + ": shard " + std::to_string(shard) +
                                 " is not in the manifest (" + std::to_string(n_shards_expected()) +
                                 " shards)" +
                                 (block_entries_ ? " or its directory page was not read" : ""));
        const ManifestShard& entry = *known;
        const std::string file_sha =
            sha256_hex.empty() ? index_file_sha256_hex(bytes, size) : sha256_hex;
        if (entry.sha256 != file_sha || entry.bytes != size)
            return Status::error(what + ": sha256 " + file_sha + " / " + std::to_string(size) +
                                 " bytes do not match the manifest's " + entry.sha256 + " / " +
                                 std::to_string(entry.bytes) + " bytes");
        if (version_ == kIndexVersion2 && n_songs != entry.songs)
            return Status::error(what + ": block " + std::to_string(shard) + " holds " +
                                 std::to_string(n_songs) + " songs, the directory says " +
                                 std::to_string(entry.songs));
    }
    if (std::find(shards_loaded_.begin(), shards_loaded_.end(), int(shard)) != shards_loaded_.end())
        return Status::error(what + ": shard " + std::to_string(shard) + " is already loaded");
    if (n_songs > kMaxU32Count || n_embeddings > kMaxU32Count ||
        n_embeddings_total_would_overflow(n_embeddings))
        return Status::error(what + ": n_songs/n_frames too large");
    const json* song_list = nullptr;
    if (!json_read_array(meta, "songs", where, &song_list) || song_list->size() != n_songs)
        return Status::error(what + ": 'songs' must be an array of n_songs (" +
                             std::to_string(n_songs) + ") objects");
    std::vector<LoadedSong> songs(n_songs);
    for (size_t i = 0; i < n_songs; ++i) {
        const json& s = (*song_list)[i];
        const std::string song_where = what + " song " + std::to_string(i);
        SongInfo& info = songs[i].info;
        if (!s.is_object()) return Status::error(song_where + " is not an object");
        if (!(st = json_read_string(s, "id", song_where, &info.id)) ||
            !(st = json_read_optional_string(s, "title", song_where, &info.title)) ||
            !(st = json_read_optional_string(s, "album", song_where, &info.album)) ||
            !(st = json_read_optional_double(s, "duration_s", song_where, &info.duration_s)) ||
            !(st = read_song_prior(s, song_where, &info)))
            return st;
    }
    const int pq_m = quantizer_.pq_m;
    auto offsets_section = view.require("song_offsets", DType::kU32, {uint32_t(n_songs + 1)});
    if (!offsets_section) return offsets_section.status();
    // Optional: windows not stored (silence, not music), as sorted, disjoint [start, length]
    // runs within [0, n_frames); list_ids and pq_codes then hold the stored windows only.
    // Validated here without allocating; the mask is built once everything is checked.
    const Section* runs = view.find("absent_runs");
    size_t n_stored = n_embeddings;
    if (runs) {
        if (runs->dtype != DType::kU32 || runs->shape.size() != 2 || runs->shape[1] != 2)
            return Status::error(what + ": absent_runs must be u32 [n_runs, 2]");
        uint64_t end_of_last = 0;
        for (size_t r = 0; r < runs->shape[0]; ++r) {
            uint32_t run[2];
            std::memcpy(run, runs->data + r * sizeof(run), sizeof(run));
            if (run[1] == 0 || run[0] < end_of_last || uint64_t(run[0]) + run[1] > n_embeddings)
                return Status::error(what + ": absent run " + std::to_string(r) + " [" +
                                     std::to_string(run[0]) + ", +" + std::to_string(run[1]) +
                                     ") is empty, overlaps the previous one or ends after n_frames " +
                                     std::to_string(n_embeddings));
            end_of_last = uint64_t(run[0]) + run[1];
            n_stored -= run[1];
        }
    }
    Result<std::vector<uint16_t>> ids_read =
        read_shard_list_ids(view, n_stored, quantizer_.n_lists, what);
    if (!ids_read) return ids_read.status();
    const std::vector<uint16_t>& ids = ids_read.value();

    // Payloads may be unaligned in the caller's buffer: read through memcpy.
    std::vector<uint32_t> offsets(n_songs + 1);
    std::memcpy(offsets.data(), offsets_section.value()->data, offsets.size() * sizeof(uint32_t));
    if (offsets[0] != 0 || offsets[n_songs] != n_embeddings)
        return Status::error(what + ": song_offsets must start at 0 and end at n_frames (" +
                             std::to_string(n_embeddings) + "), got " + std::to_string(offsets[0]) +
                             " .. " + std::to_string(offsets[n_songs]));
    for (size_t i = 0; i < n_songs; ++i) {
        if (offsets[i + 1] < offsets[i])
            return Status::error(what + ": song_offsets decrease at song " + std::to_string(i));
        // Absent windows cost no bytes in the file: bound them, so that a small crafted shard
        // cannot make the index allocate for billions of windows.
        if (offsets[i + 1] - offsets[i] > kMaxSongWindows)
            return Status::error(what + ": song " + std::to_string(i) + " has " +
                                 std::to_string(offsets[i + 1] - offsets[i]) +
                                 " windows, more than " + std::to_string(kMaxSongWindows));
    }
    std::vector<uint8_t> stored(n_embeddings, 1);
    if (runs) {
        for (size_t r = 0; r < runs->shape[0]; ++r) {
            uint32_t run[2];
            std::memcpy(run, runs->data + r * sizeof(run), sizeof(run));
            std::fill(stored.begin() + run[0], stored.begin() + run[0] + run[1], uint8_t(0));
        }
    }
    // pq_codes: a code per stored window, or with a grouped code (core/quantizer.h) a code per
    // group of up to `group` consecutive windows of a song: a run of L stored windows between
    // absent ones (or a song's ends) has ceil(L / group) groups.
    const int group = quantizer_.group;
    size_t n_codes = n_stored;
    if (group > 1) {
        n_codes = 0;
        for (size_t i = 0; i < n_songs; ++i)
            n_codes +=
                code_groups(stored.data() + offsets[i], offsets[i + 1] - offsets[i], size_t(group))
                    .size();
    }
    auto codes_section = view.require("pq_codes", DType::kU8, {uint32_t(n_codes), uint32_t(pq_m)});
    if (!codes_section) return codes_section.status();
    // Postings name a group's row in 32 - kCodeRefSlotBits bits.
    if (group > 1 && group_codes_.size() / pq_m + n_codes > (size_t(1) << (32 - kCodeRefSlotBits)))
        return Status::error(what + ": more code groups than an index holds (" +
                             std::to_string(size_t(1) << (32 - kCodeRefSlotBits)) + ")");
    // Valid: append.
    const uint32_t base = uint32_t(embedding_list_.size());
    for (size_t i = 0; i < n_songs; ++i) {
        songs[i].first_embedding = base + offsets[i];
        songs[i].n_embeddings = offsets[i + 1] - offsets[i];
        song_starts_.push_back(songs[i].first_embedding);
        songs_.push_back(std::move(songs[i]));
    }
    const uint8_t* codes = codes_section.value()->data;
    embedding_list_.reserve(embedding_list_.size() + n_embeddings);
    embedding_stored_.reserve(embedding_stored_.size() + n_embeddings);
    // k: stored windows so far; code: the row of pq_codes of window k, slot its place in it
    // (a group ends at its group-th window, an absent window or the song's end).
    size_t song = 0, k = 0, code = 0;
    int slot = 0;
    const size_t first_row = group_codes_.size() / pq_m;
    if (group > 1) group_codes_.insert(group_codes_.end(), codes, codes + n_codes * pq_m);
    auto end_group = [&] {
        if (slot != 0) ++code;
        slot = 0;
    };
    for (size_t e = 0; e < n_embeddings; ++e) {
        while (song < n_songs && e >= offsets[song + 1]) {
            ++song;
            end_group();
        }
        embedding_stored_.push_back(stored[e] != 0);
        if (!stored[e]) {
            embedding_list_.push_back(0);
            end_group();
            continue;
        }
        InvertedList& list = lists_[ids[k]];
        embedding_list_.push_back(ids[k]);
        const uint8_t* window_codes = codes + code * pq_m;
        if (group > 1) {
            if (slot == 0) group_first_embedding_.push_back(base + uint32_t(e));
            list.code_refs.push_back(uint32_t((first_row + code) << kCodeRefSlotBits) |
                                     uint32_t(slot));
        } else {
            list.embedding_ids.push_back(base + uint32_t(e));
            list.codes.insert(list.codes.end(), window_codes, window_codes + pq_m);
        }
        if (quantizer_.unit_norm) {
            // A reconstruction of (near) zero length scores 0 against everything.
            const float sq = quantizer_.reconstruction_sq_norm(ids[k], window_codes, slot);
            list.inv_norms.push_back(sq > 1e-12f ? 1.0f / std::sqrt(sq) : 0.0f);
        }
        ++k;
        if (++slot == group) slot = 0, ++code;
    }
    n_stored_ += n_stored;
    shards_loaded_.push_back(int(shard));
    return Status::ok();
}

bool Index::n_embeddings_total_would_overflow(uint64_t n_new) const {
    return uint64_t(embedding_list_.size()) + n_new >= std::numeric_limits<uint32_t>::max();
}

size_t Index::song_of_embedding(uint32_t global_id) const {
    auto it = std::upper_bound(song_starts_.begin(), song_starts_.end(), global_id);
    return size_t(it - song_starts_.begin()) - 1;
}

}  // namespace earshot
