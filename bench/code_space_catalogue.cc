#include "bench/code_space_catalogue.h"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "core/quantizer.h"
#include "core/quantizer_training.h"

namespace earshot {

namespace {

// One song as its stored windows' list ids and code rows (a row per window, or per group of
// windows for a grouped code: code_groups()), plus its timeline.
struct CodedSong {
    SongInfo info;
    size_t n_windows = 0;
    std::vector<uint8_t> stored;     // [n_windows], 1 = stored
    std::vector<uint16_t> list_ids;  // [n_stored]
    std::vector<uint16_t> second;    // [n_stored] with second lists, else empty
    std::vector<uint8_t> codes;      // [rows, pq_m]
};

// Song s of `index` re-encoded with `target` (copied as is when `same_quantizer`). With
// `second_lists`, also each stored window's second nearest list under `target`, found from the
// window's reconstruction (the index holds no embeddings).
CodedSong coded_song(const Index& index, size_t s, const Quantizer& target, bool same_quantizer,
                     bool second_lists = false) {
    CodedSong song;
    song.info = index.song(s);
    song.n_windows = index.song_n_embeddings(s);
    song.stored.resize(song.n_windows);
    const Quantizer& q = index.quantizer();
    const uint32_t first = index.song_first_embedding(s);
    std::vector<uint32_t> ids;  // the stored windows' global ids
    for (size_t j = 0; j < song.n_windows; ++j) {
        const uint32_t g = first + uint32_t(j);
        song.stored[j] = index.embedding_stored(g) ? 1 : 0;
        if (song.stored[j]) ids.push_back(g);
    }
    const size_t pq_m = size_t(target.pq_m), dim = size_t(q.dim);
    const auto groups = code_groups(song.stored.data(), song.n_windows, size_t(target.group));
    if (same_quantizer) {
        for (uint32_t g : ids) song.list_ids.push_back(uint16_t(index.embedding_list(g)));
        if (second_lists && target.n_lists > 1) {
            std::vector<float> x(dim);
            for (uint32_t g : ids) {
                float scale;
                int slot;
                const uint8_t* codes = index.embedding_codes(g, &scale, &slot);
                const int list = index.embedding_list(g);
                q.decode(list, codes, x.data(), slot);
                uint32_t near[2];
                float d[2];
                target.nearest(x.data(), 2, near, d);
                song.second.push_back(uint16_t(near[0] == uint32_t(list) ? near[1] : near[0]));
            }
        }
        // A group's row is where its first window's codes are (core/index.h).
        for (const auto& [rank, count] : groups) {
            const uint8_t* codes = index.embedding_codes(ids[rank]);
            song.codes.insert(song.codes.end(), codes, codes + pq_m);
        }
        return song;
    }
    std::vector<float> x(ids.size() * dim);
    std::vector<int> lists(ids.size());
    for (size_t k = 0; k < ids.size(); ++k) {
        float scale;
        int slot;
        const uint8_t* codes = index.embedding_codes(ids[k], &scale, &slot);
        q.decode(index.embedding_list(ids[k]), codes, &x[k * dim], slot);
        if (second_lists && target.n_lists > 1) {
            uint32_t near[2];
            float d[2];
            target.nearest(&x[k * dim], 2, near, d);
            lists[k] = int(near[0]);
            song.second.push_back(uint16_t(near[1]));
        } else {
            lists[k] = target.assign(&x[k * dim]);
        }
        song.list_ids.push_back(uint16_t(lists[k]));
    }
    song.codes.resize(groups.size() * pq_m);
    std::vector<float> group_x(size_t(target.group) * dim);
    std::vector<int> group_lists(size_t(target.group));
    for (size_t r = 0; r < groups.size(); ++r) {
        const auto [rank, count] = groups[r];
        if (target.group == 1) {
            target.encode(&x[rank * dim], lists[rank], &song.codes[r * pq_m]);
            continue;
        }
        for (size_t slot = 0; slot < size_t(target.group); ++slot) {
            const size_t k = rank + std::min(slot, count - 1);  // a short group repeats its last
            std::copy_n(&x[k * dim], dim, &group_x[slot * dim]);
            group_lists[slot] = lists[k];
        }
        target.encode_group(group_x.data(), group_lists.data(), &song.codes[r * pq_m]);
    }
    return song;
}

// Ids 0 .. counts.size() - 1 ranked by count (descending, ties by id), cut into blocks of
// `block`; returns perm with perm[id] = another id of the same block, shuffled by rng.
std::vector<uint16_t> stratified_permutation(const std::vector<size_t>& counts, size_t block,
                                             SplitMix64& rng) {
    std::vector<uint16_t> ranked(counts.size());
    std::iota(ranked.begin(), ranked.end(), uint16_t(0));
    std::stable_sort(ranked.begin(), ranked.end(),
                     [&](uint16_t a, uint16_t b) { return counts[a] > counts[b]; });
    std::vector<uint16_t> perm(counts.size());
    for (size_t begin = 0; begin < ranked.size(); begin += block) {
        const size_t end = std::min(ranked.size(), begin + block);
        std::vector<uint16_t> shuffled(ranked.begin() + begin, ranked.begin() + end);
        for (size_t i = shuffled.size(); i > 1; --i)
            std::swap(shuffled[i - 1], shuffled[rng.below(i)]);
        for (size_t i = begin; i < end; ++i) perm[ranked[i]] = shuffled[i - begin];
    }
    return perm;
}

bool same_quantizer(const Quantizer& a, const Quantizer& b) {
    return a.dim == b.dim && a.n_lists == b.n_lists && a.pq_m == b.pq_m && a.group == b.group &&
           a.unit_norm == b.unit_norm && a.coarse_centroids == b.coarse_centroids &&
           a.pq_codebooks == b.pq_codebooks && a.rotation == b.rotation;
}

}  // namespace

CodeSpaceCatalogueParams code_space_catalogue_default_params() { return {}; }

size_t real_song_position(size_t r, size_t n_real, size_t n_total) {
    return size_t((2 * uint64_t(r) + 1) * n_total / (2 * uint64_t(n_real)));
}

Result<IndexFiles> make_code_space_catalogue(const ModelInfo& model, const Index& real,
                                             const Index& source,
                                             const CodeSpaceCatalogueParams& params) {
    if (!real.has_quantizer() || !source.has_quantizer())
        return Status::error("code space catalogue: both indexes need their quantizer");
    if (real.n_songs() == 0 || source.n_songs() == 0)
        return Status::error("code space catalogue: an index without songs");
    if (real.dim() != source.dim())
        return Status::error("code space catalogue: the real index has dim " +
                             std::to_string(real.dim()) + ", the source index " +
                             std::to_string(source.dim()) + " (build both with the same model)");
    if (params.list_block < 1 || params.code_block < 1 || params.code_block > kPqCodebookSize)
        return Status::error(
            "code space catalogue: list_block must be >= 1 and code_block in "
            "1 .. 256");
    const Quantizer& q = real.quantizer();
    const size_t pq_m = size_t(q.pq_m);
    IndexBuildParams build = index_build_default_params(model);
    build.n_lists = q.n_lists;
    build.pq_m = q.pq_m;
    build.code_group = q.group;
    build.max_shard_bytes = params.max_shard_bytes;
    if (params.pair_span > 0) {
        build.format_version = kIndexVersion2;
        build.pair_span = params.pair_span;
        build.pair_short_span = params.pair_short_span;
        build.pair_lists = params.pair_lists;
    }
    Result<IndexBuilder> builder = IndexBuilder::create(model, build);
    if (!builder) return builder.status();
    if (params.shard_sink) builder->set_shard_sink(params.shard_sink);
    if (params.pair_spill) builder->set_pair_spill(params.pair_spill);
    if (Status st = builder->set_quantizer(q); !st) return st;

    const bool two = params.pair_span > 0 && params.pair_lists == 2;
    const auto add_real = [&](size_t s) {
        const CodedSong song = coded_song(real, s, q, true, two);
        return builder->add_song_codes(song.info, song.list_ids.data(), song.codes.data(),
                                       song.n_windows, song.stored.data(),
                                       two ? song.second.data() : nullptr);
    };
    if (params.n_synthetic_songs == 0) {
        for (size_t s = 0; s < real.n_songs(); ++s)
            if (Status st = add_real(s); !st) return st;
        return builder->finish();
    }

    const bool same = same_quantizer(q, source.quantizer());
    std::vector<CodedSong> sources;
    std::vector<size_t> list_counts(size_t(q.n_lists), 0);
    std::vector<std::vector<size_t>> code_counts(pq_m, std::vector<size_t>(kPqCodebookSize, 0));
    for (size_t s = 0; s < source.n_songs(); ++s) {
        sources.push_back(coded_song(source, s, q, same, two));
        const CodedSong& song = sources.back();
        for (uint16_t list : song.list_ids) ++list_counts[list];
        for (size_t row = 0; row < song.codes.size() / pq_m; ++row)
            for (size_t m = 0; m < pq_m; ++m) ++code_counts[m][song.codes[row * pq_m + m]];
    }

    const size_t list_block = std::min<size_t>(size_t(params.list_block), size_t(q.n_lists));
    std::vector<uint16_t> ids, second;
    std::vector<uint8_t> codes;
    const auto add_synthetic = [&](size_t k) {
        const CodedSong& src = sources[k % sources.size()];
        SplitMix64 rng(params.seed * 0x9e3779b97f4a7c15ull + k);
        const std::vector<uint16_t> list_perm =
            stratified_permutation(list_counts, list_block, rng);
        std::vector<std::vector<uint16_t>> code_perm;
        for (size_t m = 0; m < pq_m; ++m)
            code_perm.push_back(
                stratified_permutation(code_counts[m], size_t(params.code_block), rng));
        ids.resize(src.list_ids.size());
        codes.resize(src.codes.size());
        for (size_t j = 0; j < ids.size(); ++j) ids[j] = list_perm[src.list_ids[j]];
        second.resize(src.second.size());
        for (size_t j = 0; j < second.size(); ++j) second[j] = list_perm[src.second[j]];
        // A grouped code's row is relabeled as a whole: each code word, all its slots, becomes
        // another of the same sub-quantizer, as a window's sub-codes do.
        for (size_t row = 0; row < codes.size() / pq_m; ++row)
            for (size_t m = 0; m < pq_m; ++m)
                codes[row * pq_m + m] = uint8_t(code_perm[m][src.codes[row * pq_m + m]]);
        char id[32];
        std::snprintf(id, sizeof id, "synthetic-%07zu", k);
        SongInfo info;
        info.id = id;
        info.title = "Synthetic song " + std::to_string(k) + " (codes of " + src.info.id + ")";
        info.album = "Synthetic";
        info.duration_s = src.info.duration_s;
        return builder->add_song_codes(info, ids.data(), codes.data(), src.n_windows,
                                       src.stored.data(), two ? second.data() : nullptr);
    };
    const size_t total = real.n_songs() + params.n_synthetic_songs;
    for (size_t position = 0, r = 0, k = 0; position < total; ++position) {
        Status st = r < real.n_songs() && position == real_song_position(r, real.n_songs(), total)
                        ? add_real(r++)
                        : add_synthetic(k++);
        if (!st) return st;
    }
    return builder->finish();
}

}  // namespace earshot
