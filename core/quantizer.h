// The index's vector codec (docs/DESIGN.md section 5): a coarse quantizer (IVF lists) plus a
// residual product quantizer with 8-bit codes, optionally after a learned orthogonal rotation of
// the residual (OPQ, Ge et al. 2013). An embedding of `dim` floats is stored as its list id and
// pq_m bytes; it is reconstructed as coarse_centroids[list] + y R^T, where y is the
// concatenation of pq_codebooks[m][code[m]] over m and R the rotation (identity without one).
//
// Grouped codes (group G > 1) code the residuals of G consecutive stored windows of a song
// together in pq_m bytes (pq_m / G a window): each window keeps its own list, its residual is
// rotated by the same R, and sub-quantizer m covers dimensions [m sub_dim, (m + 1) sub_dim) of
// all G rotated residuals at once, so a code word is G pieces of sub_dim floats, one per slot
// (position in the group). Neighbouring windows are alike, and one code word per sub-space for
// all of them keeps what a per-window code of the same bytes loses (docs/SCALE.md, "Windows
// coded in groups"). Slot s of a group decodes as an ordinary PQ code with the codebooks of
// slot s (pq_codebooks is [group, pq_m, 256, sub_dim]), so the matcher's tables and scans are
// those of an ungrouped code, one table per slot. Rotating each window alike (not all G x dim
// dimensions together) is what keeps a slot's decoding and norm at dim multiply-adds.
//
// Trained by core/quantizer_training, written and read as quantizer.eq by core/index_builder and
// core/index.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/kernels.h"  // kPqCodebookSize

namespace earshot {

constexpr int kMaxLists = 65536;       // list ids are u8 (n_lists <= 256) or u16
constexpr int kMaxQuantizerDim = 512;  // floats per embedding, at most
constexpr int kMaxCodeGroup = 16;      // windows one grouped code covers, at most

// The embedding sizes the index format stores: 1 .. kMaxQuantizerDim floats, a multiple of 4.
constexpr bool quantizer_dim_supported(int64_t dim) {
    return dim > 0 && dim <= kMaxQuantizerDim && dim % 4 == 0;
}

// A stored rotation R must satisfy max |R^T R - I| <= this (float rounding of a trained one is
// ~1e-6).
constexpr float kMaxRotationError = 1e-3f;
// max |R^T R - I| over entries for R [dim, dim] row-major; infinity if R has a non-finite value.
float orthogonality_error(const float* r, int dim);

// Rotation training rounds (OPQ) an index may ask for.
constexpr int kMaxOpqRounds = 100;

// A code's name, which keys a model's threshold tables: the PQ bytes, then "-gG" for a code
// over G windows, "-opq" with a rotation and "-unit" with unit-length scores ("32",
// "8-opq-unit", "32-g4-opq-unit").
std::string code_name(int pq_m, bool rotated, bool unit_norm, int group = 1);
// The inverse: true when `name` is a code name for embeddings of `dim` (PQ bytes that divide dim,
// no leading zero, then "-gG" with G in [2, kMaxCodeGroup], "-opq" and/or "-unit" in that
// order), with its parts (*group 1 without "-gG").
bool parse_code_name(const std::string& name, int dim, int* pq_m, bool* rotated, bool* unit_norm,
                     int* group = nullptr);

struct Quantizer {
    int dim = 0;
    int n_lists = 0;
    int pq_m = 0;                         // bytes of one code (of a window, or of a group)
    int sub_dim = 0;                      // dim / pq_m
    int group = 1;                        // windows one code covers (grouped codes: above)
    std::vector<float> coarse_centroids;  // [n_lists, dim]
    std::vector<float> pq_codebooks;      // [group, pq_m, kPqCodebookSize, sub_dim]
    std::vector<float> rotation;          // [dim, dim] row-major, orthogonal; empty: none
    // Scores use the reconstruction scaled to unit length (embeddings are unit vectors; a
    // reconstruction is shorter by an amount that varies from window to window, which blurs the
    // line between matches and non-matches at small code sizes: docs/SCALE.md).
    bool unit_norm = false;

    bool rotated() const { return !rotation.empty(); }
    std::string code_name() const { return earshot::code_name(pq_m, rotated(), unit_norm, group); }
    // Slot s's codebooks [pq_m, kPqCodebookSize, sub_dim] (s < group): an ordinary PQ codebook.
    const float* codebooks(int slot) const {
        return &pq_codebooks[size_t(slot) * pq_m * kPqCodebookSize * sub_dim];
    }
    // x R: the side of an inner product with a residual that meets the PQ code words, since
    // <x, y R^T> = <x R, y>. Copies x when there is no rotation. x, out: dim floats, distinct.
    void rotate(const float* x, float* out) const;

    // Nearest list by L2 distance (the probe order of the matcher). x: dim floats.
    int assign(const float* x) const;
    // The k nearest lists by L2 distance, nearest first (ties: the lower list), with their
    // squared distances; k in [1, n_lists]. lists, sq_dists: k each.
    void nearest(const float* x, int k, uint32_t* lists, float* sq_dists) const;
    // PQ-encodes the (rotated) residual x - coarse_centroids[list]: writes pq_m bytes. Ungrouped
    // codes only.
    void encode(const float* x, int list, uint8_t* codes) const;
    // A grouped code: the G = group windows x [G, dim] with their lists [G] (a song's last
    // group repeats its last window) coded together: writes pq_m bytes. Each code word is the
    // one nearest over all G slots (the sum of the slots' squared distances).
    void encode_group(const float* x, const int* lists, uint8_t* codes) const;
    // Reconstruction of a window, slot `slot` of its group's code (0 for ungrouped codes):
    // writes dim floats.
    void decode(int list, const uint8_t* codes, float* out, int slot = 0) const;

    // |decode(list, codes, slot)|^2 in dim multiply-adds, without the rotation's dim^2:
    // |c|^2 + 2 <c R, y> + |y|^2. Needs prepare_norms() first.
    float reconstruction_sq_norm(int list, const uint8_t* codes, int slot = 0) const;
    void prepare_norms();
    std::vector<float> rotated_centroids;  // [n_lists, dim]: c R (prepare_norms, rotated only)
    std::vector<float> centroid_sq_norms;  // [n_lists]
    std::vector<float> codeword_sq_norms;  // [group, pq_m, kPqCodebookSize]
};

}  // namespace earshot
