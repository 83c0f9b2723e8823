// Writes a large index folder made in code space from real indexes (bench/code_space_catalogue.h,
// docs/SCALE.md): the real catalogue's songs unchanged plus N synthetic songs relabeled from a
// source catalogue's codes, so real queries run against 10 k - 1 M songs.
//
//   earshot_make_scale_index --model MODEL.emod --real REAL_INDEX --source SOURCE_INDEX
//                            --songs N --out OUT_DIR [--seed S] [--list-block B] [--code-block B]
//                            [--pair-keys SECONDS [--pair-short-keys S (1)] [--block-kb KB]
//                             [--pair-lists 1|2]]
//   e.g. build/bench/earshot_make_scale_index --model models/earshot-v1.emod
//            --real eval-index --source train-index --songs 10000 --out out/scale-10k
//   earshot_make_scale_index --model MODEL.emod --list-stats INDEX_DIR
//     prints one JSON line of postings-per-list figures of any index of the model's dim and
//     hop (docs/SCALE.md compares catalogues with it).
//
// REAL_INDEX must be built with MODEL; SOURCE_INDEX only needs the same embedding dim and hop
// (its model hash is not checked: only its codes are used, re-encoded with REAL_INDEX's
// quantizer). Use a source catalogue disjoint from the songs you query. The output folder is
// created if needed; existing files of the same names are overwritten. --pair-keys writes format
// 2 (one song a block by default, as `earshot build --pair-keys`, or blocks of at most KB) with
// the pair-key level of windows SECONDS apart (and its short keys S apart, as `earshot build
// --pair-short-keys`; 0: none) and the directory pages instead of format 1's 8 MB shards; the
// level is sorted on disk in $TMPDIR (bounded memory).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "bench/code_space_catalogue.h"
#include "core/index.h"
#include "core/model.h"
#include "core/native/index_folder.h"
#include "core/native/pair_key_spill_files.h"

namespace {

namespace fs = std::filesystem;

bool read_bytes(const std::string& path, std::vector<uint8_t>* out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return true;
}

int fail(const std::string& message) {
    std::fprintf(stderr, "earshot_make_scale_index: %s\n", message.c_str());
    return 1;
}

// Loads every file of an index folder; with accept_any_model_hash the model hash is taken from
// the folder's manifest (dim and hop are still checked against `model`).
earshot::Status load_index(const std::string& dir, earshot::ModelInfo model,
                           bool accept_any_model_hash, std::shared_ptr<earshot::Index>* out) {
    std::vector<uint8_t> bytes;
    const std::string manifest_path = (fs::path(dir) / "manifest.json").string();
    if (!read_bytes(manifest_path, &bytes))
        return earshot::Status::error("no index at " + dir + " (cannot read manifest.json)");
    const std::string text(bytes.begin(), bytes.end());
    if (accept_any_model_hash) {
        const auto manifest = nlohmann::json::parse(text, nullptr, false);
        if (!manifest.is_object() || !manifest.contains("model_hash") ||
            !manifest["model_hash"].is_string())
            return earshot::Status::error(manifest_path + ": no model_hash");
        model.hash_hex = manifest["model_hash"].get<std::string>();
    }
    // Either format (shard files, or blocks read one by one), checked as `earshot verify` does.
    auto index = earshot::load_index_folder(dir, model);
    if (!index) return index.status();
    *out = std::move(index.value());
    return earshot::Status::ok();
}

int print_list_stats(const std::string& dir, const earshot::ModelInfo& info) {
    std::shared_ptr<earshot::Index> index;
    if (earshot::Status st = load_index(dir, info, true, &index); !st)
        return fail(dir + ": " + st.message());
    std::vector<size_t> sizes;
    for (int l = 0; l < index->n_lists(); ++l) sizes.push_back(index->list(l).embedding_ids.size());
    std::sort(sizes.begin(), sizes.end());
    const auto at = [&](double q) { return sizes[size_t(q * double(sizes.size() - 1) + 0.5)]; };
    const double total = double(std::accumulate(sizes.begin(), sizes.end(), size_t(0)));
    // Expected postings scanned per probe when a query embedding lands in a list with
    // probability proportional to its size (the cost skew adds): sum(size^2) / sum(size).
    double sum_sq = 0;
    for (size_t n : sizes) sum_sq += double(n) * double(n);
    size_t top = 0;  // postings in the largest 1 % of lists (at least one list)
    const size_t n_top = std::max<size_t>(1, sizes.size() / 100);
    for (size_t i = 0; i < n_top; ++i) top += sizes[sizes.size() - 1 - i];
    std::printf(
        "{\"index\": \"%s\", \"songs\": %zu, \"stored\": %zu, \"lists\": %zu, "
        "\"min\": %zu, \"p10\": %zu, \"median\": %zu, \"p90\": %zu, \"p99\": %zu, "
        "\"max\": %zu, \"max_over_median\": %.2f, \"top1pct_share\": %.4f, "
        "\"size_weighted_mean_over_mean\": %.3f}\n",
        dir.c_str(), index->n_songs(), index->n_stored(), sizes.size(), sizes.front(), at(0.1),
        at(0.5), at(0.9), at(0.99), sizes.back(),
        double(sizes.back()) / double(std::max<size_t>(at(0.5), 1)), double(top) / total,
        (sum_sq / total) / (total / double(sizes.size())));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::string model_path, real_dir, source_dir, out_dir, stats_dir;
    earshot::CodeSpaceCatalogueParams params = earshot::code_space_catalogue_default_params();
    bool have_songs = false, help = false;
    double pair_keys_s = 0.0, pair_short_keys_s = 1.0;
    size_t block_bytes = earshot::kLazyBlockBytes;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            help = true;
            break;
        }
        const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
        if (v == nullptr) return fail("option " + a + " needs a value");
        ++i;
        if (a == "--model")
            model_path = v;
        else if (a == "--real")
            real_dir = v;
        else if (a == "--source")
            source_dir = v;
        else if (a == "--out")
            out_dir = v;
        else if (a == "--list-stats")
            stats_dir = v;
        else if (a == "--songs")
            params.n_synthetic_songs = std::strtoull(v, nullptr, 10), have_songs = true;
        else if (a == "--seed")
            params.seed = std::strtoull(v, nullptr, 10);
        else if (a == "--list-block")
            params.list_block = int(std::strtol(v, nullptr, 10));
        else if (a == "--pair-keys")  // seconds; format 2
            pair_keys_s = std::strtod(v, nullptr);
        else if (a == "--pair-short-keys")  // seconds, below --pair-keys; 0: none
            pair_short_keys_s = std::strtod(v, nullptr);
        else if (a == "--pair-lists")  // with --pair-keys: lists a window's keys take, 1 or 2
            params.pair_lists = uint32_t(std::strtoul(v, nullptr, 10));
        else if (a == "--block-kb")  // format 2 blocks (with --pair-keys), as earshot build's
            block_bytes = size_t(std::strtoull(v, nullptr, 10)) << 10;
        else if (a == "--code-block")
            params.code_block = int(std::strtol(v, nullptr, 10));
        else
            return fail("unknown option " + a);
    }
    if (!help && !model_path.empty() && !stats_dir.empty()) {
        std::vector<uint8_t> bytes;
        if (!read_bytes(model_path, &bytes)) return fail("cannot read " + model_path);
        auto model = earshot::Model::load(bytes.data(), bytes.size(), model_path);
        if (!model) return fail(model.message());
        return print_list_stats(stats_dir, model.value()->info());
    }
    if (help || model_path.empty() || real_dir.empty() || source_dir.empty() || out_dir.empty() ||
        !have_songs) {
        std::fprintf(stderr,
                     "usage: earshot_make_scale_index --model MODEL.emod --real REAL_INDEX "
                     "--source SOURCE_INDEX --songs N --out OUT_DIR [--seed S (1)] "
                     "[--list-block B (16)] [--code-block B (16)] [--pair-keys SECONDS] "
                     "[--pair-short-keys S (1)] "
                     "[--block-kb KB (one song a block)] [--pair-lists 1|2 (1)]\n"
                     "       earshot_make_scale_index --model MODEL.emod --list-stats INDEX_DIR\n");
        return help ? 0 : 2;
    }
    std::vector<uint8_t> model_bytes;
    if (!read_bytes(model_path, &model_bytes)) return fail("cannot read " + model_path);
    auto model = earshot::Model::load(model_bytes.data(), model_bytes.size(), model_path);
    if (!model) return fail(model.message());
    const earshot::ModelInfo& info = model.value()->info();

    std::shared_ptr<earshot::Index> real, source;
    if (earshot::Status st = load_index(real_dir, info, false, &real); !st)
        return fail(real_dir + ": " + st.message());
    if (earshot::Status st = load_index(source_dir, info, true, &source); !st)
        return fail(source_dir + ": " + st.message());
    std::error_code ec;
    fs::create_directories(out_dir, ec);
    if (ec) return fail("cannot create " + out_dir + ": " + ec.message());
    const auto write = [&](const std::string& name, const std::vector<uint8_t>& bytes) {
        const std::string path = (fs::path(out_dir) / name).string();
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
        return out ? earshot::Status::ok() : earshot::Status::error("cannot write " + path);
    };
    // Shards are written as they fill: memory stays bounded at any catalogue size.
    if (pair_keys_s > 0) {
        params.pair_span = earshot::pair_span_hops(info, pair_keys_s);
        if (pair_short_keys_s > 0)
            params.pair_short_span = earshot::pair_span_hops(info, pair_short_keys_s);
        if (block_bytes == 0) return fail("--block-kb must be at least 1");
        params.max_shard_bytes = block_bytes;
        std::error_code gone;
        fs::remove(fs::path(out_dir) / "songs.esb", gone);  // blocks are appended
        fs::remove(fs::path(out_dir) / "pairs.ekp", gone);  // and the pair level's postings
        auto spill = earshot::TempFilePairKeySpill::create("");
        if (!spill) return fail(spill.message());
        params.pair_spill = std::move(spill.value());
    }
    params.shard_sink = [&](const std::string& name, std::vector<uint8_t> bytes) {
        if (params.pair_span > 0) {  // format 2: blocks and pair postings are appended
            const std::string path = (fs::path(out_dir) / name).string();
            std::ofstream out(path, std::ios::binary | std::ios::app);
            out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
            return out ? earshot::Status::ok() : earshot::Status::error("cannot write " + path);
        }
        return write(name, bytes);
    };
    auto files = earshot::make_code_space_catalogue(info, *real, *source, params);
    if (!files) return fail(files.message());
    for (const auto& [name, bytes] : files.value().files) {
        if (earshot::Status st = write(name, bytes); !st) return fail(st.message());
    }
    std::printf(
        "%s: %zu real + %zu synthetic songs (codes of %zu source songs), %zu embeddings, "
        "%zu files, %.1f MB\n",
        out_dir.c_str(), real->n_songs(), params.n_synthetic_songs, source->n_songs(),
        files.value().n_embeddings, files.value().n_files, files.value().total_bytes / 1e6);
    return 0;
}
