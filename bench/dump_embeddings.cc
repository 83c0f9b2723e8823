// Writes the embeddings of audio files as raw float32, for offline studies of the index codes
// (product quantization, rotations, code sizes: docs/EXPERIMENTS.md) in numpy without re-running
// the network for every variant.
//
//   earshot_dump_embeddings --model M.emod (--index-hop | --query-hop) --out PREFIX LIST.tsv
//   e.g. earshot_dump_embeddings --model models/earshot-v1.emod --index-hop --out out/emb/train
//            q-train-clips/index-catalog.tsv
//
// LIST.tsv: a catalog as `earshot build` reads it (make-queries' index-catalog.tsv), or a folder,
// whose audio files are taken as `earshot query` takes them, with the file name as the id. Writes
// PREFIX.f32 (every file's embeddings one after another, row-major, embedding_dim floats each)
// and PREFIX.tsv (`id<TAB>n_embeddings<TAB>first_row`). Every window is embedded (the index's
// --store all); embedding j starts at j * hop. Uses both cores (XNNPACK, one thread per file).
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/embed_signal.h"
#include "core/frontend.h"
#include "core/model.h"
#include "core/native/audio.h"
#include "core/native/xnnpack_embedder.h"
#include "index-builder/catalog.h"

namespace {

struct Item {
    std::string id, path;
    std::vector<float> embeddings;
    std::string error;
};

// A catalog .tsv through the CLI's reader (its ids); a folder as `earshot query` expands it,
// with each file's name as its id (make-queries' truth.tsv names clips so).
earshot::Result<std::vector<Item>> read_list(const std::string& list) {
    std::vector<Item> items;
    if (std::filesystem::is_directory(list)) {
        auto paths = earshot::cli::expand_audio_paths({list});
        if (!paths) return paths.status();
        for (const std::string& p : *paths)
            items.push_back({std::filesystem::path(p).filename().string(), p, {}, {}});
        return items;
    }
    auto catalog = earshot::cli::read_catalog(list);
    if (!catalog) return catalog.status();
    for (const auto& e : *catalog) items.push_back({e.id, e.path, {}, {}});
    return items;
}

}  // namespace

int main(int argc, char** argv) {
    std::string model_path, out, list;
    int hop = 0;  // 1 index, 2 query
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--model" && i + 1 < argc) model_path = argv[++i];
        else if (a == "--out" && i + 1 < argc) out = argv[++i];
        else if (a == "--index-hop") hop = 1;
        else if (a == "--query-hop") hop = 2;
        else list = a;
    }
    if (model_path.empty() || out.empty() || list.empty() || hop == 0) {
        std::fprintf(stderr, "usage: earshot_dump_embeddings --model M.emod (--index-hop | "
                             "--query-hop) --out PREFIX LIST.tsv|FOLDER\n");
        return 2;
    }
    std::ifstream mf(model_path, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(mf)), {});
    auto model = earshot::Model::load(bytes.data(), bytes.size(), model_path);
    if (!model) {
        std::fprintf(stderr, "%s\n", model.message().c_str());
        return 1;
    }
    const earshot::ModelInfo& info = (*model)->info();
    const int hop_frames = hop == 1 ? info.hop_frames : info.query_hop_frames;
    auto listed = read_list(list);
    if (!listed) {
        std::fprintf(stderr, "%s\n", listed.message().c_str());
        return 1;
    }
    std::vector<Item>& items = *listed;
    std::atomic<size_t> next{0};
    std::atomic<bool> setup_failed{false};
    auto worker = [&]() {
        auto embedder = earshot::create_embedder_any(*model, earshot::Backend::kXnnpack);
        auto frontend = earshot::Frontend::create(info.frontend);
        if (!embedder || !frontend) {
            std::fprintf(stderr, "%s\n", (!embedder ? embedder.message()
                                                    : frontend.message()).c_str());
            setup_failed = true;
            return;
        }
        for (size_t i; (i = next++) < items.size();) {
            auto audio = earshot::load_audio(items[i].path, info.frontend.sample_rate_hz);
            if (!audio) {
                items[i].error = audio.message();
                continue;
            }
            items[i].embeddings = earshot::embed_signal(info, **frontend, **embedder,
                                                        audio->samples.data(),
                                                        audio->samples.size(), hop_frames);
        }
    };
    std::vector<std::thread> threads;
    const unsigned n_threads = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned t = 0; t < n_threads; ++t) threads.emplace_back(worker);
    for (auto& t : threads) t.join();
    if (setup_failed) return 1;

    std::FILE* f = std::fopen((out + ".f32").c_str(), "wb");
    std::FILE* t = std::fopen((out + ".tsv").c_str(), "w");
    if (!f || !t) {
        std::fprintf(stderr, "cannot write %s.f32 / .tsv\n", out.c_str());
        return 1;
    }
    size_t row = 0;
    int failed = 0;
    for (const Item& it : items) {
        if (!it.error.empty()) {
            std::fprintf(stderr, "%s: %s\n", it.path.c_str(), it.error.c_str());
            ++failed;
            continue;
        }
        const size_t n = it.embeddings.size() / size_t(info.embedding_dim);
        std::fwrite(it.embeddings.data(), sizeof(float), it.embeddings.size(), f);
        std::fprintf(t, "%s\t%zu\t%zu\n", it.id.c_str(), n, row);
        row += n;
    }
    const bool write_failed = std::ferror(f) || std::ferror(t);
    if ((std::fclose(f) != 0) | (std::fclose(t) != 0) || write_failed) {
        std::fprintf(stderr, "cannot write %s.f32 / .tsv\n", out.c_str());
        return 1;
    }
    std::fprintf(stderr, "%zu embeddings of %d dims from %zu files (%d unreadable)\n", row,
                 info.embedding_dim, items.size() - failed, failed);
    return failed ? 3 : 0;
}
