// The loaded, searchable index (docs/DESIGN.md section 5): a quantizer plus any subset of
// shards (format v1) or blocks (format v2), checked against the manifest and the model, kept as
// in-memory inverted lists for phase 1 of the matcher and per-embedding (list, position) for the
// aligned re-score of phase 2. Everything works on byte buffers (no file I/O in core/): the CLI
// reads the files, the browser feeds the bytes it downloaded. core/index_builder writes them.
//
//   Index index(model_info);
//   index.load_manifest(text);                // optional, but then files are checked against it
//   index.add_quantizer(bytes, size, "quantizer.eq");
//   index.add_directory(bytes, size, "directory.ed");  // format v2 only
//   index.add_shard(bytes, size, "shard-00000.es");    // any subset, any order, as they arrive
//
// Format v1 files: manifest.json (JSON), quantizer.eq (container kind "QUAN": coarse_centroids
// f32 [n_lists, dim], pq_codebooks f32 [pq_m, 256, sub_dim]; a grouped code adds metadata
// "group" G and a leading G to pq_codebooks, core/quantizer.h), shard-NNNNN.es (container kind
// "SHRD": song_offsets u32 [n_songs + 1] over the songs' windows (one per hop), list ids as
// list_ids u8 or u16 [n] or as runs (read_shard_list_ids below), pq_codes u8 [n, pq_m] for the n
// stored windows, and, when some windows are not stored (near-silent or not music:
// core/embed_signal.h), absent_runs u32 [n_runs, 2] of sorted, disjoint [first window, count]
// runs; then n = windows - absent; with a grouped code pq_codes has a row per group: each run of
// consecutive stored windows of a song is cut into groups of G, a run of L windows into
// ceil(L / G), the last filled up with its last window).
// The format's count keys say "frames" for windows (shard metadata "n_frames", manifest shard
// entries "frames"); they keep those names so existing indexes load.
//
// Format v2 keeps the quantizer and puts the shards, as small *blocks* of a few songs (the unit
// a page fetches and verifies), one after the other in one file (songs.esb); a binary
// directory (directory.ed, container kind "DIRC") gives each block's byte range and SHA-256, so
// a client can fetch any block with one HTTP Range request and check it before use, and the
// postings per coarse list, so a full load reserves its lists once. A block is
// a SHRD container whose "shard" is its block number. The manifest names the quantizer and the
// directory with whole-file hashes and the songs file with its size.
//
// "sha256" in the manifest, "quantizer_sha256" in shard and directory metadata and a
// directory's block_sha256 are the SHA-256 of the whole file or block, lowercase hex in JSON
// (what sha256sum prints; the web loader checks downloads with it). The model hash, by
// contrast, is the model container's trailing checksum (DESIGN.md section 4).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/model.h"
#include "core/quantizer.h"
#include "core/status.h"

namespace earshot {

struct ContainerView;
class ContainerWriter;

// Index format versions this reader loads; IndexBuilder writes either (IndexBuildParams).
constexpr int kIndexVersion1 = 1;  // a manifest listing whole shard files
constexpr int kIndexVersion2 = 2;  // a directory of hashed blocks in one songs file
// Shard (v1) and block (v2) numbers (shard metadata "shard") are below this: 16.7 M, so that a
// lazy index of one song a block (kLazyBlockBytes) holds that many songs. Readers size what
// they allocate by the sections present, so the bound only refuses larger counts.
constexpr uint64_t kMaxShards = uint64_t(1) << 24;
// Windows of one song at most: 2^20 (73 hours at a 0.25 s hop; decoding refuses audio over
// 2 hours). A shard's windows are bounded by this times its songs.
constexpr uint64_t kMaxSongWindows = uint64_t(1) << 20;

// Whether `name` may name an index file in a manifest: a plain file name of [A-Za-z0-9._-]
// (what the web loader accepts), neither "." nor ".."; no path separator, so readers open it
// next to the manifest and never elsewhere.
bool is_index_file_name(const std::string& name);

// Largest |log_prior| an index may store (e to the 5: 150 times the catalogue's typical song).
constexpr double kMaxLogPrior = 5.0;

struct SongInfo {
    std::string id;  // caller's stable id (e.g. a file name or catalogue number)
    std::string title;
    std::string album;
    double duration_s = 0.0;
    // From the catalogue's optional popularity column (plays, streams: any count-like number
    // >= 0); -1 when not given. With it, log_prior = ln(popularity + 1) less the catalogue's mean
    // of that, clamped to +-kMaxLogPrior: how much likelier a listener is to play this song
    // than the catalogue's typical one, for the popularity-weighted decision (MatchParams).
    double popularity = -1.0;
    double log_prior = 0.0;
    bool has_prior() const { return popularity >= 0.0; }
};

class Index {
public:
    // Everything added later must have been built with this model (hash, dim, hop).
    explicit Index(const ModelInfo& model);

    // Optional for v1, required for v2. Checks format, version, model hash, dim, hop and every
    // file name (is_index_file_name); then add_quantizer(), add_directory() and add_shard()
    // also check sizes and sha256 against the manifest's (or the directory's) entries. Refused
    // once a directory or a shard is loaded.
    Status load_manifest(const std::string& json_text);
    // Required before any shard. Validates the container and the model hash.
    Status add_quantizer(const uint8_t* bytes, size_t size, const std::string& what);
    // Format v2: the block directory, after the manifest and the quantizer and before any
    // block. Checks it against the manifest (size, sha256), the model and the quantizer, and
    // that the blocks tile the songs file; then shard_range(b) says where block b lies.
    // reserve_lists: reserve every list's postings for a full load (below); false for a reader
    // that adds only the few blocks a query needs.
    Status add_directory(const uint8_t* bytes, size_t size, const std::string& what,
                         bool reserve_lists = true);
    // What add_directory() will reserve for the lists, in bytes (the directory's postings times
    // bytes_per_posting()), read from its bytes before they are checked or added: a page with a
    // memory bound asks before it commits (WASM allocation failure aborts). Needs the v2
    // manifest and the quantizer; a count the songs file cannot hold is an error here too.
    Result<uint64_t> directory_reserve_bytes(const uint8_t* bytes, size_t size,
                                             const std::string& what) const;
    // Memory one stored window takes in the loaded index: list entry, codes, score scale, and
    // its list by global id (every window also takes a bit: stored or not).
    size_t bytes_per_posting() const;
    // A shard (v1) or block (v2, the bytes of shard_range(b)). Validates it completely before
    // adding anything: on error the index is unchanged and the shards added before keep
    // working. Adding the same shard number twice is an error. sha256_hex: the bytes' SHA-256
    // when the caller has just computed it (a lazy client checks each block as it arrives),
    // else computed here; either way it must be the manifest's or directory's.
    Status add_shard(const uint8_t* bytes, size_t size, const std::string& what,
                     const std::string& sha256_hex = std::string());

    bool has_quantizer() const { return has_quantizer_; }
    const Quantizer& quantizer() const { return quantizer_; }
    const std::string& quantizer_sha256() const { return quantizer_sha256_; }
    const std::string& model_hash() const { return model_hash_; }
    int dim() const { return dim_; }
    double hop_s() const { return hop_s_; }  // seconds between a song's stored embeddings
    int pq_m() const { return quantizer_.pq_m; }
    int n_lists() const { return quantizer_.n_lists; }

    size_t n_songs() const { return songs_.size(); }
    const SongInfo& song(size_t song_index) const { return songs_[song_index].info; }
    size_t song_n_embeddings(size_t song_index) const { return songs_[song_index].n_embeddings; }
    // Windows of all loaded songs (global ids), stored or not; stored ones: n_stored().
    size_t n_embeddings() const { return embedding_list_.size(); }
    size_t n_stored() const { return n_stored_; }
    size_t n_shards_loaded() const { return shards_loaded_.size(); }
    // The manifest's format version (kIndexVersion1 or 2); 0 without a manifest.
    int version() const { return version_; }
    // Shards listed by the manifest, or blocks listed by the directory (0 before either).
    size_t n_shards_expected() const {
        return block_entries_ ? size_t(manifest_blocks_count_) : manifest_shards_->size();
    }
    // File names the manifest gives (checked by is_index_file_name); empty without a manifest.
    const std::string& manifest_quantizer_file() const { return manifest_quantizer_file_; }
    const std::string& manifest_directory_file() const { return manifest_directory_file_; }
    const std::string& manifest_shard_file(size_t i) const { return (*manifest_shards_)[i].file; }
    // Where shard or block i lies: in v1 a whole file (offset 0), in v2 a byte range of the
    // songs file; `bytes` and the lowercase-hex `sha256` are what add_shard() will check.
    struct FileRange {
        std::string file;
        uint64_t offset = 0, bytes = 0;
        std::string sha256;
        size_t songs = 0;  // songs in it (v2: from the directory; v1: the manifest's count)
    };
    FileRange shard_range(size_t i) const;
    // Format v2 read in parts (a lazy client: core/directory_pages.h): instead of
    // add_directory(), the entries of the blocks this index will add, each from a directory
    // page the caller has checked, after the manifest and the quantizer. Replaces the entries
    // given before; refused once a whole directory is loaded. A block without an entry is
    // refused by add_shard().
    Status set_block_entries(const std::vector<std::pair<uint32_t, FileRange>>& entries);
    // v2: the songs file's name and size from the manifest (empty and 0 for v1).
    const std::string& manifest_blocks_file() const { return manifest_blocks_file_; }
    uint64_t manifest_blocks_bytes() const { return manifest_blocks_bytes_; }

    // Storage for the matcher. Windows have global ids 0 .. n_embeddings() - 1 in the
    // order they were added: global id g is window g - song_first_embedding(s) of song
    // s = song_of_embedding(g), at song time (g - song_first_embedding(s)) * hop_s().
    struct InvertedList {
        std::vector<uint32_t> embedding_ids;  // global embedding ids, ascending
        std::vector<uint8_t> codes;           // [embedding_ids.size(), pq_m]
        // Quantizer::unit_norm: 1 / |reconstruction| per posting (computed when a shard is
        // added); empty otherwise.
        std::vector<float> inv_norms;
        // A grouped code (Quantizer::group > 1) instead of embedding_ids and codes: each
        // posting names its group's row in group_codes() and its slot in the group, as
        // row << kCodeRefSlotBits | slot, which also gives its global id (posting_id()): a
        // group's code is kept once, not once per window, and a posting takes 4 bytes for both
        // its id and its code.
        std::vector<uint32_t> code_refs;
        size_t size() const { return code_refs.empty() ? embedding_ids.size() : code_refs.size(); }
    };
    static constexpr int kCodeRefSlotBits = 4;  // slots < kMaxCodeGroup = 16
    static constexpr uint32_t kCodeRefSlotMask = (1u << kCodeRefSlotBits) - 1;
    // A grouped code's codes, a row of pq_m bytes per group, in the order shards were added; a
    // group's windows are consecutive (groups end where windows are not stored), so its slot s
    // is global id group_first_embedding(row) + s.
    const std::vector<uint8_t>& group_codes() const { return group_codes_; }
    uint32_t group_first_embedding(uint32_t row) const { return group_first_embedding_[row]; }
    const InvertedList& list(int list_id) const { return lists_[list_id]; }
    // The global id of posting j of list l.
    uint32_t posting_id(const InvertedList& l, size_t j) const {
        if (l.code_refs.empty()) return l.embedding_ids[j];
        return ref_id(l.code_refs[j]);
    }
    size_t song_of_embedding(uint32_t global_id) const;
    uint32_t song_first_embedding(size_t song_index) const {
        return songs_[song_index].first_embedding;
    }
    // A window the builder did not store (silence, not music: shard section absent_runs) has
    // no list and no codes; the matcher scores it like a position outside the song.
    bool embedding_stored(uint32_t global_id) const { return embedding_stored_[global_id]; }
    int embedding_list(uint32_t global_id) const { return embedding_list_[global_id]; }
    // A stored embedding's codes and score factor (below) are found in its list, whose ids
    // ascend (global ids grow as shards are added), by binary search: phase 2 looks up a few
    // thousand a query, and a position per window would cost 4 bytes of heap each.
    const uint8_t* embedding_codes(uint32_t global_id) const {
        float scale;
        return embedding_codes(global_id, &scale);
    }
    // The factor a stored embedding's score is multiplied by: 1 / |reconstruction| when the
    // quantizer has unit_norm, else 1.
    float embedding_score_scale(uint32_t global_id) const {
        float scale;
        embedding_codes(global_id, &scale);
        return scale;
    }
    // Both with one search (phase 2's scores), and the window's slot in its group's code
    // (0 for an ungrouped code) when `slot` is given.
    const uint8_t* embedding_codes(uint32_t global_id, float* score_scale,
                                   int* slot = nullptr) const {
        const InvertedList& l = lists_[embedding_list_[global_id]];
        const size_t pos = position_in_list(l, global_id);
        *score_scale = l.inv_norms.empty() ? 1.0f : l.inv_norms[pos];
        if (l.code_refs.empty()) {
            if (slot) *slot = 0;
            return &l.codes[pos * quantizer_.pq_m];
        }
        const uint32_t ref = l.code_refs[pos];
        if (slot) *slot = int(ref & kCodeRefSlotMask);
        return &group_codes_[size_t(ref >> kCodeRefSlotBits) * quantizer_.pq_m];
    }

private:
    uint32_t ref_id(uint32_t ref) const {
        return group_first_embedding_[ref >> kCodeRefSlotBits] + (ref & kCodeRefSlotMask);
    }
    size_t position_in_list(const InvertedList& l, uint32_t global_id) const {
        if (l.code_refs.empty())
            return size_t(
                std::lower_bound(l.embedding_ids.begin(), l.embedding_ids.end(), global_id) -
                l.embedding_ids.begin());
        // Rows and slots ascend with the global ids.
        return size_t(
            std::lower_bound(l.code_refs.begin(), l.code_refs.end(), global_id,
                             [this](uint32_t ref, uint32_t id) { return ref_id(ref) < id; }) -
            l.code_refs.begin());
    }
    struct LoadedSong {
        SongInfo info;
        uint32_t first_embedding = 0;  // global id of its embedding 0
        uint32_t n_embeddings = 0;
    };
    bool n_embeddings_total_would_overflow(uint64_t n_new) const;
    // The directory's list_sizes section (n_lists u32) and their sum, checked against what the
    // manifest's songs file can hold.
    Status read_list_sizes(const ContainerView& view, const std::string& what,
                           std::vector<uint32_t>* out, uint64_t* total) const;
    struct ManifestShard {
        std::string file, sha256;
        size_t bytes = 0;
        uint64_t offset = 0;  // v2: in the songs file
        size_t songs = 0;
    };
    std::string model_hash_, model_name_;
    int dim_ = 0;
    int hop_frames_ = 0;
    double hop_s_ = 0.0;
    bool has_manifest_ = false;
    int version_ = 0;
    std::string manifest_quantizer_file_, manifest_quantizer_sha256_;
    size_t manifest_quantizer_bytes_ = 0;
    std::string manifest_directory_file_, manifest_directory_sha256_;  // v2
    size_t manifest_directory_bytes_ = 0;
    std::string manifest_blocks_file_;  // v2
    uint64_t manifest_blocks_bytes_ = 0, manifest_blocks_count_ = 0;
    bool has_directory_ = false;
    // Shared by copies of the index, never changed in place (replaced whole): a lazy client
    // copies its preloaded index for each query, and at a million songs the entries of 300 000
    // blocks are tens of MB.
    std::shared_ptr<const std::vector<ManifestShard>> manifest_shards_ =
        std::make_shared<const std::vector<ManifestShard>>();
    // set_block_entries(): the blocks known, by number (null: none given).
    std::shared_ptr<const std::unordered_map<uint32_t, ManifestShard>> block_entries_;
    // Block b's entry, from the whole directory or set_block_entries(); null when unknown.
    const ManifestShard* block_entry(size_t b) const;

    bool has_quantizer_ = false;
    Quantizer quantizer_;
    std::string quantizer_sha256_;

    std::vector<int> shards_loaded_;        // shard numbers
    std::vector<LoadedSong> songs_;         // in the order shards arrived
    std::vector<uint32_t> song_starts_;     // first_embedding per song, ascending
    std::vector<uint16_t> embedding_list_;  // per global id: its list (0 when not stored)
    std::vector<bool> embedding_stored_;    // per global id
    size_t n_stored_ = 0;
    std::vector<InvertedList> lists_;       // [n_lists]
    std::vector<uint8_t> group_codes_;      // grouped codes: [groups, pq_m]
    std::vector<uint32_t> group_first_embedding_;  // grouped codes: per group, its first window
};

// A grouped code's groups of a song's windows (core/quantizer.h; shard section pq_codes): each
// run of consecutive stored windows cut into groups of `group`, as (first stored window, windows
// in the group), in order. stored: n_windows flags, or null when every window is stored.
std::vector<std::pair<size_t, size_t>> code_groups(const uint8_t* stored, size_t n_windows,
                                                   size_t group);

// A shard's list ids, one per stored window (u8, u16 above 256 lists), in either of two forms:
// "list_ids" [n], a list per window; or runs, "list_run_starts" u8 [ceil(n / 8)] with bit j % 8
// of byte j / 8 set where stored window j starts a run (the first window, and each whose list
// is not the previous stored window's in the shard; the padding bits clear) and "list_run_ids"
// [runs], each run's list. A song's consecutive windows keep their list about two times in
// three, so runs take about 3.5 bits a window at 256 lists. The writer picks the smaller form.
void add_shard_list_ids(ContainerWriter* writer, const std::vector<uint16_t>& ids, int n_lists);
// The bytes n ids take in the form the writer picks (a block's size before it is written).
size_t shard_list_id_bytes(const uint16_t* ids, size_t n, int n_lists);
// Reads either form, checked: sizes, the run bits, every id below n_lists.
Result<std::vector<uint16_t>> read_shard_list_ids(const ContainerView& view, size_t n_stored,
                                                  int n_lists, const std::string& what);

// SHA-256 of a whole index file, lowercase hex (the manifest's "sha256" values).
std::string index_file_sha256_hex(const uint8_t* bytes, size_t size);

// hop between stored embeddings, seconds: hop_frames * hop_length / sample_rate_hz.
double model_hop_s(const ModelInfo& model);
// hop between query embeddings, seconds: query_hop_frames * hop_length / sample_rate_hz.
double model_query_hop_s(const ModelInfo& model);

}  // namespace earshot
