// Index format v1: quantizer training, shard/manifest writer and loader (docs/DESIGN.md section 5).
//
// k-means is hand-written (Lloyd, random init, empty clusters split like faiss): faiss is not in
// Debian for WASM and the training here is small (<= max_training_vectors x 128-d). The distance
// kernels are in core/kernels.
#include "core/index.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/container.h"
#include "core/kernels.h"
#include "core/sha256.h"

namespace earshot {

using json = nlohmann::json;

namespace {

// Deterministic on every platform (std:: distributions are implementation-defined).
struct SplitMix64 {
    uint64_t state;
    explicit SplitMix64(uint64_t seed) : state(seed) {}
    uint64_t next() {
        uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    size_t below(size_t n) { return size_t(next() % n); }
    float uniform() { return float(next() >> 40) * (1.0f / 16777216.0f); }  // [0, 1)
};

int argmin(const float* v, int n) {
    int best = 0;
    for (int i = 1; i < n; ++i)
        if (v[i] < v[best]) best = i;
    return best;
}

// Lloyd k-means on data [n, dim] -> centroids [k, dim]. Random distinct init; empty clusters
// take half of a large cluster (perturbed copy of its centroid). With n <= k the points are
// the centroids and the rest repeat them (duplicates simply stay empty).
void kmeans(const float* data, size_t n, int dim, int k, int iterations, SplitMix64& rng,
            float* centroids) {
    if (n == 0) {
        std::fill(centroids, centroids + size_t(k) * dim, 0.0f);
        return;
    }
    if (n <= size_t(k)) {
        for (int c = 0; c < k; ++c)
            std::memcpy(centroids + size_t(c) * dim, data + (c % n) * dim, dim * sizeof(float));
        return;
    }
    // Init: k distinct points by partial Fisher-Yates.
    std::vector<uint32_t> perm(n);
    std::iota(perm.begin(), perm.end(), 0u);
    for (int c = 0; c < k; ++c) {
        size_t j = c + rng.below(n - c);
        std::swap(perm[c], perm[j]);
        std::memcpy(centroids + size_t(c) * dim, data + size_t(perm[c]) * dim, dim * sizeof(float));
    }
    std::vector<uint32_t> assign(n);
    std::vector<double> sums(size_t(k) * dim);
    std::vector<size_t> counts(k);
    std::vector<float> packed(packed_centroids_size(size_t(k), size_t(dim)));
    std::vector<float> sq_norms(packed_centroids_norms_size(size_t(k)));
    for (int it = 0; it < iterations; ++it) {
        size_t changed = 0;
        pack_centroids(size_t(k), size_t(dim), centroids, packed.data(), sq_norms.data());
        for (size_t i = 0; i < n; ++i) {
            const uint32_t a = uint32_t(nearest_centroid__vec128(
                size_t(k), size_t(dim), data + i * dim, packed.data(), sq_norms.data()));
            changed += (it == 0 || a != assign[i]);
            assign[i] = a;
        }
        // Converged: fewer than 1 in 1000 points changed cluster.
        if (it > 0 && changed * 1000 < n) break;
        std::fill(sums.begin(), sums.end(), 0.0);
        std::fill(counts.begin(), counts.end(), 0);
        for (size_t i = 0; i < n; ++i) {
            double* s = &sums[size_t(assign[i]) * dim];
            const float* x = data + i * dim;
            for (int d = 0; d < dim; ++d) s[d] += x[d];
            counts[assign[i]]++;
        }
        for (int c = 0; c < k; ++c) {
            if (counts[c] == 0) continue;
            for (int d = 0; d < dim; ++d)
                centroids[size_t(c) * dim + d] = float(sums[size_t(c) * dim + d] / counts[c]);
        }
        // Empty clusters: split a cluster chosen with probability ~ its size (faiss).
        for (int c = 0; c < k; ++c) {
            if (counts[c] != 0) continue;
            size_t big = 0;
            for (;;) {
                big = rng.below(k);
                float p = float(counts[big] - 1 + 1e-9) / float(n - k);
                if (counts[big] > 1 && rng.uniform() < p) break;
                if (counts[big] > 1 && rng.uniform() < 0.01f) break;  // cap the loop
            }
            float* dst = centroids + size_t(c) * dim;
            float* src = centroids + big * dim;
            for (int d = 0; d < dim; ++d) {
                const float eps = 1.0f / 1024;
                dst[d] = src[d] * ((d % 2) ? 1 + eps : 1 - eps);
                src[d] = src[d] * ((d % 2) ? 1 - eps : 1 + eps);
            }
            counts[c] = counts[big] / 2;
            counts[big] -= counts[c];
        }
    }
}

// nlohmann::json::dump throws on invalid UTF-8; titles from tags may be anything.
std::string sanitize_utf8(const std::string& s) {
    std::string dumped = json(s).dump(-1, ' ', false, json::error_handler_t::replace);
    json back = json::parse(dumped, nullptr, false);
    return back.is_string() ? back.get<std::string>() : std::string();
}

// Index files are identified by the SHA-256 of the whole file (what sha256sum prints and what
// the web loader checks downloads against), unlike the model hash (the trailing checksum).
std::string file_sha256_hex(const uint8_t* bytes, size_t size) {
    const std::array<uint8_t, 32> digest = sha256(bytes, size);
    return to_hex(digest.data(), digest.size());
}
std::string file_sha256_hex(const std::vector<uint8_t>& file) {
    return file_sha256_hex(file.data(), file.size());
}

std::string shard_file_name(size_t shard) {
    char name[32];
    std::snprintf(name, sizeof(name), "shard-%05zu.es", shard);
    return name;
}

// JSON field readers that never throw.
bool get_string(const json& obj, const char* key, std::string* out) {
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_string()) return false;
    *out = it->get<std::string>();
    return true;
}
bool get_uint(const json& obj, const char* key, uint64_t* out) {
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_number_unsigned()) {
        if (it != obj.end() && it->is_number_integer() && it->get<int64_t>() >= 0) {
            *out = uint64_t(it->get<int64_t>());
            return true;
        }
        return false;
    }
    *out = it->get<uint64_t>();
    return true;
}
bool get_number(const json& obj, const char* key, double* out) {
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_number()) return false;
    *out = it->get<double>();
    return true;
}

Status field_error(const std::string& what, const char* key, const char* type) {
    return Status::error(what + ": metadata field '" + key + "' is missing or not " + type);
}

}  // namespace

double model_hop_s(const ModelInfo& model) {
    return double(model.hop_frames) * model.frontend.hop_length / model.frontend.sample_rate_hz;
}

double model_query_hop_s(const ModelInfo& model) {
    return double(model.query_hop_frames) * model.frontend.hop_length /
           model.frontend.sample_rate_hz;
}

IndexBuildParams index_build_default_params() { return IndexBuildParams(); }

int index_auto_lists(size_t n_frames) {
    int lists = 256;
    // Nearest in log scale: move up while sqrt(n) >= lists * sqrt(2), i.e. n >= 2 * lists^2.
    while (lists < 4096 && double(n_frames) >= 2.0 * double(lists) * double(lists)) lists *= 2;
    return lists;
}

IndexBuildParams index_build_default_params(const ModelInfo& model) {
    IndexBuildParams params;
    params.pq_m = model.index_pq_m;
    return params;
}

// ---- Quantizer ----------------------------------------------------------------------------

int Quantizer::assign(const float* x) const {
    float best = std::numeric_limits<float>::infinity();
    int best_list = 0;
    float dist[64];
    for (int base = 0; base < n_lists; base += 64) {
        int count = std::min(64, n_lists - base);
        l2_sqr_many__vec128(size_t(count), size_t(dim), x, &coarse_centroids[size_t(base) * dim],
                            dist);
        for (int c = 0; c < count; ++c)
            if (dist[c] < best) best = dist[c], best_list = base + c;
    }
    return best_list;
}

void Quantizer::encode(const float* x, int list, uint8_t* codes) const {
    float residual[512];  // dim <= 512 (checked where quantizers are made)
    const float* c = &coarse_centroids[size_t(list) * dim];
    for (int d = 0; d < dim; ++d) residual[d] = x[d] - c[d];
    float dist[kPqCodebookSize];
    for (int m = 0; m < pq_m; ++m) {
        l2_sqr_many__vec128(kPqCodebookSize, size_t(sub_dim), residual + m * sub_dim,
                            &pq_codebooks[size_t(m) * kPqCodebookSize * sub_dim], dist);
        codes[m] = uint8_t(argmin(dist, kPqCodebookSize));
    }
}

void Quantizer::decode(int list, const uint8_t* codes, float* out) const {
    const float* c = &coarse_centroids[size_t(list) * dim];
    for (int m = 0; m < pq_m; ++m) {
        const float* cw = &pq_codebooks[(size_t(m) * kPqCodebookSize + codes[m]) * sub_dim];
        for (int d = 0; d < sub_dim; ++d) out[m * sub_dim + d] = c[m * sub_dim + d] + cw[d];
    }
}

// ---- IndexBuilder -------------------------------------------------------------------------

constexpr int kMaxDim = 512;

IndexBuilder::PendingSong IndexBuilder::make_pending_song(const SongInfo& song,
                                                         size_t n_embeddings) {
    IndexBuilder::PendingSong pending;
    pending.info.id = sanitize_utf8(song.id);
    pending.info.title = sanitize_utf8(song.title);
    pending.info.album = sanitize_utf8(song.album);
    pending.info.duration_s =
        std::isfinite(song.duration_s) && song.duration_s > 0 ? song.duration_s : 0.0;
    pending.n_frames = n_embeddings;
    return pending;
}

IndexBuilder::IndexBuilder(const ModelInfo& model, const IndexBuildParams& params)
    : model_(model), params_(params), hop_s_(model_hop_s(model)) {}

Status IndexBuilder::add_song(const SongInfo& song, const float* embeddings, size_t n_embeddings) {
    if (n_embeddings > 0 && embeddings == nullptr)
        return Status::error("add_song: embeddings is null for " + std::to_string(n_embeddings) +
                             " embeddings");
    PendingSong pending = make_pending_song(song, n_embeddings);
    const size_t dim = size_t(model_.embedding_dim);
    for (size_t i = 0; i < n_embeddings * dim; ++i)
        if (!std::isfinite(embeddings[i]))
            return Status::error("add_song '" + pending.info.id + "': embedding " +
                                 std::to_string(i / dim) + " has a non-finite value");
    pending.embeddings.assign(embeddings, embeddings + n_embeddings * dim);
    if (trained_) encode_song(pending);
    songs_.push_back(std::move(pending));
    if (!trained_) {
        n_pending_vectors_ += n_embeddings;
        if (n_pending_vectors_ > params_.max_pending_vectors) return train();
    }
    return Status::ok();
}

void IndexBuilder::encode_song(PendingSong& song) const {
    const int dim = quantizer_.dim;
    song.list_ids.resize(song.n_frames);
    song.codes.resize(song.n_frames * quantizer_.pq_m);
    for (size_t j = 0; j < song.n_frames; ++j) {
        const float* x = &song.embeddings[j * dim];
        int list = quantizer_.assign(x);
        song.list_ids[j] = uint16_t(list);
        quantizer_.encode(x, list, &song.codes[j * quantizer_.pq_m]);
    }
    std::vector<float>().swap(song.embeddings);
}

Status IndexBuilder::train() {
    size_t total = 0;
    for (const PendingSong& s : songs_) total += s.embeddings.size() / model_.embedding_dim;
    if (total == 0)
        return Status::error("train: no embeddings added (add songs with at least one embedding)");
    if (params_.n_lists == 0) params_.n_lists = index_auto_lists(total);
    const size_t dim = size_t(model_.embedding_dim);
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

Status IndexBuilder::train_on(const float* vectors, size_t n_vectors) {
    const int dim = model_.embedding_dim;
    if (dim <= 0 || dim > kMaxDim || dim % 4 != 0)
        return Status::error("train: embedding_dim " + std::to_string(dim) +
                             " unsupported (a multiple of 4, at most 512)");
    if (params_.n_lists == 0) params_.n_lists = index_auto_lists(n_vectors);
    if (params_.n_lists < 1 || params_.n_lists > kMaxLists)
        return Status::error("train: n_lists " + std::to_string(params_.n_lists) +
                             " out of range [1, 65536]");
    if (params_.pq_m < 1 || dim % params_.pq_m != 0)
        return Status::error("train: pq_m " + std::to_string(params_.pq_m) +
                             " must divide embedding_dim " + std::to_string(dim));
    if (params_.pq_nbits != 8)
        return Status::error("train: pq_nbits " + std::to_string(params_.pq_nbits) +
                             " unsupported (only 8-bit codes)");
    if (params_.kmeans_iterations < 0)
        return Status::error("train: kmeans_iterations must be >= 0");
    if (n_vectors == 0 || vectors == nullptr) return Status::error("train: no training vectors");
    if (trained_) return Status::error("train: already trained");

    Quantizer q;
    q.dim = dim;
    q.n_lists = params_.n_lists;
    q.pq_m = params_.pq_m;
    q.sub_dim = dim / params_.pq_m;
    q.coarse_centroids.resize(size_t(q.n_lists) * dim);
    q.pq_codebooks.resize(size_t(q.pq_m) * kPqCodebookSize * q.sub_dim);

    const size_t n = std::min(n_vectors, std::max<size_t>(params_.max_training_vectors, 1));
    SplitMix64 rng(params_.seed);
    kmeans(vectors, n, dim, q.n_lists, params_.kmeans_iterations, rng, q.coarse_centroids.data());

    // Residuals to the assigned centroid, then one k-means per PQ sub-space.
    std::vector<float> residuals(n * dim);
    for (size_t i = 0; i < n; ++i) {
        const float* x = vectors + i * dim;
        const float* c = &q.coarse_centroids[size_t(q.assign(x)) * dim];
        for (int d = 0; d < dim; ++d) residuals[i * dim + d] = x[d] - c[d];
    }
    std::vector<float> sub(n * q.sub_dim);
    for (int m = 0; m < q.pq_m; ++m) {
        for (size_t i = 0; i < n; ++i)
            std::memcpy(&sub[i * q.sub_dim], &residuals[i * dim + m * q.sub_dim],
                        q.sub_dim * sizeof(float));
        kmeans(sub.data(), n, q.sub_dim, kPqCodebookSize, params_.kmeans_iterations, rng,
               &q.pq_codebooks[size_t(m) * kPqCodebookSize * q.sub_dim]);
    }
    quantizer_ = std::move(q);
    trained_ = true;
    for (PendingSong& s : songs_) encode_song(s);
    return Status::ok();
}

Status IndexBuilder::set_quantizer(const Quantizer& q) {
    if (trained_) return Status::error("set_quantizer: a quantizer is already trained or set");
    if (q.dim != model_.embedding_dim || q.dim <= 0 || q.dim > kMaxDim || q.dim % 4 != 0)
        return Status::error("set_quantizer: dim " + std::to_string(q.dim) +
                             " is not the model's embedding_dim " +
                             std::to_string(model_.embedding_dim));
    if (q.n_lists < 1 || q.n_lists > kMaxLists || q.pq_m < 1 || q.dim % q.pq_m != 0 ||
        q.sub_dim != q.dim / q.pq_m || q.coarse_centroids.size() != size_t(q.n_lists) * q.dim ||
        q.pq_codebooks.size() != size_t(q.pq_m) * kPqCodebookSize * q.sub_dim)
        return Status::error("set_quantizer: inconsistent n_lists/pq_m/sub_dim or array sizes");
    quantizer_ = q;
    trained_ = true;
    for (PendingSong& s : songs_) encode_song(s);  // all added before: still floats
    return Status::ok();
}

Status IndexBuilder::add_song_codes(const SongInfo& song, const uint16_t* list_ids,
                                    const uint8_t* codes, size_t n_embeddings) {
    if (!trained_) return Status::error("add_song_codes: train or set a quantizer first");
    if (n_embeddings > 0 && (list_ids == nullptr || codes == nullptr))
        return Status::error("add_song_codes: null list_ids or codes");
    for (size_t j = 0; j < n_embeddings; ++j)
        if (list_ids[j] >= quantizer_.n_lists)
            return Status::error("add_song_codes: list id " + std::to_string(list_ids[j]) +
                                 " >= n_lists " + std::to_string(quantizer_.n_lists));
    PendingSong pending = make_pending_song(song, n_embeddings);
    pending.list_ids.assign(list_ids, list_ids + n_embeddings);
    pending.codes.assign(codes, codes + n_embeddings * quantizer_.pq_m);
    songs_.push_back(std::move(pending));
    return Status::ok();
}

Result<IndexFiles> IndexBuilder::finish() {
    if (!trained_) {
        Status st = train();
        if (!st) return st;
    }
    const Quantizer& q = quantizer_;
    IndexFiles out;

    json qmeta = {{"model_hash", model_.hash_hex},
                  {"dim", q.dim},
                  {"n_lists", q.n_lists},
                  {"pq_m", q.pq_m},
                  {"pq_nbits", 8}};
    ContainerWriter qwriter("QUAN", qmeta);
    qwriter.add("coarse_centroids", DType::kF32, {uint32_t(q.n_lists), uint32_t(q.dim)},
                q.coarse_centroids.data(), q.coarse_centroids.size() * sizeof(float));
    qwriter.add("pq_codebooks", DType::kF32,
                {uint32_t(q.pq_m), uint32_t(kPqCodebookSize), uint32_t(q.sub_dim)},
                q.pq_codebooks.data(), q.pq_codebooks.size() * sizeof(float));
    std::vector<uint8_t> qbytes = qwriter.finish();
    const std::string quantizer_sha = file_sha256_hex(qbytes);

    const bool wide_ids = q.n_lists > 256;
    const size_t id_bytes = wide_ids ? 2 : 1;

    // Group songs into shards by an upper estimate of their bytes (header, table and alignment
    // padding are the fixed part; each song adds its frames, offset and metadata).
    constexpr size_t kShardFixedBytes = 32 + 256 + 3 * 72 + 3 * kContainerAlign + 32 + 128;
    std::vector<std::pair<size_t, size_t>> groups;  // [begin, end) song ranges
    size_t begin = 0, estimate = kShardFixedBytes;
    for (size_t s = 0; s < songs_.size(); ++s) {
        const PendingSong& song = songs_[s];
        size_t song_bytes = song.n_frames * (id_bytes + q.pq_m) + 4 +
                            json{{"id", song.info.id},
                                 {"title", song.info.title},
                                 {"album", song.info.album},
                                 {"duration_s", song.info.duration_s}}
                                .dump()
                                .size() +
                            2;
        if (s > begin && estimate + song_bytes > params_.max_shard_bytes) {
            groups.emplace_back(begin, s);
            begin = s;
            estimate = kShardFixedBytes;
        }
        estimate += song_bytes;
    }
    if (begin < songs_.size()) groups.emplace_back(begin, songs_.size());

    json manifest_shards = json::array();
    for (size_t g = 0; g < groups.size(); ++g) {
        const auto [b, e] = groups[g];
        json songs = json::array();
        std::vector<uint32_t> offsets = {0};
        for (size_t s = b; s < e; ++s) {
            const SongInfo& info = songs_[s].info;
            songs.push_back({{"id", info.id},
                             {"title", info.title},
                             {"album", info.album},
                             {"duration_s", info.duration_s}});
            offsets.push_back(offsets.back() + uint32_t(songs_[s].n_frames));
        }
        const size_t n_frames = offsets.back();
        std::vector<uint8_t> ids(n_frames * id_bytes);
        std::vector<uint8_t> codes(n_frames * q.pq_m);
        size_t f = 0;
        for (size_t s = b; s < e; ++s) {
            const PendingSong& song = songs_[s];
            for (size_t j = 0; j < song.n_frames; ++j, ++f) {
                if (wide_ids) {
                    std::memcpy(&ids[f * 2], &song.list_ids[j], 2);  // little-endian hosts only
                } else {
                    ids[f] = uint8_t(song.list_ids[j]);
                }
            }
            if (!song.codes.empty())
                std::memcpy(&codes[offsets[s - b] * q.pq_m], song.codes.data(), song.codes.size());
        }
        json meta = {{"model_hash", model_.hash_hex},
                     {"quantizer_sha256", quantizer_sha},
                     {"shard", g},
                     {"n_songs", e - b},
                     {"n_frames", n_frames},
                     {"songs", songs}};
        ContainerWriter writer("SHRD", meta);
        writer.add("song_offsets", DType::kU32, {uint32_t(e - b + 1)}, offsets.data(),
                   offsets.size() * sizeof(uint32_t));
        writer.add("list_ids", wide_ids ? DType::kU16 : DType::kU8, {uint32_t(n_frames)},
                   ids.data(), ids.size());
        writer.add("pq_codes", DType::kU8, {uint32_t(n_frames), uint32_t(q.pq_m)}, codes.data(),
                   codes.size());
        std::vector<uint8_t> bytes = writer.finish();
        manifest_shards.push_back({{"file", shard_file_name(g)},
                                   {"bytes", bytes.size()},
                                   {"sha256", file_sha256_hex(bytes)},
                                   {"songs", e - b},
                                   {"frames", n_frames}});
        out.total_bytes += bytes.size();
        out.n_frames += n_frames;
        out.files[shard_file_name(g)] = std::move(bytes);
    }

    for (const PendingSong& s : songs_) out.duration_s += s.info.duration_s;
    out.n_songs = songs_.size();
    out.total_bytes += qbytes.size();
    const size_t shard_and_quantizer_bytes = out.total_bytes;
    json manifest = {
        {"format", "earshot-index"},
        {"version", kIndexVersion},
        {"model_hash", model_.hash_hex},
        {"model_name", sanitize_utf8(model_.name)},
        {"embedding_dim", q.dim},
        {"hop_s", hop_s_},
        {"hop_frames", model_.hop_frames},
        {"quantizer",
         {{"file", "quantizer.eq"}, {"bytes", qbytes.size()}, {"sha256", quantizer_sha}}},
        {"shards", manifest_shards},
        {"songs", out.n_songs},
        {"duration_s", out.duration_s},
        {"bytes_per_song",
         out.n_songs ? double(shard_and_quantizer_bytes) / double(out.n_songs) : 0.0}};
    std::string text = manifest.dump(2) + "\n";
    out.files["quantizer.eq"] = std::move(qbytes);
    out.total_bytes += text.size();
    out.files["manifest.json"] = std::vector<uint8_t>(text.begin(), text.end());
    out.bytes_per_song = out.n_songs ? double(out.total_bytes) / double(out.n_songs) : 0.0;
    out.bytes_per_minute =
        out.duration_s > 0 ? double(out.total_bytes) / (out.duration_s / 60.0) : 0.0;
    return out;
}

// ---- Index --------------------------------------------------------------------------------

Index::Index(const ModelInfo& model)
    : model_hash_(model.hash_hex),
      model_name_(model.name),
      dim_(model.embedding_dim),
      hop_frames_(model.hop_frames),
      hop_s_(model_hop_s(model)) {}

Status Index::load_manifest(const std::string& json_text) {
    const std::string what = "manifest.json";
    json m = json::parse(json_text, nullptr, false);
    if (m.is_discarded() || !m.is_object())
        return Status::error(what + ": not a JSON object (is this an earshot index manifest?)");
    std::string format, hash;
    uint64_t version = 0, dim = 0, hop_frames = 0;
    if (!get_string(m, "format", &format) || format != "earshot-index")
        return Status::error(what + ": 'format' is not \"earshot-index\"");
    if (!get_uint(m, "version", &version) || version != kIndexVersion)
        return Status::error(what + ": unsupported index version (this reader supports 1)");
    if (!get_string(m, "model_hash", &hash)) return field_error(what, "model_hash", "a string");
    if (hash != model_hash_)
        return Status::error(what + ": index built for model " + hash +
                             " but the loaded model is " + model_hash_ +
                             "; load the model the index was built with");
    if (!get_uint(m, "embedding_dim", &dim) || dim != uint64_t(dim_))
        return Status::error(what + ": embedding_dim missing or not the model's " +
                             std::to_string(dim_));
    if (!get_uint(m, "hop_frames", &hop_frames) || hop_frames != uint64_t(hop_frames_))
        return Status::error(what + ": hop_frames missing or not the model's " +
                             std::to_string(hop_frames_));
    auto qit = m.find("quantizer");
    if (qit == m.end() || !qit->is_object()) return field_error(what, "quantizer", "an object");
    std::string qsha;
    uint64_t qbytes = 0;
    if (!get_string(*qit, "sha256", &qsha) || !get_uint(*qit, "bytes", &qbytes))
        return Status::error(what + ": quantizer entry needs 'sha256' and 'bytes'");
    auto sit = m.find("shards");
    if (sit == m.end() || !sit->is_array()) return field_error(what, "shards", "an array");
    std::vector<ManifestShard> shards;
    for (const json& s : *sit) {
        ManifestShard entry;
        uint64_t bytes = 0;
        if (!s.is_object() || !get_string(s, "file", &entry.file) ||
            !get_string(s, "sha256", &entry.sha256) || !get_uint(s, "bytes", &bytes))
            return Status::error(what + ": shard entry " + std::to_string(shards.size()) +
                                 " needs 'file', 'sha256' and 'bytes'");
        entry.bytes = size_t(bytes);
        shards.push_back(std::move(entry));
    }
    if (has_quantizer_ && qsha != quantizer_sha256_)
        return Status::error(what + ": quantizer sha256 " + qsha +
                             " differs from the quantizer already loaded (" + quantizer_sha256_ +
                             ")");
    has_manifest_ = true;
    manifest_quantizer_sha256_ = qsha;
    manifest_quantizer_bytes_ = size_t(qbytes);
    manifest_shards_ = std::move(shards);
    return Status::ok();
}

Status Index::add_quantizer(const uint8_t* bytes, size_t size, const std::string& what) {
    if (has_quantizer_) return Status::error(what + ": a quantizer is already loaded");
    Result<ContainerView> parsed = parse_container(bytes, size, "QUAN", what);
    if (!parsed) return parsed.status();
    const ContainerView& view = parsed.value();
    const std::string file_sha = file_sha256_hex(bytes, size);
    if (has_manifest_ &&
        (file_sha != manifest_quantizer_sha256_ || size != manifest_quantizer_bytes_))
        return Status::error(what + ": sha256 " + file_sha + " / " + std::to_string(size) +
                             " bytes do not match the manifest's " + manifest_quantizer_sha256_ +
                             " / " + std::to_string(manifest_quantizer_bytes_) +
                             " bytes (stale or mixed-up download?)");
    std::string hash;
    uint64_t dim = 0, n_lists = 0, pq_m = 0, pq_nbits = 0;
    if (!view.meta.is_object()) return Status::error(what + ": metadata is not a JSON object");
    if (!get_string(view.meta, "model_hash", &hash))
        return field_error(what, "model_hash", "a string");
    if (hash != model_hash_)
        return Status::error(what + ": quantizer built for model " + hash +
                             " but the loaded model is " + model_hash_ +
                             "; load the model the index was built with");
    if (!get_uint(view.meta, "dim", &dim)) return field_error(what, "dim", "an integer");
    if (!get_uint(view.meta, "n_lists", &n_lists))
        return field_error(what, "n_lists", "an integer");
    if (!get_uint(view.meta, "pq_m", &pq_m)) return field_error(what, "pq_m", "an integer");
    if (!get_uint(view.meta, "pq_nbits", &pq_nbits))
        return field_error(what, "pq_nbits", "an integer");
    if (dim != uint64_t(dim_))
        return Status::error(what + ": dim " + std::to_string(dim) + " is not the model's " +
                             std::to_string(dim_));
    if (dim == 0 || dim > uint64_t(kMaxDim) || dim % 4 != 0)
        return Status::error(what + ": dim " + std::to_string(dim) + " unsupported");
    if (n_lists < 1 || n_lists > uint64_t(kMaxLists))
        return Status::error(what + ": n_lists " + std::to_string(n_lists) + " out of [1, 65536]");
    if (pq_m < 1 || dim % pq_m != 0)
        return Status::error(what + ": pq_m " + std::to_string(pq_m) + " does not divide dim");
    if (pq_nbits != 8)
        return Status::error(what + ": pq_nbits " + std::to_string(pq_nbits) + " unsupported");
    Quantizer q;
    q.dim = int(dim);
    q.n_lists = int(n_lists);
    q.pq_m = int(pq_m);
    q.sub_dim = int(dim / pq_m);
    auto coarse = view.require("coarse_centroids", DType::kF32, {uint32_t(n_lists), uint32_t(dim)});
    if (!coarse) return coarse.status();
    auto books = view.require("pq_codebooks", DType::kF32,
                              {uint32_t(pq_m), uint32_t(kPqCodebookSize), uint32_t(q.sub_dim)});
    if (!books) return books.status();
    q.coarse_centroids.resize(size_t(n_lists) * dim);
    std::memcpy(q.coarse_centroids.data(), coarse.value()->data, coarse.value()->bytes);
    q.pq_codebooks.resize(size_t(pq_m) * kPqCodebookSize * q.sub_dim);
    std::memcpy(q.pq_codebooks.data(), books.value()->data, books.value()->bytes);
    for (float v : q.coarse_centroids)
        if (!std::isfinite(v))
            return Status::error(what + ": coarse_centroids has non-finite values");
    for (float v : q.pq_codebooks)
        if (!std::isfinite(v)) return Status::error(what + ": pq_codebooks has non-finite values");
    quantizer_ = std::move(q);
    quantizer_sha256_ = file_sha;
    lists_.assign(quantizer_.n_lists, InvertedList());
    has_quantizer_ = true;
    return Status::ok();
}

Status Index::add_shard(const uint8_t* bytes, size_t size, const std::string& what) {
    if (!has_quantizer_)
        return Status::error(what + ": add the quantizer (quantizer.eq) before any shard");
    Result<ContainerView> parsed = parse_container(bytes, size, "SHRD", what);
    if (!parsed) return parsed.status();
    const ContainerView& view = parsed.value();
    const json& meta = view.meta;
    if (!meta.is_object()) return Status::error(what + ": metadata is not a JSON object");
    std::string hash, qsha;
    uint64_t shard = 0, n_songs = 0, n_frames = 0;
    if (!get_string(meta, "model_hash", &hash)) return field_error(what, "model_hash", "a string");
    if (hash != model_hash_)
        return Status::error(what + ": shard built for model " + hash +
                             " but the loaded model is " + model_hash_ +
                             "; load the model the index was built with");
    if (!get_string(meta, "quantizer_sha256", &qsha))
        return field_error(what, "quantizer_sha256", "a string");
    if (qsha != quantizer_sha256_)
        return Status::error(what + ": shard belongs to quantizer " + qsha +
                             " but the loaded quantizer is " + quantizer_sha256_ +
                             " (shards from another index build?)");
    if (!get_uint(meta, "shard", &shard)) return field_error(what, "shard", "an integer");
    if (!get_uint(meta, "n_songs", &n_songs)) return field_error(what, "n_songs", "an integer");
    if (!get_uint(meta, "n_frames", &n_frames)) return field_error(what, "n_frames", "an integer");
    if (has_manifest_) {
        if (shard >= manifest_shards_.size())
            return Status::error(what + ": shard " + std::to_string(shard) +
                                 " is not in the manifest (" +
                                 std::to_string(manifest_shards_.size()) + " shards)");
        const ManifestShard& entry = manifest_shards_[shard];
        const std::string file_sha = file_sha256_hex(bytes, size);
        if (entry.sha256 != file_sha || entry.bytes != size)
            return Status::error(what + ": sha256 " + file_sha + " / " + std::to_string(size) +
                                 " bytes do not match the manifest's " + entry.sha256 + " / " +
                                 std::to_string(entry.bytes) + " bytes");
    }
    if (std::find(shards_loaded_.begin(), shards_loaded_.end(), int(shard)) != shards_loaded_.end())
        return Status::error(what + ": shard " + std::to_string(shard) + " is already loaded");
    if (n_songs >= std::numeric_limits<uint32_t>::max() ||
        n_frames >= std::numeric_limits<uint32_t>::max() || n_frames_total_would_overflow(n_frames))
        return Status::error(what + ": n_songs/n_frames too large");
    auto songs_it = meta.find("songs");
    if (songs_it == meta.end() || !songs_it->is_array() || songs_it->size() != n_songs)
        return Status::error(what + ": 'songs' must be an array of n_songs (" +
                             std::to_string(n_songs) + ") objects");
    std::vector<LoadedSong> songs(n_songs);
    for (size_t i = 0; i < n_songs; ++i) {
        const json& s = (*songs_it)[i];
        if (!s.is_object() || !get_string(s, "id", &songs[i].info.id))
            return Status::error(what + ": song " + std::to_string(i) + " has no string 'id'");
        get_string(s, "title", &songs[i].info.title);
        get_string(s, "album", &songs[i].info.album);
        get_number(s, "duration_s", &songs[i].info.duration_s);
    }
    const bool wide_ids = quantizer_.n_lists > 256;
    const int pq_m = quantizer_.pq_m;
    auto offsets_section = view.require("song_offsets", DType::kU32, {uint32_t(n_songs + 1)});
    if (!offsets_section) return offsets_section.status();
    auto ids_section =
        view.require("list_ids", wide_ids ? DType::kU16 : DType::kU8, {uint32_t(n_frames)});
    if (!ids_section) return ids_section.status();
    auto codes_section = view.require("pq_codes", DType::kU8, {uint32_t(n_frames), uint32_t(pq_m)});
    if (!codes_section) return codes_section.status();

    // Payloads may be unaligned in the caller's buffer: read through memcpy.
    std::vector<uint32_t> offsets(n_songs + 1);
    std::memcpy(offsets.data(), offsets_section.value()->data, offsets.size() * sizeof(uint32_t));
    if (offsets[0] != 0 || offsets[n_songs] != n_frames)
        return Status::error(what + ": song_offsets must start at 0 and end at n_frames (" +
                             std::to_string(n_frames) + "), got " + std::to_string(offsets[0]) +
                             " .. " + std::to_string(offsets[n_songs]));
    for (size_t i = 0; i < n_songs; ++i)
        if (offsets[i + 1] < offsets[i])
            return Status::error(what + ": song_offsets decrease at song " + std::to_string(i));
    std::vector<uint16_t> ids(n_frames);
    const uint8_t* id_data = ids_section.value()->data;
    for (size_t f = 0; f < n_frames; ++f) {
        if (wide_ids) {
            std::memcpy(&ids[f], id_data + 2 * f, 2);
        } else {
            ids[f] = id_data[f];
        }
        if (ids[f] >= quantizer_.n_lists)
            return Status::error(what + ": list id " + std::to_string(ids[f]) + " at frame " +
                                 std::to_string(f) + " >= n_lists " +
                                 std::to_string(quantizer_.n_lists));
    }

    // Valid: append.
    const uint32_t base = uint32_t(frame_list_.size());
    for (size_t i = 0; i < n_songs; ++i) {
        songs[i].first_frame = base + offsets[i];
        songs[i].n_frames = offsets[i + 1] - offsets[i];
        song_starts_.push_back(songs[i].first_frame);
        songs_.push_back(std::move(songs[i]));
    }
    const uint8_t* codes = codes_section.value()->data;
    frame_list_.reserve(frame_list_.size() + n_frames);
    frame_pos_.reserve(frame_pos_.size() + n_frames);
    for (size_t f = 0; f < n_frames; ++f) {
        InvertedList& list = lists_[ids[f]];
        frame_list_.push_back(ids[f]);
        frame_pos_.push_back(uint32_t(list.frame_ids.size()));
        list.frame_ids.push_back(base + uint32_t(f));
        list.codes.insert(list.codes.end(), codes + f * pq_m, codes + (f + 1) * pq_m);
    }
    shards_loaded_.push_back(int(shard));
    return Status::ok();
}

bool Index::n_frames_total_would_overflow(uint64_t n_new) const {
    return uint64_t(frame_list_.size()) + n_new >= std::numeric_limits<uint32_t>::max();
}

size_t Index::song_of_frame(uint32_t global_frame) const {
    auto it = std::upper_bound(song_starts_.begin(), song_starts_.end(), global_frame);
    return size_t(it - song_starts_.begin()) - 1;
}

}  // namespace earshot
