#include "core/pair_keys.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <tuple>

#include "core/pair_key_layout.h"

namespace earshot {

Status check_pair_spans(uint32_t n_lists, uint32_t span, uint32_t short_span) {
    const uint32_t max_lists = short_span > 0 ? kPairMaxListsTwoSpans : kPairMaxLists;
    if (n_lists < 1 || n_lists > max_lists)
        return Status::error("pair keys: n_lists must be in [1, " + std::to_string(max_lists) +
                             "]" + (short_span > 0 ? " with a short span" : "") + ", got " +
                             std::to_string(n_lists));
    if (span < 1) return Status::error("pair keys: span must be at least one index hop");
    if (short_span >= span)
        return Status::error("pair keys: the short span (" + std::to_string(short_span) +
                             ") must be below the span (" + std::to_string(span) + ")");
    return Status::ok();
}

Result<PairKeyIndex> PairKeyIndex::create(uint32_t n_lists, uint32_t span, uint32_t short_span) {
    if (Status st = check_pair_spans(n_lists, span, short_span); !st) return st;
    return PairKeyIndex(n_lists, span, short_span);
}

namespace {

// A song's lists checked as add_song takes them: ok, or what is wrong.
Status check_song_lists(uint32_t n_lists, size_t n_songs, const uint32_t* lists, size_t n_windows) {
    if (static_cast<uint64_t>(n_songs) >= UINT32_MAX)
        return Status::error("pair keys: too many songs");
    if (static_cast<uint64_t>(n_windows) > UINT32_MAX)
        return Status::error("pair keys: song too long");
    for (size_t j = 0; j < n_windows; ++j)
        if (lists[j] != kPairNoList && lists[j] >= n_lists)
            return Status::error("pair keys: window " + std::to_string(j) + " has list " +
                                 std::to_string(lists[j]) + ", not below n_lists " +
                                 std::to_string(n_lists));
    return Status::ok();
}

// Calls add(key, window) for each stored window of a song whose partner span hops later is
// stored too, in window order; then, with a short span, the same for the short keys. With
// `second` (each window's second nearest list, kPairNoList for none), a window pair has every
// distinct key of its two windows' one or two lists, nearest pair first.
template <typename Add>
void for_each_song_pair(uint32_t n_lists, uint32_t span, uint32_t short_span, const uint32_t* lists,
                        const uint32_t* second, size_t n_windows, Add add) {
    for (const uint32_t s : {span, short_span}) {
        if (s == 0) continue;
        const uint32_t base = pair_key_base(n_lists, s != span);
        for (size_t j = 0; j + s < n_windows; ++j) {
            const uint32_t a = lists[j], b = lists[j + s];
            if (a == kPairNoList || b == kPairNoList) continue;
            add(base + a * n_lists + b, static_cast<uint32_t>(j));
            if (second == nullptr) continue;
            const uint32_t a2 = second[j] == a ? kPairNoList : second[j];
            const uint32_t b2 = second[j + s] == b ? kPairNoList : second[j + s];
            if (b2 != kPairNoList) add(base + a * n_lists + b2, static_cast<uint32_t>(j));
            if (a2 != kPairNoList) add(base + a2 * n_lists + b, static_cast<uint32_t>(j));
            if (a2 != kPairNoList && b2 != kPairNoList)
                add(base + a2 * n_lists + b2, static_cast<uint32_t>(j));
        }
    }
}

}  // namespace

Status PairKeyIndex::add_song(const uint32_t* lists, size_t n_windows, const uint32_t* second) {
    if (finished_) return Status::error("pair keys: add_song after finish");
    if (Status s = check_song_lists(n_lists_, n_songs_, lists, n_windows); !s) return s;
    if (second != nullptr)
        if (Status s = check_song_lists(n_lists_, n_songs_, second, n_windows); !s) return s;
    const auto song = static_cast<uint32_t>(n_songs_);
    for_each_song_pair(n_lists_, span_, short_span_, lists, second, n_windows,
                       [&](uint32_t key, uint32_t window) {
                           pending_keys_.push_back(key);
                           postings_.push_back({song, window});
                       });
    ++n_songs_;
    return Status::ok();
}

Status PairKeyIndex::finish() {
    if (finished_) return Status::error("pair keys: finish called twice");
    // Postings were added in (song, window) order: a stable sort by key keeps that order
    // within each key.
    std::vector<size_t> order(postings_.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t x, size_t y) { return pending_keys_[x] < pending_keys_[y]; });
    std::vector<PairPosting> sorted(postings_.size());
    for (size_t i = 0; i < order.size(); ++i) {
        sorted[i] = postings_[order[i]];
        const uint32_t k = pending_keys_[order[i]];
        if (keys_.empty() || keys_.back() != k) {
            keys_.push_back(k);
            offsets_.push_back(i);
        }
    }
    offsets_.push_back(sorted.size());
    postings_ = std::move(sorted);
    pending_keys_.clear();
    pending_keys_.shrink_to_fit();
    finished_ = true;
    return Status::ok();
}

PairKeyIndex::Span PairKeyIndex::postings(uint32_t k) const {
    const auto it = std::lower_bound(keys_.begin(), keys_.end(), k);
    if (it == keys_.end() || *it != k) return {};
    const size_t i = static_cast<size_t>(it - keys_.begin());
    return {postings_.data() + offsets_[i], offsets_[i + 1] - offsets_[i]};
}

namespace {

Status check_pair_query(uint32_t n_lists, uint32_t span, const uint32_t* query_lists, size_t n,
                        uint32_t query_step) {
    if (query_step < 1 || span % query_step != 0)
        return Status::error("pair keys: the query step (" + std::to_string(query_step) +
                             " index hops) must divide the span (" + std::to_string(span) + ")");
    for (size_t i = 0; i < n; ++i)
        if (query_lists[i] != kPairNoList && query_lists[i] >= n_lists)
            return Status::error("pair keys: query embedding " + std::to_string(i) + " has list " +
                                 std::to_string(query_lists[i]) + ", not below n_lists " +
                                 std::to_string(n_lists));
    return Status::ok();
}

}  // namespace

Result<std::vector<PairProbe>> pair_query_probes(uint32_t n_lists, uint32_t span,
                                                 const uint32_t* lists, const float* sq_dists,
                                                 size_t n, size_t per_embedding,
                                                 uint32_t query_step, size_t keys_per_pair,
                                                 uint32_t key_base) {
    if (per_embedding < 1 || keys_per_pair < 1 || keys_per_pair > per_embedding * per_embedding)
        return Status::error("pair keys: " + std::to_string(keys_per_pair) + " keys a pair from " +
                             std::to_string(per_embedding) + " lists an embedding");
    if (per_embedding > 1 && sq_dists == nullptr)
        return Status::error("pair keys: several lists an embedding need their distances");
    if (Status s = check_pair_query(n_lists, span, lists, n * per_embedding, query_step); !s)
        return s;
    const size_t dq = span / query_step;
    const size_t m = per_embedding;
    std::vector<PairProbe> out;
    // (summed distance, a, b) for one pair; m^2 is small (a few lists an embedding).
    std::vector<std::tuple<float, size_t, size_t>> combos;
    for (size_t i = 0; i + dq < n; ++i) {
        const uint32_t* la = lists + i * m;
        const uint32_t* lb = lists + (i + dq) * m;
        combos.clear();
        for (size_t a = 0; a < m; ++a)
            for (size_t b = 0; b < m; ++b)
                if (la[a] != kPairNoList && lb[b] != kPairNoList)
                    combos.emplace_back(
                        m == 1 ? 0.0f : sq_dists[i * m + a] + sq_dists[(i + dq) * m + b], a, b);
        const size_t take = std::min(keys_per_pair, combos.size());
        std::partial_sort(combos.begin(), combos.begin() + take, combos.end());
        const auto t = static_cast<int64_t>(i) * query_step;
        for (size_t c = 0; c < take; ++c)
            out.push_back(
                {t, key_base + la[std::get<1>(combos[c])] * n_lists + lb[std::get<2>(combos[c])],
                 uint32_t(c), span});
    }
    return out;
}

std::vector<uint32_t> pair_probe_keys(const std::vector<PairProbe>& probes) {
    std::vector<uint32_t> out;
    out.reserve(probes.size());
    for (const PairProbe& p : probes) out.push_back(p.key);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

namespace {

// pair_vote_probes with delta_slack > 0 or a key weight: each song's best window of deltas.
std::vector<PairCandidate> vote_delta_windows(
    const std::vector<PairProbe>& probes, size_t max_candidates,
    const std::function<PairPostingSpan(uint32_t)>& postings_of, int64_t slack, double key_weight) {
    struct Met {
        uint32_t song;
        int64_t delta;
        int64_t t;
        uint32_t span;
        uint32_t rank;
        float weight;  // the vote's weight: its key's (1 when votes count)
        bool operator<(const Met& o) const {
            return std::tie(song, delta, t, span, rank) <
                   std::tie(o.song, o.delta, o.t, o.span, o.rank);
        }
    };
    std::vector<Met> met;
    for (const PairProbe& probe : probes) {
        const PairPostingSpan p = postings_of(probe.key);
        const float weight = key_weight > 0 ? float(std::log1p(key_weight / double(p.size))) : 1.0f;
        for (size_t k = 0; k < p.size; ++k)
            met.push_back({p.data[k].song, static_cast<int64_t>(p.data[k].window) - probe.t,
                           probe.t, probe.span, probe.rank, weight});
    }
    std::sort(met.begin(), met.end());
    struct Best {
        PairCandidate c;
        uint64_t ranks;
    };
    const auto better = [](const Best& x, const Best& y) {
        if (x.c.score != y.c.score) return x.c.score > y.c.score;
        return x.ranks < y.ranks;
    };
    std::vector<Best> best;
    std::vector<Met> window;  // the window's postings, by query pair then rank
    for (size_t a = 0; a < met.size();) {
        size_t end = a;
        while (end < met.size() && met[end].song == met[a].song) ++end;
        Best song_best{{met[a].song, 0, 0, 0.0f}, 0};
        for (size_t w = a; w < end;) {  // windows starting at each distinct delta
            window.clear();
            int64_t top_delta = met[w].delta;
            size_t top_count = 0;
            for (size_t k = w; k < end && met[k].delta <= met[w].delta + slack;) {
                size_t same = k;
                while (same < end && met[same].delta == met[k].delta) window.push_back(met[same++]);
                if (same - k > top_count) top_count = same - k, top_delta = met[k].delta;
                k = same;
            }
            // Each query pair (t, span) once: its best rank, its heaviest key.
            std::sort(window.begin(), window.end(), [](const Met& x, const Met& y) {
                return std::tie(x.t, x.span, x.rank) < std::tie(y.t, y.span, y.rank);
            });
            Best here{{met[a].song, top_delta, 0, 0.0f}, 0};
            float pair_weight = 0.0f;
            for (size_t k = 0; k < window.size(); ++k) {
                const bool first = k == 0 || window[k].t != window[k - 1].t ||
                                   window[k].span != window[k - 1].span;
                if (first) {
                    here.c.score += pair_weight;
                    pair_weight = 0.0f;
                    ++here.c.votes;
                    here.ranks += window[k].rank;
                }
                pair_weight = std::max(pair_weight, window[k].weight);
            }
            here.c.score += pair_weight;
            if (better(here, song_best)) song_best = here;
            const int64_t d = met[w].delta;
            while (w < end && met[w].delta == d) ++w;
        }
        best.push_back(song_best);
        a = end;
    }
    std::stable_sort(best.begin(), best.end(), better);
    std::vector<PairCandidate> out;
    for (size_t i = 0; i < best.size() && i < max_candidates; ++i) out.push_back(best[i].c);
    return out;
}

}  // namespace

std::vector<PairCandidate> pair_vote_probes(
    const std::vector<PairProbe>& probes, size_t max_candidates,
    const std::function<PairPostingSpan(uint32_t)>& postings_of, uint32_t delta_slack,
    double key_weight) {
    if (delta_slack > 0 || key_weight > 0)
        return vote_delta_windows(probes, max_candidates, postings_of, int64_t(delta_slack),
                                  key_weight);
    // One (song, delta) per posting met, counted after a sort: memory is the postings the
    // query fetched, whatever the catalogue's size. A query pair (t, span) votes once for a
    // (song, delta), with its best key's rank: a window pair stored under several keys (a
    // second list, PairKeyIndex::add_song) may meet several of one pair's probes.
    // song, delta, the query pair (t, span), rank
    std::vector<std::tuple<uint32_t, int64_t, int64_t, uint32_t, uint32_t>> met;
    for (const PairProbe& probe : probes) {
        const PairPostingSpan p = postings_of(probe.key);
        for (size_t k = 0; k < p.size; ++k)
            met.emplace_back(p.data[k].song, static_cast<int64_t>(p.data[k].window) - probe.t,
                             probe.t, probe.span, probe.rank);
    }
    std::sort(met.begin(), met.end());
    std::vector<PairCandidate> out;
    std::vector<uint64_t> rank_sum;
    for (size_t a = 0; a < met.size();) {
        size_t b = a;
        uint64_t ranks = 0;
        uint32_t votes = 0;
        for (; b < met.size() && std::get<0>(met[b]) == std::get<0>(met[a]) &&
               std::get<1>(met[b]) == std::get<1>(met[a]);
             ++b)
            if (b == a || std::get<2>(met[b]) != std::get<2>(met[b - 1]) ||
                std::get<3>(met[b]) != std::get<3>(met[b - 1]))
                ++votes, ranks += std::get<4>(met[b]);  // sorted: the pair's best rank first
        out.push_back({std::get<0>(met[a]), std::get<1>(met[a]), votes, float(votes)});
        rank_sum.push_back(ranks);
        a = b;
    }
    // Ties by summed rank, then (song, delta) order: the sort above made it, stable_sort keeps
    // it.
    std::vector<size_t> order(out.size());
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
        if (out[x].votes != out[y].votes) return out[x].votes > out[y].votes;
        return rank_sum[x] < rank_sum[y];
    });
    std::vector<PairCandidate> sorted;
    sorted.reserve(std::min(order.size(), max_candidates));
    for (size_t i = 0; i < order.size() && i < max_candidates; ++i) sorted.push_back(out[order[i]]);
    out = std::move(sorted);
    return out;
}

Result<std::vector<uint32_t>> pair_query_keys(uint32_t n_lists, uint32_t span,
                                              const uint32_t* query_lists, size_t n,
                                              uint32_t query_step) {
    Result<std::vector<PairProbe>> probes =
        pair_query_probes(n_lists, span, query_lists, nullptr, n, 1, query_step, 1);
    if (!probes) return probes.status();
    return pair_probe_keys(probes.value());
}

Result<std::vector<PairCandidate>> pair_vote(
    uint32_t n_lists, uint32_t span, const uint32_t* query_lists, size_t n, uint32_t query_step,
    size_t max_candidates, const std::function<PairPostingSpan(uint32_t)>& postings_of) {
    Result<std::vector<PairProbe>> probes =
        pair_query_probes(n_lists, span, query_lists, nullptr, n, 1, query_step, 1);
    if (!probes) return probes.status();
    return pair_vote_probes(probes.value(), max_candidates, postings_of);
}

Result<std::vector<uint32_t>> PairKeyIndex::query_keys(const uint32_t* query_lists, size_t n,
                                                       uint32_t query_step) const {
    return pair_query_keys(n_lists_, span_, query_lists, n, query_step);
}

Result<std::vector<PairCandidate>> PairKeyIndex::vote(const uint32_t* query_lists, size_t n,
                                                      uint32_t query_step,
                                                      size_t max_candidates) const {
    if (!finished_) return Status::error("pair keys: vote before finish");
    return pair_vote(n_lists_, span_, query_lists, n, query_step, max_candidates,
                     [this](uint32_t k) { return postings(k); });
}

Status MemoryPairKeySpill::append(uint32_t bucket, const uint64_t* records, size_t n) {
    if (bucket >= buckets_.size()) buckets_.resize(size_t(bucket) + 1);
    buckets_[bucket].insert(buckets_[bucket].end(), records, records + n);
    return Status::ok();
}

Result<std::vector<uint64_t>> MemoryPairKeySpill::take(uint32_t bucket) {
    std::vector<uint64_t> out;
    if (bucket < buckets_.size()) out.swap(buckets_[bucket]);
    return out;
}

Result<PairKeyBuilder> PairKeyBuilder::create(uint32_t n_lists, uint32_t span,
                                              uint32_t keys_per_page,
                                              std::shared_ptr<PairKeySpill> spill,
                                              uint32_t n_buckets, size_t buffer_records,
                                              uint32_t short_span) {
    if (Status st = check_pair_spans(n_lists, span, short_span); !st) return st;
    if (keys_per_page < 1 || keys_per_page > kPairLayoutMaxKeysPerPage)
        return Status::error("pair keys: keys_per_page must be in [1, " +
                             std::to_string(kPairLayoutMaxKeysPerPage) + "]");
    if (n_buckets < 1 || buffer_records < 1)
        return Status::error("pair keys: the builder needs at least one bucket and buffer record");
    PairKeyBuilder b;
    b.n_lists_ = n_lists;
    b.span_ = span;
    b.short_span_ = short_span;
    b.keys_per_page_ = keys_per_page;
    const uint64_t n_keys = pair_key_space(n_lists, short_span);
    const uint64_t n_pages = (n_keys + keys_per_page - 1) / keys_per_page;
    const uint64_t pages_per_bucket = (n_pages + n_buckets - 1) / n_buckets;
    b.keys_per_bucket_ = pages_per_bucket * keys_per_page;
    const uint64_t used_buckets = (n_keys + b.keys_per_bucket_ - 1) / b.keys_per_bucket_;
    b.spill_ = spill ? std::move(spill) : std::make_shared<MemoryPairKeySpill>();
    b.buffer_records_ = buffer_records;
    b.buffers_.resize(used_buckets);
    return b;
}

Status PairKeyBuilder::flush(uint32_t bucket) {
    std::vector<uint64_t>& buffer = buffers_[bucket];
    if (buffer.empty()) return Status::ok();
    Status st = spill_->append(bucket, buffer.data(), buffer.size());
    buffer.clear();
    return st;
}

Status PairKeyBuilder::add_song(const uint32_t* lists, size_t n_windows, const uint32_t* second) {
    if (finished_) return Status::error("pair keys: add_song after finish");
    if (Status s = check_song_lists(n_lists_, n_songs_, lists, n_windows); !s) return s;
    if (second != nullptr)
        if (Status s = check_song_lists(n_lists_, n_songs_, second, n_windows); !s) return s;
    if (n_songs_ >> kPairLayoutSongBits)
        return Status::error("pair keys: song " + std::to_string(n_songs_) +
                             " is beyond a posting's " + std::to_string(kPairLayoutSongBits) +
                             " bits");
    // A posting's window is below n_windows - the shortest span.
    const uint32_t shortest = short_span_ > 0 ? short_span_ : span_;
    if (n_windows > shortest && n_windows - shortest > kPairLayoutMaxWindows)
        return Status::error("pair keys: song " + std::to_string(n_songs_) + " has " +
                             std::to_string(n_windows) + " windows, more than a posting's " +
                             std::to_string(kPairLayoutWindowBits) +
                             " bits number: split longer songs into parts");
    const auto song = static_cast<uint32_t>(n_songs_);  // below 2^kPairLayoutSongBits
    Status st = Status::ok();
    for_each_song_pair(
        n_lists_, span_, short_span_, lists, second, n_windows, [&](uint32_t key, uint32_t window) {
            if (!st) return;
            const auto bucket = static_cast<uint32_t>(key / keys_per_bucket_);
            buffers_[bucket].push_back(uint64_t(key) << 32 | pack_pair_posting({song, window}));
            ++n_postings_;
            if (buffers_[bucket].size() >= buffer_records_) st = flush(bucket);
        });
    if (!st) return st;
    ++n_songs_;
    return Status::ok();
}

Status PairKeyBuilder::finish(PairKeyLayoutWriter* writer) {
    if (finished_) return Status::error("pair keys: finish called twice");
    finished_ = true;
    std::vector<PairPosting> postings;
    for (uint32_t bucket = 0; bucket < buffers_.size(); ++bucket) {
        if (Status st = flush(bucket); !st) return st;
        std::vector<uint64_t>().swap(buffers_[bucket]);
        Result<std::vector<uint64_t>> records = spill_->take(bucket);
        if (!records) return records.status();
        std::vector<uint64_t>& r = records.value();
        largest_bucket_ = std::max<uint64_t>(largest_bucket_, r.size());
        std::sort(r.begin(), r.end());  // by key, then song, then window
        for (size_t a = 0; a < r.size();) {
            const auto key = static_cast<uint32_t>(r[a] >> 32);
            postings.clear();
            size_t b = a;
            for (; b < r.size() && static_cast<uint32_t>(r[b] >> 32) == key; ++b)
                postings.push_back(unpack_pair_posting(static_cast<uint32_t>(r[b])));
            if (Status st = writer->add_key(key, postings.data(), postings.size()); !st) return st;
            a = b;
        }
    }
    return Status::ok();
}

}  // namespace earshot
