// Benchmark entry points of the WASM module (docs/PERFORMANCE-web.md, e2e/bench-web.mjs): time
// `iterations` embeddings of a fixed pseudo-random patch with a backend, and the front-end over
// `n_frames` frames. Bound as Engine methods by wasm/bindings.cc.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/embedder.h"
#include "core/frontend.h"
#include "core/recognizer_json.h"
#include "wasm/engine.h"

namespace earshot {

namespace {

double now_ms() {
    return std::chrono::duration<double, std::milli>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

std::string bench_embed(const Engine& engine, const std::string& backend_name, int iterations) {
    const std::shared_ptr<const Model>& model = engine.model();
    if (!model) return "null";
    Result<Backend> backend = backend_from_name(backend_name);
    if (!backend) return "null";
    Result<std::unique_ptr<Embedder>> embedder = create_embedder(model, backend.value());
    if (!embedder) return "null";
    const ModelInfo& info = model->info();
    std::vector<float> patch(size_t(info.context_frames) * info.frontend.n_mels);
    uint32_t state = 12345;
    for (float& x : patch) {
        state = state * 1664525u + 1013904223u;
        x = float(state >> 8) / float(1u << 24) * 8.0f - 10.0f;  // log-mel-like range
    }
    std::vector<float> out(info.embedding_dim);
    embedder.value()->embed(patch.data(), out.data());  // warm-up
    const double t0 = now_ms();
    for (int i = 0; i < iterations; ++i) embedder.value()->embed(patch.data(), out.data());
    const double ms = (now_ms() - t0) / std::max(1, iterations);
    nlohmann::json j = {{"backend", backend_name},
                        {"ms_per_embedding", ms},
                        {"flops_per_embedding", info.flops_per_embedding},
                        {"gflops", info.flops_per_embedding / (ms * 1e6)}};
    return json_text(j);
}

std::string bench_frontend(const Engine& engine, int n_frames) {
    const std::shared_ptr<const Model>& model = engine.model();
    if (!model || n_frames < 1) return "null";
    const FrontendParams& p = model->info().frontend;
    Result<std::unique_ptr<Frontend>> frontend = Frontend::create(p);
    if (!frontend) return "null";
    std::vector<float> pcm(size_t(n_frames - 1) * p.hop_length + p.n_fft);
    uint32_t state = 777;
    for (float& x : pcm) {
        state = state * 1664525u + 1013904223u;
        x = float(state >> 8) / float(1u << 24) - 0.5f;
    }
    std::vector<float> out(p.n_mels);
    const double t0 = now_ms();
    for (int t = 0; t < n_frames; ++t) {
        frontend.value()->compute_frame(pcm.data() + size_t(t) * p.hop_length, out.data());
    }
    const double ms = now_ms() - t0;
    const double audio_s = double(pcm.size()) / p.sample_rate_hz;
    nlohmann::json j = {{"frames", n_frames}, {"ms", ms}, {"ms_per_audio_second", ms / audio_s}};
    return json_text(j);
}

}  // namespace earshot
