// The quantizer codec: assign() is the nearest list, encode() the nearest codeword of each
// residual sub-vector (checked against exhaustive double-precision distances, ties within the
// float tolerance allowed), and decode() is centroid + codewords exactly.
#include "core/quantizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace earshot {
namespace {

std::vector<float> random_vector(size_t n, std::mt19937& rng) {
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

// Index of the nearest row by exact squared distance, and whether `chosen` is as near within
// 1e-5 relative (float rounding of the kernels).
bool is_nearest(const float* x, const float* rows, int k, int dim, int chosen) {
    std::vector<double> dist(k);
    double best = std::numeric_limits<double>::infinity();
    for (int r = 0; r < k; ++r) {
        double s = 0.0;
        for (int d = 0; d < dim; ++d) s += std::pow(double(x[d]) - rows[size_t(r) * dim + d], 2);
        dist[r] = s;
        best = std::min(best, s);
    }
    return dist[chosen] <= best * (1.0 + 1e-5) + 1e-6;
}

Quantizer random_quantizer(int dim, int n_lists, int pq_m, std::mt19937& rng) {
    Quantizer q;
    q.dim = dim;
    q.n_lists = n_lists;
    q.pq_m = pq_m;
    q.sub_dim = dim / pq_m;
    q.coarse_centroids = random_vector(size_t(n_lists) * dim, rng);
    q.pq_codebooks = random_vector(size_t(pq_m) * kPqCodebookSize * q.sub_dim, rng);
    for (float& v : q.pq_codebooks) v *= 0.3f;
    return q;
}

TEST(Quantizer, AssignEncodeDecode) {
    std::mt19937 rng(11);
    // n_lists around the 64-list blocks of assign(); sub_dim 1, 4, 8 and 16.
    for (int n_lists : {1, 63, 64, 65, 200}) {
        for (int pq_m : {8, 16, 32, 128}) {
            const int dim = 128;
            const Quantizer q = random_quantizer(dim, n_lists, pq_m, rng);
            for (int trial = 0; trial < 5; ++trial) {
                const std::vector<float> x = random_vector(dim, rng);
                const int list = q.assign(x.data());
                ASSERT_GE(list, 0);
                ASSERT_LT(list, n_lists);
                ASSERT_TRUE(is_nearest(x.data(), q.coarse_centroids.data(), n_lists, dim, list))
                    << "n_lists=" << n_lists << " chose " << list;
                std::vector<uint8_t> codes(pq_m);
                q.encode(x.data(), list, codes.data());
                std::vector<float> residual(dim);
                for (int d = 0; d < dim; ++d)
                    residual[d] = x[d] - q.coarse_centroids[size_t(list) * dim + d];
                for (int m = 0; m < pq_m; ++m) {
                    ASSERT_TRUE(is_nearest(&residual[size_t(m) * q.sub_dim],
                                           &q.pq_codebooks[size_t(m) * kPqCodebookSize * q.sub_dim],
                                           kPqCodebookSize, q.sub_dim, codes[m]))
                        << "pq_m=" << pq_m << " m=" << m;
                }
                std::vector<float> rec(dim);
                q.decode(list, codes.data(), rec.data());
                for (int d = 0; d < dim; ++d) {
                    const int m = d / q.sub_dim;
                    const float expected =
                        q.coarse_centroids[size_t(list) * dim + d] +
                        q.pq_codebooks[(size_t(m) * kPqCodebookSize + codes[m]) * q.sub_dim +
                                       d % q.sub_dim];
                    ASSERT_EQ(rec[d], expected);
                }
            }
        }
    }
}

// nearest(k): the k nearest lists, nearest first, with their distances; its first is assign()'s.
TEST(Quantizer, NearestListsInOrder) {
    std::mt19937 rng(12);
    for (int n_lists : {1, 63, 64, 65, 200}) {
        const int dim = 128;
        const Quantizer q = random_quantizer(dim, n_lists, 8, rng);
        for (int k : {1, 3, 8}) {
            if (k > n_lists) continue;
            const std::vector<float> x = random_vector(dim, rng);
            std::vector<uint32_t> lists(k);
            std::vector<float> d(k);
            q.nearest(x.data(), k, lists.data(), d.data());
            EXPECT_EQ(int(lists[0]), q.assign(x.data()));
            // Every list left out is at least as far as the k-th.
            std::vector<bool> taken(n_lists, false);
            for (int i = 0; i < k; ++i) {
                ASSERT_LT(int(lists[i]), n_lists);
                EXPECT_FALSE(taken[lists[i]]);
                taken[lists[i]] = true;
                if (i > 0) {
                    EXPECT_LE(d[i - 1], d[i]);
                }
                double exact = 0.0;
                for (int e = 0; e < dim; ++e)
                    exact +=
                        std::pow(double(x[e]) - q.coarse_centroids[size_t(lists[i]) * dim + e], 2);
                EXPECT_NEAR(d[i], exact, 1e-4 * exact + 1e-5);
            }
            for (int l = 0; l < n_lists; ++l) {
                if (taken[l]) continue;
                double far = 0.0;
                for (int e = 0; e < dim; ++e)
                    far += std::pow(double(x[e]) - q.coarse_centroids[size_t(l) * dim + e], 2);
                EXPECT_GE(far * (1.0 + 1e-5) + 1e-6, double(d[k - 1])) << "list " << l;
            }
        }
    }
}

// With a rotation R, encode() codes (x - c) R and decode() returns c + y R^T: for an exact
// codeword the round trip is exact, and <x, decode> = <x, c> + <x R, y> (what the matcher's
// tables compute). Without one, rotate() copies.
TEST(Quantizer, RotationRoundTrip) {
    std::mt19937 rng(21);
    constexpr int kDim = 16;
    Quantizer q = random_quantizer(kDim, 3, 4, rng);
    std::vector<float> x = random_vector(kDim, rng), out(kDim);
    q.rotate(x.data(), out.data());
    EXPECT_EQ(out, x);
    // A rotation of dims 0 and 1 by 30 degrees, identity elsewhere.
    q.rotation.assign(size_t(kDim) * kDim, 0.0f);
    for (int d = 0; d < kDim; ++d) q.rotation[size_t(d) * kDim + d] = 1.0f;
    const float c = std::cos(0.5235988f), s = std::sin(0.5235988f);
    q.rotation[0] = c, q.rotation[1] = s, q.rotation[kDim] = -s, q.rotation[kDim + 1] = c;
    EXPECT_LT(orthogonality_error(q.rotation.data(), kDim), 1e-6f);
    q.rotate(x.data(), out.data());
    EXPECT_NEAR(out[0], x[0] * c - x[1] * s, 1e-6);
    EXPECT_NEAR(out[1], x[0] * s + x[1] * c, 1e-6);
    EXPECT_EQ(out[2], x[2]);

    const uint8_t codes[4] = {7, 200, 0, 91};
    std::vector<float> rec(kDim), again(kDim);
    q.decode(2, codes, rec.data());
    uint8_t round_trip[4];
    q.encode(rec.data(), 2, round_trip);
    EXPECT_EQ(std::vector<uint8_t>(round_trip, round_trip + 4), std::vector<uint8_t>(codes, codes + 4));
    // <x, rec> = <x, c> + <x R, y>
    std::vector<float> y(kDim);
    for (int m = 0; m < 4; ++m)
        for (int d = 0; d < 4; ++d)
            y[m * 4 + d] = q.pq_codebooks[(size_t(m) * kPqCodebookSize + codes[m]) * 4 + d];
    double direct = 0.0, split = 0.0;
    for (int d = 0; d < kDim; ++d) {
        direct += double(x[d]) * rec[d];
        split += double(x[d]) * q.coarse_centroids[2 * kDim + d] + double(out[d]) * y[d];
    }
    EXPECT_NEAR(direct, split, 1e-5);
}

// The name that keys a model's threshold tables (ModelInfo::threshold_by_n_for_code).
TEST(Quantizer, CodeName) {
    std::mt19937 rng(22);
    Quantizer q = random_quantizer(16, 3, 8, rng);
    EXPECT_EQ(q.code_name(), "8");
    q.unit_norm = true;
    EXPECT_EQ(q.code_name(), "8-unit");
    q.rotation.assign(16 * 16, 0.0f);
    EXPECT_EQ(q.code_name(), "8-opq-unit");
    q.unit_norm = false;
    EXPECT_EQ(q.code_name(), "8-opq");
    q.group = 4;  // a code over 4 windows
    EXPECT_EQ(q.code_name(), "8-g4-opq");
}

// parse_code_name() reads back what code_name() writes, for PQ bytes that divide the dim, and
// nothing else.
TEST(Quantizer, ParseCodeName) {
    for (const int m : {1, 8, 16, 32, 128}) {
        for (const bool opq : {false, true}) {
            for (const bool unit : {false, true}) {
                for (const int g : {1, 2, 4, kMaxCodeGroup}) {
                    int pq_m = 0, group = 0;
                    bool rotated = !opq, unit_norm = !unit;
                    ASSERT_TRUE(parse_code_name(code_name(m, opq, unit, g), 128, &pq_m, &rotated,
                                                &unit_norm, &group));
                    EXPECT_EQ(pq_m, m);
                    EXPECT_EQ(rotated, opq);
                    EXPECT_EQ(unit_norm, unit);
                    EXPECT_EQ(group, g);
                }
            }
        }
    }
    int pq_m = 0;
    bool rotated = false, unit_norm = false;
    for (const char* bad : {"",
                            "0",
                            "08",
                            "7",
                            "256",
                            "1024",
                            "8-unit-opq",
                            "8-opq-",
                            "8opq",
                            "-opq",
                            "8-opq-unit-unit",
                            "8 ",
                            "x8",
                            "8-g1",
                            "8-g0",
                            "8-g17",
                            "8-g04",
                            "8-opq-g4",
                            "8-g4-g4",
                            "8-g"})
        EXPECT_FALSE(parse_code_name(bad, 128, &pq_m, &rotated, &unit_norm)) << bad;
}

TEST(Quantizer, OrthogonalityError) {
    std::vector<float> r(9, 0.0f);
    r[0] = r[4] = r[8] = 1.0f;
    EXPECT_EQ(orthogonality_error(r.data(), 3), 0.0f);
    r[4] = 1.01f;  // a scaled axis
    EXPECT_GT(orthogonality_error(r.data(), 3), kMaxRotationError);
    r[4] = 1.0f;
    r[1] = 0.05f;  // a sheared one
    EXPECT_GT(orthogonality_error(r.data(), 3), kMaxRotationError);
    r[1] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_EQ(orthogonality_error(r.data(), 3), std::numeric_limits<float>::infinity());
}

}  // namespace
}  // namespace earshot
