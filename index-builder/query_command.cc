// `earshot query`: one JSON line per audio file, the results contract of ../shared/eval/score:
//   {"query": <file name>, "song": <id or null>, "offset_s": <float or null>, "score": <float>,
//    "ms": <float>} and the diagnostics of result_json() (core/recognizer_json.h).
// `ms` is the time spent recognising the decoded clip (front-end + network + search), without
// file decoding and resampling. --lazy answers from the ranges a lazy client reads
// (core/lazy_index.h) and adds "lazy": {"bytes", "requests", "rounds", "keys"} (with --live:
// "looks" instead of "keys").
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <mutex>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <utility>

#include "core/directory_pages.h"
#include "core/index.h"
#include "core/lazy_index.h"
#include "core/native/audio.h"
#include "core/native/pair_key_folder.h"
#include "core/native/xnnpack_embedder.h"
#include "core/recognizer.h"
#include "core/recognizer_json.h"
#include "index-builder/catalog.h"
#include "index-builder/commands.h"
#include "index-builder/progress.h"

namespace earshot::cli {
namespace {

// One look of a trace (--trace, for models.calibrate_listen): [stream time, query embeddings,
// confidence, song, song offset - window start, score, background, prior]. The score,
// background and prior too: a calibration may weigh the background otherwise than the model it
// traced with did.
nlohmann::json trace_look(const RecognizerResult& look) {
    const MatchResult& m = look.match;
    const bool has = m.has_candidates();
    return {look.stream_time_s,
            m.n_query,
            has ? double(m.confidence) : 0.0,
            has ? nlohmann::json(m.best.id) : nlohmann::json(nullptr),
            has ? m.best.offset_s - look.query_start_s : 0.0,
            has ? double(m.best.score) : 0.0,
            has ? double(m.background) : 0.0,
            has ? double(m.prior) : 0.0};
}

// A clip's final window answered as a lazy page does, with a cold cache (or, warm, with what
// this thread's earlier clips left in it): every round's ranges not held read from the
// folder's files, then the matcher on the candidates' and background songs (and, when that
// finds no song, on a second round of candidates: LazyIndex::widen); result->match is
// replaced. Returns what was read, {"bytes", "requests", "rounds"}, and "keys": the pair keys the
// query named (before the budget of postings leaves its commonest out; 0: the clip was too short
// to name one, so it had no candidate). With a log, each range read is appended to it as
// [round, kind, id] (rounds counted from first_round + 1).
Result<nlohmann::json> answer_lazily(LazyIndex* lazy, bool warm, const std::string& dir,
                                     const MatchParams& match_params, const float* embeddings,
                                     size_t n, RecognizerResult* result, bool may_widen = true,
                                     nlohmann::json* log = nullptr, uint64_t first_round = 0) {
    if (!warm) lazy->clear_cache();
    if (Status st = lazy->begin_query(embeddings, n); !st) return st;
    const size_t keys = lazy->query_keys().size();
    uint64_t bytes = 0, requests = 0, rounds = 0;
    const auto fetch_all = [&]() -> Status {
        for (;;) {
            Result<std::vector<LazyFetch>> next = lazy->next_fetches();
            if (!next) return next.status();
            if (next->empty()) return Status::ok();
            ++rounds;
            for (const LazyFetch& f : next.value()) {
                if (log) log->push_back({first_round + rounds, lazy_fetch_kind_name(f.kind), f.id});
                Result<std::vector<uint8_t>> range =
                    read_file_range((std::filesystem::path(dir) / f.file).string(), f.range);
                if (!range) return range.status();
                if (Status st = lazy->provide(f, range->data(), range->size()); !st) return st;
                bytes += f.range.size;
                ++requests;
            }
        }
    };
    if (Status st = fetch_all(); !st) return st;
    Result<MatchResult> match = lazy->match(embeddings, n, match_params);
    if (!match) return match.status();
    if (!match->matched && may_widen && lazy->widen()) {  // a second round of candidates
        if (Status st = fetch_all(); !st) return st;
        match = lazy->match(embeddings, n, match_params);
        if (!match) return match.status();
    }
    result->match = std::move(match.value());
    return nlohmann::json{
        {"bytes", bytes}, {"requests", requests}, {"rounds", rounds}, {"keys", keys}};
}

// A clip listened to as a lazy page listens (web/worker.js): the live recognizer (music gate,
// no matching of its own) takes the audio in the page's pieces, and a look (answer_lazily on
// its window, with what this listen fetched before) is made whenever lazy_look_due says so,
// and once more at the clip's end; the first look that matches is the answer, at the audio
// consumed then. A look that finds no song makes a second round when lazy_widen_due says so.
// Returns the line's fields (live_result_json's, and "lazy" with "looks"). With a trace, every look
// of the whole clip is made and recorded (after a match too): each as trace_look, with the look's
// threshold appended.
Result<nlohmann::json> listen_lazily(Recognizer* recognizer, LazyIndex* lazy, bool warm,
                                     const std::string& dir, const MatchParams& match_params,
                                     const std::vector<float>& samples, nlohmann::json* trace,
                                     bool log_requests) {
    if (!warm) lazy->clear_cache();
    nlohmann::json figures{{"bytes", 0}, {"requests", 0}, {"rounds", 0}, {"looks", 0}};
    nlohmann::json log = nlohmann::json::array();  // every look's ranges, rounds counted on
    RecognizerResult answer;
    bool matched = false;
    float last_score = 0.0f;
    int64_t last_look = -1;
    auto look = [&](bool final) -> Status {
        last_look = int64_t(recognizer->n_embeddings_total());
        RecognizerResult result = recognizer->window_result(MatchResult());
        const bool may_widen =
            lazy_widen_due(recognizer->n_query_embeddings(),
                           size_t(recognizer->params().max_query_embeddings), final);
        Result<nlohmann::json> read =
            answer_lazily(lazy, true, dir, match_params, recognizer->query_embeddings(),
                          recognizer->n_query_embeddings(), &result, may_widen,
                          log_requests ? &log : nullptr, figures["rounds"].get<uint64_t>());
        if (!read) return read.status();
        for (const char* key : {"bytes", "requests", "rounds"})
            figures[key] = figures[key].get<uint64_t>() + (*read)[key].get<uint64_t>();
        figures["looks"] = figures["looks"].get<int>() + 1;
        const MatchResult& m = result.match;
        if (m.has_candidates()) last_score = m.confidence;
        if (trace) {
            nlohmann::json record = trace_look(result);
            record.push_back(double(m.threshold));
            trace->push_back(std::move(record));
        }
        if (m.matched && !matched) {
            matched = true;
            answer = std::move(result);
        }
        return Status::ok();
    };
    auto due = [&](bool final) {
        return lazy_look_due(recognizer->n_query_embeddings(), recognizer->n_embeddings_total(),
                             size_t(recognizer->params().max_query_embeddings), lazy->early_looks(),
                             last_look, final);
    };
    for (size_t at = 0; at < samples.size() && (!matched || trace); at += kLazyListenPieceSamples) {
        const size_t n = std::min(kLazyListenPieceSamples, samples.size() - at);
        if (Status st = recognizer->push(samples.data() + at, n); !st) return st;
        if (due(false))
            if (Status st = look(false); !st) return st;
    }
    if ((!matched || trace) && due(true))
        if (Status st = look(true); !st) return st;
    nlohmann::json line;
    if (matched) {
        line = result_json(answer);
        line["answer_s"] = answer.stream_time_s;
    } else {
        line = live_result_json(nullptr);
        line["score"] = double(last_score);
    }
    if (log_requests) figures["log"] = std::move(log);
    line["lazy"] = std::move(figures);
    return line;
}

}  // namespace

int run_query(const CommonOptions& common, const QueryOptions& options) {
    auto model = load_model_file(common.model_path);
    if (!model) return fail(model.message());
    const ModelInfo& info = (*model)->info();
    auto backend = backend_from_name(common.backend);
    if (!backend) return fail(backend.message());
    // --lazy: the files a lazy page downloads first; the recognizer embeds against the
    // preloaded index (no songs), and each clip's final window is answered lazily.
    struct Preload {
        std::string manifest;
        std::vector<uint8_t> quantizer, pages_header, pair_header;
        // The background blocks' directory pages, then the blocks, in the order provided.
        std::vector<std::pair<LazyFetch, std::vector<uint8_t>>> background;
    } preload;
    LazyIndexParams lazy_params;
    lazy_params.background_blocks = uint32_t(options.lazy_background_blocks);
    lazy_params.pair_key_budget = size_t(options.lazy_pair_key_budget);
    lazy_params.first_look_pairs = size_t(options.lazy_first_look_pairs);
    lazy_params.short_look_pairs = size_t(options.lazy_short_look_pairs);
    lazy_params.both_spans_max_pairs = size_t(options.lazy_both_spans);
    lazy_params.max_candidates = size_t(options.lazy_candidates);
    lazy_params.more_candidates = size_t(options.lazy_more_candidates);
    lazy_params.wide_keys_per_pair = size_t(options.lazy_wide_keys_per_pair);
    lazy_params.wide_pair_key_budget = size_t(options.lazy_wide_key_budget);
    lazy_params.vote_slack = uint32_t(options.lazy_vote_slack);
    lazy_params.key_weight = options.lazy_key_weight;
    lazy_params.max_query_postings = options.lazy_max_postings;
    std::shared_ptr<const Index> shared_index;
    std::unique_ptr<LazyIndex> spare_lazy;  // made here, taken by a worker: one parse fewer
    if (options.lazy_warm && !options.lazy) return fail("--lazy-warm goes with --lazy");
    if (options.lazy_log && !options.lazy) return fail("--lazy-log goes with --lazy");
    if (options.lazy) {
        if (options.continuous)
            return fail(
                "--lazy answers clips, or listens with --live or --trace: it does not "
                "combine with --continuous (continuous listening needs the whole index)");
        const std::filesystem::path dir(options.index_dir);
        Result<std::vector<uint8_t>> manifest = read_file_bytes((dir / "manifest.json").string());
        if (!manifest) return fail(manifest.message());
        preload.manifest.assign(manifest->begin(), manifest->end());
        Index names(info);
        if (Status st = names.load_manifest(preload.manifest); !st) return fail(st.message());
        Result<std::optional<PairKeyManifest>> pairs =
            parse_pair_key_manifest(preload.manifest, (dir / "manifest.json").string());
        if (!pairs) return fail(pairs.message());
        Result<std::optional<DirectoryPagesManifest>> pages =
            parse_directory_pages_manifest(preload.manifest, (dir / "manifest.json").string());
        if (!pages) return fail(pages.message());
        if (!pairs->has_value() || !pages->has_value() || names.version() != kIndexVersion2)
            return fail(options.index_dir +
                        ": --lazy needs a format 2 index with a pair-key level and directory "
                        "pages (earshot build --format 2 --pair-keys 2)");
        for (auto [file, into] : {std::pair{names.manifest_quantizer_file(), &preload.quantizer},
                                  std::pair{(**pages).header_file, &preload.pages_header},
                                  std::pair{(**pairs).header_file, &preload.pair_header}}) {
            Result<std::vector<uint8_t>> bytes = read_file_bytes((dir / file).string());
            if (!bytes) return fail(bytes.message());
            *into = std::move(bytes.value());
        }
        auto lazy = LazyIndex::create(info, preload.manifest, preload.quantizer.data(),
                                      preload.quantizer.size(), preload.pages_header.data(),
                                      preload.pages_header.size(), preload.pair_header.data(),
                                      preload.pair_header.size(), lazy_params);
        if (!lazy) return fail(options.index_dir + ": " + lazy.message());
        uint64_t background_bytes = 0;
        for (auto round = (*lazy)->preload_fetches(); !round.empty();
             round = (*lazy)->preload_fetches()) {
            for (const LazyFetch& f : round) {
                Result<std::vector<uint8_t>> bytes =
                    read_file_range((dir / f.file).string(), f.range);
                if (!bytes) return fail(bytes.message());
                if (Status st = (*lazy)->provide(f, bytes->data(), bytes->size()); !st)
                    return fail(st.message());
                background_bytes += bytes->size();
                preload.background.emplace_back(f, std::move(bytes.value()));
            }
        }
        if (!common.quiet)
            std::fprintf(stderr,
                         "earshot: lazy: %.2f MB read before the first query (%.2f MB of it "
                         "%zu background blocks and their directory pages)\n",
                         double((*lazy)->preload_bytes() + background_bytes) / 1e6,
                         double(background_bytes) / 1e6, (*lazy)->background_blocks().size());
        shared_index = std::make_shared<Index>((*lazy)->base());
        spare_lazy = std::move(lazy.value());  // the first worker's
    } else {
        auto index = load_index_folder(options.index_dir, info);
        if (!index) return fail(index.message());
        shared_index = *index;
    }
    auto paths = expand_audio_paths(options.inputs);
    if (!paths) return fail(paths.message());
    if (paths->empty()) return fail("no query files given");

    // The flags given, as the overrides the browser passes too (0 and NaN: not given).
    nlohmann::json overrides = nlohmann::json::object();
    if (options.query_hop_frames > 0) overrides["query_hop_frames"] = options.query_hop_frames;
    if (options.max_query_embeddings > 0)
        overrides["max_query_embeddings"] = options.max_query_embeddings;
    if (options.nprobe > 0) overrides["nprobe"] = options.nprobe;
    if (!std::isnan(options.max_drift)) overrides["max_drift"] = options.max_drift;
    if (!std::isnan(options.prior_weight)) overrides["prior_weight"] = options.prior_weight;
    if (!std::isnan(options.prior_offset)) overrides["prior_offset"] = options.prior_offset;
    if (!std::isnan(options.threshold_base)) overrides["threshold_base"] = options.threshold_base;
    if (!std::isnan(options.threshold_scale))
        overrides["threshold_scale"] = options.threshold_scale;
    // Offline, the decision is taken once on the whole clip (the last max_query_embeddings
    // embeddings) at finish(). --live decides as the page does: the music gate, a look after
    // every embedding and the listen rule (core/listen.h), one answer per clip with answer_s.
    const bool live = options.live || options.continuous || !options.trace_path.empty();
    // --live --lazy (or --trace --lazy): each clip is a lazy page's listen (listen_lazily).
    const bool lazy_listen = options.lazy && live;
    // --live --lazy: the recognizer never matches by itself (as a lazy page's): looks do.
    overrides["match_every_embeddings"] =
        live && !lazy_listen ? 1 : std::numeric_limits<int>::max();
    if (options.no_music_detector) overrides["music_detector"] = false;
    RecognizerParams params = recognizer_default_params(info, *shared_index);
    if (Status st = apply_recognizer_overrides(overrides, &params); !st) return fail(st.message());
    params.live = live;
    if (!options.speed_stretches.empty()) {
        params.speed.stretches = options.speed_stretches;
        if (params.speed.threshold_by_n.empty()) {
            if (options.speed_search != "always")
                return fail(
                    "--speed-stretches: the model has no speed table for this index's "
                    "code; only --speed-search always can run without one");
            params.speed.threshold_by_n = {1.0f};  // nothing answers: the lines say the best
        }
    }
    // --lazy answers from the window finish() leaves, which the speed search replays away.
    if (options.speed_search == "off" || options.lazy) params.speed.stretches.clear();
    if (options.speed_search == "always") {
        if (params.speed.stretches.empty())
            return fail(
                "--speed-search always: the model has no speed search for this index's "
                "code (metadata speed_search): give --speed-stretches");
        params.speed.always = true;
    }
    params.listen.max_listen_s = 0.0;  // a clip's listen lasts as long as the clip
    params.listen.continuous = options.continuous;
    std::ofstream trace_out;
    if (!options.trace_path.empty()) {
        trace_out.open(options.trace_path);
        if (!trace_out) return fail("cannot write " + options.trace_path);
        // Every look of the whole clip is recorded: a rule that never commits.
        params.listen.threshold_by_n = {std::numeric_limits<float>::max()};
    }
    if (Status st = check_recognizer_params(params); !st) return fail(st.message());
    std::vector<std::string> traces(paths->size());

    std::ofstream file_out;
    if (!options.output.empty()) {
        file_out.open(options.output);
        if (!file_out) return fail("cannot write " + options.output);
    }
    std::ostream& out = options.output.empty() ? std::cout : file_out;

    std::vector<std::string> lines(paths->size());
    std::vector<bool> ready(paths->size(), false);
    size_t next_to_print = 0;
    std::mutex mutex;
    std::string thread_error;
    size_t n_failed = 0;
    size_t n_keyless = 0;  // --lazy clips that named no pair key
    std::atomic<size_t> next{0};
    Progress progress("querying", paths->size(), !common.quiet && !options.output.empty());

    auto worker = [&]() {
        auto embedder = create_embedder_any(*model, *backend);
        if (!embedder) {
            std::lock_guard<std::mutex> lock(mutex);
            thread_error = embedder.message();
            return;
        }
        auto recognizer = Recognizer::create(*model, shared_index, std::move(*embedder), params);
        if (!recognizer) {
            std::lock_guard<std::mutex> lock(mutex);
            thread_error = recognizer.message();
            return;
        }
        std::unique_ptr<LazyIndex> lazy_index;  // --lazy: this thread's, cleared per clip
        {
            std::lock_guard<std::mutex> lock(mutex);
            lazy_index = std::move(spare_lazy);
        }
        if (options.lazy && !lazy_index) {
            auto created = LazyIndex::create(
                info, preload.manifest, preload.quantizer.data(), preload.quantizer.size(),
                preload.pages_header.data(), preload.pages_header.size(),
                preload.pair_header.data(), preload.pair_header.size(), lazy_params);
            if (!created) {
                std::lock_guard<std::mutex> lock(mutex);
                thread_error = created.message();
                return;
            }
            lazy_index = std::move(created.value());
            for (const auto& [fetch, bytes] : preload.background)  // checked once already
                if (Status st = lazy_index->provide(fetch, bytes.data(), bytes.size()); !st) {
                    std::lock_guard<std::mutex> lock(mutex);
                    thread_error = st.message();
                    return;
                }
        }
        for (size_t i = next++; i < paths->size(); i = next++) {
            const std::string& path = (*paths)[i];
            nlohmann::json line;
            line["query"] = std::filesystem::path(path).filename().string();
            auto audio = load_audio(path, info.frontend.sample_rate_hz);
            if (!audio) {
                std::fprintf(stderr, "earshot: skipping %s: %s\n", path.c_str(),
                             audio.message().c_str());
                line["song"] = nullptr;
                line["offset_s"] = nullptr;
                line["score"] = 0.0;
                line["error"] = audio.message();
            } else {
                const auto start = std::chrono::steady_clock::now();
                (*recognizer)->reset();
                Status st;
                nlohmann::json looks = nlohmann::json::array();  // --trace: this clip's
                if (lazy_listen) {
                    Result<nlohmann::json> listened =
                        listen_lazily(recognizer->get(), lazy_index.get(), options.lazy_warm,
                                      options.index_dir, params.match, audio->samples,
                                      trace_out.is_open() ? &looks : nullptr, options.lazy_log);
                    if (listened)
                        line.update(listened.value());
                    else
                        st = listened.status();
                } else if (trace_out.is_open()) {
                    // One look per query embedding: push a query hop at a time and record each.
                    const size_t hop = size_t(params.query_hop_frames > 0 ? params.query_hop_frames
                                                                          : info.query_hop_frames) *
                                       size_t(info.frontend.hop_length);
                    const size_t n = audio->samples.size();
                    for (size_t at = 0; at < n && st; at += hop) {
                        st = (*recognizer)->push(audio->samples.data() + at,
                                                 std::min(hop, n - at));
                        RecognizerResult look;
                        if (!(*recognizer)->poll(&look) || !look.valid) continue;
                        looks.push_back(trace_look(look));
                    }
                } else {
                    st = (*recognizer)->push(audio->samples.data(), audio->samples.size());
                }
                if (trace_out.is_open())
                    traces[i] = nlohmann::json{{"query", line["query"]}, {"looks", looks}}.dump();
                RecognizerResult result;
                if (!lazy_listen) result = (*recognizer)->finish();
                if (options.lazy && !live && st && result.valid) {
                    nlohmann::json log = nlohmann::json::array();
                    Result<nlohmann::json> lazy = answer_lazily(
                        lazy_index.get(), options.lazy_warm, options.index_dir, params.match,
                        (*recognizer)->query_embeddings(), (*recognizer)->n_query_embeddings(),
                        &result, true, options.lazy_log ? &log : nullptr);
                    if (lazy) {
                        line["lazy"] = std::move(lazy.value());
                        if (options.lazy_log) line["lazy"]["log"] = std::move(log);
                    } else {
                        st = lazy.status();
                    }
                }
                const double ms = std::chrono::duration<double, std::milli>(
                                      std::chrono::steady_clock::now() - start)
                                      .count();
                if (options.continuous) {
                    // Every event of the session, in order (the page's continuous mode).
                    nlohmann::json events = nlohmann::json::array();
                    ListenEvent event;
                    while ((*recognizer)->poll_event(&event)) events.push_back(listen_event_json(event));
                    line["audio_s"] = double(audio->samples.size()) / info.frontend.sample_rate_hz;
                    line["events"] = std::move(events);
                } else if (!lazy_listen) {
                    line.update(live ? live_result_json((*recognizer)->answer())
                                     : result_json(result));
                    if (const RecognizerResult* speed = (*recognizer)->speed_result();
                        speed && params.speed.always)
                        line["speed_search"] = speed_search_json(*speed);
                }
                line["ms"] = ms;
                if (!st) {  // a failed push leaves no decision
                    line["song"] = nullptr;
                    line["offset_s"] = nullptr;
                    line["error"] = st.message();
                }
            }
            progress.advance();
            std::lock_guard<std::mutex> lock(mutex);
            if (line.contains("error")) ++n_failed;
            if (line.contains("lazy") && line["lazy"].value("keys", size_t(1)) == 0) ++n_keyless;
            lines[i] = json_text(line);
            ready[i] = true;
            // Print in input order, as soon as possible.
            while (next_to_print < lines.size() && ready[next_to_print]) {
                out << lines[next_to_print] << '\n';
                ++next_to_print;
            }
            out.flush();
        }
    };
    // An exception in a worker (out of memory, a library's error) ends that thread's queries
    // with a message and exit code 1 instead of std::terminate.
    auto guarded_worker = [&]() {
        try {
            worker();
        } catch (const std::bad_alloc&) {
            std::lock_guard<std::mutex> lock(mutex);
            thread_error = "out of memory while querying";
        } catch (const std::exception& e) {
            std::lock_guard<std::mutex> lock(mutex);
            thread_error = std::string("unexpected error while querying: ") + e.what();
        }
    };
    const int n_threads = std::min<int>(resolve_jobs(common.jobs), int(paths->size()));
    std::vector<std::thread> threads;
    for (int t = 0; t < n_threads; ++t) threads.emplace_back(guarded_worker);
    for (std::thread& t : threads) t.join();
    progress.finish();
    for (const std::string& trace : traces)
        if (!trace.empty()) trace_out << trace << '\n';
    if (!thread_error.empty()) return fail(thread_error);
    if (n_keyless > 0 && !common.quiet)
        std::fprintf(stderr,
                     "earshot: %zu of %zu clips were too short for a lazy query (no two "
                     "embeddings a pair-key span apart: with the default spans, about 1.5 s of "
                     "audio on an index built with short keys, 2.5 s without) and got no "
                     "answer\n",
                     n_keyless, paths->size());
    if (n_failed > 0) {
        std::fprintf(stderr, "earshot: %zu of %zu queries could not be read\n", n_failed,
                     paths->size());
        return kExitPartial;
    }
    return kExitOk;
}

}  // namespace earshot::cli
