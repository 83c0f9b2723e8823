// Inference kernels for the embedding network (docs/DESIGN.md section 3), XNNPACK-style naming
// `op__isa_variant`:
//   *__scalar   plain loops, the numerical truth every other kernel is tested against;
//   *__vec128   GCC/Clang vector extensions on 4 x f32 (SSE natively, SIMD128 under
//               em++ -msimd128).
// All tensors are float32, NHWC without N (batch is always 1), row-major. Strides are in
// elements (floats), not bytes. Kernels never allocate.
#pragma once

#include <cstddef>

namespace earshot {

// Geometry of one conv2d layer (zero padding, same amount top/bottom and left/right).
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

}  // namespace earshot
