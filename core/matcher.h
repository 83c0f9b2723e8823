// Two-phase matcher (docs/DESIGN.md section 6), batch-first like faiss: a query is a batch of
// n embeddings taken every query_hop_s.
//   Phase 1: per query embedding, probe the nprobe nearest coarse lists, score postings with a
//            PQ inner-product table (one table per query vector, shared by every list because
//            PQ encodes residuals), keep the k_per_query best, vote on (song, delta).
//   Phase 2: re-score the max_candidates best (song, delta), and delta +- one index hop, as the
//            mean similarity of the whole query to the aligned reconstructed song embeddings;
//            with max_drift, also aligned at playback rates up to 1 +- max_drift (a song
//            played 2 % fast drifts by 0.2 s over a 10 s query).
//   No match when the best score < threshold(n) = threshold_base + threshold_scale / sqrt(n).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/index.h"
#include "core/status.h"

namespace earshot {

// Obtain one from match_default_params() and edit it; a value-initialized MatchParams has zero
// counts and is rejected (check_match_params).
struct MatchParams {
    int nprobe = 0;          // coarse lists probed per query embedding (phase 1)
    int k_per_query = 0;     // postings kept per query embedding (phase 1)
    int max_candidates = 0;  // (song, delta) pairs re-scored in phase 2 (at most 256 are used)
    int n_results = 0;       // best + runner-ups (distinct songs) reported
    // threshold(n) = threshold_base + threshold_scale / sqrt(n), n = query embeddings.
    float threshold_base = 0.0f;
    float threshold_scale = 0.0f;
    // Calibrated per-length thresholds: when non-empty, threshold(n) = threshold_by_n[min(n,
    // size) - 1] and base/scale are unused (models/calibrate_threshold.py writes them into the
    // model's metadata).
    std::vector<float> threshold_by_n;
    // The decision compares confidence = best score - background_weight * background (see
    // MatchResult) with the threshold: out-of-catalog audio tends to match every song about
    // equally, in-catalog audio matches its song much better than the rest.
    float background_weight = 0.0f;
    // Phase 2 also aligns the query at playback rates 1 + r, |r| <= max_drift, about its middle
    // embedding, in steps that move its ends by about half an index hop (none while the whole
    // drift moves them by less): a long query of a sped-up song stays aligned. 0 = off; at
    // most 0.1. A model's calibration names the value its thresholds were fitted with.
    float max_drift = 0.0f;
    // Popularity-weighted decision (as Sound Search weighs its thresholds by popularity): when
    // the best song has a log_prior (SongInfo, from the catalogue's popularity column),
    // confidence += prior_weight * log_prior / sqrt(n) - prior_offset. Popular songs then need
    // less evidence, obscure ones more; prior_offset keeps the false-positive rate where the
    // thresholds put it (models/calibrate_popularity.py fits both on train queries). 0 = off;
    // prior_weight in [0, 1], |prior_offset| <= 0.5.
    float prior_weight = 0.0f;
    float prior_offset = 0.0f;
    bool exhaustive = false;  // phase 1 scans every stored code (reference path for tests)
};
// The defaults, in one place (the recognizer completes them from the model:
// recognizer_default_params in core/recognizer.h).
MatchParams match_default_params();
// OK, or what is wrong: counts < 1, thresholds not finite, background_weight < 0, max_drift
// outside [0, 0.1], prior_weight outside [0, 1], |prior_offset| > 0.5.
Status check_match_params(const MatchParams& params);
float match_threshold(const MatchParams& params, size_t n_query);
// Replaces the calibrated decision (threshold_by_n, background_weight, the prior) by the plain
// curve base + scale / sqrt(n) on the raw similarity; NaN keeps the current base or scale. For
// calibration runs (base -1 accepts everything) and manual overrides (CLI, browser options).
void override_threshold(MatchParams* params, float base, float scale);

struct MatchCandidate {
    size_t song_index = 0;  // index into Index::song()
    std::string id, title, album;
    double offset_s = 0.0;  // song time of the query's first embedding, clamped to >= 0
    double rate = 1.0;      // playback rate of the best alignment (1 without max_drift)
    float score = 0.0f;     // phase-2 mean similarity in [-1, 1]
};

struct MatchResult {
    bool matched = false;                    // confidence >= threshold
    MatchCandidate best;                     // valid when !candidates.empty()
    std::vector<MatchCandidate> runner_ups;  // next best distinct songs, best first
    float threshold = 0.0f;                  // threshold(n_query) applied
    size_t n_query = 0;
    size_t n_candidates = 0;  // (song, delta) pairs re-scored in phase 2
    // Mean over the query embeddings of the best phase-1 similarity to any song other than
    // best's (the k-th best posting's when all k are best's): how well the catalogue's other
    // songs match this audio at all. 0 without candidates.
    float background = 0.0f;
    // The popularity term added to the confidence (MatchParams::prior_weight): 0 without it.
    float prior = 0.0f;
    // best.score - background_weight * background + prior; matched iff >= threshold
    float confidence = 0.0f;
    bool has_candidates() const { return n_candidates > 0; }
};

// One phase-1 hit.
struct Posting {
    uint32_t song_index = 0;
    uint32_t embedding = 0;  // stored embedding index within the song
    float score = 0.0f;      // <q, reconstruction>
};

// Holds scratch buffers (PQ tables, heaps, votes) sized for the largest query seen, so repeated
// calls with n <= that size do not allocate in phase 1/2 (results still hold strings).
// Not thread-safe; one Matcher per thread. The Index must outlive it and may grow (add_shard)
// between calls.
class Matcher {
public:
    Matcher(const Index& index, const MatchParams& params);
    const MatchParams& params() const { return params_; }
    void set_params(const MatchParams& params) { params_ = params; }

    // query: n_query x dim floats (unit length), embedding i at time i * query_hop_s.
    // Errors if the index has no quantizer or the dims/sizes are invalid. An index with no
    // songs yet gives matched = false.
    Result<MatchResult> match(const float* query, size_t n_query, double query_hop_s);

    // Streaming variant: embedding_ids[i] names query embedding i (e.g. its number in the
    // stream). Phase-1 postings of ids seen in recent calls are reused, so a sliding window
    // costs one new phase-1 search per call instead of n. Results are identical to match().
    // The cache is dropped when the index grows, the params change or clear_cache() is called
    // (call it when ids restart, e.g. on a stream reset).
    Result<MatchResult> match(const float* query, const uint64_t* embedding_ids, size_t n_query,
                              double query_hop_s);
    void clear_cache();

    // Phase 1 only: the k best postings per query embedding (by IVF+PQ, or by scanning every
    // stored code when params.exhaustive), best first; out[i] for query i.
    Status search(const float* query, size_t n_query, int k,
                  std::vector<std::vector<Posting>>* out);

private:
    // Sets the query; with `all`, builds every embedding's phase-1 tables (else search_one()
    // builds them on demand, and score_embedding() computes the products of the others on the
    // spot).
    void prepare(const float* query, size_t n_query, bool all);
    void prepare_one(size_t i);
    void search_one(size_t i, int k, std::vector<Posting>* out);
    // <query embedding i, reconstruction of stored embedding global_id>.
    float score_embedding(size_t i, uint32_t global_id) const;

    const Index& index_;
    MatchParams params_;
    // Per query embedding: <q_i, coarse[l]> [n, n_lists], ||c_l||^2 [n_lists],
    // PQ tables [n, group, pq_m, 256] (a slot of a grouped code each).
    std::vector<float> query_coarse_ip_;
    std::vector<float> centroid_sq_norm_;
    std::vector<float> pq_tables_;
    const float* query_ = nullptr;   // the query of the current call
    // The query times the quantizer's rotation (what meets PQ code words); unused without one.
    std::vector<float> rotated_query_;
    const float* pq_query_ = nullptr;  // rotated_query_, or query_ without a rotation
    std::vector<uint8_t> prepared_;  // [n]: tables built for embedding i
    std::vector<std::pair<float, int>> probe_scratch_;
    std::vector<std::pair<float, uint32_t>> heap_scratch_;
    std::vector<float> scan_scores_;  // PQ scores of one inverted list
    std::vector<std::vector<Posting>> postings_;
    // Phase-1 cache for the streaming match(): slot id % size holds (id, postings).
    std::vector<uint64_t> cache_ids_;
    std::vector<bool> cache_used_;
    std::vector<std::vector<Posting>> cache_postings_;
    size_t cache_n_embeddings_ = 0;
    int cache_nprobe_ = 0, cache_k_ = 0;
    bool cache_exhaustive_ = false;
    struct Vote {
        uint32_t song_index;
        int32_t delta_hops;
        float score;
    };
    std::vector<Vote> votes_;
};

// Convenience: one-off match with a temporary Matcher.
Result<MatchResult> match(const Index& index, const float* query, size_t n_query,
                          double query_hop_s, const MatchParams& params);

}  // namespace earshot
