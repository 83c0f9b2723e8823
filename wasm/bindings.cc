// Embind bindings of the earshot core for the browser and node: the Engine of wasm/engine.h.
// This file only binds: all logic lives in core/; benchmark entry points are in
// wasm/bench_bindings.cc.
#include <emscripten/bind.h>
#include <emscripten/heap.h>
#include <malloc.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/embedder.h"
#include "core/recognizer_json.h"
#include "wasm/engine.h"

namespace earshot {

namespace {

JsStatus to_js(const Status& status) {
    return status.is_ok() ? JsStatus{true, "", ""} : JsStatus{false, status.message(), ""};
}

JsStatus js_error(std::string message) { return JsStatus{false, std::move(message), ""}; }

JsStatus config_error(std::string message) {
    return JsStatus{false, "lazy parameters: " + std::move(message), "config"};
}

}  // namespace

JsBytes::JsBytes(const emscripten::val& value) {
    using emscripten::val;
    val bytes = value;
    if (bytes.instanceof (val::global("ArrayBuffer")))
        bytes = val::global("Uint8Array").new_(value);
    if (!bytes.instanceof (val::global("Uint8Array"))) {
        error_ = "bytes must be a Uint8Array or an ArrayBuffer";
        return;
    }
    size_ = bytes["length"].as<size_t>();
    if (size_ == 0) return;
    data_.reset(static_cast<uint8_t*>(std::malloc(size_)));  // null at the heap's ceiling
    if (!data_) {
        error_ = "out of memory: " + std::to_string(size_) + " bytes do not fit in the WASM heap";
        size_ = 0;
        return;
    }
    val(emscripten::typed_memory_view(size_, data_.get())).call<void>("set", bytes);
}

JsStatus Engine::load_model(const emscripten::val& js_bytes) {
    recognizer_.reset();
    index_.reset();
    lazy_.reset();
    const JsBytes bytes(js_bytes);
    if (!bytes.ok()) return js_error(bytes.error());
    Result<std::shared_ptr<const Model>> model =
        Model::load(bytes.data(), bytes.size(), "model file");
    if (!model) return to_js(model.status());
    model_ = model.value();
    index_ = std::make_shared<Index>(model_->info());
    index_from_lazy_ = false;
    return {};
}

std::string Engine::model_info() const {
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
    return json_text(j);
}

JsStatus Engine::load_manifest(const std::string& text) {
    if (!index_) return js_error("load the model before the index manifest");
    if (index_from_lazy_) {  // a whole index after a lazy one: start from an empty index
        index_ = std::make_shared<Index>(model_->info());
        index_from_lazy_ = false;
    }
    return to_js(index_->load_manifest(text));
}

JsStatus Engine::add_quantizer(const emscripten::val& js_bytes, const std::string& what) {
    if (!index_) return js_error("load the model before the index quantizer");
    const JsBytes bytes(js_bytes);
    if (!bytes.ok()) return js_error(bytes.error());
    return to_js(index_->add_quantizer(bytes.data(), bytes.size(), what));
}

JsStatus Engine::add_directory(const emscripten::val& js_bytes, const std::string& what) {
    if (!index_) return js_error("load the model before the index directory");
    const JsBytes bytes(js_bytes);
    if (!bytes.ok()) return js_error(bytes.error());
    return to_js(index_->add_directory(bytes.data(), bytes.size(), what));
}

double Engine::directory_reserve_bytes(const emscripten::val& js_bytes) const {
    if (!index_) return -1;
    const JsBytes bytes(js_bytes);
    if (!bytes.ok()) return -1;
    Result<uint64_t> r = index_->directory_reserve_bytes(bytes.data(), bytes.size(), "");
    return r ? double(r.value()) : -1;
}

JsStatus Engine::add_shard(const emscripten::val& js_bytes, const std::string& what) {
    if (!index_) return js_error("load the model before index shards");
    const JsBytes bytes(js_bytes);
    if (!bytes.ok()) return js_error(bytes.error());
    return to_js(index_->add_shard(bytes.data(), bytes.size(), what));
}

std::string Engine::index_info() const {
    if (!index_) return "null";
    nlohmann::json j = {{"songs", index_->n_songs()},
                        {"embeddings", index_->n_embeddings()},
                        {"shards_loaded", index_->n_shards_loaded()},
                        {"shards_expected", index_->n_shards_expected()},
                        {"has_quantizer", index_->has_quantizer()},
                        {"version", index_->version()}};
    return json_text(j);
}

std::string Engine::shard_ranges() const {
    nlohmann::json j = nlohmann::json::array();
    for (size_t i = 0; index_ && i < index_->n_shards_expected(); ++i) {
        const Index::FileRange r = index_->shard_range(i);
        j.push_back({{"file", r.file},
                     {"offset", r.offset},
                     {"bytes", r.bytes},
                     {"sha256", r.sha256},
                     {"songs", r.songs}});
    }
    return json_text(j);
}

JsStatus Engine::create_recognizer(const std::string& backend_name,
                                   const std::string& params_json) {
    if (!model_ || !index_) return js_error("load a model and an index first");
    Result<Backend> backend = backend_from_name(backend_name);
    if (!backend) return to_js(backend.status());
    const nlohmann::json overrides = nlohmann::json::parse(params_json, nullptr, false);
    if (overrides.is_discarded()) return js_error("recognizer parameters are not valid JSON");
    RecognizerParams params = recognizer_default_params(model_->info(), *index_);
    if (Status st = apply_recognizer_overrides(overrides, &params); !st) return to_js(st);
    // A lazy answer matches the window finish() leaves; the speed search replays it away.
    if (lazy_) params.speed.stretches.clear();
    Result<std::unique_ptr<Embedder>> embedder = create_embedder(model_, backend.value());
    if (!embedder) return to_js(embedder.status());
    Result<std::unique_ptr<Recognizer>> recognizer =
        Recognizer::create(model_, index_, std::move(embedder.value()), params);
    if (!recognizer) return to_js(recognizer.status());
    recognizer_ = std::move(recognizer.value());
    last_look_embeddings_ = -1;
    if (lazy_) {  // lazy looks decide with the thresholds of the lazy index's code
        RecognizerParams lazy = recognizer_default_params(model_->info(), lazy_->base());
        if (Status st = apply_recognizer_overrides(overrides, &lazy); !st) return to_js(st);
        lazy_match_ = lazy.match;
    }
    return {};
}

uintptr_t Engine::input_pointer(size_t capacity) {
    if (capacity > kMaxInputSamples) return 0;
    if (input_.size() < capacity) input_.resize(capacity);
    return reinterpret_cast<uintptr_t>(input_.data());
}

std::string Engine::memory_info() const {
    // mallinfo() walks the allocator's state: a few microseconds, called once per file loaded.
    const struct mallinfo m = mallinfo();
    nlohmann::json j = {{"heap_bytes", emscripten_get_heap_size()},
                        {"max_bytes", emscripten_get_heap_max()},
                        {"allocated_bytes", size_t(m.uordblks)}};
    return json_text(j);
}

JsStatus Engine::push(size_t n) {
    if (!recognizer_) return js_error("create the recognizer first");
    if (n > input_.size()) return js_error("push: more samples than the input buffer holds");
    return to_js(recognizer_->push(input_.data(), n));
}

std::string Engine::poll() {
    if (!recognizer_) return "";
    RecognizerResult result;
    if (!recognizer_->poll(&result)) return "";
    return result_text(result);
}

std::string Engine::best() const {
    if (!recognizer_) return "null";
    return result_text(recognizer_->best());
}

std::string Engine::finish() {
    if (!recognizer_) return "null";
    return result_text(recognizer_->finish());
}

JsStatus Engine::load_lazy(const std::string& manifest, const emscripten::val& js_quantizer,
                           const emscripten::val& js_pages_header,
                           const emscripten::val& js_pair_header, const std::string& params_json) {
    if (!model_) return js_error("load the model first");
    recognizer_.reset();
    lazy_.reset();
    LazyIndexParams params;
    const nlohmann::json overrides = nlohmann::json::parse(params_json, nullptr, false);
    if (!overrides.is_object()) return config_error("not a JSON object");
    for (const auto& [key, value] : overrides.items()) {
        if (!value.is_number_unsigned()) return config_error(key + " must be a whole number >= 0");
        const uint64_t v = value.get<uint64_t>();
        if (key == "background_blocks")
            params.background_blocks = uint32_t(std::min<uint64_t>(v, UINT32_MAX));
        else if (key == "block_cache_bytes")
            params.block_cache_bytes = v;
        else if (key == "pair_cache_bytes")
            params.pair_cache_bytes = v;
        else if (key == "directory_cache_bytes")
            params.directory_cache_bytes = v;
        else if (key == "pair_key_budget")
            params.pair_key_budget = size_t(std::min<uint64_t>(v, 1u << 16));
        else if (key == "max_keys_per_pair")
            params.max_keys_per_pair = size_t(std::min<uint64_t>(v, 64));
        else if (key == "first_look_pairs")
            params.first_look_pairs = size_t(std::min<uint64_t>(v, 1u << 16));
        else if (key == "short_look_pairs")
            params.short_look_pairs = size_t(std::min<uint64_t>(v, 1u << 16));
        else if (key == "max_candidates")
            params.max_candidates = size_t(std::min<uint64_t>(v, 1024));
        else if (key == "more_candidates")
            params.more_candidates = size_t(std::min<uint64_t>(v, 1024));
        else if (key == "wide_keys_per_pair")
            params.wide_keys_per_pair = size_t(std::min<uint64_t>(v, 64));
        else if (key == "wide_pair_key_budget")
            params.wide_pair_key_budget = size_t(std::min<uint64_t>(v, 1u << 16));
        else if (key == "vote_slack")
            params.vote_slack = uint32_t(std::min<uint64_t>(v, 64));
        else if (key == "key_weight")
            params.key_weight = double(std::min<uint64_t>(v, 1000000000));
        else if (key == "max_query_postings")
            params.max_query_postings = v;
        else if (key == "both_spans_max_pairs")
            params.both_spans_max_pairs = size_t(std::min<uint64_t>(v, 1u << 16));
        else
            return config_error("unknown key " + key);
    }
    const JsBytes quantizer(js_quantizer), pages_header(js_pages_header),
        pair_header(js_pair_header);
    for (const JsBytes* bytes : {&quantizer, &pages_header, &pair_header})
        if (!bytes->ok()) return js_error(bytes->error());
    Result<std::unique_ptr<LazyIndex>> lazy = LazyIndex::create(
        model_->info(), manifest, quantizer.data(), quantizer.size(), pages_header.data(),
        pages_header.size(), pair_header.data(), pair_header.size(), params);
    if (!lazy) return to_js(lazy.status());
    lazy_ = std::move(lazy.value());
    // An index loaded before (with its quantizer) is a hot tier: it stays, and the recognizer
    // matches it live; otherwise the recognizer embeds against the preloaded lazy index.
    if (!index_ || index_from_lazy_ || !index_->has_quantizer()) {
        index_ = std::make_shared<Index>(lazy_->base());
        index_from_lazy_ = true;
    }
    return {};
}

std::string Engine::lazy_fetches(bool preload) {
    nlohmann::json out = {{"ok", false}, {"message", ""}, {"fetches", nlohmann::json::array()}};
    if (!lazy_) {
        out["message"] = "load a lazy index first";
        return json_text(out);
    }
    Result<std::vector<LazyFetch>> fetches =
        preload ? Result<std::vector<LazyFetch>>(lazy_->preload_fetches()) : lazy_->next_fetches();
    if (!fetches) {
        out["message"] = fetches.message();
        return json_text(out);
    }
    for (const LazyFetch& f : fetches.value())
        out["fetches"].push_back({{"kind", lazy_fetch_kind_name(f.kind)},
                                  {"id", f.id},
                                  {"file", f.file},
                                  {"offset", f.range.offset},
                                  {"bytes", f.range.size}});
    out["ok"] = true;
    return json_text(out);
}

JsStatus Engine::lazy_provide(const std::string& kind, uint32_t id,
                              const emscripten::val& js_bytes) {
    if (!lazy_) return js_error("load a lazy index first");
    const std::optional<LazyFetch::Kind> known = lazy_fetch_kind_from_name(kind);
    if (!known) return js_error("lazy: unknown fetch kind " + kind);
    const JsBytes bytes(js_bytes);
    if (!bytes.ok()) return js_error(bytes.error());
    LazyFetch fetch;
    fetch.id = id;
    fetch.kind = *known;
    return to_js(lazy_->provide(fetch, bytes.data(), bytes.size()));
}

JsStatus Engine::lazy_begin() {
    if (!lazy_ || !recognizer_)
        return js_error("load a lazy index and create the recognizer first");
    last_look_embeddings_ = int64_t(recognizer_->n_embeddings_total());
    return to_js(
        lazy_->begin_query(recognizer_->query_embeddings(), recognizer_->n_query_embeddings()));
}

bool Engine::lazy_look_due(bool final) const {
    if (!lazy_ || !recognizer_) return false;
    return earshot::lazy_look_due(recognizer_->n_query_embeddings(),
                                  recognizer_->n_embeddings_total(),
                                  size_t(recognizer_->params().max_query_embeddings),
                                  lazy_->early_looks(), last_look_embeddings_, final);
}

void Engine::lazy_clear_cache() {
    if (lazy_) lazy_->clear_cache();
}

std::string Engine::lazy_result() {
    if (!lazy_ || !recognizer_) return "null";
    Result<MatchResult> match = lazy_->match(recognizer_->query_embeddings(),
                                             recognizer_->n_query_embeddings(), lazy_match_);
    if (!match) return "null";
    // The window the query was made of, not the recognizer's last match: a lazy listen's
    // recognizer does not match by itself (the page asks lazy looks instead).
    return result_text(recognizer_->window_result(std::move(match.value())));
}

bool Engine::lazy_widen(bool final) {
    if (!lazy_ || !recognizer_) return false;
    return earshot::lazy_widen_due(recognizer_->n_query_embeddings(),
                                   size_t(recognizer_->params().max_query_embeddings), final) &&
           lazy_->widen();
}

JsStatus Engine::warm_up(const std::string& backend_name) {
    if (!model_ || !index_) return js_error("load a model and an index first");
    Result<Backend> backend = backend_from_name(backend_name);
    if (!backend) return to_js(backend.status());
    // Three tones with a slow tremolo: 3 s at the model's rate.
    const double rate = model_->info().frontend.sample_rate_hz;
    std::vector<float> pcm(size_t(3 * rate));
    for (size_t i = 0; i < pcm.size(); ++i) {
        const double t = double(i) / rate;
        const double tremolo = 0.6 + 0.4 * std::sin(2 * M_PI * 2.0 * t);
        pcm[i] = float(0.1 * tremolo *
                       (std::sin(2 * M_PI * 220.0 * t) + std::sin(2 * M_PI * 330.0 * t) +
                        std::sin(2 * M_PI * 554.4 * t)));
    }
    // A listen's recognizer (music gate and detector), then one that embeds every patch and
    // matches at the end whatever the gate would say.
    std::unique_ptr<Recognizer> recognizer;
    for (const bool live : {true, false}) {
        Result<std::unique_ptr<Embedder>> embedder = create_embedder(model_, backend.value());
        if (!embedder) return to_js(embedder.status());
        RecognizerParams params = recognizer_default_params(model_->info(), *index_);
        params.live = live;
        params.speed.stretches.clear();  // the window stays for the lazy matcher below
        Result<std::unique_ptr<Recognizer>> made =
            Recognizer::create(model_, index_, std::move(embedder.value()), params);
        if (!made) return to_js(made.status());
        recognizer = std::move(made.value());
        if (Status st = recognizer->push(pcm.data(), pcm.size()); !st) return to_js(st);
        recognizer->finish();
    }
    if (!lazy_) return {};
    const RecognizerParams lazy = recognizer_default_params(model_->info(), lazy_->base());
    Result<MatchResult> match = lazy_->rehearse(recognizer->query_embeddings(),
                                                recognizer->n_query_embeddings(), lazy.match);
    return match ? JsStatus{} : to_js(match.status());
}

std::string Engine::query_info() const {
    if (!recognizer_) return "null";
    return json_text(
        nlohmann::json{{"n_window", recognizer_->n_query_embeddings()},
                       {"n_embeddings", recognizer_->n_embeddings_total()},
                       {"max_query_embeddings", recognizer_->params().max_query_embeddings},
                       {"window_start_s", recognizer_->window_start_s()},
                       {"stream_time_s", recognizer_->stream_time_s()}});
}

std::string Engine::lazy_info() const {
    if (!lazy_) return "null";
    const LazyIndexStats& s = lazy_->stats();
    return json_text(nlohmann::json{{"preload_bytes", lazy_->preload_bytes()},
                                    {"cached_bytes", lazy_->cached_bytes()},
                                    {"fetches", s.fetches},
                                    {"bytes", s.bytes},
                                    {"rejected", s.rejected}});
}

void Engine::reset() {
    last_look_embeddings_ = -1;
    if (recognizer_) recognizer_->reset();
}

std::string Engine::poll_event() {
    ListenEvent event;
    if (!recognizer_ || !recognizer_->poll_event(&event)) return "";
    return json_text(listen_event_json(event));
}

bool Engine::hears_music() const { return recognizer_ && recognizer_->hears_music(); }

std::string Engine::result_text(const RecognizerResult& result) const {
    return json_text(result_json_with_details(result, recognizer_->stream_time_s()));
}

}  // namespace earshot

EMSCRIPTEN_BINDINGS(earshot) {
    using namespace emscripten;
    using earshot::Engine;
    using earshot::JsStatus;
    value_object<JsStatus>("Status")
        .field("ok", &JsStatus::ok)
        .field("message", &JsStatus::message)
        .field("code", &JsStatus::code);
    class_<Engine>("Engine")
        .constructor<>()
        .function("loadModel", &Engine::load_model)
        .function("modelInfo", &Engine::model_info)
        .function("loadManifest", &Engine::load_manifest)
        .function("addQuantizer", &Engine::add_quantizer)
        .function("addDirectory", &Engine::add_directory)
        .function("directoryReserveBytes", &Engine::directory_reserve_bytes)
        .function("addShard", &Engine::add_shard)
        .function("indexInfo", &Engine::index_info)
        .function("shardRanges", &Engine::shard_ranges)
        .function("createRecognizer", &Engine::create_recognizer)
        .function("inputPointer", &Engine::input_pointer)
        .function("push", &Engine::push)
        .function("poll", &Engine::poll)
        .function("best", &Engine::best)
        .function("finish", &Engine::finish)
        .function("reset", &Engine::reset)
        .function("pollEvent", &Engine::poll_event)
        .function("hearsMusic", &Engine::hears_music)
        .function("memoryInfo", &Engine::memory_info)
        .function("loadLazy", &Engine::load_lazy)
        .function("lazyFetches", &Engine::lazy_fetches)
        .function("lazyProvide", &Engine::lazy_provide)
        .function("lazyBegin", &Engine::lazy_begin)
        .function("lazyResult", &Engine::lazy_result)
        .function("lazyWiden", &Engine::lazy_widen)
        .function("lazyLookDue", &Engine::lazy_look_due)
        .function("lazyClearCache", &Engine::lazy_clear_cache)
        .function("lazyInfo", &Engine::lazy_info)
        .function("warmUp", &Engine::warm_up)
        .function("queryInfo", &Engine::query_info)
        .function("benchEmbed", &earshot::bench_embed)
        .function("benchFrontend", &earshot::bench_frontend);
}
