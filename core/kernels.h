// Compute kernels, XNNPACK-style naming `op__isa_variant`:
//   *__scalar        plain loops, the numerical truth every other kernel is tested against;
//   *__scalar_acc4   scalar code with four independent accumulators;
//   *__vec128        GCC/Clang vector extensions on 4 x f32 (SSE natively, SIMD128 under
//                    em++ -msimd128).
// Two families: the embedding network's conv/GEMM/normalization kernels (docs/DESIGN.md
// section 3) and the distance/scan kernels of the IVF-PQ index and matcher (sections 5 and 6).
// All tensors are float32, row-major; network tensors are NHWC without N (batch is always 1).
// Sizes and strides are in elements (floats or bytes of codes), not bytes. Kernels never
// allocate and never read past the sizes they are given.
//
// The optimized kernels fix a summation order (documented per kernel) that the index and the
// matcher depend on: a built index and every score must come out bit-identical on every
// platform and build, so an order may only change together with a new index/model evaluation.
#pragma once

#include <cstddef>
#include <cstdint>

namespace earshot {

// Geometry of one conv2d layer (zero padding, same amount top/bottom and left/right). The
// products below are size_t, 32 bits in wasm32: Model::load caps out_pixels() * patch_size()
// (the im2col scratch) and every activation at 2^24 floats, so none of them can wrap.
struct Conv2dShape {
    int in_h = 0, in_w = 0, in_c = 0;
    int out_h = 0, out_w = 0, out_c = 0;
    int kernel_h = 1, kernel_w = 1;
    int stride_h = 1, stride_w = 1;
    int pad_h = 0, pad_w = 0;
    // Columns of the im2col matrix = inner dimension of the GEMM: kernel_h * kernel_w * in_c.
    size_t patch_size() const { return size_t(kernel_h) * kernel_w * in_c; }
    size_t out_pixels() const { return size_t(out_h) * out_w; }
};

// ---- Scalar reference kernels -----------------------------------------------------------

// in: [in_h, in_w, in_c]; weight: OHWI [out_c, kernel_h, kernel_w, in_c]; bias: [out_c];
// out: [out_h, out_w, out_c]. Direct cross-correlation, optional ReLU.
void conv2d_nhwc__scalar(const Conv2dShape& shape, const float* in, const float* weight,
                         const float* bias, bool relu, float* out);

// y[o] = sum_i weight[o][i] * x[i] + bias[o], optional ReLU. weight: [n_out, n_in].
void dense__scalar(size_t n_in, size_t n_out, const float* x, const float* weight,
                   const float* bias, bool relu, float* y);

// y = x / max(||x||_2, 1e-12); in-place allowed.
void l2norm__scalar(size_t n, const float* x, float* y);

// x -= mean(x) over n values, in place (input_norm "patch_mean").
void subtract_mean__scalar(size_t n, float* x);

// ---- Packed GEMM (used by the vec128 conv2d and dense) ----------------------------------

// Output columns per GEMM micro-kernel tile.
constexpr size_t kGemmNr = 8;

// Packed weights: for every block of kGemmNr output columns, kGemmNr biases followed by
// k rows of kGemmNr weights ([k][kGemmNr]). Columns past n in the last block are zero, so
// micro-kernels always load whole kGemmNr-wide rows and never read past the packed buffer.
// Padding contract: this zero padding of n up to a multiple of kGemmNr is the only padding;
// A (the activations) is read exactly k floats per row, never past its end.
size_t packed_gemm_weights_size(size_t n, size_t k);  // in floats
// weight: [n, k] row-major (OHWI conv weights are exactly this with k = kh*kw*in_c);
// bias: [n]; packed: packed_gemm_weights_size(n, k) floats.
void pack_gemm_weights(size_t n, size_t k, const float* weight, const float* bias, float* packed);

// C[mr x nc] = A[mr x kc] * W + bias (optional ReLU), W packed by pack_gemm_weights(nc, kc).
// mr in 1..4 rows; a_stride/c_stride: elements between rows of A and C.
void gemm__vec128_4x8(size_t mr, size_t nc, size_t kc, const float* a, size_t a_stride,
                      const float* packed_w, float* c, size_t c_stride, bool relu);
// One row (a GEMV: the dense layer), same packed layout.
void gemm__vec128_1x8(size_t nc, size_t kc, const float* a, const float* packed_w, float* c,
                      bool relu);
// Scalar twin of the micro-kernels on the packed layout (any number of rows).
void gemm__scalar(size_t m, size_t nc, size_t kc, const float* a, size_t a_stride,
                  const float* packed_w, float* c, size_t c_stride, bool relu);

// im2col for NHWC: cols[out_pixels][patch_size], each row ordered (kh, kw, in_c) like the
// OHWI weights, zeros where the window hangs over the padding.
void im2col_nhwc(const Conv2dShape& shape, const float* in, float* cols);

// conv2d as im2col + gemm__vec128_4x8. packed_w: pack_gemm_weights(out_c, patch_size()).
// cols: scratch of out_pixels() * patch_size() floats (unused for 1x1 stride-1 unpadded
// convolutions, which read `in` directly).
void conv2d_nhwc__vec128(const Conv2dShape& shape, const float* in, const float* packed_w,
                         bool relu, float* cols, float* out);

void l2norm__vec128(size_t n, const float* x, float* y);
void subtract_mean__vec128(size_t n, float* x);

// ---- Distances and inner products (index training, encoding and search) ------------------
//
// Vectors of any length: the vec128 kernels handle the part past a multiple of 4 (or 8) in
// scalar code. Order of the vec128 sums: two 4-lane accumulators over blocks of 8 floats (the
// first takes floats 0-3, the second 4-7 of each block), one more block of 4 into the first,
// the two added lane-wise, the lanes summed ((l0 + l1) + l2) + l3, then the scalar tail.

// out[r] = ||x - rows[r]||^2 for k rows [k, dim]; x: dim floats.
void l2_sqr_many__scalar(size_t k, size_t dim, const float* x, const float* rows, float* out);
void l2_sqr_many__vec128(size_t k, size_t dim, const float* x, const float* rows, float* out);

// <a, b> over n floats.
float inner_product__scalar(size_t n, const float* a, const float* b);
float inner_product__vec128(size_t n, const float* a, const float* b);

// out[r] = <x, rows[r]> for k rows [k, dim]: each exactly inner_product__<isa>(dim, ...).
void inner_product_many__scalar(size_t k, size_t dim, const float* x, const float* rows,
                                float* out);
void inner_product_many__vec128(size_t k, size_t dim, const float* x, const float* rows,
                                float* out);

// ---- Nearest centroid (k-means assignment) -------------------------------------------------

// Centroids per block of the packed layout.
constexpr size_t kCentroidBlock = 8;
// Packed centroids: blocks of kCentroidBlock, [n_blocks][dim][8] (structure of arrays: the 8
// scores of a block accumulate in two vectors with no horizontal sums), n_blocks = ceil(k / 8);
// centroids past k in the last block are zero. sq_norms: n_blocks * 8 floats, ||c||^2 per
// centroid (summed in float, d ascending), +inf past k so padding never wins.
size_t packed_centroids_size(size_t k, size_t dim);  // floats of `packed`
size_t packed_centroids_norms_size(size_t k);        // floats of `sq_norms`
// centroids: [k, dim].
void pack_centroids(size_t k, size_t dim, const float* centroids, float* packed, float* sq_norms);
// argmin over c < k of ||c||^2 - 2 <x, c> (= argmin ||x - c||^2), the lowest c on ties; 0 when
// every score is +inf or NaN. x: dim floats; packed/sq_norms as written by pack_centroids.
// vec128 order: <x, c> accumulates d ascending, one product per d (no reassociation).
size_t nearest_centroid__scalar(size_t k, size_t dim, const float* x, const float* packed,
                                const float* sq_norms);
size_t nearest_centroid__vec128(size_t k, size_t dim, const float* x, const float* packed,
                                const float* sq_norms);

// ---- Product quantization: distance tables and scoring ------------------------------------
//
// pq_m sub-quantizers of 8 bits: a code is pq_m bytes, codebooks are [pq_m, 256, sub_dim],
// and a query's inner-product table is [pq_m, 256].

// Entries per sub-quantizer (8-bit codes, the index format's pq_nbits = 8).
constexpr int kPqCodebookSize = 256;

// table[m][c] = <x_m, codebooks[m][c]>, x_m = x[m * sub_dim, (m + 1) * sub_dim): each entry
// exactly inner_product__<isa>(sub_dim, ...). x: pq_m * sub_dim floats.
void pq_ip_table__scalar(size_t pq_m, size_t sub_dim, const float* x, const float* codebooks,
                         float* table);
void pq_ip_table__vec128(size_t pq_m, size_t sub_dim, const float* x, const float* codebooks,
                         float* table);

// sum_m table[m][codes[m]] for one code of pq_m bytes.
// __scalar: one accumulator, m ascending.
// __scalar_acc4: accumulator j sums the terms m = j mod 4 of the first floor(pq_m / 4) * 4,
// in m order; the remaining terms go to accumulator 0; result (a0 + a1) + (a2 + a3). (A single
// chain of dependent adds was the phase-1 scan's bottleneck.)
float pq_score__scalar(size_t pq_m, const float* table, const uint8_t* codes);
float pq_score__scalar_acc4(size_t pq_m, const float* table, const uint8_t* codes);

// out[j] = pq_score__scalar_acc4(pq_m, table, codes + j * pq_m) for n codes [n, pq_m]
// (bit-identical: the scan and the per-code scores of the matcher must agree).
void pq_scan__scalar_acc4(size_t n, size_t pq_m, const float* table, const uint8_t* codes,
                          float* out);

// Grouped codes (core/quantizer.h): out[j] = pq_score__scalar_acc4(pq_m, tables + slot *
// pq_m * 256, codes + row * pq_m) for refs[j] = row << slot_bits | slot: each posting scored
// with its group's code and its slot's table (bit-identical).
void pq_scan_refs__scalar_acc4(size_t n, size_t pq_m, const float* tables, const uint32_t* refs,
                               int slot_bits, const uint8_t* codes, float* out);

// The PQ score with every table entry computed on the spot from x and the codebooks (for a
// query vector without a table, when only a few codes are scored).
// __vec128: bit-identical to pq_score__scalar_acc4 on pq_ip_table__vec128's table (same terms,
// accumulators and order). __scalar: equal to pq_score__scalar on pq_ip_table__scalar's table.
float pq_score_direct__scalar(size_t pq_m, size_t sub_dim, const float* x, const float* codebooks,
                              const uint8_t* codes);
float pq_score_direct__vec128(size_t pq_m, size_t sub_dim, const float* x, const float* codebooks,
                              const uint8_t* codes);

}  // namespace earshot
