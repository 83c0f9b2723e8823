// A large catalogue made in code space from real indexes, so real queries can run against 10 k
// to 1 M songs without that many real songs (docs/SCALE.md).
//
//   CodeSpaceCatalogueParams params = code_space_catalogue_default_params();
//   params.n_synthetic_songs = 10000;
//   Result<IndexFiles> files = make_code_space_catalogue(model, real, source, params);
//
// `real` is an index (e.g. the public eval catalogue) whose quantizer the output keeps and whose
// songs are copied unchanged, in order, spread evenly among the synthetic songs
// (real_song_position): same metadata, windows, absent runs, list ids and PQ codes. Spread, not
// first: where phase 1's candidates tie (the postings of a short clip's one pair each vote
// once), the tie goes to the lower song number, and real songs numbered first would win every
// such tie against the synthetic ones. `source` is another real index (e.g. the train catalogue,
// never the queried one) whose songs are the raw material: each is decoded with its own quantizer
// and re-encoded with `real`'s (nothing to do when both quantizers are the same). Synthetic song k
// takes source song k mod n_sources (its timeline, absent windows included, and duration) and
// relabels its codes:
//   - list ids by a permutation of the lists drawn within strata of similar size: lists ranked
//     by their posting count over the re-encoded source catalogue, cut into blocks of
//     list_block, shuffled within each block (list_block = n_lists: a free permutation, which
//     evens out list sizes as songs add up; 1: none);
//   - each sub-quantizer's codes by its own permutation of the 256 codewords, drawn the same
//     way within blocks of code_block codewords ranked by use. A grouped code's row (the code of
//     up to G consecutive windows, core/quantizer.h) is relabeled as a whole: a code word
//     stands for all its slots.
// Permutations are drawn per synthetic song from SplitMix64(seed, k): the output is the same
// bytes on every platform for the same inputs and params.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/index.h"
#include "core/index_builder.h"
#include "core/model.h"
#include "core/status.h"

namespace earshot {

struct CodeSpaceCatalogueParams {
    size_t n_synthetic_songs = 10000;
    uint64_t seed = 1;
    int list_block = 16;  // lists per stratum, >= 1 (capped at n_lists)
    int code_block = 16;  // codewords per stratum, 1 .. 256
    size_t max_shard_bytes = 8u << 20;
    // > 0: format 2 (blocks of max_shard_bytes, which the sink appends to songs.esb) with the
    // pair-key level of this span in index hops (IndexBuildParams::pair_span).
    uint32_t pair_span = 0;
    uint32_t pair_short_span = 0;  // with it, IndexBuildParams::pair_short_span
    // With it, IndexBuildParams::pair_lists: 2 also keys each window pair by its windows'
    // second nearest lists, found from their reconstructions (real songs) or relabeled with the
    // song's permutation (synthetic ones).
    uint32_t pair_lists = 1;
    // Optional: where each shard goes once full (IndexBuilder::set_shard_sink), so a catalogue
    // of a million songs is never held in memory; the returned files are then the rest.
    IndexBuilder::ShardSink shard_sink;
    // Optional: where the pair-key level's postings wait (IndexBuilder::set_pair_spill).
    std::shared_ptr<PairKeySpill> pair_spill;
};
CodeSpaceCatalogueParams code_space_catalogue_default_params();

// Where real song r of n_real lies among n_total songs: (2r + 1) * n_total / (2 n_real), the
// middle of its share (with no synthetic song, r).
size_t real_song_position(size_t r, size_t n_real, size_t n_total);

// model: the model `real` was built with (hash, dim, hop). Both indexes fully loaded, with
// quantizers of the same dim; source's model hash may differ (only its codes are used).
Result<IndexFiles> make_code_space_catalogue(const ModelInfo& model, const Index& real,
                                             const Index& source,
                                             const CodeSpaceCatalogueParams& params);

}  // namespace earshot
