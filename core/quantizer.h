// The index's vector codec (docs/DESIGN.md section 5): a coarse quantizer (IVF lists) plus a
// residual product quantizer with 8-bit codes. An embedding of `dim` floats is stored as its
// list id and pq_m bytes; it is reconstructed as coarse_centroids[list] + the concatenation of
// pq_codebooks[m][code[m]] over m. Trained by core/quantizer_training, written and read as
// quantizer.eq by core/index_builder and core/index.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/kernels.h"  // kPqCodebookSize

namespace earshot {

constexpr int kMaxLists = 65536;       // list ids are u8 (n_lists <= 256) or u16
constexpr int kMaxQuantizerDim = 512;  // floats per embedding, at most

// The embedding sizes the index format stores: 1 .. kMaxQuantizerDim floats, a multiple of 4.
constexpr bool quantizer_dim_supported(int64_t dim) {
    return dim > 0 && dim <= kMaxQuantizerDim && dim % 4 == 0;
}

struct Quantizer {
    int dim = 0;
    int n_lists = 0;
    int pq_m = 0;
    int sub_dim = 0;                      // dim / pq_m
    std::vector<float> coarse_centroids;  // [n_lists, dim]
    std::vector<float> pq_codebooks;      // [pq_m, kPqCodebookSize, sub_dim]

    // Nearest list by L2 distance (the probe order of the matcher). x: dim floats.
    int assign(const float* x) const;
    // PQ-encodes the residual x - coarse_centroids[list]: writes pq_m bytes.
    void encode(const float* x, int list, uint8_t* codes) const;
    // Reconstruction: writes dim floats.
    void decode(int list, const uint8_t* codes, float* out) const;
};

}  // namespace earshot
