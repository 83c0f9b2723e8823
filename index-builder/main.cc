// earshot: build and query music-recognition indexes from the command line.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <string>

#include <CLI/CLI.hpp>

#include "core/quantizer.h"  // kMaxOpqRounds
#include "index-builder/commands.h"

namespace {

std::string default_model_path() {
    if (const char* env = std::getenv("EARSHOT_MODEL")) return env;
    return EARSHOT_DEFAULT_MODEL;
}

void add_common(CLI::App* cmd, earshot::cli::CommonOptions& common, bool with_backend) {
    cmd->add_option("-m,--model", common.model_path, "model file (.emod)")
        ->capture_default_str();
    if (!with_backend) return;
    cmd->add_option("-b,--backend", common.backend, "embedding backend: xnnpack, simd or scalar")
        ->capture_default_str();
    cmd->add_option("-j,--jobs", common.jobs, "worker threads (0 = all cores)")
        ->capture_default_str();
    cmd->add_flag("-q,--quiet", common.quiet, "no progress bar");
}

}  // namespace

int main(int argc, char** argv) {
    using namespace earshot::cli;
    CLI::App app{"earshot: build and query music-recognition indexes (log-mel -> neural "
                 "embeddings -> IVF-PQ index).\nExit codes: 0 ok, 1 error, 2 usage, 3 done but "
                 "some input files were unreadable (they are listed)."};
    app.require_subcommand(1);
    app.set_version_flag("--version", "earshot 0.1.0");

    CommonOptions common;
    common.model_path = default_model_path();

    BuildOptions build;
    CLI::App* build_cmd = app.add_subcommand(
        "build",
        "index a folder of audio files (searched recursively) or a TSV catalog with "
        "id, path, title, album columns (and optionally popularity: plays or any "
        "count >= 0, for the popularity-weighted decision)\n"
        "  e.g. earshot build --out my-index ~/Music");
    add_common(build_cmd, common, true);
    build_cmd->add_option("input", build.input, "folder of audio files or catalog .tsv")
        ->required();
    build_cmd->add_option("-o,--out", build.out_dir, "index folder to write (replaced atomically)")
        ->required();
    build_cmd->add_option("--lists", build.n_lists,
                          "coarse partitions (IVF lists; 0 = by catalogue size: 256 up to "
                          "~190 000 embeddings, then the power of two nearest their square "
                          "root, at most 4096)")
        ->capture_default_str()->check(CLI::Range(0, 65536));
    // The model names the default code, the one its main no-match thresholds were calibrated
    // for; other codes use the model's table for them when it has one (earshot info). Any of
    // the four code options names a whole code: those not given take the plain code's values.
    build_cmd
        ->add_option("--pq-m", build.pq_m,
                     "PQ sub-quantizers = bytes per code (0 = the model's default code, "
                     "`earshot info` names it; with any of --pq-m, --opq, --unit-norm, "
                     "--group the code is what they say, the others at none / off / 1; "
                     "--pq-m 32 alone: 32 bytes a window; docs/SCALE.md)")
        ->capture_default_str()
        ->check(CLI::Range(0, 256));
    build_cmd
        ->add_option("--opq", build.opq_rounds,
                     "learn a rotation of the residuals before PQ (OPQ) in this many rounds "
                     "(0 = none, -1 = as the model's default code or, with another code "
                     "option, none); about halves the PQ error")
        ->capture_default_str()
        ->check(CLI::Range(-1, earshot::kMaxOpqRounds));
    // A flag function: an int flag variable would count occurrences, and be 0 when absent.
    // The count is +1 per --unit-norm and -1 per --no-unit-norm: unit-length scores when > 0.
    build_cmd->add_flag_function(
        "--unit-norm,!--no-unit-norm",
        [&build](std::int64_t count) { build.unit_norm = count > 0 ? 1 : 0; },
        "score against reconstructions scaled to unit length, as the embeddings "
        "are, or not (default: as the model's default code or, with another "
        "code option, not): a clearer line between matches and non-matches "
        "with small codes");
    build_cmd
        ->add_option("--group", build.code_group,
                     "code this many consecutive windows together in --pq-m bytes (--pq-m / "
                     "--group bytes a window; 0 = as the model's default code or, with another "
                     "code option, 1): --pq-m 32 --group 5 --opq 10 --unit-norm is the shipped "
                     "model's default, 1.7 KB a minute (docs/SCALE.md)")
        ->capture_default_str()
        ->check(CLI::Range(0, earshot::kMaxCodeGroup));
    build_cmd
        ->add_option("--format", build.format,
                     "index format: 1 (a file per shard, listed in the manifest) or 2 (small "
                     "blocks of songs in one file, each hashed in a directory, so a page can "
                     "fetch and check any block with one Range request)")
        ->capture_default_str()
        ->check(CLI::IsMember({1, 2}));
    build_cmd->add_option("--shard-mb", build.shard_mb, "format 1: maximum shard size in MB")
        ->capture_default_str()
        ->check(CLI::Range(0.01, 1024.0));
    build_cmd
        ->add_option("--block-kb", build.block_kb,
                     "format 2: maximum block size in KB (a song is never split; default 64; "
                     "with --pair-keys one song a block: a lazy page fetches a candidate's "
                     "whole block)")
        ->check(CLI::Range(1.0, 1048576.0));
    build_cmd
        ->add_option("--pair-keys", build.pair_keys_s,
                     "format 2: also write the time-pair key level (pairs.ek*) that a lazy page "
                     "fetches a query's postings from, keying each window by its list and the "
                     "list of the window SECONDS later (2 is the studied value; 0 = none)")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 600.0));
    build_cmd
        ->add_option("--pair-short-keys", build.pair_short_keys_s,
                     "with --pair-keys: key each window a second time with the window SECONDS "
                     "later (below --pair-keys), so clips too short for a pair --pair-keys apart "
                     "(2 s clips) get a lazy answer; twice the level's postings; 0 = none")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 600.0));
    build_cmd
        ->add_option("--pair-lists", build.pair_lists,
                     "with --pair-keys: coarse lists each window's keys take, 1 or 2 (2: also "
                     "the keys of the windows' second nearest lists, so a noisy query still "
                     "meets songs whose lists were not cut for them; up to 4 times the "
                     "level's postings)")
        ->capture_default_str()
        ->check(CLI::Range(1, 2));
    build_cmd
        ->add_option("--top", build.top,
                     "index only the N most popular songs of a catalogue with a popularity "
                     "column (ties and unknown popularities in catalogue order): the hot tier "
                     "a lazy page loads whole (hotIndexUrl) beside the whole catalogue's index")
        ->check(CLI::Range(1, 1 << 30));
    build_cmd->add_option(
        "--quantizer-from", build.quantizer_from,
        "code the songs with the quantizer of this index (built with the same model; its "
        "manifest and quantizer are read and checked, not its songs) instead of training one: to "
        "add songs to a catalogue with the same codes, or to measure codes of songs their "
        "quantizer never saw; the code and the lists come from it, so --lists, --pq-m, --opq, "
        "--unit-norm and --group are refused with it");
    build_cmd->add_option("--store", build.store,
                          "which windows of a song to store: level (all but the near-silent), "
                          "music (level, and what the model's music detector calls music; a "
                          "song the detector rejects mostly keeps its non-silent windows; "
                          "smaller, but clips of quiet passages are found less often), all")
        ->capture_default_str()->check(CLI::IsMember({"music", "level", "all"}));

    QueryOptions query;
    CLI::App* query_cmd = app.add_subcommand(
        "query", "recognise audio files: one JSON line per file on stdout\n"
                 "  e.g. earshot query --index my-index clip1.wav clips/");
    add_common(query_cmd, common, true);
    query_cmd->add_option("-i,--index", query.index_dir, "index folder")->required();
    query_cmd->add_option("inputs", query.inputs, "audio files or folders")->required();
    query_cmd->add_option("-o,--output", query.output, "write the JSON lines to this file");
    query_cmd->add_option("--query-hop-frames", query.query_hop_frames,
                          "frames between query embeddings (0 = the model's query hop)")
        ->capture_default_str();
    query_cmd->add_option("--max-query-embeddings", query.max_query_embeddings,
                          "sliding window of query embeddings matched at once (0 = 10 s)")
        ->capture_default_str()->check(CLI::Range(0, 1000));
    query_cmd->add_option("--nprobe", query.nprobe,
                          "coarse lists searched per query embedding (0 = default, 8)")
        ->capture_default_str()->check(CLI::Range(0, 65536));
    query_cmd
        ->add_option("--max-drift", query.max_drift,
                     "playback-rate drift the re-score aligns for, e.g. 0.02 for songs "
                     "played up to 2 % fast or slow (default: the model's)")
        ->check(CLI::Range(0.0, 0.1));
    query_cmd
        ->add_option("--prior-weight", query.prior_weight,
                     "popularity-weighted decision: confidence + W * log_prior / sqrt(n) "
                     "for songs with a catalogue popularity (default: the model's)")
        ->check(CLI::Range(0.0, 1.0));
    query_cmd
        ->add_option("--prior-offset", query.prior_offset,
                     "subtracted from the confidence with --prior-weight (default: the "
                     "model's)")
        ->check(CLI::Range(-0.5, 0.5));
    query_cmd->add_option("--threshold-base", query.threshold_base,
                          "override the model's no-match threshold: base + scale/sqrt(n)");
    query_cmd->add_option("--threshold-scale", query.threshold_scale,
                          "override the model's threshold scale (see --threshold-base)");
    query_cmd
        ->add_option("--speed-search", query.speed_search,
                     "clips that find no song as played are played again 1-2 % slower and "
                     "faster (the model's stretches and table): auto (when the model has "
                     "them), off, or always (every stretch for every clip; each line gains "
                     "\"speed_search\", the best stretch's match, for calibration)")
        ->check(CLI::IsMember({"auto", "off", "always"}))
        ->capture_default_str();
    query_cmd
        ->add_option("--speed-stretches", query.speed_stretches,
                     "--speed-search: these stretches instead of the model's (1.02 plays a "
                     "clip 2 % slower); with always, a model without a speed table may be "
                     "used (no stretch then answers: calibration)")
        ->delimiter(',')
        ->check(CLI::Range(0.9, 1.1));
    query_cmd->add_option("--trace", query.trace_path,
                          "write every look (the match after each query embedding) of every clip "
                          "to this JSON-lines file, for models.calibrate_listen (with --lazy: "
                          "every lazy look of the listen, with its threshold)");
    query_cmd->add_flag("--continuous", query.continuous,
                        "live, and keep listening as the page's continuous mode does: one JSON "
                        "line per file with every event (match, returned, music-stopped) and "
                        "its answer_s");
    query_cmd->add_flag("--no-music-detector", query.no_music_detector,
                        "live: gate on the level alone, without the model's music detector (to "
                        "measure what the detector adds)");
    query_cmd->add_flag("--lazy", query.lazy,
                        "answer each clip as a page in lazy mode does: read only the pair-key "
                        "pages and units and the candidate blocks it needs (format 2 with "
                        "--pair-keys), a cold cache per clip; each line gains \"lazy\": bytes, "
                        "requests and rounds read, and the pair keys it named (0: too short to "
                        "name one, no answer). With --live, each clip is a lazy page's listen: "
                        "looks at its first pair of embeddings (about 3 s of music), 5 s, 10 s, "
                        "every 5 s more and at the end, the first match answering (\"looks\" "
                        "counts them)");
    query_cmd
        ->add_option("--lazy-background", query.lazy_background_blocks,
                     "--lazy: blocks spread over the songs file that every query's decision "
                     "also sees, read once before the first query (0 = none)")
        ->capture_default_str()
        ->check(CLI::Range(0, 1 << 20));
    query_cmd
        ->add_option("--lazy-pair-keys", query.lazy_pair_key_budget,
                     "--lazy: keys a query looks up in all, spread over its pairs (each pair "
                     "its best min(8, N / pairs) keys, at least one; 0 = one key a pair)")
        ->capture_default_str()
        ->check(CLI::Range(0, 1 << 16));
    query_cmd
        ->add_option("--lazy-first-look", query.lazy_first_look_pairs,
                     "--live --lazy: the first look once the music holds this many pairs of "
                     "embeddings 2 s apart (1: about 3 s of music), on a level without short "
                     "keys or with --lazy-short-look 0; 0 = at half the query window (5 s)")
        ->capture_default_str()
        ->check(CLI::Range(0, 1 << 16));
    query_cmd
        ->add_option("--lazy-short-look", query.lazy_short_look_pairs,
                     "--live --lazy, on a level with short keys: the first look once the music "
                     "holds this many pairs of embeddings 1 s apart (1: about 2 s of music); 0 = "
                     "as --lazy-first-look says")
        ->capture_default_str()
        ->check(CLI::Range(0, 1 << 16));
    query_cmd
        ->add_option("--lazy-both-spans", query.lazy_both_spans,
                     "--lazy, on a level with short keys: a query holding at most this many "
                     "pairs 2 s apart also looks up its pairs 1 s apart, so a short clip's "
                     "right offset gets several votes (0 = never)")
        ->capture_default_str()
        ->check(CLI::Range(0, 1 << 16));
    query_cmd
        ->add_option("--lazy-candidates", query.lazy_candidates,
                     "--lazy: (song, offset) candidates phase 1 keeps; each costs its song's "
                     "block (about 5 KB a 3-minute song with the default code)")
        ->capture_default_str()
        ->check(CLI::Range(1, 1024));
    query_cmd
        ->add_option("--lazy-more-candidates", query.lazy_more_candidates,
                     "--lazy: when the candidates give no match, this many more of phase 1's "
                     "ranking are fetched and the match made again over all (0 = never)")
        ->capture_default_str()
        ->check(CLI::Range(0, 1024));
    query_cmd
        ->add_option("--lazy-wide-keys", query.lazy_wide_keys_per_pair,
                     "--lazy: the second round also looks up up to this many keys a pair, within "
                     "--lazy-wide-key-budget a query, and votes again (no more than the first "
                     "round's 8 = candidates only)")
        ->capture_default_str()
        ->check(CLI::Range(0, 64));
    query_cmd
        ->add_option("--lazy-wide-key-budget", query.lazy_wide_key_budget,
                     "--lazy: keys a query's second round looks up in all (--lazy-wide-keys)")
        ->capture_default_str()
        ->check(CLI::Range(0, 1 << 16));
    query_cmd
        ->add_option("--lazy-vote-slack", query.lazy_vote_slack,
                     "--lazy: phase 1 counts a song's votes over this many neighbouring "
                     "offsets, each song a candidate once (0 = each offset apart)")
        ->capture_default_str()
        ->check(CLI::Range(0, 64));
    query_cmd
        ->add_option("--lazy-key-weight", query.lazy_key_weight,
                     "--lazy: a phase-1 vote weighs ln(1 + W / its key's postings), so pairs of "
                     "rare lists count more (0 = votes count alike)")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 1e9));
    query_cmd
        ->add_option("--lazy-max-postings", query.lazy_max_postings,
                     "--lazy: a query fetches its keys' postings from the rarest key up while "
                     "they stay within N, leaving the commonest keys out (0 = every key)")
        ->capture_default_str()
        ->check(CLI::Range(uint64_t(0), uint64_t(1) << 40));
    query_cmd->add_flag("--lazy-warm", query.lazy_warm,
                        "--lazy: keep what earlier clips fetched (under the page's budgets: 4 MB "
                        "of pair pages and units, 16 MB of blocks; one cache per thread, so "
                        "--jobs 1 for a single page's order) instead of a cold cache per clip");
    query_cmd->add_flag("--lazy-log", query.lazy_log,
                        "--lazy: write what each clip asks the server for, in order (\"log\": "
                        "[round, kind, id] a range: the pair page, key, directory page or block "
                        "number), as a server's access log holds it");
    query_cmd->add_flag("--live,--stream", query.live,
                        "decide as the page does while the audio streams in: the music gate, a "
                        "look after every embedding, the listen rule; writes answer_s (default: "
                        "one decision on the whole clip)");

    std::string info_path;
    CLI::App* info_cmd = app.add_subcommand(
        "info", "describe a model file or an index folder\n  e.g. earshot info my-index");
    info_cmd->add_option("path", info_path, "model file (.emod) or index folder")->required();

    std::string verify_dir, verify_model;
    CLI::App* verify_cmd = app.add_subcommand(
        "verify", "check every file of an index folder (sizes, SHA-256, structure; with --model "
                  "also the model hash)\n  e.g. earshot verify my-index");
    verify_cmd->add_option("index", verify_dir, "index folder")->required();
    verify_cmd->add_option("-m,--model", verify_model, "also check the index was built with this model");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help/--version exit 0; every usage error exits 2 (CLI11's own codes vary).
        return app.exit(e) == 0 ? kExitOk : kExitUsage;
    }
    // The commands report errors as values; this is the last line for anything that throws
    // anyway (out of memory, a library's exception): a message and exit code 1, never a crash.
    try {
        if (*build_cmd) return run_build(common, build);
        if (*query_cmd) return run_query(common, query);
        if (*info_cmd) return run_info(info_path);
        if (*verify_cmd) return run_verify(verify_dir, verify_model);
    } catch (const std::bad_alloc&) {
        return fail("out of memory");
    } catch (const std::exception& e) {
        return fail(std::string("unexpected error: ") + e.what());
    } catch (...) {
        return fail("unexpected error");
    }
    return kExitFailure;
}
