// Index building (docs/DESIGN.md section 5): collects a catalogue's embeddings, trains the
// quantizer (core/quantizer_training) and writes the index files as byte buffers (the CLI writes
// the files; core/index reads them): manifest.json, quantizer.eq and shard-NNNNN.es (format v1)
// or manifest.json, quantizer.eq, directory.ed and songs.esb (format v2: small blocks of songs
// one after the other, each hashed in the directory).
//
//   Result<IndexBuilder> builder = IndexBuilder::create(model_info, params);  // checks params
//   builder->set_shard_sink(write_file);      // optional: each shard leaves once it is full
//   builder->add_song(song, embeddings, n);   // n x dim floats, one every model hop
//   builder->train();                         // or train_on(sample, n) before adding songs
//   Result<IndexFiles> files = builder->finish();  // {"manifest.json", "quantizer.eq", ...}
//
// Memory: the float embeddings of songs added before training (at most max_pending_vectors,
// then it trains), the encoded songs of the shard being filled, and a few numbers per shard;
// with a shard sink nothing else grows with the catalogue, so a build of any size fits.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/directory_pages.h"
#include "core/index.h"
#include "core/model.h"
#include "core/pair_keys.h"
#include "core/quantizer.h"
#include "core/status.h"

namespace earshot {

struct IndexBuildParams {
    // Coarse k-means centroids (IVF lists), at most kMaxLists; 0 = index_auto_lists() of the
    // catalogue's embedding count (train(): every embedding added so far; train_on(): the
    // vectors given).
    int n_lists = 0;
    int pq_m = 16;                        // PQ sub-quantizers = bytes per embedding; must
                                          // divide the embedding dim
    int pq_nbits = 8;                     // only 8 is supported (one byte per sub-code)
    int opq_rounds = 0;                   // > 0: learn a rotation of the residuals before PQ
                                          // (OPQ) in this many rounds, at most 100; 0: none
    bool unit_norm = false;               // scores use reconstructions scaled to unit length
    int code_group = 1;                   // windows one code covers (core/quantizer.h), in
                                          // [1, kMaxCodeGroup]: pq_m / code_group bytes a window
    int kmeans_iterations = 10;           // Lloyd iterations (max), coarse and per sub-quantizer;
                                          // stops early when < 0.1% of points move (faiss IVF: 10)
    size_t max_training_vectors = 65536;  // train on a seeded random sample of at most this many
    uint64_t seed = 1234;                 // training is deterministic for a given seed and input
    int format_version = kIndexVersion1;  // kIndexVersion1 or kIndexVersion2
    size_t max_shard_bytes = 8u << 20;    // shard (v1) or block (v2) size bound, > 0; a song is
                                          // never split (a single song larger than this gets a
                                          // shard of its own). v2 wants small blocks, the unit a
                                          // page fetches on demand: kDefaultBlockBytes.
    // Memory bound for untrained builds: once more float vectors than this wait for training
    // (4M x 128-d = 2 GB, ~11k 3-minute songs), add_song() trains on a sample of them and
    // encodes every later song at once. Smaller catalogues train on everything in finish().
    size_t max_pending_vectors = 4000000;
    // Songs the caller will add, when it knows (0: unknown). A build that trains before every
    // song is in (more than max_pending_vectors waiting) and has n_lists = 0 picks the lists for
    // the embeddings so far scaled by expected_songs / songs added, not for the first ones alone.
    size_t expected_songs = 0;
    // The time-pair key level for pages that fetch a query's postings lazily (core/pair_keys.h,
    // core/pair_key_layout.h; format v2 only): a stored window's key pairs its coarse list with
    // the list of the window pair_span index hops later. 0 = none. Written as pairs.ekh (the
    // header, hashed in the manifest), pairs.ekd (the directory) and pairs.ekp (the postings);
    // songs of at most 2^12 windows (17 minutes at a 0.25 s hop) and 2^20 songs.
    uint32_t pair_span = 0;
    // The level's short keys (core/pair_keys.h): each window keyed again with the window
    // pair_short_span hops later, for queries too short to hold a pair pair_span apart. 0 =
    // none; else in [1, pair_span). Twice the level's postings (host storage, not download).
    uint32_t pair_short_span = 0;
    uint32_t pair_keys_per_page = 512;  // keys a directory page holds, [1, 65536]
    // Coarse lists a window's pair keys take, 1 or 2: with 2, a window pair is also stored under
    // the keys of its windows' second nearest lists (up to four keys, PairKeyIndex::add_song),
    // so a query embedding that falls in a window's second list still finds its pair, at up
    // to four times the level's postings.
    uint32_t pair_lists = 1;
    // With the pair-key level, the block directory is also written in pages a lazy client
    // fetches one at a time (core/directory_pages.h: directory-pages.edh and .edp, the header
    // hashed in the manifest); blocks a page holds, [1, 65536].
    uint32_t directory_page_blocks = kDefaultDirectoryPageBlocks;
};
// The block size bound `earshot build` uses for format v2: a few songs (about 2 of 3 minutes
// with 32-byte codes, 8 with 8-byte codes), so a page fetching one song's codes fetches little
// else.
constexpr size_t kDefaultBlockBytes = 64u << 10;
// The block size bound for an index a lazy page reads (with the pair-key level): one byte, so
// each song is a block of its own whatever its code (up to kMaxShards songs). A lazy query
// fetches each candidate song's whole block, and a block of several songs costs it their bytes
// too: at 100 000 songs (32-byte codes) a 10 s clip fetched a median 97 KB against 173 KB with
// 64 KB blocks, and with the default code, where a 16 KB bound held 2.65 songs a block, one
// song a block cut the median read of train listens against 100 096 songs from 189 to 135 KB
// (out-of-catalog ones 2 249 to 1 398 KB) with the same answers (docs/SCALE.md, "Lazy answers"
// and "One song a block").
constexpr size_t kLazyBlockBytes = 1;
IndexBuildParams index_build_default_params();
// The same, with the code the model's main thresholds were calibrated for (index_pq_m,
// index_opq_rounds, index_unit_norm).
IndexBuildParams index_build_default_params(const ModelInfo& model);
// Code options (`earshot build --pq-m --opq --unit-norm --group`) name a code as a whole: with
// any of them given (pq_m > 0, opq_rounds >= 0, unit_norm >= 0, group > 0), the others are the
// plain code's (no rotation, no unit length, a window a code), not the model's default, so
// `--pq-m 16` is 16 bytes a window whatever code the model ships by default. Without any,
// params keeps its code.
void apply_code_options(IndexBuildParams* params, int pq_m, int opq_rounds, int unit_norm,
                        int group);
// A pair-key span given in seconds (`--pair-keys`, `--pair-short-keys`), in the model's index
// hops: the nearest whole number, at least one (seconds > 0).
uint32_t pair_span_hops(const ModelInfo& model, double seconds);
// The default number of IVF lists for a catalogue of n_embeddings stored embeddings: the power
// of two nearest sqrt(n_embeddings), clamped to [256, 4096]. 256 up to ~190 000 embeddings
// (~260 songs of 3 minutes at a 0.25 s hop); 2048 for 10 000 such songs (7.2 M), where 256
// lists held 28 000 postings each, all scanned per probe (docs/PERFORMANCE-web.md).
int index_auto_lists(size_t n_embeddings);

// Checks params against the model before any work: the model's embedding_dim is one the index
// supports (a multiple of 4, at most kMaxQuantizerDim), 0 <= n_lists <= kMaxLists, pq_m
// divides embedding_dim, pq_nbits == 8, kmeans_iterations >= 0, max_shard_bytes > 0. An error
// message starts with the name of the offending field ("pq_m 7 must divide ...").
Status validate_index_build_params(const IndexBuildParams& params, const ModelInfo& model);

// The files of an index folder, name -> bytes, plus size figures.
struct IndexFiles {
    // Every file, or, with a shard sink, the files the sink did not take (manifest.json,
    // quantizer.eq); the figures below count every file either way.
    std::map<std::string, std::vector<uint8_t>> files;
    size_t n_files = 0;
    size_t n_songs = 0;
    size_t n_embeddings = 0;  // stored embeddings over all songs
    size_t n_windows = 0;     // windows of the songs' timelines (stored or not)
    double duration_s = 0.0;  // sum of song durations
    size_t total_bytes = 0;   // every file, manifest included
    double bytes_per_song = 0.0;
    double bytes_per_minute = 0.0;  // of audio
};

class IndexBuilder {
public:
    // `model` gives hash, name, embedding_dim and the hop (hop_frames * hop_length / rate).
    // Fails if validate_index_build_params() does.
    static Result<IndexBuilder> create(const ModelInfo& model, const IndexBuildParams& params);

    // embeddings: n_embeddings x dim floats (row-major), embedding j at time j * hop_s.
    // Before training the floats are kept (up to max_pending_vectors, then it trains); after
    // training they are encoded at once (large catalogues may also train_on() a sample first
    // and then stream songs in). n_embeddings may be 0. stored (optional, n_embeddings flags):
    // 0 = the window is not stored (its embedding is ignored and need not be finite); the
    // song keeps its timeline, so the matcher scores such a position like one outside the song.
    Status add_song(const SongInfo& song, const float* embeddings, size_t n_embeddings,
                    const uint8_t* stored = nullptr);

    // Trains on a sample of the songs added so far (at most max_training_vectors), then encodes
    // them. Copes with fewer vectors than centroids (duplicates centroids). Errors if no
    // vector was added.
    Status train();
    // Trains on the given vectors (n x dim; the first max_training_vectors of them) instead;
    // songs added before are encoded afterwards. With code_group G > 1 the vectors are groups
    // of G consecutive windows of a song (a partial group at the end is left out).
    Status train_on(const float* vectors, size_t n_vectors);
    // Uses a quantizer trained elsewhere (e.g. another index build, to append songs with the
    // same codes); checks its shapes against the model. Songs added before are encoded.
    Status set_quantizer(const Quantizer& quantizer);
    // Adds a song already encoded with quantizer(): list_ids [n], codes [n, pq_m] for its n
    // stored windows (a grouped code: a row per group, core/index.h). Needs a quantizer (trained or
    // set); checks list ids < n_lists. stored (optional) as in add_song: n_embeddings flags, then n
    // = the count of nonzero ones; without it n = n_embeddings. (Benchmarks and the scale harness
    // generate codes.)
    // second_list_ids (optional, [n]): each stored window's second nearest list, for the pair
    // level's keys with pair_lists 2 (ignored otherwise; without it a window has one list).
    Status add_song_codes(const SongInfo& song, const uint16_t* list_ids, const uint8_t* codes,
                          size_t n_embeddings, const uint8_t* stored = nullptr,
                          const uint16_t* second_list_ids = nullptr);
    bool trained() const { return trained_; }
    const Quantizer& quantizer() const { return quantizer_; }

    // Where each shard goes as soon as it is full (file name, bytes) instead of being kept for
    // finish(): shards are full once the quantizer is trained and the next song would not fit.
    // Format v2 hands every block with the same file name (songs.esb): the sink appends them.
    // An error the sink returns is returned by the call that filled the shard (add_song,
    // train, finish, ...); the build should then be abandoned. Set it before adding songs.
    using ShardSink = std::function<Status(const std::string& file, std::vector<uint8_t> bytes)>;
    void set_shard_sink(ShardSink sink) { sink_ = std::move(sink); }
    // Where the pair-key level's postings wait between the songs and finish() (PairKeyBuilder,
    // core/pair_keys.h): with core/native/pair_key_spill_files.h's TempFilePairKeySpill a
    // million-song level is sorted on disk a bucket at a time; without one, in memory. With a
    // shard sink, the level's postings file leaves through the sink too (pairs.ekp, appended in
    // chunks of about 1 MB). Set it before training.
    void set_pair_spill(std::shared_ptr<PairKeySpill> spill) { pair_spill_ = std::move(spill); }
    // Encoded songs waiting for their shard, bytes (the bound a sink keeps: ~max_shard_bytes).
    size_t held_shard_bytes() const { return trained_ ? shard_estimate_ : 0; }

    // Writes manifest.json, quantizer.eq (v2: directory.ed) and the shards not yet written.
    // Trains first if needed.
    Result<IndexFiles> finish();

private:
    IndexBuilder(const ModelInfo& model, const IndexBuildParams& params);

    struct PendingSong {
        SongInfo info;
        size_t n_embeddings = 0;         // windows of the song's timeline
        std::vector<uint8_t> stored;     // per window, 1 = stored; empty: every window
        const uint8_t* stored_flags() const { return stored.empty() ? nullptr : stored.data(); }
        size_t n_stored = 0;             // rows of embeddings / list_ids / codes
        std::vector<float> embeddings;   // [n_stored, dim] until trained
        std::vector<uint16_t> list_ids;  // [n_stored] after training
        std::vector<uint16_t> second_list_ids;  // [n_stored] with pair_lists 2, else empty
        std::vector<uint8_t> codes;      // [n_stored or its groups, pq_m] after training
        size_t shard_bytes = 0;          // upper estimate of its bytes in a shard (trained)
    };
    struct ShardEntry {
        std::string file, sha256;  // sha256: lowercase hex of `digest`
        std::array<uint8_t, 32> digest{};
        size_t bytes = 0, songs = 0, windows = 0;
        uint64_t offset = 0;  // v2: in songs.esb
    };
    // v2: what the directory says of the blocks written, and its container.
    BlockDirectoryFields directory_fields() const;
    std::vector<uint8_t> directory_file(const BlockDirectoryFields& fields) const;
    // Metadata cleaned for the shard's JSON (valid UTF-8, a finite duration >= 0).
    static PendingSong make_pending_song(const SongInfo& song, size_t n_embeddings);
    void encode_song(PendingSong& song) const;
    // train() for a grouped code: a sample of whole groups of the songs added so far.
    Status train_on_groups();
    size_t song_shard_bytes(const PendingSong& song) const;
    // Once trained: the quantizer file, then every song added so far placed into shards.
    Status after_training();
    // Appends an encoded song to the shard being filled; writes that shard first if the song
    // would not fit.
    Status place_song(PendingSong song);
    // Writes the songs held (songs_) as the next shard, to the sink or kept, and drops them.
    Status write_shard();

    ModelInfo model_;
    IndexBuildParams params_;
    double hop_s_ = 0.5;
    bool trained_ = false;
    Quantizer quantizer_;
    // Before training: every song added. After: the songs of the shard being filled.
    std::vector<PendingSong> songs_;
    size_t songs_added_ = 0;
    size_t n_pending_vectors_ = 0;  // float vectors waiting for training
    size_t shard_estimate_ = 0;     // bytes of the shard being filled (trained)
    ShardSink sink_;
    std::vector<uint8_t> quantizer_file_;  // after training
    std::string quantizer_sha256_;
    std::vector<ShardEntry> shards_;                           // written so far
    std::vector<uint32_t> list_sizes_;  // postings per coarse list over the shards written
                                        // (sized once trained)
    std::map<std::string, std::vector<uint8_t>> kept_shards_;  // without a sink
    std::shared_ptr<PairKeySpill> pair_spill_;                 // set_pair_spill; null: in memory
    std::optional<PairKeyBuilder> pairs_;  // params_.pair_span > 0, once trained
    size_t written_stored_ = 0, written_windows_ = 0, written_shard_bytes_ = 0;
    double duration_s_ = 0.0;
};

}  // namespace earshot
