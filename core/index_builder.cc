#include "core/index_builder.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/container.h"
#include "core/pair_key_layout.h"
#include "core/quantizer_training.h"
#include "core/sha256.h"

namespace earshot {

using json = nlohmann::json;

namespace {

// nlohmann::json::dump throws on invalid UTF-8; titles from tags may be anything.
std::string sanitize_utf8(const std::string& s) {
    std::string dumped = json(s).dump(-1, ' ', false, json::error_handler_t::replace);
    json back = json::parse(dumped, nullptr, false);
    return back.is_string() ? back.get<std::string>() : std::string();
}

std::string file_sha256_hex(const std::vector<uint8_t>& file) {
    return index_file_sha256_hex(file.data(), file.size());
}

// A shard's bytes besides its songs (header, section table and alignment padding), upper bound.
constexpr size_t kShardFixedBytes = 32 + 256 + 3 * 72 + 3 * kContainerAlign + 32 + 128;

// A song's entry in its shard's "songs" metadata.
json song_meta(const SongInfo& info) {
    json meta = {{"id", info.id},
                 {"title", info.title},
                 {"album", info.album},
                 {"duration_s", info.duration_s}};
    if (info.has_prior()) {  // absent without a popularity column: such indexes are unchanged
        meta["popularity"] = info.popularity;
        meta["log_prior"] = info.log_prior;
    }
    return meta;
}

constexpr char kBlocksFile[] = "songs.esb";
constexpr char kDirectoryFile[] = "directory.ed";
constexpr char kPairHeaderFile[] = "pairs.ekh";
constexpr char kDirectoryPagesHeaderFile[] = "directory-pages.edh";
constexpr char kDirectoryPagesFile[] = "directory-pages.edp";
constexpr char kPairDirectoryFile[] = "pairs.ekd";
constexpr char kPairPostingsFile[] = "pairs.ekp";

std::string shard_file_name(size_t shard) {
    char name[32];
    std::snprintf(name, sizeof(name), "shard-%05zu.es", shard);
    return name;
}

// "1, 2, 4, ... or 128": the values pq_m may take for this dim.
std::string divisors_text(int n) {
    std::string text;
    for (int d = 1; d <= n; ++d) {
        if (n % d != 0) continue;
        if (!text.empty()) text += d == n ? " or " : ", ";
        text += std::to_string(d);
    }
    return text;
}

}  // namespace

IndexBuildParams index_build_default_params() { return IndexBuildParams(); }

IndexBuildParams index_build_default_params(const ModelInfo& model) {
    IndexBuildParams params;
    params.pq_m = model.index_pq_m;
    params.opq_rounds = model.index_opq_rounds;
    params.unit_norm = model.index_unit_norm;
    params.code_group = model.index_code_group;
    return params;
}

void apply_code_options(IndexBuildParams* params, int pq_m, int opq_rounds, int unit_norm,
                        int group) {
    if (pq_m <= 0 && opq_rounds < 0 && unit_norm < 0 && group <= 0) return;
    params->opq_rounds = 0;
    params->unit_norm = false;
    params->code_group = 1;
    if (pq_m > 0) params->pq_m = pq_m;
    if (opq_rounds >= 0) params->opq_rounds = opq_rounds;
    if (unit_norm >= 0) params->unit_norm = unit_norm > 0;
    if (group > 0) params->code_group = group;
}

uint32_t pair_span_hops(const ModelInfo& model, double seconds) {
    return uint32_t(std::max(1.0, std::round(seconds / model_hop_s(model))));
}

int index_auto_lists(size_t n_embeddings) {
    int lists = 256;
    // Nearest in log scale: move up while sqrt(n) >= lists * sqrt(2), i.e. n >= 2 * lists^2.
    while (lists < 4096 && double(n_embeddings) >= 2.0 * double(lists) * double(lists)) lists *= 2;
    return lists;
}

Status validate_index_build_params(const IndexBuildParams& p, const ModelInfo& model) {
    const int dim = model.embedding_dim;
    if (!quantizer_dim_supported(dim))
        return Status::error("embedding_dim " + std::to_string(dim) + " of model '" + model.name +
                             "' is not supported by the index (a multiple of 4, at most " +
                             std::to_string(kMaxQuantizerDim) + ")");
    if (p.n_lists < 0 || p.n_lists > kMaxLists)
        return Status::error("n_lists " + std::to_string(p.n_lists) + " is out of range [0, " +
                             std::to_string(kMaxLists) + "] (0 = by catalogue size)");
    if (p.pq_m < 1 || dim % p.pq_m != 0)
        return Status::error("pq_m " + std::to_string(p.pq_m) +
                             " must divide the model's embedding_dim " + std::to_string(dim) +
                             ": use " + divisors_text(dim));
    if (p.pq_nbits != 8)
        return Status::error("pq_nbits " + std::to_string(p.pq_nbits) +
                             " is not supported (only 8-bit codes)");
    if (p.opq_rounds < 0 || p.opq_rounds > kMaxOpqRounds)
        return Status::error("opq_rounds " + std::to_string(p.opq_rounds) +
                             " is out of range [0, " + std::to_string(kMaxOpqRounds) + "]");
    if (p.code_group < 1 || p.code_group > kMaxCodeGroup)
        return Status::error("code_group " + std::to_string(p.code_group) +
                             " is out of range [1, " + std::to_string(kMaxCodeGroup) + "]");
    if (p.kmeans_iterations < 0)
        return Status::error("kmeans_iterations " + std::to_string(p.kmeans_iterations) +
                             " must be >= 0");
    if (p.max_shard_bytes == 0) return Status::error("max_shard_bytes must be > 0");
    if (p.format_version != kIndexVersion1 && p.format_version != kIndexVersion2)
        return Status::error("format_version " + std::to_string(p.format_version) +
                             " is not 1 or 2");
    if (p.pair_span > 0 && p.format_version != kIndexVersion2)
        return Status::error("pair_span: the pair-key level is written with format 2 only");
    if (p.directory_page_blocks < 1 || p.directory_page_blocks > kMaxDirectoryPageBlocks)
        return Status::error("directory_page_blocks must be in [1, " +
                             std::to_string(kMaxDirectoryPageBlocks) + "]");
    if (p.pair_span > kPairLayoutMaxWindows)
        return Status::error("pair_span " + std::to_string(p.pair_span) + " is out of range [0, " +
                             std::to_string(kPairLayoutMaxWindows) + "]");
    if (p.pair_short_span > 0 && p.pair_short_span >= p.pair_span)
        return Status::error("pair_short_span " + std::to_string(p.pair_short_span) +
                             " must be below pair_span (" + std::to_string(p.pair_span) + ")");
    if (p.pair_lists < 1 || p.pair_lists > 2)
        return Status::error("pair_lists " + std::to_string(p.pair_lists) + " is not 1 or 2");
    if (p.pair_keys_per_page < 1 || p.pair_keys_per_page > kPairLayoutMaxKeysPerPage)
        return Status::error("pair_keys_per_page " + std::to_string(p.pair_keys_per_page) +
                             " is out of range [1, " + std::to_string(kPairLayoutMaxKeysPerPage) +
                             "]");
    return Status::ok();
}

IndexBuilder::PendingSong IndexBuilder::make_pending_song(const SongInfo& song,
                                                          size_t n_embeddings) {
    IndexBuilder::PendingSong pending;
    pending.info.id = sanitize_utf8(song.id);
    pending.info.title = sanitize_utf8(song.title);
    pending.info.album = sanitize_utf8(song.album);
    pending.info.duration_s =
        std::isfinite(song.duration_s) && song.duration_s > 0 ? song.duration_s : 0.0;
    if (std::isfinite(song.popularity) && song.popularity >= 0.0) {
        pending.info.popularity = song.popularity;
        pending.info.log_prior = std::isfinite(song.log_prior)
                                     ? std::clamp(song.log_prior, -kMaxLogPrior, kMaxLogPrior)
                                     : 0.0;
    }
    pending.n_embeddings = n_embeddings;
    pending.n_stored = n_embeddings;
    return pending;
}

Result<IndexBuilder> IndexBuilder::create(const ModelInfo& model, const IndexBuildParams& params) {
    Status st = validate_index_build_params(params, model);
    if (!st) return st;
    return IndexBuilder(model, params);
}

IndexBuilder::IndexBuilder(const ModelInfo& model, const IndexBuildParams& params)
    : model_(model), params_(params), hop_s_(model_hop_s(model)) {}

Status IndexBuilder::add_song(const SongInfo& song, const float* embeddings, size_t n_embeddings,
                              const uint8_t* stored) {
    if (n_embeddings > 0 && embeddings == nullptr)
        return Status::error("add_song: embeddings is null for " + std::to_string(n_embeddings) +
                             " embeddings");
    if (n_embeddings > kMaxSongWindows)
        return Status::error("add_song '" + song.id + "': " + std::to_string(n_embeddings) +
                             " windows, more than an index holds per song (" +
                             std::to_string(kMaxSongWindows) + ")");
    PendingSong pending = make_pending_song(song, n_embeddings);
    const size_t dim = size_t(model_.embedding_dim);
    if (stored != nullptr && std::count(stored, stored + n_embeddings, uint8_t(0)) > 0) {
        pending.stored.resize(n_embeddings);
        for (size_t j = 0; j < n_embeddings; ++j) pending.stored[j] = stored[j] != 0;
    }
    pending.n_stored = 0;
    pending.embeddings.reserve(n_embeddings * dim);
    for (size_t j = 0; j < n_embeddings; ++j) {
        if (!pending.stored.empty() && !pending.stored[j]) continue;
        const float* x = embeddings + j * dim;
        for (size_t d = 0; d < dim; ++d)
            if (!std::isfinite(x[d]))
                return Status::error("add_song '" + pending.info.id + "': embedding " +
                                     std::to_string(j) + " has a non-finite value");
        pending.embeddings.insert(pending.embeddings.end(), x, x + dim);
        ++pending.n_stored;
    }
    ++songs_added_;
    duration_s_ += pending.info.duration_s;
    if (trained_) {
        encode_song(pending);
        return place_song(std::move(pending));
    }
    songs_.push_back(std::move(pending));
    n_pending_vectors_ += songs_.back().n_stored;
    if (n_pending_vectors_ > params_.max_pending_vectors) return train();
    return Status::ok();
}

void IndexBuilder::encode_song(PendingSong& song) const {
    const int dim = quantizer_.dim, group = quantizer_.group;
    song.list_ids.resize(song.n_stored);
    if (params_.pair_span > 0 && params_.pair_lists == 2 && quantizer_.n_lists > 1) {
        song.second_list_ids.resize(song.n_stored);
        uint32_t lists[2];
        float d[2];
        for (size_t j = 0; j < song.n_stored; ++j) {
            quantizer_.nearest(&song.embeddings[j * dim], 2, lists, d);
            song.list_ids[j] = uint16_t(lists[0]);
            song.second_list_ids[j] = uint16_t(lists[1]);
        }
    } else {
        for (size_t j = 0; j < song.n_stored; ++j)
            song.list_ids[j] = uint16_t(quantizer_.assign(&song.embeddings[j * dim]));
    }
    if (group == 1) {
        song.codes.resize(song.n_stored * quantizer_.pq_m);
        for (size_t j = 0; j < song.n_stored; ++j)
            quantizer_.encode(&song.embeddings[j * dim], song.list_ids[j],
                              &song.codes[j * quantizer_.pq_m]);
    } else {
        // A partial group (a run's end) is filled up with its last window.
        const auto groups = code_groups(song.stored_flags(), song.n_embeddings, size_t(group));
        song.codes.resize(groups.size() * quantizer_.pq_m);
        std::vector<float> windows(size_t(group) * dim);
        std::vector<int> lists(group);
        for (size_t g = 0; g < groups.size(); ++g) {
            for (int s = 0; s < group; ++s) {
                const size_t j = groups[g].first + std::min(size_t(s), groups[g].second - 1);
                std::memcpy(&windows[size_t(s) * dim], &song.embeddings[j * dim],
                            dim * sizeof(float));
                lists[s] = song.list_ids[j];
            }
            quantizer_.encode_group(windows.data(), lists.data(), &song.codes[g * quantizer_.pq_m]);
        }
    }
    std::vector<float>().swap(song.embeddings);
    song.shard_bytes = song_shard_bytes(song);
}

size_t IndexBuilder::song_shard_bytes(const PendingSong& song) const {
    return shard_list_id_bytes(song.list_ids.data(), song.n_stored, quantizer_.n_lists) +
           song.codes.size() + 4 +
           8 * (song.n_embeddings - song.n_stored) +  // absent runs, at most
           song_meta(song.info).dump().size() + 2;
}

Status IndexBuilder::train() {
    size_t total = 0;
    for (const PendingSong& s : songs_) total += s.embeddings.size() / model_.embedding_dim;
    if (total == 0)
        return Status::error("train: no embeddings added (add songs with at least one embedding)");
    if (params_.n_lists == 0) {
        // Trained before every song is in: lists for the catalogue the caller announced.
        size_t expected = total;
        if (params_.expected_songs > songs_added_ && songs_added_ > 0)
            expected =
                size_t(double(total) * double(params_.expected_songs) / double(songs_added_));
        params_.n_lists = index_auto_lists(expected);
    }
    const size_t dim = size_t(model_.embedding_dim);
    if (params_.code_group > 1) return train_on_groups();
    const size_t n_sample = std::min(total, std::max<size_t>(params_.max_training_vectors, 1));
    std::vector<float> sample(n_sample * dim);
    if (n_sample == total) {
        size_t at = 0;
        for (const PendingSong& s : songs_) {
            std::memcpy(&sample[at], s.embeddings.data(), s.embeddings.size() * sizeof(float));
            at += s.embeddings.size();
        }
    } else {
        // Seeded sample without replacement, gathered in ascending order (partial Fisher-Yates).
        std::vector<uint32_t> perm(total);
        std::iota(perm.begin(), perm.end(), 0u);
        SplitMix64 rng(params_.seed ^ 0x5a5a5a5aull);
        for (size_t i = 0; i < n_sample; ++i) std::swap(perm[i], perm[i + rng.below(total - i)]);
        perm.resize(n_sample);
        std::sort(perm.begin(), perm.end());
        size_t song = 0, song_start = 0;
        for (size_t i = 0; i < n_sample; ++i) {
            while (perm[i] >= song_start + songs_[song].embeddings.size() / dim)
                song_start += songs_[song++].embeddings.size() / dim;
            std::memcpy(&sample[i * dim], &songs_[song].embeddings[(perm[i] - song_start) * dim],
                        dim * sizeof(float));
        }
    }
    return train_on(sample.data(), n_sample);
}

Status IndexBuilder::train_on_groups() {
    // A grouped code trains on its groups (code_groups()): a seeded sample of them, each
    // partial group filled up with its last window.
    const size_t dim = size_t(model_.embedding_dim), group = size_t(params_.code_group);
    struct Group {
        uint32_t song, first, size;  // first stored window, windows
        bool operator<(const Group& o) const {
            return song != o.song ? song < o.song : first < o.first;
        }
    };
    std::vector<Group> groups;
    for (size_t s = 0; s < songs_.size(); ++s)
        for (const auto& [first, size] :
             code_groups(songs_[s].stored_flags(), songs_[s].n_embeddings, group))
            groups.push_back({uint32_t(s), uint32_t(first), uint32_t(size)});
    const size_t n_sample =
        std::min(groups.size(), std::max<size_t>(params_.max_training_vectors / group, 1));
    if (n_sample < groups.size()) {
        SplitMix64 rng(params_.seed ^ 0x5a5a5a5aull);
        for (size_t i = 0; i < n_sample; ++i)
            std::swap(groups[i], groups[i + rng.below(groups.size() - i)]);
        groups.resize(n_sample);
        std::sort(groups.begin(), groups.end());
    }
    std::vector<float> sample(n_sample * group * dim);
    for (size_t i = 0; i < n_sample; ++i) {
        const PendingSong& song = songs_[groups[i].song];
        for (size_t s = 0; s < group; ++s) {
            const size_t j = groups[i].first + std::min(s, size_t(groups[i].size) - 1);
            std::memcpy(&sample[(i * group + s) * dim], &song.embeddings[j * dim],
                        dim * sizeof(float));
        }
    }
    return train_on(sample.data(), sample.size() / dim);
}

Status IndexBuilder::train_on(const float* vectors, size_t n_vectors) {
    if (params_.n_lists == 0) params_.n_lists = index_auto_lists(n_vectors);
    if (n_vectors == 0 || vectors == nullptr) return Status::error("train: no training vectors");
    if (trained_) return Status::error("train: already trained");
    // A grouped code: whole groups of code_group consecutive windows (train_on_groups()).
    const size_t group = size_t(params_.code_group);
    const size_t n =
        std::min(n_vectors, std::max<size_t>(params_.max_training_vectors, group)) / group * group;
    if (n == 0) return Status::error("train: fewer training vectors than one group");
    quantizer_ = train_quantizer(vectors, n, model_.embedding_dim, params_.n_lists, params_.pq_m,
                                 params_.kmeans_iterations, params_.seed, params_.opq_rounds,
                                 params_.code_group);
    quantizer_.unit_norm = params_.unit_norm;
    trained_ = true;
    return after_training();
}

Status IndexBuilder::after_training() {
    const Quantizer& q = quantizer_;
    list_sizes_.assign(size_t(q.n_lists), 0);
    json qmeta = {{"model_hash", model_.hash_hex},
                  {"dim", q.dim},
                  {"n_lists", q.n_lists},
                  {"pq_m", q.pq_m},
                  {"pq_nbits", 8}};
    if (q.unit_norm) qmeta["unit_norm"] = true;  // absent: false (files as before)
    if (q.group > 1) qmeta["group"] = q.group;   // absent: 1
    ContainerWriter qwriter("QUAN", qmeta);
    qwriter.add("coarse_centroids", DType::kF32, {uint32_t(q.n_lists), uint32_t(q.dim)},
                q.coarse_centroids.data(), q.coarse_centroids.size() * sizeof(float));
    std::vector<uint32_t> book_shape = {uint32_t(q.pq_m), uint32_t(kPqCodebookSize),
                                        uint32_t(q.sub_dim)};
    if (q.group > 1) book_shape.insert(book_shape.begin(), uint32_t(q.group));
    qwriter.add("pq_codebooks", DType::kF32, book_shape, q.pq_codebooks.data(),
                q.pq_codebooks.size() * sizeof(float));
    if (q.rotated())
        qwriter.add("rotation", DType::kF32, {uint32_t(q.dim), uint32_t(q.dim)}, q.rotation.data(),
                    q.rotation.size() * sizeof(float));
    quantizer_file_ = qwriter.finish();
    quantizer_sha256_ = file_sha256_hex(quantizer_file_);

    if (params_.pair_span > 0) {
        Result<PairKeyBuilder> pairs = PairKeyBuilder::create(
            uint32_t(q.n_lists), params_.pair_span, params_.pair_keys_per_page, pair_spill_,
            kPairBuilderBuckets, kPairBuilderBufferRecords, params_.pair_short_span);
        if (!pairs) return pairs.status();
        pairs_.emplace(std::move(pairs.value()));
    }

    std::vector<PendingSong> waiting;
    waiting.swap(songs_);
    n_pending_vectors_ = 0;
    shard_estimate_ = kShardFixedBytes;
    for (PendingSong& song : waiting) {
        encode_song(song);
        Status st = place_song(std::move(song));
        if (!st) return st;
    }
    return Status::ok();
}

Status IndexBuilder::place_song(PendingSong song) {
    if (pairs_) {  // songs are placed in index order: the pair level numbers them the same
        if (song.n_embeddings > kPairLayoutMaxWindows)
            return Status::error("song '" + song.info.id +
                                 "': " + std::to_string(song.n_embeddings) +
                                 " windows, more than the pair-key level holds per song (" +
                                 std::to_string(kPairLayoutMaxWindows) + "): split it");
        std::vector<uint32_t> lists(song.n_embeddings, kPairNoList);
        const bool two = !song.second_list_ids.empty();
        std::vector<uint32_t> second(two ? song.n_embeddings : 0, kPairNoList);
        for (size_t j = 0, k = 0; j < song.n_embeddings; ++j)
            if (song.stored.empty() || song.stored[j]) {
                if (two) second[j] = song.second_list_ids[k];
                lists[j] = song.list_ids[k++];
            }
        Status st = pairs_->add_song(lists.data(), lists.size(), two ? second.data() : nullptr);
        if (!st) return st;
        std::vector<uint16_t>().swap(song.second_list_ids);
    }
    if (!songs_.empty() && shard_estimate_ + song.shard_bytes > params_.max_shard_bytes) {
        Status st = write_shard();
        if (!st) return st;
    }
    shard_estimate_ += song.shard_bytes;
    songs_.push_back(std::move(song));
    return Status::ok();
}

Status IndexBuilder::set_quantizer(const Quantizer& q) {
    if (trained_) return Status::error("set_quantizer: a quantizer is already trained or set");
    if (q.dim != model_.embedding_dim || !quantizer_dim_supported(q.dim))
        return Status::error("set_quantizer: dim " + std::to_string(q.dim) +
                             " is not the model's embedding_dim " +
                             std::to_string(model_.embedding_dim));
    if (q.n_lists < 1 || q.n_lists > kMaxLists || q.pq_m < 1 || q.dim % q.pq_m != 0 ||
        q.group < 1 || q.group > kMaxCodeGroup || q.sub_dim != q.dim / q.pq_m ||
        q.coarse_centroids.size() != size_t(q.n_lists) * q.dim ||
        q.pq_codebooks.size() != size_t(q.group) * q.pq_m * kPqCodebookSize * q.sub_dim ||
        (q.rotated() && q.rotation.size() != size_t(q.dim) * q.dim))
        return Status::error("set_quantizer: inconsistent n_lists/pq_m/sub_dim or array sizes");
    if (q.rotated() && !(orthogonality_error(q.rotation.data(), q.dim) <= kMaxRotationError))
        return Status::error("set_quantizer: the rotation is not orthogonal");
    quantizer_ = q;
    trained_ = true;
    return after_training();  // songs added before: still floats
}

Status IndexBuilder::add_song_codes(const SongInfo& song, const uint16_t* list_ids,
                                    const uint8_t* codes, size_t n_embeddings,
                                    const uint8_t* stored, const uint16_t* second_list_ids) {
    if (!trained_) return Status::error("add_song_codes: train or set a quantizer first");
    PendingSong pending = make_pending_song(song, n_embeddings);
    if (stored != nullptr && std::count(stored, stored + n_embeddings, uint8_t(0)) > 0) {
        pending.stored.resize(n_embeddings);
        for (size_t j = 0; j < n_embeddings; ++j) pending.stored[j] = stored[j] != 0;
        pending.n_stored = size_t(std::count(pending.stored.begin(), pending.stored.end(), 1));
    }
    const size_t n = pending.n_stored;
    if (n > 0 && (list_ids == nullptr || codes == nullptr))
        return Status::error("add_song_codes: null list_ids or codes");
    for (size_t j = 0; j < n; ++j)
        if (list_ids[j] >= quantizer_.n_lists)
            return Status::error("add_song_codes: list id " + std::to_string(list_ids[j]) +
                                 " >= n_lists " + std::to_string(quantizer_.n_lists));
    pending.list_ids.assign(list_ids, list_ids + n);
    if (second_list_ids != nullptr && params_.pair_span > 0 && params_.pair_lists == 2) {
        for (size_t j = 0; j < n; ++j)
            if (second_list_ids[j] >= quantizer_.n_lists)
                return Status::error("add_song_codes: second list id " +
                                     std::to_string(second_list_ids[j]) + " >= n_lists " +
                                     std::to_string(quantizer_.n_lists));
        pending.second_list_ids.assign(second_list_ids, second_list_ids + n);
    }
    const size_t n_codes =
        quantizer_.group == 1
            ? n
            : code_groups(pending.stored_flags(), n_embeddings, size_t(quantizer_.group)).size();
    pending.codes.assign(codes, codes + n_codes * quantizer_.pq_m);
    pending.shard_bytes = song_shard_bytes(pending);
    ++songs_added_;
    duration_s_ += pending.info.duration_s;
    return place_song(std::move(pending));
}

Status IndexBuilder::write_shard() {
    const Quantizer& q = quantizer_;
    const size_t end = songs_.size();
    const size_t shard = shards_.size();
    const bool v2 = params_.format_version == kIndexVersion2;
    if (shard >= kMaxShards)
        return Status::error(
            std::string("more than ") + std::to_string(kMaxShards) +
            (v2 ? " blocks: raise the block size" : " shards: raise the shard size"));
    json songs = json::array();
    std::vector<uint32_t> offsets = {0};
    for (size_t s = 0; s < end; ++s) {
        songs.push_back(song_meta(songs_[s].info));
        offsets.push_back(offsets.back() + uint32_t(songs_[s].n_embeddings));
    }
    const size_t n_embeddings = offsets.back();  // windows, stored or not
    size_t n_stored = 0;
    for (size_t s = 0; s < end; ++s) n_stored += songs_[s].n_stored;
    size_t n_code_bytes = 0;  // a code per stored window, or per group of them
    for (size_t s = 0; s < end; ++s) n_code_bytes += songs_[s].codes.size();
    std::vector<uint16_t> ids;
    ids.reserve(n_stored);
    std::vector<uint8_t> codes;
    codes.reserve(n_code_bytes);
    std::vector<uint32_t> absent_runs;  // [start, length] pairs in the shard's windows
    for (size_t s = 0; s < end; ++s) {
        const PendingSong& song = songs_[s];
        for (size_t j = 0; j < song.n_stored; ++j) {
            ++list_sizes_[song.list_ids[j]];
            ids.push_back(song.list_ids[j]);
        }
        codes.insert(codes.end(), song.codes.begin(), song.codes.end());
        for (size_t j = 0; j < song.stored.size(); ++j) {
            if (song.stored[j]) continue;
            const uint32_t window = offsets[s] + uint32_t(j);
            const size_t n_runs = absent_runs.size() / 2;
            if (n_runs > 0 && absent_runs[2 * n_runs - 2] + absent_runs[2 * n_runs - 1] == window) {
                ++absent_runs[2 * n_runs - 1];
            } else {
                absent_runs.push_back(window);
                absent_runs.push_back(1);
            }
        }
    }
    json meta = {{"model_hash", model_.hash_hex},
                 {"quantizer_sha256", quantizer_sha256_},
                 {"shard", shard},
                 {"n_songs", end},
                 {"n_frames", n_embeddings},  // format key: windows (absent_runs: not stored)
                 {"songs", songs}};
    ContainerWriter writer("SHRD", meta);
    writer.add("song_offsets", DType::kU32, {uint32_t(end + 1)}, offsets.data(),
               offsets.size() * sizeof(uint32_t));
    add_shard_list_ids(&writer, ids, q.n_lists);
    writer.add("pq_codes", DType::kU8, {uint32_t(codes.size() / q.pq_m), uint32_t(q.pq_m)},
               codes.data(), codes.size());
    if (!absent_runs.empty())  // only then: a shard without absent windows is unchanged
        writer.add("absent_runs", DType::kU32, {uint32_t(absent_runs.size() / 2), 2u},
                   absent_runs.data(), absent_runs.size() * sizeof(uint32_t));
    std::vector<uint8_t> bytes = writer.finish();
    ShardEntry entry;
    entry.file = v2 ? kBlocksFile : shard_file_name(shard);
    entry.digest = sha256(bytes.data(), bytes.size());
    entry.sha256 = to_hex(entry.digest.data(), entry.digest.size());
    entry.bytes = bytes.size();
    entry.songs = end;
    entry.windows = n_embeddings;
    entry.offset = written_shard_bytes_;
    written_stored_ += n_stored;
    written_windows_ += n_embeddings;
    written_shard_bytes_ += bytes.size();
    songs_.clear();
    shard_estimate_ = kShardFixedBytes;
    shards_.push_back(entry);
    if (sink_) return sink_(entry.file, std::move(bytes));
    std::vector<uint8_t>& kept = kept_shards_[entry.file];
    kept.insert(kept.end(), bytes.begin(), bytes.end());
    return Status::ok();
}

BlockDirectoryFields IndexBuilder::directory_fields() const {
    BlockDirectoryFields d;
    d.model_hash = model_.hash_hex;
    d.quantizer_sha256 = quantizer_sha256_;
    d.blocks_file = kBlocksFile;
    d.offsets = {0};
    d.first_song = {0};
    d.sha256.reserve(shards_.size() * kSha256Bytes);
    for (const ShardEntry& e : shards_) {
        d.offsets.push_back(e.offset + e.bytes);
        d.first_song.push_back(d.first_song.back() + uint32_t(e.songs));
        d.sha256.insert(d.sha256.end(), e.digest.begin(), e.digest.end());
    }
    return d;
}

std::vector<uint8_t> IndexBuilder::directory_file(const BlockDirectoryFields& d) const {
    const size_t n = d.offsets.size() - 1;
    json meta = {{"model_hash", d.model_hash},
                 {"quantizer_sha256", d.quantizer_sha256},
                 {"blocks_file", d.blocks_file},
                 {"n_blocks", n},
                 {"n_songs", d.first_song.back()}};
    ContainerWriter writer("DIRC", meta);
    writer.add("block_offsets", DType::kU64, {uint32_t(n + 1)}, d.offsets.data(),
               d.offsets.size() * sizeof(uint64_t));
    writer.add("block_sha256", DType::kU8, {uint32_t(n), uint32_t(kSha256Bytes)}, d.sha256.data(),
               d.sha256.size());
    writer.add("block_songs", DType::kU32, {uint32_t(n + 1)}, d.first_song.data(),
               d.first_song.size() * sizeof(uint32_t));
    writer.add("list_sizes", DType::kU32, {uint32_t(list_sizes_.size())}, list_sizes_.data(),
               list_sizes_.size() * sizeof(uint32_t));
    return writer.finish();
}

Result<IndexFiles> IndexBuilder::finish() {
    if (!trained_) {
        Status st = train();
        if (!st) return st;
    }
    if (!songs_.empty()) {
        Status st = write_shard();
        if (!st) return st;
    }
    const Quantizer& q = quantizer_;
    const bool v2 = params_.format_version == kIndexVersion2;
    IndexFiles out;
    out.files = std::move(kept_shards_);
    kept_shards_.clear();
    out.n_songs = songs_added_;
    out.n_embeddings = written_stored_;
    out.n_windows = written_windows_;
    out.duration_s = duration_s_;
    out.total_bytes = written_shard_bytes_ + quantizer_file_.size();
    json manifest = {{"format", "earshot-index"},
                     {"version", params_.format_version},
                     {"model_hash", model_.hash_hex},
                     {"model_name", sanitize_utf8(model_.name)},
                     {"embedding_dim", q.dim},
                     {"hop_s", hop_s_},
                     {"hop_frames", model_.hop_frames},
                     {"quantizer",
                      {{"file", "quantizer.eq"},
                       {"bytes", quantizer_file_.size()},
                       {"sha256", quantizer_sha256_}}}};
    // v2: what the directory says of the blocks, for directory.ed and (with the pair level)
    // its pages.
    const BlockDirectoryFields fields = v2 ? directory_fields() : BlockDirectoryFields();
    if (v2) {
        std::vector<uint8_t> directory = directory_file(fields);
        manifest["directory"] = {{"file", kDirectoryFile},
                                 {"bytes", directory.size()},
                                 {"sha256", file_sha256_hex(directory)}};
        manifest["blocks"] = {
            {"file", kBlocksFile}, {"bytes", written_shard_bytes_}, {"count", shards_.size()}};
        out.total_bytes += directory.size();
        out.files[kDirectoryFile] = std::move(directory);
        out.n_files = 4;
    } else {
        json manifest_shards = json::array();
        for (const ShardEntry& e : shards_) {
            manifest_shards.push_back({{"file", e.file},
                                       {"bytes", e.bytes},
                                       {"sha256", e.sha256},
                                       {"songs", e.songs},
                                       {"frames", e.windows}});  // format key: windows
        }
        manifest["shards"] = manifest_shards;
        out.n_files = shards_.size() + 2;
    }
    const size_t shard_and_quantizer_bytes = out.total_bytes;
    if (pairs_) {
        // The postings leave through the shard sink in chunks, or are kept.
        std::vector<uint8_t> postings;
        constexpr size_t kChunkBytes = size_t(1) << 20;
        Result<PairKeyLayoutWriter> writer = PairKeyLayoutWriter::create(
            uint32_t(q.n_lists), params_.pair_span, params_.pair_keys_per_page,
            [&](const uint8_t* data, size_t n) {
                postings.insert(postings.end(), data, data + n);
                if (!sink_ || postings.size() < kChunkBytes) return Status::ok();
                Status st = sink_(kPairPostingsFile, std::move(postings));
                postings.clear();
                return st;
            },
            params_.pair_short_span);
        if (!writer) return writer.status();
        if (Status st = pairs_->finish(&writer.value()); !st) return st;
        Result<PairKeyFiles> pair_files = writer->finish(pairs_->n_songs());
        if (!pair_files) return pair_files.status();
        PairKeyFiles& f = pair_files.value();
        const uint64_t postings_bytes = writer->postings_bytes();
        if (sink_) {  // the rest, or an empty file when no key has postings
            if (Status st = sink_(kPairPostingsFile, std::move(postings)); !st) return st;
        } else {
            f.postings = std::move(postings);
        }
        manifest["pair_keys"] = {
            {"header",
             {{"file", kPairHeaderFile},
              {"bytes", f.header.size()},
              {"sha256", file_sha256_hex(f.header)}}},
            {"directory", {{"file", kPairDirectoryFile}, {"bytes", f.directory.size()}}},
            {"postings", {{"file", kPairPostingsFile}, {"bytes", postings_bytes}}},
            {"span", params_.pair_span},
            {"short_span", params_.pair_short_span},
            {"keys_per_page", params_.pair_keys_per_page}};
        // Informative (readers need not know it): absent means one list a window.
        if (params_.pair_lists > 1) manifest["pair_keys"]["lists_per_window"] = params_.pair_lists;
        out.total_bytes += f.header.size() + f.directory.size() + postings_bytes;
        out.files[kPairHeaderFile] = std::move(f.header);
        out.files[kPairDirectoryFile] = std::move(f.directory);
        if (!sink_) out.files[kPairPostingsFile] = std::move(f.postings);
        out.n_files += 3;
        pairs_.reset();
        // The pages a lazy client reads the directory by (it needs the pair level too).
        Result<DirectoryPagesFiles> pages =
            write_directory_pages(fields, params_.directory_page_blocks);
        if (!pages) return pages.status();
        manifest["directory_pages"] = {
            {"header",
             {{"file", kDirectoryPagesHeaderFile},
              {"bytes", pages->header.size()},
              {"sha256", file_sha256_hex(pages->header)}}},
            {"pages", {{"file", kDirectoryPagesFile}, {"bytes", pages->pages.size()}}},
            {"blocks_per_page", params_.directory_page_blocks}};
        out.total_bytes += pages->header.size() + pages->pages.size();
        out.files[kDirectoryPagesHeaderFile] = std::move(pages->header);
        out.files[kDirectoryPagesFile] = std::move(pages->pages);
        out.n_files += 2;
    }
    manifest["songs"] = out.n_songs;
    manifest["duration_s"] = out.duration_s;
    manifest["bytes_per_song"] =
        out.n_songs ? double(shard_and_quantizer_bytes) / double(out.n_songs) : 0.0;
    std::string text = manifest.dump(2) + "\n";
    out.files["quantizer.eq"] = quantizer_file_;
    out.total_bytes += text.size();
    out.files["manifest.json"] = std::vector<uint8_t>(text.begin(), text.end());
    out.bytes_per_song = out.n_songs ? double(out.total_bytes) / double(out.n_songs) : 0.0;
    out.bytes_per_minute =
        out.duration_s > 0 ? double(out.total_bytes) / (out.duration_s / 60.0) : 0.0;
    return out;
}

}  // namespace earshot
