// The subcommands of `earshot`. Each returns the process exit code:
//   0 success, 1 failure (nothing written), 2 usage error (CLI11), 3 index built but some
//   input files were skipped (build) or some queries could not be read (query).
#pragma once

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/lazy_index.h"
#include "core/model.h"
#include "core/native/index_folder.h"  // loading indexes: query, info, verify; build
#include "core/status.h"

namespace earshot::cli {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitPartial = 3;

struct CommonOptions {
    std::string model_path;   // model file (.emod)
    std::string backend = "xnnpack";
    int jobs = 0;             // 0 = all cores
    bool quiet = false;       // no progress bar
};

struct BuildOptions {
    std::string input;        // folder or TSV catalog
    std::string out_dir;
    int n_lists = 0;          // 0 = by catalogue size (index_auto_lists)
    int pq_m = 0;             // 0 = the model's index_pq_m
    int opq_rounds = -1;      // rotation training rounds before PQ; 0 = none, -1 = the model's
    int unit_norm = -1;       // scores against unit-length reconstructions: 1 yes, 0 no,
                              // -1 the model's
    int code_group = 0;       // windows coded together (core/quantizer.h); 0 = the model's
    int format = 2;           // index format version: 2 (hashed blocks) or 1 (shard files)
    double shard_mb = 8.0;    // v1 shard bound
    double block_kb = 0.0;    // v2 block bound; 0: 64 KB, or one song a block with --pair-keys
    std::string store = "level";  // which windows to store: all, level, music (StoreRule)
    double pair_keys_s = 0.0;     // > 0: write the pair-key level, windows this far apart
    double pair_short_keys_s = 1.0;  // with it, its short keys this far apart (0: none)
    int pair_lists = 1;              // with it, coarse lists a window's keys take (1 or 2)
    int top = 0;                  // > 0: only the catalogue's `top` most popular songs
    std::string quantizer_from;   // an index whose quantizer codes the songs (none trained)
};

struct QueryOptions {
    std::string index_dir;
    std::vector<std::string> inputs;
    std::string output;       // empty = stdout
    int query_hop_frames = 0;      // 0 = the model's query hop
    int max_query_embeddings = 0;  // 0 = the model's default (10 s)
    int nprobe = 0;                // 0 = the matcher's default
    float max_drift = std::numeric_limits<float>::quiet_NaN();     // NaN = the model's
    float prior_weight = std::numeric_limits<float>::quiet_NaN();  // NaN = the model's
    float prior_offset = std::numeric_limits<float>::quiet_NaN();  // NaN = the model's
    bool live = false;  // decide as the page does (the listen rule), write answer_s
    bool no_music_detector = false;  // live: the level gate alone
    bool continuous = false;  // live, keep listening: every event of each file
    std::string trace_path;  // every look of every clip, JSON lines (models.calibrate_listen)
    // Answer each clip as a `lazy` page does (core/lazy_index.h): only the ranges it needs,
    // read from the folder's files with a cold cache per clip; the line gains "lazy".
    bool lazy = false;
    int lazy_background_blocks = int(LazyIndexParams().background_blocks);
    int lazy_pair_key_budget = int(LazyIndexParams().pair_key_budget);
    int lazy_first_look_pairs = int(LazyIndexParams().first_look_pairs);
    int lazy_short_look_pairs = int(LazyIndexParams().short_look_pairs);
    int lazy_both_spans = int(LazyIndexParams().both_spans_max_pairs);
    int lazy_candidates = int(LazyIndexParams().max_candidates);
    int lazy_more_candidates = int(LazyIndexParams().more_candidates);
    int lazy_wide_keys_per_pair = int(LazyIndexParams().wide_keys_per_pair);
    int lazy_wide_key_budget = int(LazyIndexParams().wide_pair_key_budget);
    int lazy_vote_slack = int(LazyIndexParams().vote_slack);
    double lazy_key_weight = LazyIndexParams().key_weight;
    uint64_t lazy_max_postings = LazyIndexParams().max_query_postings;
    bool lazy_warm = false;           // --lazy: keep each thread's cache from clip to clip
    // --lazy: the line's "lazy" gains "log", what the server is asked for, in order: [round,
    // kind, id] a range (kind "page", "unit", "directory" or "block": lazy_fetch_kind_name; id
    // the pair page, key, directory page or block number), as its access log would show it.
    bool lazy_log = false;
    // Override the model's calibrated threshold (NaN = keep): for calibration runs.
    float threshold_base = std::numeric_limits<float>::quiet_NaN();
    float threshold_scale = std::numeric_limits<float>::quiet_NaN();
    // Clip mode's speed search (SpeedSearchParams): auto = the model's, off, or always (every
    // stretch played and the best one written as "speed_search", for calibration).
    std::string speed_search = "auto";
    std::vector<float> speed_stretches;  // empty = the model's
};

int run_build(const CommonOptions& common, const BuildOptions& options);
int run_query(const CommonOptions& common, const QueryOptions& options);
int run_info(const std::string& path);
int run_verify(const std::string& index_dir, const std::string& model_path);

// Shared by the commands.
Result<std::shared_ptr<const Model>> load_model_file(const std::string& path);
int resolve_jobs(int jobs);
// Prints "earshot: error: <message>" to stderr and returns kExitFailure.
int fail(const std::string& message);

}  // namespace earshot::cli
