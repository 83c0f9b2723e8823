// Two-phase matcher (docs/DESIGN.md section 6).
#include "core/matcher.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/kernels.h"

namespace earshot {

namespace {

// Min-heap on score of (score, global embedding id): keeps the k largest.
struct HeapGreater {
    bool operator()(const std::pair<float, uint32_t>& a,
                    const std::pair<float, uint32_t>& b) const {
        return a.first > b.first;
    }
};

}  // namespace

MatchParams match_default_params() {
    MatchParams params;
    // 8 of 256 lists: on train calibration queries as many hits as 16 (0.25 s index hop), and
    // the browser's CPU per second of audio with a 10 000-song index drops from 14 ms to 8 ms
    // (docs/PERFORMANCE-web.md).
    params.nprobe = 8;
    params.k_per_query = 32;
    params.max_candidates = 16;
    params.n_results = 5;
    // Placeholders until calibrated on train-set queries (scores are mean cosine similarities);
    // a model's calibration replaces them (recognizer_default_params).
    params.threshold_base = 0.35f;
    params.threshold_scale = 0.35f;
    params.background_weight = 0.0f;
    params.exhaustive = false;
    return params;
}

Status check_match_params(const MatchParams& params) {
    if (params.nprobe < 1 || params.k_per_query < 1 || params.max_candidates < 1 ||
        params.n_results < 1) {
        return Status::error(
            "match parameters: nprobe, k_per_query, max_candidates and n_results must be >= 1 "
            "(start from match_default_params())");
    }
    if (!std::isfinite(params.threshold_base) || !std::isfinite(params.threshold_scale))
        return Status::error("match parameters: threshold_base and threshold_scale must be finite");
    for (float t : params.threshold_by_n) {
        if (!std::isfinite(t))
            return Status::error("match parameters: threshold_by_n holds a non-finite value");
    }
    if (!(params.background_weight >= 0.0f) || !std::isfinite(params.background_weight))
        return Status::error("match parameters: background_weight must be a finite number >= 0");
    if (!(params.max_drift >= 0.0f && params.max_drift <= 0.1f))
        return Status::error("match parameters: max_drift must be in [0, 0.1]");
    if (!(params.prior_weight >= 0.0f && params.prior_weight <= 1.0f) ||
        !(std::fabs(params.prior_offset) <= 0.5f))
        return Status::error(
            "match parameters: prior_weight must be in [0, 1] and prior_offset in [-0.5, 0.5]");
    return Status::ok();
}

float match_threshold(const MatchParams& params, size_t n_query) {
    if (!params.threshold_by_n.empty()) {
        const size_t i = std::min(std::max<size_t>(n_query, 1), params.threshold_by_n.size());
        return params.threshold_by_n[i - 1];
    }
    const double n = double(std::max<size_t>(n_query, 1));
    return float(params.threshold_base + params.threshold_scale / std::sqrt(n));
}

void override_threshold(MatchParams* params, float base, float scale) {
    if (std::isnan(base) && std::isnan(scale)) return;
    params->threshold_by_n.clear();
    params->background_weight = 0.0f;
    params->prior_weight = 0.0f;
    params->prior_offset = 0.0f;
    if (!std::isnan(base)) params->threshold_base = base;
    if (!std::isnan(scale)) params->threshold_scale = scale;
}

Matcher::Matcher(const Index& index, const MatchParams& params) : index_(index), params_(params) {}

void Matcher::prepare(const float* query, size_t n_query, bool all) {
    const Quantizer& q = index_.quantizer();
    const int n_lists = q.n_lists, dim = q.dim;
    if (centroid_sq_norm_.size() != size_t(n_lists)) {
        centroid_sq_norm_.resize(n_lists);
        for (int l = 0; l < n_lists; ++l) {
            const float* c = &q.coarse_centroids[size_t(l) * dim];
            centroid_sq_norm_[l] = inner_product__vec128(size_t(dim), c, c);
        }
    }
    query_ = query;
    pq_query_ = query;
    if (q.rotated()) {
        if (rotated_query_.size() < n_query * dim) rotated_query_.resize(n_query * dim);
        for (size_t i = 0; i < n_query; ++i)
            q.rotate(query + i * dim, &rotated_query_[i * dim]);
        pq_query_ = rotated_query_.data();
    }
    if (query_coarse_ip_.size() < n_query * n_lists) query_coarse_ip_.resize(n_query * n_lists);
    const size_t tables_size = n_query * q.group * q.pq_m * kPqCodebookSize;
    if (pq_tables_.size() < tables_size) pq_tables_.resize(tables_size);
    prepared_.assign(n_query, 0);
    if (all)
        for (size_t i = 0; i < n_query; ++i) prepare_one(i);
}

void Matcher::prepare_one(size_t i) {
    const Quantizer& q = index_.quantizer();
    const int n_lists = q.n_lists, pq_m = q.pq_m, sub_dim = q.sub_dim, dim = q.dim;
    const float* x = query_ + i * dim;
    inner_product_many__vec128(size_t(n_lists), size_t(dim), x, q.coarse_centroids.data(),
                               &query_coarse_ip_[i * n_lists]);
    // T[m][c] = <(x R)_m, codebook[m][c]>: shared by every list since PQ encodes residuals;
    // one table per slot of a grouped code.
    for (int slot = 0; slot < q.group; ++slot)
        pq_ip_table__vec128(size_t(pq_m), size_t(sub_dim), pq_query_ + i * dim, q.codebooks(slot),
                            &pq_tables_[(i * q.group + slot) * pq_m * kPqCodebookSize]);
    prepared_[i] = 1;
}

// Every path (IVF scan, exhaustive scan, phase 2, with or without tables) gives the same float
// for the same (query embedding, stored embedding): the kernels' summation orders match.
float Matcher::score_embedding(size_t i, uint32_t global_id) const {
    const Quantizer& q = index_.quantizer();
    const int pq_m = q.pq_m;
    float scale;
    int slot;
    const uint8_t* codes = index_.embedding_codes(global_id, &scale, &slot);
    const int list = index_.embedding_list(global_id);
    if (prepared_[i]) {
        const float* table = &pq_tables_[(i * q.group + slot) * pq_m * kPqCodebookSize];
        return (query_coarse_ip_[i * q.n_lists + list] +
                pq_score__scalar_acc4(size_t(pq_m), table, codes)) *
               scale;
    }
    // Not prepared (cached phase 1): the same products, computed for this embedding only
    // (saves pq_m * 256 sub-space products per query embedding for ~50 re-scored ones).
    const float* x = query_ + i * q.dim;
    return (inner_product__vec128(size_t(q.dim), x, &q.coarse_centroids[size_t(list) * q.dim]) +
            pq_score_direct__vec128(size_t(pq_m), size_t(q.sub_dim), pq_query_ + i * q.dim,
                                    q.codebooks(slot), codes)) *
           scale;
}

void Matcher::search_one(size_t i, int k, std::vector<Posting>* out) {
    if (!prepared_[i]) prepare_one(i);
    const int n_lists = index_.n_lists(), pq_m = index_.pq_m();
    const float* table = &pq_tables_[i * index_.quantizer().group * pq_m * kPqCodebookSize];
    const float* ip = &query_coarse_ip_[i * n_lists];
    heap_scratch_.clear();
    HeapGreater greater;
    auto offer = [&](float s, uint32_t g) {
        if (heap_scratch_.size() < size_t(k)) {
            heap_scratch_.emplace_back(s, g);
            std::push_heap(heap_scratch_.begin(), heap_scratch_.end(), greater);
        } else if (s > heap_scratch_.front().first) {
            std::pop_heap(heap_scratch_.begin(), heap_scratch_.end(), greater);
            heap_scratch_.back() = {s, g};
            std::push_heap(heap_scratch_.begin(), heap_scratch_.end(), greater);
        }
    };
    if (params_.exhaustive) {
        // Reference path: every stored embedding in global order.
        const uint32_t n_embeddings = uint32_t(index_.n_embeddings());
        for (uint32_t g = 0; g < n_embeddings; ++g)
            if (index_.embedding_stored(g)) offer(score_embedding(i, g), g);
    } else {
        // Probe order: smallest ||q - c||^2 = ||q||^2 - 2<q,c> + ||c||^2.
        const int nprobe = std::min(std::max(params_.nprobe, 1), n_lists);
        probe_scratch_.resize(n_lists);
        for (int l = 0; l < n_lists; ++l)
            probe_scratch_[l] = {centroid_sq_norm_[l] - 2.0f * ip[l], l};
        std::partial_sort(probe_scratch_.begin(), probe_scratch_.begin() + nprobe,
                          probe_scratch_.end());
        for (int p = 0; p < nprobe; ++p) {
            const int l = probe_scratch_[p].second;
            const Index::InvertedList& list = index_.list(l);
            const size_t n = list.size();
            if (scan_scores_.size() < n) scan_scores_.resize(n);
            if (list.code_refs.empty())
                pq_scan__scalar_acc4(n, size_t(pq_m), table, list.codes.data(),
                                     scan_scores_.data());
            else
                pq_scan_refs__scalar_acc4(n, size_t(pq_m), table, list.code_refs.data(),
                                          Index::kCodeRefSlotBits, index_.group_codes().data(),
                                          scan_scores_.data());
            const float base = ip[l];
            const float* inv_norms = list.inv_norms.empty() ? nullptr : list.inv_norms.data();
            auto score_at = [&](size_t j) {  // as score_embedding computes it
                const float s = base + scan_scores_[j];
                return inv_norms ? s * inv_norms[j] : s;
            };
            size_t j = 0;
            for (; j < n && heap_scratch_.size() < size_t(k); ++j)  // until the heap is full
                offer(score_at(j), index_.posting_id(list, j));
            float worst = heap_scratch_.empty() ? 0.0f : heap_scratch_.front().first;
            for (; j < n; ++j) {  // full: only better scores enter
                const float s = score_at(j);
                if (s > worst) {
                    offer(s, index_.posting_id(list, j));
                    worst = heap_scratch_.front().first;
                }
            }
        }
    }
    std::sort_heap(heap_scratch_.begin(), heap_scratch_.end(), greater);  // best first
    out->clear();
    for (const auto& [s, g] : heap_scratch_) {
        size_t song = index_.song_of_embedding(g);
        out->push_back({uint32_t(song), g - index_.song_first_embedding(song), s});
    }
}

Status Matcher::search(const float* query, size_t n_query, int k,
                       std::vector<std::vector<Posting>>* out) {
    if (!index_.has_quantizer())
        return Status::error("search: the index has no quantizer yet (add quantizer.eq first)");
    if (k < 1) return Status::error("search: k must be >= 1");
    if (n_query > 0 && query == nullptr) return Status::error("search: query is null");
    prepare(query, n_query, true);
    out->resize(n_query);
    for (size_t i = 0; i < n_query; ++i) search_one(i, k, &(*out)[i]);
    return Status::ok();
}

Result<MatchResult> Matcher::match(const float* query, size_t n_query, double query_hop_s) {
    return match(query, nullptr, n_query, query_hop_s);
}

void Matcher::clear_cache() { std::fill(cache_used_.begin(), cache_used_.end(), false); }

Result<MatchResult> Matcher::match(const float* query, const uint64_t* embedding_ids,
                                   size_t n_query, double query_hop_s) {
    if (!index_.has_quantizer())
        return Status::error("match: the index has no quantizer yet (add quantizer.eq first)");
    if (n_query > 0 && query == nullptr) return Status::error("match: query is null");
    if (!(query_hop_s > 0) || !std::isfinite(query_hop_s))
        return Status::error("match: query_hop_s must be > 0");
    if (Status st = check_match_params(params_); !st) return st;
    MatchResult result;
    result.n_query = n_query;
    result.threshold = match_threshold(params_, n_query);
    if (n_query == 0 || index_.n_embeddings() == 0) return result;

    const double hop_s = index_.hop_s();
    if (postings_.size() < n_query) postings_.resize(n_query);

    if (embedding_ids) {
        if (cache_ids_.size() < n_query) {  // grow: drop everything
            cache_ids_.assign(n_query, 0);
            cache_used_.assign(n_query, false);
            cache_postings_.resize(n_query);
        }
        if (cache_n_embeddings_ != index_.n_embeddings() || cache_nprobe_ != params_.nprobe ||
            cache_k_ != params_.k_per_query || cache_exhaustive_ != params_.exhaustive) {
            clear_cache();
            cache_n_embeddings_ = index_.n_embeddings();
            cache_nprobe_ = params_.nprobe;
            cache_k_ = params_.k_per_query;
            cache_exhaustive_ = params_.exhaustive;
        }
    }
    // Streaming: only the embeddings without cached postings get the phase-1 tables (n_lists
    // coarse and pq_m * 256 sub-space products each, built by search_one()); with 2048 lists
    // building them for the whole window was most of a call's work.
    prepare(query, n_query, embedding_ids == nullptr);

    // Phase 1: votes on (song, delta in index hops).
    votes_.clear();
    for (size_t i = 0; i < n_query; ++i) {
        if (embedding_ids) {
            const size_t slot = size_t(embedding_ids[i] % cache_ids_.size());
            if (!cache_used_[slot] || cache_ids_[slot] != embedding_ids[i]) {
                search_one(i, params_.k_per_query, &cache_postings_[slot]);
                cache_ids_[slot] = embedding_ids[i];
                cache_used_[slot] = true;
            }
            postings_[i] = cache_postings_[slot];  // reuses capacity: no allocation when warm
        } else {
            search_one(i, params_.k_per_query, &postings_[i]);
        }
        for (const Posting& p : postings_[i]) {
            const double delta_s = p.embedding * hop_s - i * query_hop_s;
            votes_.push_back({p.song_index, int32_t(std::lround(delta_s / hop_s)), p.score});
        }
    }
    std::sort(votes_.begin(), votes_.end(), [](const Vote& a, const Vote& b) {
        return a.song_index != b.song_index ? a.song_index < b.song_index
                                            : a.delta_hops < b.delta_hops;
    });
    size_t n_unique = 0;  // merge equal (song, delta) in place, summing scores
    for (size_t v = 0; v < votes_.size(); ++v) {
        if (n_unique > 0 && votes_[n_unique - 1].song_index == votes_[v].song_index &&
            votes_[n_unique - 1].delta_hops == votes_[v].delta_hops) {
            votes_[n_unique - 1].score += votes_[v].score;
        } else {
            votes_[n_unique++] = votes_[v];
        }
    }
    const size_t n_candidates = std::min(n_unique, size_t(params_.max_candidates));
    std::partial_sort(votes_.begin(), votes_.begin() + n_candidates, votes_.begin() + n_unique,
                      [](const Vote& a, const Vote& b) { return a.score > b.score; });

    // Phase 2: aligned re-score of each candidate and delta +- 1 hop (and each drift rate),
    // best alignment per song.
    struct Scored {
        uint32_t song_index;
        int32_t delta_hops;
        float score;
        double rate;
    };
    Scored scored[256];  // max_candidates is clamped to this below
    size_t n_scored = 0;
    const size_t n_eval = std::min(n_candidates, sizeof(scored) / sizeof(scored[0]));
    // Drift rates 1 + k * rate_step, |k| <= n_side: a step moves the query's ends (`middle`
    // embeddings from its middle) by about half an index hop.
    const double stride = query_hop_s / hop_s;  // index hops per query hop
    const double middle = 0.5 * double(n_query - 1);
    const int n_side = int(std::lround(2.0 * params_.max_drift * middle * stride));
    const double rate_step = n_side > 0 ? params_.max_drift / n_side : 0.0;
    for (size_t c = 0; c < n_eval; ++c) {
        const Vote& cand = votes_[c];
        const uint32_t first = index_.song_first_embedding(cand.song_index);
        const int64_t song_n_embeddings = int64_t(index_.song_n_embeddings(cand.song_index));
        Scored best = {cand.song_index, cand.delta_hops, -std::numeric_limits<float>::infinity(),
                       1.0};
        for (int t = 0; t <= 2 * n_side; ++t) {  // rates 0, +1, -1, +2, ... steps
            const int k = (t % 2 ? 1 : -1) * ((t + 1) / 2);
            const double r = k * rate_step;
            for (int dd = -1; dd <= 1; ++dd) {
                const int32_t delta = cand.delta_hops + dd;
                double sum = 0.0;
                for (size_t i = 0; i < n_query; ++i) {
                    // Song embedding nearest to song time i * query_hop_s + delta * hop_s, the
                    // query's distance from its middle scaled by the rate.
                    const int64_t j =
                        (k == 0 ? std::llround(i * stride)
                                : std::llround(i * stride + (double(i) - middle) * stride * r)) +
                        delta;
                    // Outside the song, or a window not stored: similarity 0.
                    if (j < 0 || j >= song_n_embeddings ||
                        !index_.embedding_stored(first + uint32_t(j)))
                        continue;
                    sum += score_embedding(i, first + uint32_t(j));
                }
                const float s = float(sum / double(n_query));
                // The plain rate comes first and wins ties: a drift must score better.
                if (s > best.score) best = {cand.song_index, delta, s, 1.0 + r};
            }
        }
        size_t k = 0;  // keep the best per song
        while (k < n_scored && scored[k].song_index != best.song_index) ++k;
        if (k == n_scored) {
            scored[n_scored++] = best;
        } else if (best.score > scored[k].score) {
            scored[k] = best;
        }
    }
    std::sort(scored, scored + n_scored,
              [](const Scored& a, const Scored& b) { return a.score > b.score; });

    result.n_candidates = n_eval;
    const size_t n_results = std::min(n_scored, size_t(std::max(params_.n_results, 1)));
    for (size_t r = 0; r < n_results; ++r) {
        const SongInfo& info = index_.song(scored[r].song_index);
        MatchCandidate m;
        m.song_index = scored[r].song_index;
        m.id = info.id;
        m.title = info.title;
        m.album = info.album;
        // The first embedding's place: delta, less the drift accumulated from the middle.
        m.offset_s = std::max(
            0.0, (scored[r].delta_hops - middle * stride * (scored[r].rate - 1.0)) * hop_s);
        m.rate = scored[r].rate;
        m.score = scored[r].score;
        if (r == 0) {
            result.best = std::move(m);
        } else {
            result.runner_ups.push_back(std::move(m));
        }
    }
    if (n_scored > 0) {
        double sum = 0.0;
        for (size_t i = 0; i < n_query; ++i) {
            const std::vector<Posting>& postings = postings_[i];
            if (postings.empty()) continue;
            float other = postings.back().score;  // best first: the k-th best bounds the rest
            for (const Posting& p : postings) {
                if (p.song_index != result.best.song_index) {
                    other = p.score;
                    break;
                }
            }
            sum += other;
        }
        result.background = float(sum / double(n_query));
        const SongInfo& best = index_.song(result.best.song_index);
        if (best.has_prior() && (params_.prior_weight != 0.0f || params_.prior_offset != 0.0f)) {
            result.prior =
                float(params_.prior_weight * best.log_prior / std::sqrt(double(n_query)) -
                      params_.prior_offset);
        }
        result.confidence =
            result.best.score - params_.background_weight * result.background + result.prior;
    }
    result.matched = n_scored > 0 && result.confidence >= result.threshold;
    return result;
}

Result<MatchResult> match(const Index& index, const float* query, size_t n_query,
                          double query_hop_s, const MatchParams& params) {
    Matcher matcher(index, params);
    return matcher.match(query, n_query, query_hop_s);
}

}  // namespace earshot
