// Index format v1 (docs/DESIGN.md section 5): quantizer training (coarse k-means + residual
// product quantization, 8-bit codes), the shard/manifest writer and the loaded, searchable index.
// Everything works on byte buffers (no file I/O in core/): the CLI writes the files, the browser
// feeds the bytes it downloaded.
//
//   IndexBuilder builder(model_info, index_build_default_params());
//   builder.add_song(song, embeddings, n);   // n x dim floats, one every model hop
//   builder.train();                         // or train_on(sample, n) before adding songs
//   Result<IndexFiles> files = builder.finish();  // {"manifest.json", "quantizer.eq", "shard-..."}
//
//   Index index(model_info);
//   index.load_manifest(text);                // optional, but then shards are checked against it
//   index.add_quantizer(bytes, size, "quantizer.eq");
//   index.add_shard(bytes, size, "shard-00000.es");   // any subset, any order, as they arrive
//
// "sha256" in the manifest and "quantizer_sha256" in shard metadata are the SHA-256 of the whole
// file, lowercase hex (what sha256sum prints; the web loader checks downloads with it). The model
// hash, by contrast, is the model container's trailing checksum (DESIGN.md section 4).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/kernels.h"  // kPqCodebookSize
#include "core/model.h"
#include "core/status.h"

namespace earshot {

constexpr int kIndexVersion = 1;
constexpr int kMaxLists = 65536;      // list ids are u8 (n_lists <= 256) or u16

struct IndexBuildParams {
    // Coarse k-means centroids (IVF lists); 0 = index_auto_lists() of the catalogue's embedding
    // count (train(): every embedding added so far; train_on(): the vectors given).
    int n_lists = 0;
    int pq_m = 16;                        // PQ sub-quantizers; must divide the embedding dim
    int pq_nbits = 8;                     // only 8 is supported (one byte per sub-code)
    int kmeans_iterations = 10;           // Lloyd iterations (max), coarse and per sub-quantizer;
                                          // stops early when < 0.1% of points move (faiss IVF: 10)
    size_t max_training_vectors = 65536;  // train on a seeded random sample of at most this many
    uint64_t seed = 1234;                 // training is deterministic for a given seed and input
    size_t max_shard_bytes = 8u << 20;    // shard size bound; a song is never split (a single
                                          // song larger than this gets a shard of its own)
    // Memory bound for untrained builds: once more float vectors than this wait for training
    // (4M x 128-d = 2 GB, ~11k 3-minute songs), add_song() trains on a sample of them and
    // encodes every later song at once. Smaller catalogues train on everything in finish().
    size_t max_pending_vectors = 4000000;
};
IndexBuildParams index_build_default_params();
// The default number of IVF lists for a catalogue of n_frames embeddings: the power of two
// nearest sqrt(n_frames), clamped to [256, 4096]. 256 up to ~190 000 embeddings (~260 songs of
// 3 minutes at a 0.25 s hop); 2048 for 10 000 such songs (7.2 M), where 256 lists held 28 000
// postings each, all scanned per probe (docs/PERFORMANCE-web.md).
int index_auto_lists(size_t n_frames);
// The same, with the PQ resolution the model's thresholds were calibrated for (index_pq_m).
IndexBuildParams index_build_default_params(const ModelInfo& model);

struct SongInfo {
    std::string id;  // caller's stable id (e.g. a file name or catalogue number)
    std::string title;
    std::string album;
    double duration_s = 0.0;
};

// Coarse centroids + residual PQ codebooks. Reconstruction of a stored vector:
// coarse_centroids[list] + concat_m pq_codebooks[m][code[m]].
struct Quantizer {
    int dim = 0;
    int n_lists = 0;
    int pq_m = 0;
    int sub_dim = 0;                      // dim / pq_m
    std::vector<float> coarse_centroids;  // [n_lists, dim]
    std::vector<float> pq_codebooks;      // [pq_m, 256, sub_dim]

    // Nearest list by L2 distance (the probe order of the matcher). x: dim floats.
    int assign(const float* x) const;
    // PQ-encodes the residual x - coarse_centroids[list]: writes pq_m bytes.
    void encode(const float* x, int list, uint8_t* codes) const;
    // Reconstruction: writes dim floats.
    void decode(int list, const uint8_t* codes, float* out) const;
};

// The files of an index folder, name -> bytes, plus size figures.
struct IndexFiles {
    std::map<std::string, std::vector<uint8_t>> files;
    size_t n_songs = 0;
    size_t n_frames = 0;      // stored embeddings over all songs
    double duration_s = 0.0;  // sum of song durations
    size_t total_bytes = 0;   // every file, manifest included
    double bytes_per_song = 0.0;
    double bytes_per_minute = 0.0;  // of audio
};

class IndexBuilder {
public:
    // `model` gives hash, name, embedding_dim and the hop (hop_frames * hop_length / rate).
    IndexBuilder(const ModelInfo& model, const IndexBuildParams& params);

    // embeddings: n_embeddings x dim floats (row-major), embedding j at time j * hop_s.
    // Before training the floats are kept (up to max_pending_vectors, then it trains); after
    // training they are encoded at once (large catalogues may also train_on() a sample first
    // and then stream songs in). n_embeddings may be 0.
    Status add_song(const SongInfo& song, const float* embeddings, size_t n_embeddings);

    // Trains on a sample of the songs added so far (at most max_training_vectors), then encodes
    // them. Copes with fewer vectors than centroids (duplicates centroids). Errors if no
    // vector was added or the params are invalid.
    Status train();
    // Trains on the given vectors (n x dim) instead; songs added before are encoded afterwards.
    Status train_on(const float* vectors, size_t n_vectors);
    // Uses a quantizer trained elsewhere (e.g. another index build, to append songs with the
    // same codes); checks its shapes against the model. Songs added before are encoded.
    Status set_quantizer(const Quantizer& quantizer);
    // Adds a song already encoded with quantizer(): list_ids [n], codes [n, pq_m]. Needs a
    // quantizer (trained or set); checks list ids < n_lists. (Benchmarks generate codes.)
    Status add_song_codes(const SongInfo& song, const uint16_t* list_ids, const uint8_t* codes,
                          size_t n_embeddings);
    bool trained() const { return trained_; }
    const Quantizer& quantizer() const { return quantizer_; }

    // Writes manifest.json, quantizer.eq and shard-NNNNN.es. Trains first if needed.
    Result<IndexFiles> finish();

private:
    struct PendingSong {
        SongInfo info;
        size_t n_frames = 0;
        std::vector<float> embeddings;   // until trained
        std::vector<uint16_t> list_ids;  // after training
        std::vector<uint8_t> codes;      // [n_frames, pq_m] after training
    };
    // Metadata cleaned for the shard's JSON (valid UTF-8, a finite duration >= 0).
    static PendingSong make_pending_song(const SongInfo& song, size_t n_embeddings);
    void encode_song(PendingSong& song) const;

    ModelInfo model_;
    IndexBuildParams params_;
    double hop_s_ = 0.5;
    bool trained_ = false;
    Quantizer quantizer_;
    std::vector<PendingSong> songs_;
    size_t n_pending_vectors_ = 0;  // float vectors waiting for training
};

// A loaded index: quantizer + any subset of shards, kept as in-memory inverted lists for
// phase 1 of the matcher and per-frame (list, position) for the aligned re-score of phase 2.
class Index {
public:
    // Everything added later must have been built with this model (hash, dim, hop).
    explicit Index(const ModelInfo& model);

    // Optional. Checks format, version, model hash, dim and hop; then add_quantizer() and
    // add_shard() also check sizes and sha256 against the manifest's entries.
    Status load_manifest(const std::string& json_text);
    // Required before any shard. Validates the container and the model hash.
    Status add_quantizer(const uint8_t* bytes, size_t size, const std::string& what);
    // Validates the shard completely before adding anything: on error the index is unchanged
    // and the shards added before keep working. Adding the same shard number twice is an error.
    Status add_shard(const uint8_t* bytes, size_t size, const std::string& what);

    bool has_quantizer() const { return has_quantizer_; }
    const Quantizer& quantizer() const { return quantizer_; }
    const std::string& quantizer_sha256() const { return quantizer_sha256_; }
    const std::string& model_hash() const { return model_hash_; }
    int dim() const { return dim_; }
    double hop_s() const { return hop_s_; }
    int pq_m() const { return quantizer_.pq_m; }
    int n_lists() const { return quantizer_.n_lists; }

    size_t n_songs() const { return songs_.size(); }
    const SongInfo& song(size_t song_index) const { return songs_[song_index].info; }
    size_t song_frames(size_t song_index) const { return songs_[song_index].n_frames; }
    size_t n_frames() const { return frame_list_.size(); }
    size_t n_shards_loaded() const { return shards_loaded_.size(); }
    // Shards listed by the manifest (0 when no manifest was loaded).
    size_t n_shards_expected() const { return manifest_shards_.size(); }

    // Storage for the matcher. A global frame id g belongs to song song_of_frame(g) at frame
    // g - song_first_frame(song).
    struct InvertedList {
        std::vector<uint32_t> frame_ids;  // global frame ids
        std::vector<uint8_t> codes;       // [frame_ids.size(), pq_m]
    };
    const InvertedList& list(int list_id) const { return lists_[list_id]; }
    size_t song_of_frame(uint32_t global_frame) const;
    uint32_t song_first_frame(size_t song_index) const { return songs_[song_index].first_frame; }
    int frame_list(uint32_t global_frame) const { return frame_list_[global_frame]; }
    const uint8_t* frame_codes(uint32_t global_frame) const {
        const InvertedList& l = lists_[frame_list_[global_frame]];
        return &l.codes[size_t(frame_pos_[global_frame]) * quantizer_.pq_m];
    }

private:
    struct LoadedSong {
        SongInfo info;
        uint32_t first_frame = 0;  // global frame id of its embedding 0
        uint32_t n_frames = 0;
    };
    bool n_frames_total_would_overflow(uint64_t n_new) const;
    struct ManifestShard {
        std::string file, sha256;
        size_t bytes = 0;
    };
    std::string model_hash_, model_name_;
    int dim_ = 0;
    int hop_frames_ = 0;
    double hop_s_ = 0.0;
    bool has_manifest_ = false;
    std::string manifest_quantizer_sha256_;
    size_t manifest_quantizer_bytes_ = 0;
    std::vector<ManifestShard> manifest_shards_;

    bool has_quantizer_ = false;
    Quantizer quantizer_;
    std::string quantizer_sha256_;

    std::vector<int> shards_loaded_;     // shard numbers
    std::vector<LoadedSong> songs_;      // in the order shards arrived
    std::vector<uint32_t> song_starts_;  // first_frame per song, ascending (binary search)
    std::vector<uint16_t> frame_list_;   // per global frame
    std::vector<uint32_t> frame_pos_;    // per global frame: position in its list
    std::vector<InvertedList> lists_;    // [n_lists]
};

// hop between stored embeddings, seconds: hop_frames * hop_length / sample_rate_hz.
double model_hop_s(const ModelInfo& model);
// hop between query embeddings, seconds: query_hop_frames * hop_length / sample_rate_hz.
double model_query_hop_s(const ModelInfo& model);

}  // namespace earshot
