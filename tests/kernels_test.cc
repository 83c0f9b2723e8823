// Kernels (core/kernels.h): the scalar references against hand-computed values, and every
// optimized kernel against its scalar reference on odd sizes (not multiples of 4 or 8).
// Tolerance for a sum of k terms t_i (dot products, distances, PQ scores):
// 1e-5 * sum |t_i| + 1e-6 (float32 rounding in any summation order, k up to a few hundred).
// Where kernels promise bit-identical results to each other (the PQ scan and scores), they are
// compared exactly.
#include "core/kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace earshot {
namespace {

std::vector<float> random_vector(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

// The error bound for every output of a dense layer y = W x + b.
std::vector<float> dense_tolerance(size_t n_in, size_t n_out, const float* x, const float* w,
                                   const float* b) {
    std::vector<float> tol(n_out);
    for (size_t o = 0; o < n_out; ++o) {
        double mag = std::fabs(b[o]);
        for (size_t i = 0; i < n_in; ++i) mag += std::fabs(double(w[o * n_in + i]) * x[i]);
        tol[o] = float(1e-5 * mag + 1e-6);
    }
    return tol;
}

TEST(KernelsScalar, DenseHandComputed) {
    const float x[3] = {1.0f, 2.0f, 3.0f};
    const float w[2 * 3] = {1.0f, 0.0f, -1.0f, 0.5f, 0.5f, 0.5f};
    const float b[2] = {0.25f, -4.0f};
    float y[2];
    dense__scalar(3, 2, x, w, b, /*relu=*/false, y);
    EXPECT_FLOAT_EQ(y[0], 1.0f - 3.0f + 0.25f);
    EXPECT_FLOAT_EQ(y[1], 3.0f - 4.0f);
    dense__scalar(3, 2, x, w, b, /*relu=*/true, y);
    EXPECT_FLOAT_EQ(y[0], 0.0f);
    EXPECT_FLOAT_EQ(y[1], 0.0f);
}

TEST(KernelsScalar, Conv2dHandComputed) {
    // 3x3x1 input 1..9, one 3x3 all-ones filter, stride 2, pad 1: 2x2 output, each the sum
    // of the in-bounds part of a window centred on a corner.
    Conv2dShape s;
    s.in_h = s.in_w = 3, s.in_c = 1;
    s.out_h = s.out_w = 2, s.out_c = 2;
    s.kernel_h = s.kernel_w = 3, s.stride_h = s.stride_w = 2, s.pad_h = s.pad_w = 1;
    const float in[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    std::vector<float> w(2 * 9, 1.0f);
    for (int i = 9; i < 18; ++i) w[i] = -1.0f;  // second filter: all -1
    const float b[2] = {0.5f, 0.0f};
    float out[2 * 2 * 2];
    conv2d_nhwc__scalar(s, in, w.data(), b, /*relu=*/false, out);
    const float sums[4] = {1 + 2 + 4 + 5, 2 + 3 + 5 + 6, 4 + 5 + 7 + 8, 5 + 6 + 8 + 9};
    for (int p = 0; p < 4; ++p) {
        EXPECT_FLOAT_EQ(out[p * 2 + 0], sums[p] + 0.5f) << "pixel " << p;
        EXPECT_FLOAT_EQ(out[p * 2 + 1], -sums[p]) << "pixel " << p;
    }
    conv2d_nhwc__scalar(s, in, w.data(), b, /*relu=*/true, out);
    for (int p = 0; p < 4; ++p) EXPECT_EQ(out[p * 2 + 1], 0.0f);
}

TEST(KernelsScalar, Im2colHandComputed) {
    Conv2dShape s;
    s.in_h = s.in_w = 3, s.in_c = 1;
    s.out_h = s.out_w = 3, s.out_c = 1;
    s.kernel_h = s.kernel_w = 3, s.pad_h = s.pad_w = 1;
    const float in[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    std::vector<float> cols(9 * 9, -1.0f);
    im2col_nhwc(s, in, cols.data());
    const std::vector<float> corner = {0, 0, 0, 0, 1, 2, 0, 4, 5};
    const std::vector<float> centre = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    const std::vector<float> last = {5, 6, 0, 8, 9, 0, 0, 0, 0};
    EXPECT_EQ(std::vector<float>(cols.begin(), cols.begin() + 9), corner);
    EXPECT_EQ(std::vector<float>(cols.begin() + 36, cols.begin() + 45), centre);
    EXPECT_EQ(std::vector<float>(cols.begin() + 72, cols.end()), last);
}

TEST(KernelsScalar, L2NormAndMean) {
    const float x[3] = {3.0f, 0.0f, -4.0f};
    float y[3];
    l2norm__scalar(3, x, y);
    EXPECT_FLOAT_EQ(y[0], 0.6f);
    EXPECT_FLOAT_EQ(y[1], 0.0f);
    EXPECT_FLOAT_EQ(y[2], -0.8f);
    const float zeros[3] = {0, 0, 0};
    l2norm__scalar(3, zeros, y);  // no NaN for the zero vector
    for (float v : y) EXPECT_EQ(v, 0.0f);
    float m[4] = {1, 2, 3, 6};
    subtract_mean__scalar(4, m);
    EXPECT_FLOAT_EQ(m[0], -2.0f);
    EXPECT_FLOAT_EQ(m[3], 3.0f);
}

TEST(KernelsPack, LayoutAndZeroPadding) {
    // n = 3 outputs, k = 2: one block of 8 columns: 8 biases, then 2 rows of 8 weights.
    const float w[3 * 2] = {1, 2, 3, 4, 5, 6};
    const float b[3] = {7, 8, 9};
    ASSERT_EQ(packed_gemm_weights_size(3, 2), 8u * 3u);
    ASSERT_EQ(packed_gemm_weights_size(9, 2), 16u * 3u);
    std::vector<float> packed(packed_gemm_weights_size(3, 2), -1.0f);
    pack_gemm_weights(3, 2, w, b, packed.data());
    const std::vector<float> expected = {7, 8, 9, 0, 0, 0, 0, 0,  //
                                         1, 3, 5, 0, 0, 0, 0, 0,  //
                                         2, 4, 6, 0, 0, 0, 0, 0};
    EXPECT_EQ(packed, expected);
}

enum class GemmKernel { kScalar, kVec128_4x8, kVec128_1x8 };

// Runs one GEMM kernel over m rows of A into C (row stride n + 3, the slack filled with a
// sentinel that must survive) and compares with dense__scalar row by row.
void check_gemm(GemmKernel kernel, size_t m, size_t n, size_t k, bool relu, std::mt19937& rng) {
    const std::vector<float> a = random_vector(m * k, rng);
    const std::vector<float> w = random_vector(n * k, rng);
    const std::vector<float> b = random_vector(n, rng);
    std::vector<float> packed(packed_gemm_weights_size(n, k));
    pack_gemm_weights(n, k, w.data(), b.data(), packed.data());
    const size_t c_stride = n + 3;
    const float sentinel = 12345.0f;
    std::vector<float> c(m * c_stride, sentinel);
    switch (kernel) {
        case GemmKernel::kScalar:
            gemm__scalar(m, n, k, a.data(), k, packed.data(), c.data(), c_stride, relu);
            break;
        case GemmKernel::kVec128_4x8:
            for (size_t m0 = 0; m0 < m; m0 += 4) {
                gemm__vec128_4x8(std::min<size_t>(4, m - m0), n, k, a.data() + m0 * k, k,
                                 packed.data(), c.data() + m0 * c_stride, c_stride, relu);
            }
            break;
        case GemmKernel::kVec128_1x8:
            for (size_t i = 0; i < m; ++i) {
                gemm__vec128_1x8(n, k, a.data() + i * k, packed.data(), c.data() + i * c_stride,
                                 relu);
            }
            break;
    }
    std::vector<float> ref(n);
    for (size_t i = 0; i < m; ++i) {
        dense__scalar(k, n, a.data() + i * k, w.data(), b.data(), relu, ref.data());
        const std::vector<float> tol = dense_tolerance(k, n, a.data() + i * k, w.data(), b.data());
        for (size_t j = 0; j < n; ++j) {
            ASSERT_NEAR(c[i * c_stride + j], ref[j], tol[j])
                << "m=" << m << " n=" << n << " k=" << k << " relu=" << relu << " at (" << i << ", "
                << j << ")";
        }
        for (size_t j = n; j < c_stride; ++j) {
            ASSERT_EQ(c[i * c_stride + j], sentinel) << "wrote past nc at row " << i;
        }
    }
}

TEST(KernelsGemm, MatchesDenseScalarOnOddSizes) {
    std::mt19937 rng(1);
    for (size_t m : {1, 2, 3, 4, 5, 7, 9, 13}) {
        for (size_t n : {1, 3, 7, 8, 9, 15, 16, 17, 33}) {
            for (size_t k : {1, 2, 3, 5, 9, 16, 31, 77}) {
                for (bool relu : {false, true}) {
                    check_gemm(GemmKernel::kScalar, m, n, k, relu, rng);
                    check_gemm(GemmKernel::kVec128_4x8, m, n, k, relu, rng);
                    check_gemm(GemmKernel::kVec128_1x8, m, n, k, relu, rng);
                }
            }
        }
    }
}

TEST(KernelsGemm, LargeInnerDimension) {
    std::mt19937 rng(2);
    check_gemm(GemmKernel::kVec128_4x8, 6, 20, 1152, true, rng);
    check_gemm(GemmKernel::kVec128_1x8, 1, 128, 768, false, rng);
    check_gemm(GemmKernel::kVec128_1x8, 2, 13, 2049, false, rng);
}

struct ConvCase {
    int in_h, in_w, in_c, out_c, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
};

TEST(KernelsConv2d, Vec128MatchesScalarOnOddShapes) {
    const ConvCase cases[] = {
        {7, 5, 1, 3, 3, 3, 2, 2, 1, 1},      // odd sizes, stride 2, padded
        {9, 11, 3, 5, 3, 2, 1, 2, 1, 0},     // rectangular kernel, mixed strides
        {4, 4, 8, 8, 1, 1, 1, 1, 0, 0},      // pointwise: GEMM reads the input directly
        {13, 6, 5, 17, 5, 3, 3, 1, 2, 1},    // wide kernel, n not a multiple of 8
        {1, 1, 7, 9, 3, 3, 1, 1, 1, 1},      // single pixel, all-padding borders
        {62, 64, 1, 24, 3, 3, 2, 2, 1, 1},   // v1 first layer
        {16, 16, 24, 48, 3, 3, 2, 2, 1, 1},  // v1 second layer (from 31x32 -> 16x16)
        {2, 2, 128, 192, 3, 3, 2, 2, 1, 1},  // v1 last conv shape family
    };
    std::mt19937 rng(3);
    for (const ConvCase& cc : cases) {
        Conv2dShape s;
        s.in_h = cc.in_h, s.in_w = cc.in_w, s.in_c = cc.in_c, s.out_c = cc.out_c;
        s.kernel_h = cc.kernel_h, s.kernel_w = cc.kernel_w;
        s.stride_h = cc.stride_h, s.stride_w = cc.stride_w, s.pad_h = cc.pad_h, s.pad_w = cc.pad_w;
        s.out_h = (s.in_h + 2 * s.pad_h - s.kernel_h) / s.stride_h + 1;
        s.out_w = (s.in_w + 2 * s.pad_w - s.kernel_w) / s.stride_w + 1;
        const std::vector<float> in = random_vector(size_t(s.in_h) * s.in_w * s.in_c, rng);
        const std::vector<float> w = random_vector(s.out_c * s.patch_size(), rng);
        const std::vector<float> b = random_vector(s.out_c, rng);
        std::vector<float> packed(packed_gemm_weights_size(s.out_c, s.patch_size()));
        pack_gemm_weights(s.out_c, s.patch_size(), w.data(), b.data(), packed.data());
        std::vector<float> cols(s.out_pixels() * s.patch_size());
        const size_t n_out = s.out_pixels() * s.out_c;
        for (bool relu : {false, true}) {
            std::vector<float> ref(n_out), got(n_out, std::nanf(""));
            conv2d_nhwc__scalar(s, in.data(), w.data(), b.data(), relu, ref.data());
            conv2d_nhwc__vec128(s, in.data(), packed.data(), relu, cols.data(), got.data());
            // |w|, |x| <= 1: every output's error is below 1e-5 * (patch_size + 1).
            const float tol = 1e-5f * float(s.patch_size() + 1);
            for (size_t i = 0; i < n_out; ++i) {
                ASSERT_NEAR(got[i], ref[i], tol)
                    << "case " << cc.in_h << "x" << cc.in_w << "x" << cc.in_c << " -> " << cc.out_c
                    << " k" << cc.kernel_h << "x" << cc.kernel_w << " relu=" << relu << " at " << i;
            }
        }
    }
}

TEST(KernelsVec128, L2NormAndMeanMatchScalar) {
    std::mt19937 rng(4);
    for (size_t n : {1, 3, 4, 5, 127, 128, 129}) {
        const std::vector<float> x = random_vector(n, rng, -3.0f, 5.0f);
        std::vector<float> ref(n), got(n);
        l2norm__scalar(n, x.data(), ref.data());
        l2norm__vec128(n, x.data(), got.data());
        for (size_t i = 0; i < n; ++i) ASSERT_NEAR(got[i], ref[i], 1e-6f) << "n=" << n;
        std::vector<float> m_ref = x, m_got = x;
        subtract_mean__scalar(n, m_ref.data());
        subtract_mean__vec128(n, m_got.data());
        for (size_t i = 0; i < n; ++i) ASSERT_NEAR(m_got[i], m_ref[i], 1e-5f) << "n=" << n;
    }
    const float zeros[5] = {0, 0, 0, 0, 0};
    float y[5];
    l2norm__vec128(5, zeros, y);
    for (float v : y) EXPECT_EQ(v, 0.0f);
}

// ---- Distances and inner products ---------------------------------------------------------

// The sizes every distance kernel is checked on: below, at and past multiples of 4 and 8.
const size_t kVectorSizes[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 31, 32, 33, 127, 128, 129};

float sum_tolerance(double sum_abs_terms) { return float(1e-5 * sum_abs_terms + 1e-6); }

TEST(KernelsScalar, DistancesHandComputed) {
    const float x[3] = {1.0f, 2.0f, 3.0f};
    const float rows[2 * 3] = {1.0f, 0.0f, -1.0f, 0.5f, 0.5f, 0.5f};
    float out[2];
    l2_sqr_many__scalar(2, 3, x, rows, out);
    EXPECT_FLOAT_EQ(out[0], 0.0f + 4.0f + 16.0f);
    EXPECT_FLOAT_EQ(out[1], 0.25f + 2.25f + 6.25f);
    EXPECT_FLOAT_EQ(inner_product__scalar(3, x, rows), 1.0f - 3.0f);
    inner_product_many__scalar(2, 3, x, rows, out);
    EXPECT_FLOAT_EQ(out[0], -2.0f);
    EXPECT_FLOAT_EQ(out[1], 3.0f);
}

TEST(KernelsVec128, DistancesMatchScalar) {
    std::mt19937 rng(5);
    for (size_t dim : kVectorSizes) {
        for (size_t k : {1, 3, 8, 13}) {
            const std::vector<float> x = random_vector(dim, rng);
            const std::vector<float> rows = random_vector(k * dim, rng, -2.0f, 2.0f);
            std::vector<float> l2_ref(k), l2_got(k), ip_ref(k), ip_got(k);
            l2_sqr_many__scalar(k, dim, x.data(), rows.data(), l2_ref.data());
            l2_sqr_many__vec128(k, dim, x.data(), rows.data(), l2_got.data());
            inner_product_many__scalar(k, dim, x.data(), rows.data(), ip_ref.data());
            inner_product_many__vec128(k, dim, x.data(), rows.data(), ip_got.data());
            for (size_t r = 0; r < k; ++r) {
                const float* y = &rows[r * dim];
                double sq = 0.0, abs_ip = 0.0;
                for (size_t d = 0; d < dim; ++d) {
                    sq += double(x[d] - y[d]) * (x[d] - y[d]);
                    abs_ip += std::fabs(double(x[d]) * y[d]);
                }
                ASSERT_NEAR(l2_got[r], l2_ref[r], sum_tolerance(sq)) << "dim=" << dim << " r=" << r;
                ASSERT_NEAR(ip_got[r], ip_ref[r], sum_tolerance(abs_ip))
                    << "dim=" << dim << " r=" << r;
                // The many-row kernels are the single inner product row by row.
                ASSERT_EQ(ip_got[r], inner_product__vec128(dim, x.data(), y));
                ASSERT_EQ(ip_ref[r], inner_product__scalar(dim, x.data(), y));
            }
        }
    }
}

// ---- Nearest centroid -----------------------------------------------------------------------

TEST(KernelsPack, CentroidLayoutAndPadding) {
    // k = 3 centroids of dim 2: one block of 8, [dim][8], zeros past k; norms +inf past k.
    const float c[3 * 2] = {1, 2, 3, 4, 5, 6};
    ASSERT_EQ(packed_centroids_size(3, 2), 16u);
    ASSERT_EQ(packed_centroids_size(9, 2), 32u);
    ASSERT_EQ(packed_centroids_norms_size(3), 8u);
    ASSERT_EQ(packed_centroids_norms_size(9), 16u);
    std::vector<float> packed(16, -1.0f), norms(8, -1.0f);
    pack_centroids(3, 2, c, packed.data(), norms.data());
    const std::vector<float> expected = {1, 3, 5, 0, 0, 0, 0, 0,  //
                                         2, 4, 6, 0, 0, 0, 0, 0};
    EXPECT_EQ(packed, expected);
    EXPECT_EQ(norms[0], 5.0f);
    EXPECT_EQ(norms[1], 25.0f);
    EXPECT_EQ(norms[2], 61.0f);
    for (size_t i = 3; i < 8; ++i) EXPECT_EQ(norms[i], std::numeric_limits<float>::infinity());
}

// Both kernels pick a centroid whose exact (double) score is the minimum within the float
// tolerance of the scores, and the lowest index among exact duplicates.
TEST(KernelsVec128, NearestCentroidMatchesScalar) {
    std::mt19937 rng(6);
    for (size_t dim : {1, 2, 3, 4, 5, 8, 9, 16, 17, 32, 33, 128}) {
        for (size_t k : {1, 2, 7, 8, 9, 16, 17, 256, 300}) {
            std::vector<float> centroids = random_vector(k * dim, rng);
            if (k > 4) {  // a duplicate of centroid 1 at index 3: ties go to 1
                std::copy(&centroids[dim], &centroids[2 * dim], &centroids[3 * dim]);
            }
            std::vector<float> packed(packed_centroids_size(k, dim));
            std::vector<float> norms(packed_centroids_norms_size(k));
            pack_centroids(k, dim, centroids.data(), packed.data(), norms.data());
            for (int trial = 0; trial < 8; ++trial) {
                std::vector<float> x = random_vector(dim, rng);
                if (trial == 0 && k > 4) x.assign(&centroids[dim], &centroids[2 * dim]);
                const size_t ref =
                    nearest_centroid__scalar(k, dim, x.data(), packed.data(), norms.data());
                const size_t got =
                    nearest_centroid__vec128(k, dim, x.data(), packed.data(), norms.data());
                ASSERT_LT(ref, k);
                ASSERT_LT(got, k);
                // Exact scores ||c||^2 - 2 <x, c> and their float tolerance: the chosen c's
                // float score is the smallest, so score[c] - tol[c] <= min(score + tol).
                std::vector<double> score(k), tol(k);
                double best = std::numeric_limits<double>::infinity();
                for (size_t c = 0; c < k; ++c) {
                    const float* y = &centroids[c * dim];
                    double norm = 0.0, ip = 0.0, mag = 0.0;
                    for (size_t d = 0; d < dim; ++d) {
                        norm += double(y[d]) * y[d];
                        ip += double(x[d]) * y[d];
                        mag += double(y[d]) * y[d] + 2.0 * std::fabs(double(x[d]) * y[d]);
                    }
                    score[c] = norm - 2.0 * ip;
                    tol[c] = sum_tolerance(mag);
                    best = std::min(best, score[c] + tol[c]);
                }
                for (size_t chosen : {ref, got}) {
                    ASSERT_LE(score[chosen] - tol[chosen], best)
                        << "dim=" << dim << " k=" << k << " chose " << chosen;
                    if (k > 4) {
                        ASSERT_NE(chosen, 3u) << "a duplicate after its first copy";
                    }
                }
                if (trial == 0 && k > 4) {
                    EXPECT_EQ(ref, 1u);
                    EXPECT_EQ(got, 1u);
                }
            }
        }
    }
}

// ---- Product quantization -------------------------------------------------------------------

struct PqCase {
    std::vector<float> x, codebooks;  // [pq_m * sub_dim], [pq_m, 256, sub_dim]
    std::vector<uint8_t> codes;       // [n_codes, pq_m]
};

PqCase random_pq_case(size_t pq_m, size_t sub_dim, size_t n_codes, std::mt19937& rng) {
    PqCase c;
    c.x = random_vector(pq_m * sub_dim, rng);
    c.codebooks = random_vector(pq_m * kPqCodebookSize * sub_dim, rng, -0.5f, 0.5f);
    c.codes.resize(n_codes * pq_m);
    for (uint8_t& v : c.codes) v = uint8_t(rng());
    return c;
}

TEST(KernelsScalar, PqScoreHandComputed) {
    // pq_m = 2: table [2, 256]; codes {3, 250} pick table[0][3] + table[1][250].
    std::vector<float> table(2 * kPqCodebookSize, 0.0f);
    table[3] = 1.5f;
    table[kPqCodebookSize + 250] = -0.25f;
    const uint8_t codes[2] = {3, 250};
    EXPECT_FLOAT_EQ(pq_score__scalar(2, table.data(), codes), 1.25f);
    EXPECT_FLOAT_EQ(pq_score__scalar_acc4(2, table.data(), codes), 1.25f);
    // sub_dim = 1: entries are x_m * codebook[m][c].
    const float x[2] = {2.0f, -1.0f};
    std::vector<float> books(2 * kPqCodebookSize, 0.0f);
    books[3] = 0.5f;
    books[kPqCodebookSize + 250] = 4.0f;
    std::vector<float> t(2 * kPqCodebookSize);
    pq_ip_table__scalar(2, 1, x, books.data(), t.data());
    EXPECT_FLOAT_EQ(t[3], 1.0f);
    EXPECT_FLOAT_EQ(t[kPqCodebookSize + 250], -4.0f);
    EXPECT_FLOAT_EQ(pq_score_direct__scalar(2, 1, x, books.data(), codes), -3.0f);
}

TEST(KernelsVec128, PqTableMatchesScalar) {
    std::mt19937 rng(7);
    for (size_t pq_m : {1, 3, 8, 16, 32}) {
        for (size_t sub_dim : {1, 2, 3, 4, 5, 8, 9, 16}) {
            const PqCase c = random_pq_case(pq_m, sub_dim, 0, rng);
            std::vector<float> ref(pq_m * kPqCodebookSize), got(ref.size());
            pq_ip_table__scalar(pq_m, sub_dim, c.x.data(), c.codebooks.data(), ref.data());
            pq_ip_table__vec128(pq_m, sub_dim, c.x.data(), c.codebooks.data(), got.data());
            for (size_t m = 0; m < pq_m; ++m) {
                for (size_t e = 0; e < size_t(kPqCodebookSize); ++e) {
                    const float* book = &c.codebooks[(m * kPqCodebookSize + e) * sub_dim];
                    double mag = 0.0;
                    for (size_t d = 0; d < sub_dim; ++d)
                        mag += std::fabs(double(c.x[m * sub_dim + d]) * book[d]);
                    const size_t i = m * kPqCodebookSize + e;
                    ASSERT_NEAR(got[i], ref[i], sum_tolerance(mag))
                        << "pq_m=" << pq_m << " sub_dim=" << sub_dim << " at " << i;
                    ASSERT_EQ(got[i], inner_product__vec128(sub_dim, &c.x[m * sub_dim], book));
                }
            }
        }
    }
}

TEST(KernelsScalarAcc4, PqScoreAndScanMatchScalar) {
    std::mt19937 rng(8);
    for (size_t pq_m : {1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 31, 32, 33, 64}) {
        const size_t n_codes = 37;
        std::vector<float> table = random_vector(pq_m * kPqCodebookSize, rng);
        std::vector<uint8_t> codes(n_codes * pq_m);
        for (uint8_t& v : codes) v = uint8_t(rng());
        std::vector<float> scanned(n_codes + 1, 12345.0f);
        pq_scan__scalar_acc4(n_codes, pq_m, table.data(), codes.data(), scanned.data());
        EXPECT_EQ(scanned[n_codes], 12345.0f) << "wrote past n";
        for (size_t j = 0; j < n_codes; ++j) {
            const uint8_t* code = &codes[j * pq_m];
            const float ref = pq_score__scalar(pq_m, table.data(), code);
            const float got = pq_score__scalar_acc4(pq_m, table.data(), code);
            double mag = 0.0;
            for (size_t m = 0; m < pq_m; ++m)
                mag += std::fabs(table[m * kPqCodebookSize + code[m]]);
            ASSERT_NEAR(got, ref, sum_tolerance(mag)) << "pq_m=" << pq_m << " code " << j;
            // The scan is the per-code score, bit for bit.
            ASSERT_EQ(scanned[j], got) << "pq_m=" << pq_m << " code " << j;
        }
        pq_scan__scalar_acc4(0, pq_m, table.data(), codes.data(), scanned.data());  // no-op
    }
}

// A grouped code's scan: each posting's code found by its row, scored with its slot's table,
// bit for bit as the per-code score.
TEST(KernelsScalarAcc4, PqScanByReferenceMatchesTheScore) {
    std::mt19937 rng(10);
    constexpr int kSlotBits = 4;
    for (size_t pq_m : {5, 8, 16, 32}) {
        const size_t n_rows = 23, n_postings = 41, n_slots = 3;
        std::vector<float> tables = random_vector(n_slots * pq_m * kPqCodebookSize, rng);
        std::vector<uint8_t> codes(n_rows * pq_m);
        for (uint8_t& v : codes) v = uint8_t(rng());
        std::vector<uint32_t> refs(n_postings);
        for (uint32_t& r : refs)
            r = uint32_t(rng() % n_rows) << kSlotBits | uint32_t(rng() % n_slots);
        std::vector<float> scanned(n_postings + 1, 12345.0f);
        pq_scan_refs__scalar_acc4(n_postings, pq_m, tables.data(), refs.data(), kSlotBits,
                                  codes.data(), scanned.data());
        EXPECT_EQ(scanned[n_postings], 12345.0f) << "wrote past n";
        for (size_t j = 0; j < n_postings; ++j) {
            const float* table = &tables[(refs[j] & 15u) * pq_m * kPqCodebookSize];
            const uint8_t* code = &codes[(refs[j] >> kSlotBits) * pq_m];
            ASSERT_EQ(scanned[j], pq_score__scalar_acc4(pq_m, table, code)) << pq_m << " " << j;
        }
    }
}

TEST(KernelsVec128, PqScoreDirectMatchesTableScores) {
    std::mt19937 rng(9);
    for (size_t pq_m : {1, 3, 4, 5, 8, 16, 17, 32}) {
        for (size_t sub_dim : {1, 3, 4, 5, 8, 16}) {
            const PqCase c = random_pq_case(pq_m, sub_dim, 11, rng);
            std::vector<float> table_vec(pq_m * kPqCodebookSize), table_ref(table_vec.size());
            pq_ip_table__vec128(pq_m, sub_dim, c.x.data(), c.codebooks.data(), table_vec.data());
            pq_ip_table__scalar(pq_m, sub_dim, c.x.data(), c.codebooks.data(), table_ref.data());
            for (size_t j = 0; j < 11; ++j) {
                const uint8_t* code = &c.codes[j * pq_m];
                const float direct_vec =
                    pq_score_direct__vec128(pq_m, sub_dim, c.x.data(), c.codebooks.data(), code);
                const float direct_ref =
                    pq_score_direct__scalar(pq_m, sub_dim, c.x.data(), c.codebooks.data(), code);
                // Bit-identical to the table paths each is the twin of.
                ASSERT_EQ(direct_vec, pq_score__scalar_acc4(pq_m, table_vec.data(), code))
                    << "pq_m=" << pq_m << " sub_dim=" << sub_dim;
                ASSERT_EQ(direct_ref, pq_score__scalar(pq_m, table_ref.data(), code))
                    << "pq_m=" << pq_m << " sub_dim=" << sub_dim;
                double mag = 0.0;
                for (size_t m = 0; m < pq_m; ++m) {
                    const float* cw = &c.codebooks[(m * kPqCodebookSize + code[m]) * sub_dim];
                    for (size_t d = 0; d < sub_dim; ++d)
                        mag += std::fabs(double(c.x[m * sub_dim + d]) * cw[d]);
                }
                ASSERT_NEAR(direct_vec, direct_ref, sum_tolerance(mag))
                    << "pq_m=" << pq_m << " sub_dim=" << sub_dim;
            }
        }
    }
}

}  // namespace
}  // namespace earshot
