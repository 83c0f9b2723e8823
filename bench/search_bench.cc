// Search latency of the two-phase matcher on synthetic catalogues of 1k / 10k / 100k songs
// (3-minute songs = 360 embeddings each; n_lists as earshot build picks them, index_auto_lists:
// 512 / 2048 / 4096; pq_m 16, and 32 = the committed model's index_pq_m, on the 1k and 10k
// catalogues). Codes are generated directly (random list ids and PQ codes; no training) and go
// through the real writer and loader, so set-up is quick. Queries are random unit vectors (no
// match: every probed posting is scanned and every candidate re-scored, the common cost).
// Counters: ms per query of `n_query` embeddings and ms per embedding. Uniform list sizes are
// the best case for IVF; real catalogues are skewed and scan more postings per probe.
//
// Also: quantizer training time for a 130-song catalogue (~45k x 128-d vectors) and for the
// training sample of large catalogues with 2048 and 4096 lists.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <memory>
#include <random>
#include <vector>

#include "core/index.h"
#include "core/index_builder.h"
#include "core/matcher.h"

namespace earshot {
namespace {

constexpr int kDim = 128;
constexpr size_t kEmbeddingsPerSong = 360;  // 3 min at 0.5 s hop

ModelInfo bench_model() {
    ModelInfo info;
    info.name = "bench";
    info.hash_hex = std::string(64, 'e');
    info.embedding_dim = kDim;
    info.hop_frames = 32;
    return info;
}

double cpu_seconds() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

std::vector<float> random_unit_vectors(size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> out(n * kDim);
    for (size_t i = 0; i < n; ++i) {
        double norm = 0;
        for (int d = 0; d < kDim; ++d) {
            out[i * kDim + d] = normal(rng);
            norm += double(out[i * kDim + d]) * out[i * kDim + d];
        }
        for (int d = 0; d < kDim; ++d) out[i * kDim + d] /= float(std::sqrt(norm));
    }
    return out;
}

// One catalogue at a time (100k songs is ~1 GB in memory).
struct Catalogue {
    size_t n_songs = 0;
    int pq_m = 0;
    std::unique_ptr<Index> index;
    double build_s = 0;
};

const Index& catalogue(size_t n_songs, int pq_m) {
    static Catalogue cached;
    if (cached.n_songs == n_songs && cached.pq_m == pq_m) return *cached.index;
    cached.index.reset();
    const ModelInfo model = bench_model();
    IndexBuildParams params = index_build_default_params();
    params.pq_m = pq_m;
    params.n_lists = index_auto_lists(n_songs * kEmbeddingsPerSong);  // what earshot build picks
    Quantizer q;
    q.dim = kDim;
    q.n_lists = params.n_lists;
    q.pq_m = params.pq_m;
    q.sub_dim = kDim / params.pq_m;
    q.coarse_centroids = random_unit_vectors(q.n_lists, 1);
    std::vector<float> books =
        random_unit_vectors(size_t(q.pq_m) * kPqCodebookSize * q.sub_dim / kDim, 2);
    for (float& v : books) v *= 0.3f;  // residuals are smaller than centroids
    q.pq_codebooks = books;
    Result<IndexBuilder> builder = IndexBuilder::create(model, params);
    if (!builder || !builder->set_quantizer(q)) std::abort();
    std::mt19937_64 rng(3);
    std::vector<uint16_t> ids(kEmbeddingsPerSong);
    std::vector<uint8_t> codes(kEmbeddingsPerSong * q.pq_m);
    for (size_t s = 0; s < n_songs; ++s) {
        for (auto& id : ids) id = uint16_t(rng() % q.n_lists);
        for (auto& c : codes) c = uint8_t(rng());
        SongInfo song;
        song.id = "song-" + std::to_string(s);
        song.duration_s = 180.0;
        if (!builder->add_song_codes(song, ids.data(), codes.data(), kEmbeddingsPerSong))
            std::abort();
    }
    Result<IndexFiles> files = builder->finish();
    if (!files) std::abort();
    auto index = std::make_unique<Index>(model);
    const auto& manifest = files->files.at("manifest.json");
    if (!index->load_manifest(std::string(manifest.begin(), manifest.end()))) std::abort();
    const auto& quant = files->files.at("quantizer.eq");
    if (!index->add_quantizer(quant.data(), quant.size(), "quantizer.eq")) std::abort();
    for (const auto& [name, bytes] : files->files)
        if (name.rfind("shard-", 0) == 0 && !index->add_shard(bytes.data(), bytes.size(), name))
            std::abort();
    std::fprintf(stderr,
                 "catalogue: %zu songs, PQ %d, %zu embeddings, %zu files, %.0f bytes/song\n",
                 n_songs, pq_m, index->n_embeddings(), files->files.size(), files->bytes_per_song);
    cached.n_songs = n_songs;
    cached.pq_m = pq_m;
    cached.index = std::move(index);
    return *cached.index;
}

// range(0) songs, range(1) query embeddings, range(2) nprobe, range(3) PQ bytes per embedding.
void BM_Match(benchmark::State& state) {
    const Index& index = catalogue(size_t(state.range(0)), int(state.range(3)));
    const size_t n_query = size_t(state.range(1));
    MatchParams params = match_default_params();
    params.nprobe = int(state.range(2));
    Matcher matcher(index, params);
    const std::vector<float> queries = random_unit_vectors(n_query * 16, 4);
    size_t k = 0;
    const double cpu0_s = cpu_seconds();
    for (auto _ : state) {
        Result<MatchResult> r = matcher.match(&queries[(k++ % 16) * n_query * kDim], n_query, 0.5);
        benchmark::DoNotOptimize(r);
    }
    // CPU milliseconds (the machine may be shared; wall time is the "Time" column).
    const double cpu_ms = 1000.0 * (cpu_seconds() - cpu0_s);
    state.counters["cpu_ms_per_query"] = cpu_ms / double(state.iterations());
    state.counters["cpu_ms_per_embedding"] = cpu_ms / double(state.iterations() * n_query);
    state.counters["postings_per_embedding"] =
        double(index.n_embeddings()) * params.nprobe / index.n_lists();
}
BENCHMARK(BM_Match)
    ->ArgNames({"songs", "n_query", "nprobe", "pq_m"})
    ->Args({1000, 1, 16, 16})
    ->Args({1000, 10, 16, 16})
    ->Args({1000, 1, 16, 32})
    ->Args({1000, 10, 16, 32})
    ->Args({10000, 1, 16, 16})
    ->Args({10000, 10, 16, 16})
    ->Args({10000, 1, 16, 32})
    ->Args({10000, 10, 16, 32})
    ->Args({100000, 1, 16, 16})
    ->Args({100000, 10, 16, 16})
    ->Args({100000, 10, 4, 16})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Streaming: the recognizer re-matches a sliding window of range(1) embeddings every hop; with
// embedding ids the phase-1 postings of the previous windows are reused, so each hop costs one
// new phase-1 search plus voting and the phase-2 re-score of the whole window.
void BM_MatchSlidingWindow(benchmark::State& state) {
    const Index& index = catalogue(size_t(state.range(0)), int(state.range(2)));
    const size_t window = size_t(state.range(1));
    Matcher matcher(index, match_default_params());
    const size_t n_stream = 256;
    const std::vector<float> stream = random_unit_vectors(n_stream + window, 7);
    std::vector<uint64_t> ids(window);
    uint64_t first = 0;
    const double cpu0_s = cpu_seconds();
    for (auto _ : state) {
        const size_t at = size_t(first % n_stream);
        for (size_t i = 0; i < window; ++i) ids[i] = first + i;
        Result<MatchResult> r = matcher.match(&stream[at * kDim], ids.data(), window, 0.5);
        benchmark::DoNotOptimize(r);
        ++first;
    }
    state.counters["cpu_ms_per_hop"] = 1000.0 * (cpu_seconds() - cpu0_s) / state.iterations();
}
BENCHMARK(BM_MatchSlidingWindow)
    ->ArgNames({"songs", "window", "pq_m"})
    ->Args({1000, 20, 16})
    ->Args({10000, 20, 16})
    ->Args({10000, 20, 32})
    ->Args({100000, 20, 16})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Quantizer training (32 x 256 PQ, <= 10 k-means iterations) on clustered data like real
// embeddings; args: vectors, lists (0 = by size).
void BM_TrainQuantizer(benchmark::State& state) {
    const size_t n = size_t(state.range(0));
    const std::vector<float> centres = random_unit_vectors(64, 5);
    std::vector<float> data = random_unit_vectors(n, 6);
    for (size_t i = 0; i < n; ++i) {
        const float* c = &centres[(i % 64) * kDim];
        double norm = 0;
        for (int d = 0; d < kDim; ++d) {
            data[i * kDim + d] = c[d] + data[i * kDim + d];
            norm += double(data[i * kDim + d]) * data[i * kDim + d];
        }
        for (int d = 0; d < kDim; ++d) data[i * kDim + d] /= float(std::sqrt(norm));
    }
    IndexBuildParams params = index_build_default_params();
    params.pq_m = 32;                      // the committed model's index_pq_m
    params.n_lists = int(state.range(1));  // 0 = by size (256 here)
    int lists = 0;                         // what the builder trained (0 resolves by size)
    for (auto _ : state) {
        Result<IndexBuilder> builder = IndexBuilder::create(bench_model(), params);
        Status st = builder ? builder->train_on(data.data(), n) : builder.status();
        if (!st) {
            state.SkipWithError(st.message().c_str());
            break;
        }
        benchmark::DoNotOptimize(builder->quantizer().coarse_centroids.data());
        lists = builder->quantizer().n_lists;
    }
    state.counters["vectors"] = double(n);
    state.counters["lists"] = double(lists);
}
// A 130-song catalogue of 3-minute songs (~45k vectors, 256 lists), and the 65 536-vector sample
// (max_training_vectors) that larger ones train on, with the lists earshot build picks at 10 000
// songs (2048) and from 8.4 M embeddings (4096).
BENCHMARK(BM_TrainQuantizer)
    ->Args({130 * 360, 0})
    ->Args({65536, 2048})
    ->Args({65536, 4096})
    ->Unit(benchmark::kSecond)
    ->Iterations(1)
    ->UseRealTime();

}  // namespace
}  // namespace earshot
