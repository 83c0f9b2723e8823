// Embind bindings of the earshot core for the browser and node: one `Engine` object holding a
// model, an index (shards added as they download) and a streaming recognizer. Bytes come in as
// Uint8Array (copied by Embind into the WASM heap; no Emscripten FS). No exception crosses into
// JS: every fallible call returns {ok, message}, results are JSON strings.
//
// This file only binds: all logic lives in core/.
#include <emscripten/bind.h>

#include <chrono>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/frontend.h"
#include "core/index.h"
#include "core/model.h"
#include "core/recognizer.h"
#include "core/status.h"

namespace earshot {
namespace {

struct JsStatus {
    bool ok = true;
    std::string message;
};

JsStatus to_js(const Status& status) {
    return status.is_ok() ? JsStatus{true, ""} : JsStatus{false, status.message()};
}

JsStatus js_error(std::string message) { return JsStatus{false, std::move(message)}; }

const uint8_t* bytes_of(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// nlohmann's dump() throws on invalid UTF-8 (song titles come from tags); the WASM build has no
// exceptions, so replace bad bytes instead.
std::string dump(const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Option readers that never throw: a missing or mistyped key gives the default.
int option_int(const nlohmann::json& options, const char* key, int fallback) {
    auto it = options.find(key);
    return it != options.end() && it->is_number_integer() ? it->get<int>() : fallback;
}
float option_float(const nlohmann::json& options, const char* key, float fallback) {
    auto it = options.find(key);
    return it != options.end() && it->is_number() ? it->get<float>() : fallback;
}
std::string option_string(const nlohmann::json& options, const char* key, std::string fallback) {
    auto it = options.find(key);
    return it != options.end() && it->is_string() ? it->get<std::string>() : fallback;
}

double now_ms() {
    return std::chrono::duration<double, std::milli>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

Result<Backend> parse_backend(const std::string& name) {
    if (name == "simd") return Backend::kSimd;
    if (name == "scalar") return Backend::kScalar;
    return Status::error("unknown backend \"" + name + "\" (use \"simd\" or \"scalar\")");
}

nlohmann::json candidate_json(const MatchCandidate& c) {
    return {{"id", c.id}, {"title", c.title}, {"album", c.album}, {"offset_s", c.offset_s},
            {"score", c.score}};
}

class Engine {
public:
    // Model file bytes (.emod). Replaces any model, index and recognizer loaded before.
    JsStatus load_model(const std::string& bytes) {
        recognizer_.reset();
        index_.reset();
        Result<std::shared_ptr<const Model>> model =
            Model::load(bytes_of(bytes), bytes.size(), "model file");
        if (!model) return to_js(model.status());
        model_ = model.value();
        index_ = std::make_shared<Index>(model_->info());
        return {};
    }

    // JSON: name, hash, front-end and network figures of the loaded model.
    std::string model_info() const {
        if (!model_) return "null";
        const ModelInfo& info = model_->info();
        nlohmann::json j = {
            {"name", info.name},
            {"hash", info.hash_hex},
            {"sample_rate_hz", info.frontend.sample_rate_hz},
            {"n_mels", info.frontend.n_mels},
            {"context_frames", info.context_frames},
            {"hop_frames", info.hop_frames},
            {"query_hop_frames", info.query_hop_frames},
            {"embedding_dim", info.embedding_dim},
            {"n_params", info.n_params},
            {"flops_per_embedding", info.flops_per_embedding},
            {"threshold", info.threshold},
        };
        return dump(j);
    }

    JsStatus load_manifest(const std::string& text) {
        if (!index_) return js_error("load the model before the index manifest");
        return to_js(index_->load_manifest(text));
    }

    JsStatus add_quantizer(const std::string& bytes, const std::string& what) {
        if (!index_) return js_error("load the model before the index quantizer");
        return to_js(index_->add_quantizer(bytes_of(bytes), bytes.size(), what));
    }

    // A shard may arrive while the recognizer runs (the Worker is single-threaded, so never
    // during a push()).
    JsStatus add_shard(const std::string& bytes, const std::string& what) {
        if (!index_) return js_error("load the model before index shards");
        return to_js(index_->add_shard(bytes_of(bytes), bytes.size(), what));
    }

    std::string index_info() const {
        if (!index_) return "null";
        nlohmann::json j = {{"songs", index_->n_songs()},
                            {"embeddings", index_->n_embeddings()},
                            {"shards_loaded", index_->n_shards_loaded()},
                            {"shards_expected", index_->n_shards_expected()},
                            {"has_quantizer", index_->has_quantizer()}};
        return dump(j);
    }

    // options JSON (all optional): backend "simd"|"scalar", max_query_embeddings,
    // min_query_embeddings, match_every_embeddings, nprobe, threshold_base, threshold_scale.
    JsStatus create_recognizer(const std::string& options_json) {
        if (!model_ || !index_) return js_error("load a model and an index first");
        nlohmann::json options = nlohmann::json::parse(options_json, nullptr, false);
        if (options.is_discarded() || !options.is_object()) {
            return js_error("recognizer options are not a JSON object");
        }
        Result<Backend> backend = parse_backend(option_string(options, "backend", "simd"));
        if (!backend) return to_js(backend.status());
        RecognizerParams params = recognizer_default_params(model_->info(), *index_);
        params.max_query_embeddings =
            option_int(options, "max_query_embeddings", params.max_query_embeddings);
        params.min_query_embeddings =
            option_int(options, "min_query_embeddings", params.min_query_embeddings);
        params.match_every_embeddings =
            option_int(options, "match_every_embeddings", params.match_every_embeddings);
        params.match.nprobe = option_int(options, "nprobe", params.match.nprobe);
        // An explicit base and/or scale replaces the model's calibrated table.
        const float nan = std::numeric_limits<float>::quiet_NaN();
        override_threshold(&params.match, option_float(options, "threshold_base", nan),
                           option_float(options, "threshold_scale", nan));
        Result<std::unique_ptr<Embedder>> embedder = create_embedder(model_, backend.value());
        if (!embedder) return to_js(embedder.status());
        Result<std::unique_ptr<Recognizer>> recognizer = Recognizer::create(
            model_, index_, std::move(embedder.value()), params);
        if (!recognizer) return to_js(recognizer.status());
        recognizer_ = std::move(recognizer.value());
        return {};
    }

    // Byte address in the WASM heap of a float buffer of at least `capacity` samples: JS writes
    // PCM there (Module.HEAPF32.set(block, address >> 2)) and calls push(n).
    uintptr_t input_pointer(size_t capacity) {
        if (input_.size() < capacity) input_.resize(capacity);
        return reinterpret_cast<uintptr_t>(input_.data());
    }

    // Pushes the first n samples of the input buffer (model rate, mono, [-1, 1]).
    JsStatus push(size_t n) {
        if (!recognizer_) return js_error("create the recognizer first");
        if (n > input_.size()) return js_error("push: more samples than the input buffer holds");
        return to_js(recognizer_->push(input_.data(), n));
    }

    // "" when the matcher has not run since the last poll, else the latest result as JSON.
    std::string poll() {
        if (!recognizer_) return "";
        RecognizerResult result;
        if (!recognizer_->poll(&result)) return "";
        return result_json(result);
    }

    // End of stream: the best result since reset() (JSON).
    std::string finish() {
        if (!recognizer_) return "null";
        return result_json(recognizer_->finish());
    }

    void reset() {
        if (recognizer_) recognizer_->reset();
    }

    // Benchmark helpers (for docs/PERFORMANCE-web.md): time `iterations` embeddings of a fixed
    // pseudo-random patch with the given backend, and the front-end over `n_frames` frames.
    std::string bench_embed(const std::string& backend_name, int iterations) {
        if (!model_) return "null";
        Result<Backend> backend = parse_backend(backend_name);
        if (!backend) return "null";
        Result<std::unique_ptr<Embedder>> embedder = create_embedder(model_, backend.value());
        if (!embedder) return "null";
        const ModelInfo& info = model_->info();
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
        return dump(j);
    }

    std::string bench_frontend(int n_frames) {
        if (!model_) return "null";
        Result<std::unique_ptr<Frontend>> frontend = Frontend::create(model_->info().frontend);
        if (!frontend) return "null";
        const FrontendParams& p = model_->info().frontend;
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
        nlohmann::json j = {{"frames", n_frames},
                            {"ms", ms},
                            {"ms_per_audio_second", ms / audio_s}};
        return dump(j);
    }

private:
    static std::string result_json(const RecognizerResult& r) {
        nlohmann::json j = {{"valid", r.valid},
                            {"matched", r.match.matched},
                            {"threshold", r.match.threshold},
                            {"n_query", r.match.n_query},
                            {"query_start_s", r.query_start_s},
                            {"stream_time_s", r.stream_time_s},
                            {"n_embeddings", r.n_embeddings}};
        if (r.match.has_candidates()) {
            const MatchCandidate& best = r.match.best;
            j["id"] = best.id;
            j["title"] = best.title;
            j["album"] = best.album;
            j["offset_s"] = best.offset_s;
            // Song time at the end of the audio heard so far.
            j["song_time_s"] = best.offset_s + r.stream_time_s - r.query_start_s;
            j["score"] = r.match.confidence;  // what the threshold is compared with
            j["similarity"] = best.score;
            nlohmann::json runner_ups = nlohmann::json::array();
            for (const MatchCandidate& c : r.match.runner_ups) runner_ups.push_back(candidate_json(c));
            j["runner_ups"] = runner_ups;
        } else {
            j["score"] = -1.0;
        }
        return dump(j);
    }

    std::shared_ptr<const Model> model_;
    std::shared_ptr<Index> index_;
    std::unique_ptr<Recognizer> recognizer_;
    std::vector<float> input_;
};

}  // namespace
}  // namespace earshot

EMSCRIPTEN_BINDINGS(earshot) {
    using namespace emscripten;
    using earshot::Engine;
    using earshot::JsStatus;
    value_object<JsStatus>("Status").field("ok", &JsStatus::ok).field("message", &JsStatus::message);
    class_<Engine>("Engine")
        .constructor<>()
        .function("loadModel", &Engine::load_model)
        .function("modelInfo", &Engine::model_info)
        .function("loadManifest", &Engine::load_manifest)
        .function("addQuantizer", &Engine::add_quantizer)
        .function("addShard", &Engine::add_shard)
        .function("indexInfo", &Engine::index_info)
        .function("createRecognizer", &Engine::create_recognizer)
        .function("inputPointer", &Engine::input_pointer)
        .function("push", &Engine::push)
        .function("poll", &Engine::poll)
        .function("finish", &Engine::finish)
        .function("reset", &Engine::reset)
        .function("benchEmbed", &Engine::bench_embed)
        .function("benchFrontend", &Engine::bench_frontend);
}
