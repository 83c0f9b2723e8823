// `earshot info` and `earshot verify`.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/container.h"
#include "core/directory_pages.h"
#include "core/index.h"
#include "core/json_read.h"
#include "core/native/pair_key_folder.h"
#include "index-builder/commands.h"
#include "index-builder/files.h"

namespace earshot::cli {
namespace fs = std::filesystem;

int fail(const std::string& message) {
    std::fprintf(stderr, "earshot: error: %s\n", message.c_str());
    return kExitFailure;
}

int resolve_jobs(int jobs) {
    if (jobs > 0) return jobs;
    const unsigned n = std::thread::hardware_concurrency();
    return n > 0 ? int(n) : 1;
}

Result<std::shared_ptr<const Model>> load_model_file(const std::string& path) {
    auto bytes = read_file(path);
    if (!bytes) {
        return Status::error(bytes.message() + " (give a model file with --model or set $EARSHOT_MODEL)");
    }
    return Model::load(bytes->data(), bytes->size(), path);
}

namespace {

// A ModelInfo carrying only what the manifest records, for verifying an index without its
// model file (the model hash check is then against the manifest itself).
Result<ModelInfo> model_info_from_manifest(const nlohmann::json& manifest) {
    const std::string where = "manifest.json";
    if (!manifest.is_object()) return Status::error(where + " is not a JSON object");
    ModelInfo info;
    double hop_s = 0.0;
    Status st;
    if (!(st = json_read_string(manifest, "model_hash", where, &info.hash_hex)) ||
        !(st = json_read_optional_string(manifest, "model_name", where, &info.name)) ||
        !(st = json_read_int(manifest, "embedding_dim", 1, kMaxQuantizerDim, where,
                             &info.embedding_dim)) ||
        !(st = json_read_int(manifest, "hop_frames", 1, 1 << 16, where, &info.hop_frames)) ||
        !(st = json_read_double(manifest, "hop_s", where, &hop_s))) {
        return st;
    }
    if (!(hop_s > 0.0)) return Status::error(where + ": bad hop_s");
    // hop_s = hop_frames * hop_length / rate: keep the v1 rate and derive the frame hop.
    info.frontend.hop_length = int(hop_s * info.frontend.sample_rate_hz / info.hop_frames + 0.5);
    return info;
}

// The directory pages (core/directory_pages.h), when the manifest names them: every page
// checked against its header and saying what the whole directory says. Returns the summary's
// words ("" without pages).
Result<std::string> verify_directory_pages(const std::string& index_dir, const Index& index) {
    auto manifest = read_file((fs::path(index_dir) / "manifest.json").string());
    if (!manifest) return manifest.status();
    Result<std::optional<DirectoryPagesManifest>> entry = parse_directory_pages_manifest(
        std::string(manifest->begin(), manifest->end()), index_dir + "/manifest.json");
    if (!entry) return entry.status();
    if (!entry->has_value()) return std::string();
    const DirectoryPagesManifest& m = **entry;
    auto header_bytes = read_file((fs::path(index_dir) / m.header_file).string());
    if (!header_bytes) return header_bytes.status();
    Result<DirectoryPagesHeader> header =
        read_directory_pages_header(m, header_bytes->data(), header_bytes->size(), m.header_file);
    if (!header) return header.status();
    if (header->model_hash != index.model_hash() ||
        header->quantizer_sha256 != index.quantizer_sha256() ||
        header->blocks_file != index.manifest_blocks_file() ||
        header->n_blocks != index.n_shards_expected() || header->n_songs != index.n_songs())
        return Status::error(m.header_file + ": not the directory of this index's blocks");
    auto pages = read_file((fs::path(index_dir) / m.pages_file).string());
    if (!pages) return pages.status();
    if (pages->size() != header->pages_bytes)
        return Status::error(m.pages_file + ": " + std::to_string(pages->size()) +
                             " bytes where the header says " + std::to_string(header->pages_bytes) +
                             " (cut short or changed)");
    for (uint32_t p = 0; p < header->n_pages; ++p) {
        const ByteRange r = header->page_range(p);
        Result<DirectoryPage> page = read_directory_page(*header, p, pages->data() + r.offset,
                                                         r.size, index.manifest_blocks_bytes());
        if (!page) return Status::error(m.pages_file + ": " + page.message());
        for (uint32_t i = 0; i < page->n_blocks(); ++i) {
            const uint32_t b = page->first_block + i;
            const Index::FileRange got = page->block_range(header->blocks_file, b);
            const Index::FileRange want = index.shard_range(b);
            if (got.offset != want.offset || got.bytes != want.bytes || got.sha256 != want.sha256 ||
                got.songs != want.songs)
                return Status::error(m.pages_file + ": directory page " + std::to_string(p) +
                                     " says otherwise than the directory of block " +
                                     std::to_string(b));
        }
    }
    return "; " + std::to_string(header->n_pages) +
           " directory pages, each checked and equal to the directory";
}

}  // namespace

int run_verify(const std::string& index_dir, const std::string& model_path) {
    ModelInfo info;
    if (!model_path.empty()) {
        auto model = load_model_file(model_path);
        if (!model) return fail(model.message());
        info = (*model)->info();
    } else {
        auto bytes = read_file((fs::path(index_dir) / "manifest.json").string());
        if (!bytes) return fail("no index at " + index_dir + ": " + bytes.message());
        const auto manifest = nlohmann::json::parse(bytes->begin(), bytes->end(), nullptr, false);
        auto from_manifest = model_info_from_manifest(manifest);
        if (!from_manifest) return fail(from_manifest.message());
        info = *from_manifest;
    }
    auto index = load_index_folder(index_dir, info);
    if (!index) return fail(index.message());
    auto pairs = open_pair_key_folder(index_dir);
    if (!pairs) return fail(pairs.message());
    std::string pair_text;
    if (pairs->has_value()) {
        const PairKeyFolder& folder = **pairs;
        if (Status st =
                verify_pair_key_folder(folder, (*index)->n_songs(), uint32_t((*index)->n_lists()));
            !st)
            return fail(st.message());
        pair_text = "; pair-key level of " + std::to_string(folder.header.n_keys) + " keys and " +
                    std::to_string(folder.header.n_postings) +
                    " postings: every page and unit proved against its root";
    }
    Result<std::string> pages_text = verify_directory_pages(index_dir, **index);
    if (!pages_text) return fail(pages_text.message());
    const bool blocks = (*index)->version() == kIndexVersion2;
    std::printf(
        "ok: %s: format %d, %zu %s, %zu songs, %zu embeddings stored of %zu windows; "
        "every checksum and structure verified%s%s%s\n",
        index_dir.c_str(), (*index)->version(), (*index)->n_shards_loaded(),
        blocks ? "block(s)" : "shard(s)", (*index)->n_songs(), (*index)->n_stored(),
        (*index)->n_embeddings(), pair_text.c_str(), pages_text->c_str(),
        model_path.empty() ? "" : ", model hash matches");
    return kExitOk;
}

int run_info(const std::string& path) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        auto bytes = read_file((fs::path(path) / "manifest.json").string());
        if (!bytes) return fail("no index at " + path + ": " + bytes.message());
        const auto manifest = nlohmann::json::parse(bytes->begin(), bytes->end(), nullptr, false);
        if (manifest.is_discarded()) return fail(path + "/manifest.json is not valid JSON");
        nlohmann::json summary = manifest;
        // The quantizer's shape (lists depend on the catalogue size, PQ bytes on the model or
        // --pq-m): loaded and checked like `verify` does, left out if that fails.
        auto model_info = model_info_from_manifest(manifest);
        const nlohmann::json* quantizer = nullptr;
        std::string file;
        if (model_info && json_read_object(manifest, "quantizer", "manifest.json", &quantizer) &&
            json_read_string(*quantizer, "file", "manifest.json quantizer", &file)) {
            if (!is_index_file_name(file)) {
                return fail(path + "/manifest.json: quantizer file name \"" + file +
                            "\" is not a plain file name: index files must sit next to the "
                            "manifest");
            }
            auto qbytes = read_file((fs::path(path) / file).string());
            Index index(*model_info);
            if (qbytes && index.add_quantizer(qbytes->data(), qbytes->size(), file)) {
                summary["quantizer"]["n_lists"] = index.n_lists();
                summary["quantizer"]["pq_m"] = index.pq_m();
                summary["quantizer"]["group"] = index.quantizer().group;  // windows a code covers
                summary["quantizer"]["rotation"] = index.quantizer().rotated();
                summary["quantizer"]["unit_norm"] = index.quantizer().unit_norm;
                summary["quantizer"]["code"] = index.quantizer().code_name();
            }
        }
        if (summary.contains("shards") && summary["shards"].is_array()) {
            summary["n_shards"] = summary["shards"].size();
            summary.erase("shards");
        }
        std::printf("%s\n", summary.dump(2).c_str());
        return kExitOk;
    }
    auto model = load_model_file(path);
    if (!model) return fail(model.message());
    const ModelInfo& info = (*model)->info();
    nlohmann::json out = {
        {"file", path},
        {"name", info.name},
        {"hash", info.hash_hex},
        {"model_version", info.model_version},
        {"weights", info.f16_weights ? "f16" : "f32"},
        {"sample_rate_hz", info.frontend.sample_rate_hz},
        {"n_fft", info.frontend.n_fft},
        {"hop_length", info.frontend.hop_length},
        {"n_mels", info.frontend.n_mels},
        {"context_frames", info.context_frames},
        {"context_s", ((info.context_frames - 1) * info.frontend.hop_length + info.frontend.n_fft) /
                          double(info.frontend.sample_rate_hz)},
        {"hop_frames", info.hop_frames},
        {"hop_s", model_hop_s(info)},
        {"query_hop_frames", info.query_hop_frames},
        {"query_hop_s", model_query_hop_s(info)},
        {"embedding_dim", info.embedding_dim},
        {"layers", (*model)->layers().size()},
        {"parameters", info.n_params},
        {"mflop_per_embedding", info.flops_per_embedding / 1e6},
        {"threshold", info.threshold},
        {"index_code", info.index_code_name()},
    };
    // The codes with no-match thresholds of their own; an index with any other code uses the
    // main table.
    nlohmann::json codes = nlohmann::json::array({info.index_code_name()});
    for (const auto& [code, table] : info.threshold_by_n_for_code) codes.push_back(code);
    out["calibrated_codes"] = codes;
    // The clip mode's speed search: its stretches, and the codes it runs for.
    if (!info.speed_stretches.empty()) {
        nlohmann::json speed_codes = nlohmann::json::array({info.index_code_name()});
        for (const auto& [code, table] : info.speed_threshold_by_n_for_code)
            speed_codes.push_back(code);
        out["speed_search"] = {{"stretches", info.speed_stretches}, {"codes", speed_codes}};
    }
    std::printf("%s\n", out.dump(2).c_str());
    return kExitOk;
}

}  // namespace earshot::cli
