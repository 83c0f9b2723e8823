// The object the browser and node see (Embind class `Engine`): a model, an index (shards added
// as they download) and a streaming recognizer. Bytes come in as Uint8Array (copied into the
// WASM heap by JsBytes; no Emscripten FS). No exception crosses into JS: every fallible call
// returns {ok, message}, results are JSON text. All logic lives in core/: this only adapts it.
#pragma once

#include <emscripten/val.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/index.h"
#include "core/lazy_index.h"
#include "core/model.h"
#include "core/recognizer.h"
#include "core/status.h"

namespace earshot {

struct JsStatus {
    bool ok = true;
    std::string message;
    // "config" when the caller's parameters were refused (the page's options to change),
    // else empty: the bytes or the state were at fault.
    std::string code;
};

// Bytes handed in from JS (a Uint8Array, a node Buffer or an ArrayBuffer), copied into the WASM
// heap with one TypedArray.prototype.set. Embind's std::string conversion would copy a typed
// array one byte at a time in a JS loop (in Chromium about 10-20 ms a megabyte: a second or so
// of a 60 MB index's load) and write through a null pointer when malloc fails at the heap's
// ceiling; here that is an error.
class JsBytes {
public:
    explicit JsBytes(const emscripten::val& value);
    bool ok() const { return error_.empty(); }
    const std::string& error() const { return error_; }
    const uint8_t* data() const { return data_.get(); }
    size_t size() const { return size_; }

private:
    std::unique_ptr<uint8_t, decltype(&std::free)> data_{nullptr, &std::free};
    size_t size_ = 0;
    std::string error_;
};

class Engine {
public:
    // Model file bytes (.emod). Replaces any model, index and recognizer loaded before.
    JsStatus load_model(const emscripten::val& bytes);
    // JSON: name, hash, front-end and network figures of the loaded model ("null" before).
    std::string model_info() const;

    JsStatus load_manifest(const std::string& text);
    JsStatus add_quantizer(const emscripten::val& bytes, const std::string& what);
    // Format v2: the block directory (directory.ed), after the quantizer and before any block.
    JsStatus add_directory(const emscripten::val& bytes, const std::string& what);
    // Bytes add_directory() would reserve for the lists of this directory, -1 if the bytes are
    // not one (add_directory then says why): the Worker checks them against the heap's room
    // first, since allocation failure aborts the module.
    double directory_reserve_bytes(const emscripten::val& bytes) const;
    // A shard may arrive while the recognizer runs (the Worker is single-threaded, so never
    // during a push()).
    JsStatus add_shard(const emscripten::val& bytes, const std::string& what);
    // JSON: songs, embeddings, shards_loaded, shards_expected (v2: blocks), has_quantizer and
    // version (the manifest's format version, 0 before one is loaded).
    std::string index_info() const;
    // JSON array, one entry per shard (v1) or block (v2) in order: {file, offset, bytes, sha256,
    // songs} (Index::shard_range): a v1 shard is its whole file (offset 0), a v2 block a byte
    // range of the songs file. "[]" before the manifest (v1) or the directory (v2).
    std::string shard_ranges() const;

    // backend: "simd" or "scalar" (backend_name()); params_json: a JSON object of overrides of
    // the model's defaults (apply_recognizer_overrides, core/recognizer_json.h: an unknown key
    // or a wrong type is an error).
    JsStatus create_recognizer(const std::string& backend, const std::string& params_json);

    // Byte address in the WASM heap of a float buffer of at least `capacity` samples: JS writes
    // PCM there (Module.HEAPF32.set(block, address >> 2)) and calls push(n). 0 when capacity is
    // over kMaxInputSamples.
    static constexpr size_t kMaxInputSamples = size_t(1) << 20;
    uintptr_t input_pointer(size_t capacity);
    // Pushes the first n samples of the input buffer (model rate, mono, [-1, 1]).
    JsStatus push(size_t n);

    // Results are result_json_with_details() (core/recognizer_json.h) at the audio pushed so
    // far, as JSON text.
    // "" when the matcher has not run since the last poll, else the latest window's result.
    std::string poll();
    // The decision so far (Recognizer::best()): matched once any window since reset() matched.
    std::string best() const;
    // End of stream: the decision on everything pushed since reset() (Recognizer::finish()).
    std::string finish();
    void reset();

    // Live mode (params live: true): the next listen event as listen_event_json() text
    // (core/recognizer_json.h: match, nomatch or music-stopped, with answer_s), "" when none.
    std::string poll_event();
    // Live mode: whether the music gate lets audio through to the network now.
    bool hears_music() const;

    // The `lazy` way (core/lazy_index.h): instead of the index's songs, the files a lazy
    // client reads before its first query (checked against the manifest), then per query only
    // the ranges it names. load_lazy() replaces an index without a quantizer (or the lazy
    // index loaded before) with the preloaded one (no songs), so create_recognizer() embeds against
    // it; a whole index loaded before (load_manifest, add_quantizer, add_shard: the hot tier, say
    // the most played songs) stays, and the recognizer matches it live while lazy queries cover the
    // rest; lazy_begin() starts a lazy query on the recognizer's current window (after finish() for
    // a clip; at any point of a live listen, whose recognizer is then told not to match by itself).
    // params_json: LazyIndexParams overrides, e.g.
    // {"background_blocks": 32, "block_cache_bytes": 16777216, "pair_cache_bytes": 4194304,
    // "directory_cache_bytes": 1048576}. pages_header: the manifest's directory_pages header.
    JsStatus load_lazy(const std::string& manifest, const emscripten::val& quantizer,
                       const emscripten::val& pages_header, const emscripten::val& pair_header,
                       const std::string& params_json);
    // JSON {"ok", "message", "fetches": [{kind: "page" | "unit" | "directory" | "block", id,
    // file, offset, bytes}]}: preload = true, the background blocks' directory pages, then the
    // blocks, still to fetch (call until empty); false, the current query's next round (empty
    // once it can be answered).
    std::string lazy_fetches(bool preload);
    // A fetch's bytes (kind and id as lazy_fetches named them), checked before they are kept.
    JsStatus lazy_provide(const std::string& kind, uint32_t id, const emscripten::val& bytes);
    JsStatus lazy_begin();
    // Whether the listen should make a look now (lazy_look_due, core/lazy_index.h), from the
    // recognizer's window and the last lazy_begin() since the recognizer was created or reset;
    // final: the listen's length is reached.
    bool lazy_look_due(bool final) const;
    // Forgets the cached pages, units and blocks (LazyIndex::clear_cache).
    void lazy_clear_cache();
    // The window lazy_begin() was given (the caller pushes no audio in between) answered on
    // the query's candidates (and background blocks), as finish() text; "null" before a lazy
    // query is ready.
    std::string lazy_result();
    // After a lazy_result() without a song: whether a second round of candidates was begun
    // (LazyIndex::widen, when lazy_widen_due says so of the window lazy_begin() took; final as
    // for lazy_look_due); lazy_fetches(false) then names its ranges, and lazy_result() answers
    // over all the candidates.
    bool lazy_widen(bool final);
    // Runs the code of a listen once on made-up audio, with the index loaded (the whole one
    // or, lazy, the background blocks): 3 s of tones through recognizers of its own (front
    // end, music detector, network, matcher), then, lazy, a look's key planning and matcher on
    // the background blocks (LazyIndex::rehearse). Nothing is fetched and no state of the
    // engine changes. A browser runs a module's code first as baseline code and compiles it
    // again, optimized, only once it has run: without this a page's first look ran about three
    // times slower than the next ones (docs/PERFORMANCE-web.md). backend as for
    // create_recognizer.
    JsStatus warm_up(const std::string& backend);
    // JSON: preload_bytes, cached_bytes, fetches, bytes, rejected (LazyIndexStats).
    std::string lazy_info() const;
    // JSON: n_window (query embeddings in the current window), n_embeddings (since reset()),
    // max_query_embeddings, window_start_s and stream_time_s (seconds since reset()); "null"
    // before a recognizer.
    std::string query_info() const;

    // JSON: heap_bytes (the WASM memory now), max_bytes (the most it may grow to: the build's
    // MAXIMUM_MEMORY), allocated_bytes (in use by malloc). The Worker checks a file's needs
    // against these before handing it over, so an index too big for the page is a clean error.
    std::string memory_info() const;

    const std::shared_ptr<const Model>& model() const { return model_; }

private:
    std::string result_text(const RecognizerResult& result) const;

    std::shared_ptr<const Model> model_;
    std::shared_ptr<Index> index_;
    std::unique_ptr<Recognizer> recognizer_;
    std::unique_ptr<LazyIndex> lazy_;
    MatchParams lazy_match_;  // the recognizer's overrides on the lazy index's thresholds
    bool index_from_lazy_ = false;  // index_ is the preloaded lazy index, not a whole (hot) one
    int64_t last_look_embeddings_ = -1;  // the recognizer's embedding count at the last look
    std::vector<float> input_;
};

// Benchmark entry points (wasm/bench_bindings.cc), bound as Engine methods benchEmbed and
// benchFrontend; "null" before a model is loaded.
std::string bench_embed(const Engine& engine, const std::string& backend, int iterations);
std::string bench_frontend(const Engine& engine, int n_frames);

}  // namespace earshot
