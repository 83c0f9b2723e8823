// `earshot build`: check the index options against the model, decode + resample every catalog
// file, embed it at the model's hop on all cores, train the quantizer, write the sharded index
// atomically. It streams: songs are embedded at most a few per thread ahead of the builder,
// which takes them in catalogue order and drops their floats once encoded, and each shard is
// written to the staging folder as soon as it is full, so memory does not grow with the
// catalogue (the builder's pending vectors before training, ~2 GB, are the bound).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <mutex>
#include <new>
#include <numeric>
#include <thread>

#include "core/embed_signal.h"
#include "core/index_builder.h"
#include "core/native/audio.h"
#include "core/native/pair_key_spill_files.h"
#include "core/native/xnnpack_embedder.h"
#include "index-builder/catalog.h"
#include "index-builder/commands.h"
#include "index-builder/files.h"
#include "index-builder/progress.h"

namespace earshot::cli {

namespace {

struct SongWork {
    CatalogEntry entry;
    double log_prior = 0.0;    // from the catalogue's popularity column (catalog_log_priors)
    GatedEmbeddings embedded;  // freed once the builder has the song
    double duration_s = 0.0;
    std::string error;  // non-empty: skipped
    bool done = false;  // embedded or failed (under the pipeline's mutex)
};

// validate_index_build_params() messages start with the parameter's name: prefix the option
// that sets it.
std::string build_option_error(const Status& status) {
    static const char* const kOptions[][2] = {
        {"n_lists ", "--lists"},         {"pq_m ", "--pq-m"},
        {"opq_rounds ", "--opq"},        {"max_shard_bytes ", "--shard-mb or --block-kb"},
        {"format_version ", "--format"}, {"pair_short_span", "--pair-short-keys"},
        {"code_group ", "--group"},      {"pair_span", "--pair-keys"},
        {"pair_lists ", "--pair-lists"}};
    for (const auto& [field, option] : kOptions) {
        if (status.message().rfind(field, 0) == 0)
            return std::string(option) + ": " + status.message();
    }
    return status.message();
}

}  // namespace

int run_build(const CommonOptions& common, const BuildOptions& options) {
    auto model = load_model_file(common.model_path);
    if (!model) return fail(model.message());
    const ModelInfo& info = (*model)->info();
    auto backend = backend_from_name(common.backend);
    if (!backend) return fail(backend.message());
    // Bad index options fail here, before any audio is decoded or embedded.
    IndexBuildParams params = index_build_default_params(info);
    params.n_lists = options.n_lists;  // 0: by the catalogue's size when the builder trains
    apply_code_options(&params, options.pq_m, options.opq_rounds, options.unit_norm,
                       options.code_group);
    params.format_version = options.format;
    const size_t block_bytes = options.block_kb > 0      ? size_t(options.block_kb * 1024.0)
                               : options.pair_keys_s > 0 ? kLazyBlockBytes
                                                         : kDefaultBlockBytes;
    params.max_shard_bytes =
        options.format == kIndexVersion2 ? block_bytes : size_t(options.shard_mb * 1024.0 * 1024.0);
    if (options.pair_lists != 1 && options.pair_keys_s <= 0)
        return fail("--pair-lists goes with --pair-keys (it sets the pair-key level's keys)");
    if (options.pair_keys_s > 0) {
        params.pair_span = pair_span_hops(info, options.pair_keys_s);
        if (options.pair_short_keys_s > 0)
            params.pair_short_span = pair_span_hops(info, options.pair_short_keys_s);
        params.pair_lists = uint32_t(options.pair_lists);
    }
    // --quantizer-from: the code and the lists are that index's (its manifest and quantizer,
    // checked as `query` checks them, so a tampered or other-model index is refused before any
    // audio; its songs are not read).
    std::shared_ptr<Index> quantizer_source;
    if (!options.quantizer_from.empty()) {
        if (options.n_lists > 0 || options.pq_m > 0 || options.opq_rounds >= 0 ||
            options.unit_norm >= 0 || options.code_group > 0)
            return fail(
                "--quantizer-from: the code and the lists come from that index; leave out "
                "--lists, --pq-m, --opq, --unit-norm and --group");
        auto source = load_index_quantizer(options.quantizer_from, info);
        if (!source) return fail("--quantizer-from: " + source.message());
        quantizer_source = *source;
        if (!quantizer_source->has_quantizer())
            return fail("--quantizer-from: " + options.quantizer_from + " holds no quantizer");
        const Quantizer& q = quantizer_source->quantizer();
        params.n_lists = q.n_lists;
        params.pq_m = q.pq_m;
        params.code_group = q.group;
        params.unit_norm = q.unit_norm;
    }
    if (Status st = validate_index_build_params(params, info); !st) {
        return fail(build_option_error(st));
    }
    recover_interrupted_write(options.out_dir);

    const StoreRule store = options.store == "all"     ? StoreRule::kAll
                            : options.store == "level" ? StoreRule::kLevel
                                                       : StoreRule::kMusic;

    auto catalog = read_catalog(options.input);
    if (!catalog) return fail(catalog.message());
    // --top: the catalogue's most popular songs (a lazy page's hot tier), in catalogue order;
    // their priors stay those of the whole catalogue.
    const std::vector<double> log_priors = catalog_log_priors(*catalog);
    std::vector<size_t> kept(catalog->size());
    std::iota(kept.begin(), kept.end(), size_t(0));
    if (options.top > 0) {
        if (std::none_of(catalog->begin(), catalog->end(),
                         [](const CatalogEntry& e) { return e.popularity >= 0.0; }))
            return fail("--top needs a catalogue with a popularity column: " + options.input +
                        " gives no song a popularity");
        std::stable_sort(kept.begin(), kept.end(), [&](size_t a, size_t b) {
            return (*catalog)[a].popularity > (*catalog)[b].popularity;  // unknown (-1) last
        });
        kept.resize(std::min(kept.size(), size_t(options.top)));
        std::sort(kept.begin(), kept.end());
    }
    std::vector<SongWork> work(kept.size());
    for (size_t i = 0; i < work.size(); ++i) {
        work[i].entry = (*catalog)[kept[i]];
        work[i].log_prior = log_priors[kept[i]];
    }
    {
        std::map<std::string, size_t> ids;
        for (const SongWork& w : work) {
            if (++ids[w.entry.id] == 2) {
                return fail("song id '" + w.entry.id + "' appears twice in " + options.input +
                            ": ids must be unique");
            }
        }
    }

    const int n_threads = std::min<int>(resolve_jobs(common.jobs), int(work.size()));
    params.expected_songs = work.size();
    auto builder = IndexBuilder::create(info, params);
    if (!builder) return fail(build_option_error(builder.status()));
    if (quantizer_source) {
        if (Status st = builder->set_quantizer(quantizer_source->quantizer()); !st)
            return fail("--quantizer-from: " + st.message());
        quantizer_source.reset();
    }
    auto staged = StagedFolder::create(options.out_dir);
    if (!staged) return fail(staged.message());
    // Format 2 hands every block as the same file (songs.esb): appended in order.
    builder->set_shard_sink([&](const std::string& file, std::vector<uint8_t> bytes) {
        return params.format_version == kIndexVersion2 ? staged->append(file, bytes)
                                                       : staged->write(file, bytes);
    });
    if (params.pair_span > 0) {  // the pair-key level is sorted on disk ($TMPDIR)
        auto spill = TempFilePairKeySpill::create("");
        if (!spill) return fail(spill.message());
        builder->set_pair_spill(std::move(spill.value()));
    }

    std::fprintf(stderr, "earshot: embedding %zu files with %s on %d threads (model %s)\n",
                 work.size(), backend_name(*backend), n_threads, info.name.c_str());
    Progress progress("embedding", work.size(), !common.quiet);
    // The pipeline: workers embed song i only once the builder has taken song i - window, so at
    // most `window` songs' floats (each at most 2 hours of audio) wait at any time.
    const size_t window = size_t(4 * n_threads);
    std::mutex mutex;
    std::condition_variable changed;
    size_t next = 0, taken = 0;
    int running = n_threads;
    bool stop = false;
    std::string thread_error;
    // One song's work; an exception (out of memory on a huge file, a library's error) skips
    // that song with a message instead of reaching std::terminate.
    auto process = [&](SongWork& w, Frontend& frontend, Embedder& embedder,
                       MusicDetector* detector) {
        try {
            auto audio = load_audio(w.entry.path, info.frontend.sample_rate_hz);
            if (!audio) {
                w.error = audio.message();
                return;
            }
            const std::vector<float>& pcm = audio->samples;
            w.duration_s = double(pcm.size()) / info.frontend.sample_rate_hz;
            w.embedded = embed_signal_gated(info, frontend, embedder, detector, store, pcm.data(),
                                            pcm.size(), info.hop_frames);
            if (w.embedded.n_windows == 0) {
                w.error = "shorter than one embedding window (" + std::to_string(w.duration_s) +
                          " s)";
            }
        } catch (const std::bad_alloc&) {
            w.embedded = GatedEmbeddings();
            w.error = "out of memory while decoding or embedding it";
        } catch (const std::exception& e) {
            w.embedded = GatedEmbeddings();
            w.error = std::string("unexpected error: ") + e.what();
        }
    };
    auto worker = [&]() {
        auto set_thread_error = [&](const std::string& message) {
            std::lock_guard<std::mutex> lock(mutex);
            thread_error = message;
            stop = true;
        };
        try {
            auto embedder = create_embedder_any(*model, *backend);
            auto frontend = Frontend::create(info.frontend);
            std::unique_ptr<MusicDetector> detector;
            if (store == StoreRule::kMusic && (*model)->music_detector()) {
                auto created = MusicDetector::create(*(*model)->music_detector());
                if (!created) return set_thread_error(created.message());
                detector = std::move(created.value());
            }
            if (!embedder) return set_thread_error(embedder.message());
            if (!frontend) return set_thread_error(frontend.message());
            for (;;) {
                size_t i;
                {
                    std::unique_lock<std::mutex> lock(mutex);
                    changed.wait(
                        lock, [&] { return stop || next >= work.size() || next < taken + window; });
                    if (stop || next >= work.size()) return;
                    i = next++;
                }
                process(work[i], **frontend, **embedder, detector.get());
                progress.advance();
                {
                    std::lock_guard<std::mutex> lock(mutex);
                    work[i].done = true;
                }
                changed.notify_all();
            }
        } catch (const std::bad_alloc&) {
            set_thread_error("out of memory while setting up a worker thread");
        } catch (const std::exception& e) {
            set_thread_error(std::string("unexpected error in a worker thread: ") + e.what());
        }
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < n_threads; ++t) {
        threads.emplace_back([&] {
            worker();
            {
                std::lock_guard<std::mutex> lock(mutex);
                --running;
            }
            changed.notify_all();
        });
    }
    // Ends the pipeline: workers stop taking songs, the threads are joined.
    auto stop_workers = [&] {
        {
            std::lock_guard<std::mutex> lock(mutex);
            stop = true;
        }
        changed.notify_all();
        for (std::thread& t : threads) t.join();
        threads.clear();
    };
    // Joined on every way out, an exception from the builder (out of memory) included.
    struct JoinOnExit {
        std::function<void()> join;
        ~JoinOnExit() { join(); }
    } join_on_exit{stop_workers};

    // The builder takes the songs in catalogue order as they are ready.
    std::vector<const SongWork*> skipped;
    size_t n_windows = 0, n_stored = 0, n_level_fallback = 0;
    std::string build_error;
    for (size_t i = 0; i < work.size() && build_error.empty(); ++i) {
        {
            std::unique_lock<std::mutex> lock(mutex);
            changed.wait(lock, [&] { return work[i].done || running == 0 || stop; });
            if (!work[i].done) break;  // a worker failed: thread_error says why
        }
        SongWork& w = work[i];
        if (!w.error.empty()) {
            skipped.push_back(&w);
        } else {
            SongInfo song{w.entry.id, w.entry.title, w.entry.album, w.duration_s};
            song.popularity = w.entry.popularity;
            song.log_prior = w.log_prior;
            Status st = builder->add_song(song, w.embedded.embedding.data(), w.embedded.n_windows,
                                          w.embedded.stored.data());
            if (!st) build_error = "song " + w.entry.id + ": " + st.message();
            n_windows += w.embedded.n_windows;
            n_stored += w.embedded.n_stored;
            n_level_fallback += w.embedded.level_fallback;
        }
        w.embedded = GatedEmbeddings();  // the builder has the song now
        {
            std::lock_guard<std::mutex> lock(mutex);
            taken = i + 1;
        }
        changed.notify_all();
    }
    stop_workers();
    progress.finish();
    if (!thread_error.empty()) return fail(thread_error);
    if (!build_error.empty()) return fail(build_error);
    std::fprintf(stderr,
                 "earshot: storing %zu of %zu windows (--store %s: %zu near-silent or not music "
                 "left out%s)\n",
                 n_stored, n_windows, options.store.c_str(), n_windows - n_stored,
                 n_level_fallback ? (", " + std::to_string(n_level_fallback) +
                                     " song(s) the detector rejects mostly kept under level")
                                        .c_str()
                                  : "");
    if (skipped.size() == work.size()) {
        for (const SongWork* w : skipped) {
            std::fprintf(stderr, "  skipped %s: %s\n", w->entry.path.c_str(), w->error.c_str());
        }
        return fail("no input file could be read: nothing to index");
    }
    if (!builder->trained()) {
        std::fprintf(stderr, "earshot: training the quantizer (%s, %s %d x 8 bits%s)\n",
                     params.n_lists
                         ? (std::to_string(params.n_lists) + " lists").c_str()
                         : (std::to_string(index_auto_lists(n_stored)) + " lists").c_str(),
                     params.opq_rounds > 0 ? "OPQ" : "PQ", params.pq_m,
                     params.code_group > 1
                         ? (" per " + std::to_string(params.code_group) + " windows").c_str()
                         : "");
    }
    auto files = builder->finish();
    if (!files) return fail(files.message());
    for (const auto& [name, bytes] : files->files) {
        Status st = staged->write(name, bytes);
        if (!st) return fail(st.message());
    }
    Status st = staged->commit();
    if (!st) return fail(st.message());

    std::fprintf(stderr,
                 "earshot: wrote %s: %zu songs, %.1f min of audio, %zu files, %zu bytes "
                 "(%.0f bytes per song, %.0f bytes per minute)\n",
                 options.out_dir.c_str(), files->n_songs, files->duration_s / 60.0, files->n_files,
                 files->total_bytes, files->bytes_per_song, files->bytes_per_minute);
    if (!skipped.empty()) {
        std::fprintf(stderr, "earshot: skipped %zu unreadable file(s):\n", skipped.size());
        for (const SongWork* w : skipped) {
            std::fprintf(stderr, "  %s: %s\n", w->entry.path.c_str(), w->error.c_str());
        }
        return kExitPartial;
    }
    return kExitOk;
}

}  // namespace earshot::cli
