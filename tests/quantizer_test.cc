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

}  // namespace
}  // namespace earshot
