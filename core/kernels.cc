// Scalar reference kernels and vec128 kernels (GCC/Clang vector extensions). Hand-written
// rather than a library because the browser build must stay dependency-free and small, and
// neither XNNPACK (the native comparison backend) nor faiss is packaged for Emscripten.
#include "core/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace earshot {

namespace {

// 4 x f32: SSE registers natively, v128 under -msimd128.
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

// Unaligned, may-alias view of 4 floats: movups / v128.load with no alignment or aliasing
// assumptions. (std::memcpy does the same in principle, but made GCC 12 keep the GEMM
// accumulators on the stack.)
typedef float v4f_unaligned __attribute__((vector_size(16), aligned(4), may_alias));
inline v4f load_v4f(const float* p) { return *reinterpret_cast<const v4f_unaligned*>(p); }
inline void store_v4f(float* p, v4f v) { *reinterpret_cast<v4f_unaligned*>(p) = v; }
inline v4f splat_v4f(float x) { return v4f{x, x, x, x}; }
// max(v, 0) as a mask: lanes that are not > 0 (including NaN) become +0.
inline v4f relu_v4f(v4f v) {
    const v4f zero = {0.0f, 0.0f, 0.0f, 0.0f};
    return (v4f)((v4i)v & (v4i)(v > zero));
}
inline float hsum_v4f(v4f v) { return (v[0] + v[2]) + (v[1] + v[3]); }
// The lanes summed in order, ((l0 + l1) + l2) + l3: the distance kernels' order.
inline float hsum_v4f_in_order(v4f v) { return v[0] + v[1] + v[2] + v[3]; }

// Stores the first nc (< 8) lanes of the tile row {lo, hi}.
inline void store_partial_8(float* c, size_t nc, v4f lo, v4f hi) {
    float tmp[8];
    store_v4f(tmp, lo);
    store_v4f(tmp + 4, hi);
    std::memcpy(c, tmp, nc * sizeof(float));
}

}  // namespace

// ---- Scalar reference ---------------------------------------------------------------------

void conv2d_nhwc__scalar(const Conv2dShape& s, const float* in, const float* weight,
                         const float* bias, bool relu, float* out) {
    for (int oy = 0; oy < s.out_h; ++oy) {
        for (int ox = 0; ox < s.out_w; ++ox) {
            float* o_px = out + (size_t(oy) * s.out_w + ox) * s.out_c;
            for (int o = 0; o < s.out_c; ++o) {
                float acc = bias[o];
                for (int ky = 0; ky < s.kernel_h; ++ky) {
                    const int iy = oy * s.stride_h - s.pad_h + ky;
                    if (iy < 0 || iy >= s.in_h) continue;
                    for (int kx = 0; kx < s.kernel_w; ++kx) {
                        const int ix = ox * s.stride_w - s.pad_w + kx;
                        if (ix < 0 || ix >= s.in_w) continue;
                        const float* i_px = in + (size_t(iy) * s.in_w + ix) * s.in_c;
                        const float* w =
                            weight + ((size_t(o) * s.kernel_h + ky) * s.kernel_w + kx) * s.in_c;
                        for (int c = 0; c < s.in_c; ++c) acc += w[c] * i_px[c];
                    }
                }
                o_px[o] = relu ? std::max(acc, 0.0f) : acc;
            }
        }
    }
}

void dense__scalar(size_t n_in, size_t n_out, const float* x, const float* weight,
                   const float* bias, bool relu, float* y) {
    for (size_t o = 0; o < n_out; ++o) {
        const float* w = weight + o * n_in;
        float acc = bias[o];
        for (size_t i = 0; i < n_in; ++i) acc += w[i] * x[i];
        y[o] = relu ? std::max(acc, 0.0f) : acc;
    }
}

void l2norm__scalar(size_t n, const float* x, float* y) {
    double sum_sq = 0.0;
    for (size_t i = 0; i < n; ++i) sum_sq += double(x[i]) * x[i];
    const float scale = float(1.0 / std::max(std::sqrt(sum_sq), 1e-12));
    for (size_t i = 0; i < n; ++i) y[i] = x[i] * scale;
}

void subtract_mean__scalar(size_t n, float* x) {
    if (n == 0) return;
    double sum = 0.0;
    for (size_t i = 0; i < n; ++i) sum += x[i];
    const float mean = float(sum / double(n));
    for (size_t i = 0; i < n; ++i) x[i] -= mean;
}

// ---- Packed GEMM ----------------------------------------------------------------------------

size_t packed_gemm_weights_size(size_t n, size_t k) {
    const size_t n_blocks = (n + kGemmNr - 1) / kGemmNr;
    return n_blocks * kGemmNr * (k + 1);
}

void pack_gemm_weights(size_t n, size_t k, const float* weight, const float* bias, float* packed) {
    for (size_t n0 = 0; n0 < n; n0 += kGemmNr) {
        const size_t nb = std::min(kGemmNr, n - n0);
        for (size_t j = 0; j < kGemmNr; ++j) packed[j] = j < nb ? bias[n0 + j] : 0.0f;
        packed += kGemmNr;
        for (size_t kk = 0; kk < k; ++kk) {
            for (size_t j = 0; j < kGemmNr; ++j) {
                packed[j] = j < nb ? weight[(n0 + j) * k + kk] : 0.0f;
            }
            packed += kGemmNr;
        }
    }
}

void gemm__scalar(size_t m, size_t nc, size_t kc, const float* a, size_t a_stride,
                  const float* packed_w, float* c, size_t c_stride, bool relu) {
    const size_t block_floats = kGemmNr * (kc + 1);
    for (size_t n0 = 0, block = 0; n0 < nc; n0 += kGemmNr, ++block) {
        const float* w = packed_w + block * block_floats;
        const size_t nb = std::min(kGemmNr, nc - n0);
        for (size_t i = 0; i < m; ++i) {
            const float* a_row = a + i * a_stride;
            for (size_t j = 0; j < nb; ++j) {
                float acc = w[j];
                for (size_t kk = 0; kk < kc; ++kk) acc += a_row[kk] * w[kGemmNr * (kk + 1) + j];
                c[i * c_stride + n0 + j] = relu ? std::max(acc, 0.0f) : acc;
            }
        }
    }
}

// 4 rows x 8 columns of C live in 8 registers; per k: 4 broadcasts of A, 2 loads of W,
// 8 multiply-adds. Rows past mr alias the last valid row (computed twice, stored to the same
// place), as in XNNPACK.
void gemm__vec128_4x8(size_t mr, size_t nc, size_t kc, const float* a, size_t a_stride,
                      const float* w, float* c, size_t c_stride, bool relu) {
    const float* a0 = a;
    float* c0 = c;
    const float* a1 = mr > 1 ? a0 + a_stride : a0;
    float* c1 = mr > 1 ? c0 + c_stride : c0;
    const float* a2 = mr > 2 ? a1 + a_stride : a1;
    float* c2 = mr > 2 ? c1 + c_stride : c1;
    const float* a3 = mr > 3 ? a2 + a_stride : a2;
    float* c3 = mr > 3 ? c2 + c_stride : c2;

    while (nc != 0) {
        v4f acc0l = load_v4f(w), acc0h = load_v4f(w + 4);
        v4f acc1l = acc0l, acc1h = acc0h;
        v4f acc2l = acc0l, acc2h = acc0h;
        v4f acc3l = acc0l, acc3h = acc0h;
        w += 8;
        for (size_t k = 0; k < kc; ++k) {
            const v4f bl = load_v4f(w), bh = load_v4f(w + 4);
            w += 8;
            const v4f va0 = splat_v4f(a0[k]);
            const v4f va1 = splat_v4f(a1[k]);
            const v4f va2 = splat_v4f(a2[k]);
            const v4f va3 = splat_v4f(a3[k]);
            acc0l += va0 * bl;
            acc0h += va0 * bh;
            acc1l += va1 * bl;
            acc1h += va1 * bh;
            acc2l += va2 * bl;
            acc2h += va2 * bh;
            acc3l += va3 * bl;
            acc3h += va3 * bh;
        }
        if (relu) {
            acc0l = relu_v4f(acc0l), acc0h = relu_v4f(acc0h);
            acc1l = relu_v4f(acc1l), acc1h = relu_v4f(acc1h);
            acc2l = relu_v4f(acc2l), acc2h = relu_v4f(acc2h);
            acc3l = relu_v4f(acc3l), acc3h = relu_v4f(acc3h);
        }
        if (nc >= 8) {
            // Highest row first: aliased rows end up holding row 0..mr-1 values either way.
            store_v4f(c3, acc3l), store_v4f(c3 + 4, acc3h);
            store_v4f(c2, acc2l), store_v4f(c2 + 4, acc2h);
            store_v4f(c1, acc1l), store_v4f(c1 + 4, acc1h);
            store_v4f(c0, acc0l), store_v4f(c0 + 4, acc0h);
            c0 += 8, c1 += 8, c2 += 8, c3 += 8;
            nc -= 8;
        } else {
            store_partial_8(c3, nc, acc3l, acc3h);
            store_partial_8(c2, nc, acc2l, acc2h);
            store_partial_8(c1, nc, acc1l, acc1h);
            store_partial_8(c0, nc, acc0l, acc0h);
            nc = 0;
        }
    }
}

// One row: memory-bound on W (the dense layer's weights are read once per embedding), so
// k is unrolled by 4 with independent accumulators to keep several loads in flight.
void gemm__vec128_1x8(size_t nc, size_t kc, const float* a, const float* w, float* c, bool relu) {
    while (nc != 0) {
        v4f acc_l = load_v4f(w), acc_h = load_v4f(w + 4);
        v4f acc_l1 = {0, 0, 0, 0}, acc_h1 = {0, 0, 0, 0};
        w += 8;
        size_t k = 0;
        for (; k + 2 <= kc; k += 2) {
            const v4f va0 = splat_v4f(a[k]);
            const v4f va1 = splat_v4f(a[k + 1]);
            acc_l += va0 * load_v4f(w);
            acc_h += va0 * load_v4f(w + 4);
            acc_l1 += va1 * load_v4f(w + 8);
            acc_h1 += va1 * load_v4f(w + 12);
            w += 16;
        }
        if (k < kc) {
            const v4f va = splat_v4f(a[k]);
            acc_l += va * load_v4f(w);
            acc_h += va * load_v4f(w + 4);
            w += 8;
        }
        acc_l += acc_l1;
        acc_h += acc_h1;
        if (relu) acc_l = relu_v4f(acc_l), acc_h = relu_v4f(acc_h);
        if (nc >= 8) {
            store_v4f(c, acc_l), store_v4f(c + 4, acc_h);
            c += 8;
            nc -= 8;
        } else {
            store_partial_8(c, nc, acc_l, acc_h);
            nc = 0;
        }
    }
}

// ---- conv2d via im2col ----------------------------------------------------------------------

void im2col_nhwc(const Conv2dShape& s, const float* in, float* cols) {
    const size_t row_floats = size_t(s.kernel_w) * s.in_c;  // one kernel row, contiguous in NHWC
    for (int oy = 0; oy < s.out_h; ++oy) {
        for (int ox = 0; ox < s.out_w; ++ox) {
            const int ix0 = ox * s.stride_w - s.pad_w;
            const bool full_row = ix0 >= 0 && ix0 + s.kernel_w <= s.in_w;
            for (int ky = 0; ky < s.kernel_h; ++ky) {
                const int iy = oy * s.stride_h - s.pad_h + ky;
                if (iy < 0 || iy >= s.in_h) {
                    std::memset(cols, 0, row_floats * sizeof(float));
                } else if (full_row) {
                    std::memcpy(cols, in + (size_t(iy) * s.in_w + ix0) * s.in_c,
                                row_floats * sizeof(float));
                } else {
                    for (int kx = 0; kx < s.kernel_w; ++kx) {
                        const int ix = ix0 + kx;
                        float* dst = cols + size_t(kx) * s.in_c;
                        if (ix < 0 || ix >= s.in_w) {
                            std::memset(dst, 0, size_t(s.in_c) * sizeof(float));
                        } else {
                            std::memcpy(dst, in + (size_t(iy) * s.in_w + ix) * s.in_c,
                                        size_t(s.in_c) * sizeof(float));
                        }
                    }
                }
                cols += row_floats;
            }
        }
    }
}

void conv2d_nhwc__vec128(const Conv2dShape& s, const float* in, const float* packed_w, bool relu,
                         float* cols, float* out) {
    const size_t k = s.patch_size();
    const size_t m = s.out_pixels();
    const size_t n = size_t(s.out_c);
    const bool pointwise = s.kernel_h == 1 && s.kernel_w == 1 && s.stride_h == 1 &&
                           s.stride_w == 1 && s.pad_h == 0 && s.pad_w == 0;
    const float* a = in;
    if (!pointwise) {
        im2col_nhwc(s, in, cols);
        a = cols;
    }
    for (size_t m0 = 0; m0 < m; m0 += 4) {
        gemm__vec128_4x8(std::min<size_t>(4, m - m0), n, k, a + m0 * k, k, packed_w, out + m0 * n,
                         n, relu);
    }
}

// ---- l2norm / mean --------------------------------------------------------------------------

void l2norm__vec128(size_t n, const float* x, float* y) {
    v4f acc = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const v4f v = load_v4f(x + i);
        acc += v * v;
    }
    float sum_sq = hsum_v4f(acc);
    for (; i < n; ++i) sum_sq += x[i] * x[i];
    const float scale = 1.0f / std::max(std::sqrt(sum_sq), 1e-12f);
    const v4f vscale = splat_v4f(scale);
    i = 0;
    for (; i + 4 <= n; i += 4) store_v4f(y + i, load_v4f(x + i) * vscale);
    for (; i < n; ++i) y[i] = x[i] * scale;
}

void subtract_mean__vec128(size_t n, float* x) {
    if (n == 0) return;
    v4f acc = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) acc += load_v4f(x + i);
    float sum = hsum_v4f(acc);
    for (; i < n; ++i) sum += x[i];
    const float mean = sum / float(n);
    const v4f vmean = splat_v4f(mean);
    i = 0;
    for (; i + 4 <= n; i += 4) store_v4f(x + i, load_v4f(x + i) - vmean);
    for (; i < n; ++i) x[i] -= mean;
}

// ---- Distances and inner products ---------------------------------------------------------

void l2_sqr_many__scalar(size_t k, size_t dim, const float* x, const float* rows, float* out) {
    for (size_t r = 0; r < k; ++r) {
        const float* y = rows + r * dim;
        float s = 0.0f;
        for (size_t d = 0; d < dim; ++d) s += (x[d] - y[d]) * (x[d] - y[d]);
        out[r] = s;
    }
}

void l2_sqr_many__vec128(size_t k, size_t dim, const float* x, const float* rows, float* out) {
    for (size_t r = 0; r < k; ++r) {
        const float* y = rows + r * dim;
        v4f acc0 = {0, 0, 0, 0}, acc1 = {0, 0, 0, 0};
        size_t d = 0;
        for (; d + 8 <= dim; d += 8) {
            const v4f a = load_v4f(x + d) - load_v4f(y + d);
            const v4f b = load_v4f(x + d + 4) - load_v4f(y + d + 4);
            acc0 += a * a;
            acc1 += b * b;
        }
        for (; d + 4 <= dim; d += 4) {
            const v4f a = load_v4f(x + d) - load_v4f(y + d);
            acc0 += a * a;
        }
        float s = hsum_v4f_in_order(acc0 + acc1);
        for (; d < dim; ++d) s += (x[d] - y[d]) * (x[d] - y[d]);
        out[r] = s;
    }
}

float inner_product__scalar(size_t n, const float* a, const float* b) {
    float s = 0.0f;
    for (size_t d = 0; d < n; ++d) s += a[d] * b[d];
    return s;
}

float inner_product__vec128(size_t n, const float* a, const float* b) {
    v4f acc0 = {0, 0, 0, 0}, acc1 = {0, 0, 0, 0};
    size_t d = 0;
    for (; d + 8 <= n; d += 8) {
        acc0 += load_v4f(a + d) * load_v4f(b + d);
        acc1 += load_v4f(a + d + 4) * load_v4f(b + d + 4);
    }
    for (; d + 4 <= n; d += 4) acc0 += load_v4f(a + d) * load_v4f(b + d);
    float s = hsum_v4f_in_order(acc0 + acc1);
    for (; d < n; ++d) s += a[d] * b[d];
    return s;
}

void inner_product_many__scalar(size_t k, size_t dim, const float* x, const float* rows,
                                float* out) {
    for (size_t r = 0; r < k; ++r) out[r] = inner_product__scalar(dim, x, rows + r * dim);
}

void inner_product_many__vec128(size_t k, size_t dim, const float* x, const float* rows,
                                float* out) {
    for (size_t r = 0; r < k; ++r) out[r] = inner_product__vec128(dim, x, rows + r * dim);
}

// ---- Nearest centroid -----------------------------------------------------------------------

size_t packed_centroids_size(size_t k, size_t dim) {
    return (k + kCentroidBlock - 1) / kCentroidBlock * dim * kCentroidBlock;
}

size_t packed_centroids_norms_size(size_t k) {
    return (k + kCentroidBlock - 1) / kCentroidBlock * kCentroidBlock;
}

void pack_centroids(size_t k, size_t dim, const float* centroids, float* packed, float* sq_norms) {
    std::fill(packed, packed + packed_centroids_size(k, dim), 0.0f);
    std::fill(sq_norms, sq_norms + packed_centroids_norms_size(k),
              std::numeric_limits<float>::infinity());
    for (size_t c = 0; c < k; ++c) {
        const float* src = centroids + c * dim;
        float norm = 0.0f;
        for (size_t d = 0; d < dim; ++d) {
            packed[(c / kCentroidBlock * dim + d) * kCentroidBlock + c % kCentroidBlock] = src[d];
            norm += src[d] * src[d];
        }
        sq_norms[c] = norm;
    }
}

size_t nearest_centroid__scalar(size_t k, size_t dim, const float* x, const float* packed,
                                const float* sq_norms) {
    float best = std::numeric_limits<float>::infinity();
    size_t best_c = 0;
    for (size_t c = 0; c < k; ++c) {
        const float* p = packed + c / kCentroidBlock * dim * kCentroidBlock + c % kCentroidBlock;
        float dot = 0.0f;
        for (size_t d = 0; d < dim; ++d) dot += x[d] * p[d * kCentroidBlock];
        const float score = sq_norms[c] - 2.0f * dot;
        if (score < best) best = score, best_c = c;
    }
    return best_c;
}

size_t nearest_centroid__vec128(size_t k, size_t dim, const float* x, const float* packed,
                                const float* sq_norms) {
    static_assert(kCentroidBlock == 8, "one block is two v4f");
    const size_t n_blocks = (k + kCentroidBlock - 1) / kCentroidBlock;
    float best = std::numeric_limits<float>::infinity();
    size_t best_c = 0;
    const v4f two = {2, 2, 2, 2};
    for (size_t b = 0; b < n_blocks; ++b) {
        const float* p = packed + b * dim * 8;
        v4f acc0 = {0, 0, 0, 0}, acc1 = {0, 0, 0, 0};
        for (size_t d = 0; d < dim; ++d, p += 8) {
            const v4f xd = splat_v4f(x[d]);
            acc0 += xd * load_v4f(p);
            acc1 += xd * load_v4f(p + 4);
        }
        const v4f s0 = load_v4f(sq_norms + b * 8) - two * acc0;
        const v4f s1 = load_v4f(sq_norms + b * 8 + 4) - two * acc1;
        for (int l = 0; l < 4; ++l) {
            if (s0[l] < best) best = s0[l], best_c = b * 8 + l;
        }
        for (int l = 0; l < 4; ++l) {
            if (s1[l] < best) best = s1[l], best_c = b * 8 + 4 + l;
        }
    }
    return best_c;
}

// ---- Product quantization -----------------------------------------------------------------

namespace {

template <float (*kInnerProduct)(size_t, const float*, const float*)>
void pq_ip_table(size_t pq_m, size_t sub_dim, const float* x, const float* codebooks,
                 float* table) {
    for (size_t m = 0; m < pq_m; ++m) {
        const float* xm = x + m * sub_dim;
        const float* book = codebooks + m * kPqCodebookSize * sub_dim;
        for (size_t c = 0; c < size_t(kPqCodebookSize); ++c)
            table[m * kPqCodebookSize + c] = kInnerProduct(sub_dim, xm, book + c * sub_dim);
    }
}

// The four-accumulator sum for a pq_m known at compile time (a multiple of 4).
template <size_t kM>
inline float pq_score_acc4_fixed(const float* table, const uint8_t* codes) {
    static_assert(kM % 4 == 0, "the fixed-size scores have no tail");
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t m = 0; m < kM; m += 4) {
        s0 += table[(m + 0) * kPqCodebookSize + codes[m + 0]];
        s1 += table[(m + 1) * kPqCodebookSize + codes[m + 1]];
        s2 += table[(m + 2) * kPqCodebookSize + codes[m + 2]];
        s3 += table[(m + 3) * kPqCodebookSize + codes[m + 3]];
    }
    return (s0 + s1) + (s2 + s3);
}

inline float pq_score_acc4_any(size_t pq_m, const float* table, const uint8_t* codes) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t m = 0;
    for (; m + 4 <= pq_m; m += 4) {
        s0 += table[(m + 0) * kPqCodebookSize + codes[m + 0]];
        s1 += table[(m + 1) * kPqCodebookSize + codes[m + 1]];
        s2 += table[(m + 2) * kPqCodebookSize + codes[m + 2]];
        s3 += table[(m + 3) * kPqCodebookSize + codes[m + 3]];
    }
    for (; m < pq_m; ++m) s0 += table[m * kPqCodebookSize + codes[m]];
    return (s0 + s1) + (s2 + s3);
}

template <size_t kM>
void pq_scan_acc4_fixed(size_t n, const float* table, const uint8_t* codes, float* out) {
    for (size_t j = 0; j < n; ++j, codes += kM) out[j] = pq_score_acc4_fixed<kM>(table, codes);
}

}  // namespace

void pq_ip_table__scalar(size_t pq_m, size_t sub_dim, const float* x, const float* codebooks,
                         float* table) {
    pq_ip_table<inner_product__scalar>(pq_m, sub_dim, x, codebooks, table);
}

void pq_ip_table__vec128(size_t pq_m, size_t sub_dim, const float* x, const float* codebooks,
                         float* table) {
    pq_ip_table<inner_product__vec128>(pq_m, sub_dim, x, codebooks, table);
}

float pq_score__scalar(size_t pq_m, const float* table, const uint8_t* codes) {
    float s = 0.0f;
    for (size_t m = 0; m < pq_m; ++m) s += table[m * kPqCodebookSize + codes[m]];
    return s;
}

float pq_score__scalar_acc4(size_t pq_m, const float* table, const uint8_t* codes) {
    // The common sizes unrolled (the same sums as the general loop).
    if (pq_m == 16) return pq_score_acc4_fixed<16>(table, codes);
    if (pq_m == 32) return pq_score_acc4_fixed<32>(table, codes);
    if (pq_m == 8) return pq_score_acc4_fixed<8>(table, codes);
    return pq_score_acc4_any(pq_m, table, codes);
}

void pq_scan__scalar_acc4(size_t n, size_t pq_m, const float* table, const uint8_t* codes,
                          float* out) {
    if (pq_m == 16) return pq_scan_acc4_fixed<16>(n, table, codes, out);
    if (pq_m == 32) return pq_scan_acc4_fixed<32>(n, table, codes, out);
    if (pq_m == 8) return pq_scan_acc4_fixed<8>(n, table, codes, out);
    for (size_t j = 0; j < n; ++j, codes += pq_m) out[j] = pq_score_acc4_any(pq_m, table, codes);
}

void pq_scan_refs__scalar_acc4(size_t n, size_t pq_m, const float* tables, const uint32_t* refs,
                               int slot_bits, const uint8_t* codes, float* out) {
    const size_t table_size = pq_m * kPqCodebookSize;
    const uint32_t slot_mask = (1u << slot_bits) - 1;
    auto scan = [&](auto score) {
        for (size_t j = 0; j < n; ++j)
            out[j] = score(tables + (refs[j] & slot_mask) * table_size,
                           codes + size_t(refs[j] >> slot_bits) * pq_m);
    };
    if (pq_m == 32) return scan(pq_score_acc4_fixed<32>);
    if (pq_m == 16) return scan(pq_score_acc4_fixed<16>);
    if (pq_m == 8) return scan(pq_score_acc4_fixed<8>);
    scan(
        [pq_m](const float* table, const uint8_t* c) { return pq_score_acc4_any(pq_m, table, c); });
}

float pq_score_direct__scalar(size_t pq_m, size_t sub_dim, const float* x, const float* codebooks,
                              const uint8_t* codes) {
    float s = 0.0f;
    for (size_t m = 0; m < pq_m; ++m) {
        s += inner_product__scalar(sub_dim, x + m * sub_dim,
                                   codebooks + (m * kPqCodebookSize + codes[m]) * sub_dim);
    }
    return s;
}

float pq_score_direct__vec128(size_t pq_m, size_t sub_dim, const float* x, const float* codebooks,
                              const uint8_t* codes) {
    // The sub-quantizers' dot products summed in four accumulators, as pq_score__scalar_acc4
    // sums the tables' entries (bit-identical to it).
    auto sum4 = [pq_m](auto term) {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        size_t m = 0;
        for (; m + 4 <= pq_m; m += 4) {
            s0 += term(m + 0);
            s1 += term(m + 1);
            s2 += term(m + 2);
            s3 += term(m + 3);
        }
        for (; m < pq_m; ++m) s0 += term(m);
        return (s0 + s1) + (s2 + s3);
    };
    if (sub_dim == 4) {
        // One vector a sub-quantizer (32-byte codes of 128 dimensions): inner_product__vec128's
        // steps for n = 4 inlined, the same sums in the same order, without a call for each.
        return sum4([&](size_t m) {
            v4f acc = {0, 0, 0, 0};
            acc += load_v4f(x + m * 4) * load_v4f(codebooks + (m * kPqCodebookSize + codes[m]) * 4);
            const v4f zero = {0, 0, 0, 0};
            return hsum_v4f_in_order(acc + zero);
        });
    }
    return sum4([&](size_t m) {
        return inner_product__vec128(sub_dim, x + m * sub_dim,
                                     codebooks + (m * kPqCodebookSize + codes[m]) * sub_dim);
    });
}

}  // namespace earshot
