// Quantizer training: the random stream is fixed on every platform, k-means converges to a
// fixed point of Lloyd's iteration and handles fewer points than centroids, and a trained quantizer
// reconstructs its training data closely, deterministically for a seed; a learned rotation (OPQ)
// is orthogonal and lowers the PQ error where variance is uneven across dimensions.
#include "core/quantizer_training.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "tests/index_test_util.h"

namespace earshot {
namespace {

TEST(QuantizerTraining, SplitMix64IsTheReferenceStream) {
    SplitMix64 rng(0);  // the published SplitMix64 sequence for seed 0
    EXPECT_EQ(rng.next(), 0xe220a8397b1dcdafull);
    EXPECT_EQ(rng.next(), 0x6e789e6aa1b965f4ull);
    EXPECT_EQ(rng.next(), 0x06c45d188009454full);
    SplitMix64 bounded(1234);
    for (int i = 0; i < 1000; ++i) {
        EXPECT_LT(bounded.below(7), 7u);
        const float u = bounded.uniform();
        EXPECT_GE(u, 0.0f);
        EXPECT_LT(u, 1.0f);
    }
}

// Sum of squared distances of each point to its nearest centroid.
double kmeans_objective(const std::vector<float>& data, int dim, const std::vector<float>& c) {
    const size_t n = data.size() / dim, k = c.size() / dim;
    double total = 0.0;
    for (size_t i = 0; i < n; ++i) {
        double best = 1e300;
        for (size_t j = 0; j < k; ++j) {
            double d2 = 0.0;
            for (int d = 0; d < dim; ++d) d2 += std::pow(data[i * dim + d] - c[j * dim + d], 2);
            best = std::min(best, d2);
        }
        total += best;
    }
    return total;
}

// Lloyd iterations never increase the objective, and at convergence every centroid is the mean
// of the points nearest to it.
TEST(QuantizerTraining, KmeansLowersTheObjectiveToAFixedPoint) {
    constexpr int kDim = 8, kK = 12;
    const std::vector<float> data = testing::clustered_vectors(600, kDim, 6, 3);
    double previous = 1e300;
    std::vector<float> centroids(kK * kDim);
    for (int iterations : {0, 1, 2, 5, 50}) {
        SplitMix64 rng(1);  // same init every time
        kmeans(data.data(), 600, kDim, kK, iterations, rng, centroids.data());
        const double objective = kmeans_objective(data, kDim, centroids);
        EXPECT_LE(objective, previous * (1.0 + 1e-6)) << iterations << " iterations";
        previous = objective;
    }
    std::vector<double> sums(kK * kDim, 0.0);
    std::vector<int> counts(kK, 0);
    for (size_t i = 0; i < 600; ++i) {
        int best = 0;
        double best_d2 = 1e300;
        for (int j = 0; j < kK; ++j) {
            double d2 = 0.0;
            for (int d = 0; d < kDim; ++d)
                d2 += std::pow(data[i * kDim + d] - centroids[j * kDim + d], 2);
            if (d2 < best_d2) best_d2 = d2, best = j;
        }
        counts[best]++;
        for (int d = 0; d < kDim; ++d) sums[best * kDim + d] += data[i * kDim + d];
    }
    for (int j = 0; j < kK; ++j) {
        if (counts[j] == 0) continue;
        for (int d = 0; d < kDim; ++d)
            EXPECT_NEAR(centroids[j * kDim + d], sums[j * kDim + d] / counts[j], 1e-5)
                << "centroid " << j;
    }
}

TEST(QuantizerTraining, KmeansWithFewPoints) {
    const float data[3 * 2] = {1, 2, 3, 4, 5, 6};
    std::vector<float> centroids(5 * 2, -1.0f);
    SplitMix64 rng(1);
    kmeans(data, 3, 2, 5, 10, rng, centroids.data());  // n <= k: the points, repeated
    const std::vector<float> repeated = {1, 2, 3, 4, 5, 6, 1, 2, 3, 4};
    EXPECT_EQ(centroids, repeated);
    kmeans(data, 0, 2, 5, 10, rng, centroids.data());  // no points: zeros
    EXPECT_EQ(centroids, std::vector<float>(10, 0.0f));
}

TEST(QuantizerTraining, TrainedQuantizerReconstructsAndIsDeterministic) {
    constexpr int kDim = 32;
    const std::vector<float> data = testing::clustered_vectors(2000, kDim, 16, 5);
    const Quantizer q = train_quantizer(data.data(), 2000, kDim, 16, 8, 10, 77);
    ASSERT_EQ(q.dim, kDim);
    ASSERT_EQ(q.n_lists, 16);
    ASSERT_EQ(q.pq_m, 8);
    ASSERT_EQ(q.sub_dim, 4);
    ASSERT_EQ(q.coarse_centroids.size(), size_t(16 * kDim));
    ASSERT_EQ(q.pq_codebooks.size(), size_t(8 * kPqCodebookSize * 4));
    // Residual PQ with 8 x 8-bit codes on 32-d unit vectors: mean cosine >= 0.95.
    double cos_sum = 0.0;
    std::vector<uint8_t> codes(q.pq_m);
    std::vector<float> rec(kDim);
    for (size_t i = 0; i < 2000; ++i) {
        const float* x = &data[i * kDim];
        const int list = q.assign(x);
        q.encode(x, list, codes.data());
        q.decode(list, codes.data(), rec.data());
        double dot = 0.0, norm = 0.0;
        for (int d = 0; d < kDim; ++d) dot += x[d] * rec[d], norm += rec[d] * rec[d];
        cos_sum += dot / std::sqrt(norm);
    }
    EXPECT_GE(cos_sum / 2000, 0.95);

    const Quantizer again = train_quantizer(data.data(), 2000, kDim, 16, 8, 10, 77);
    EXPECT_EQ(again.coarse_centroids, q.coarse_centroids);
    EXPECT_EQ(again.pq_codebooks, q.pq_codebooks);
    const Quantizer other = train_quantizer(data.data(), 2000, kDim, 16, 8, 10, 78);
    EXPECT_NE(other.coarse_centroids, q.coarse_centroids);
    EXPECT_FALSE(q.rotated());  // no rotation unless asked for
}

double mean_squared_error(const Quantizer& q, const std::vector<float>& data) {
    const size_t n = data.size() / q.dim;
    std::vector<uint8_t> codes(q.pq_m);
    std::vector<float> rec(q.dim);
    double total = 0.0;
    for (size_t i = 0; i < n; ++i) {
        const float* x = &data[i * q.dim];
        const int list = q.assign(x);
        q.encode(x, list, codes.data());
        q.decode(list, codes.data(), rec.data());
        for (int d = 0; d < q.dim; ++d) total += std::pow(double(x[d]) - rec[d], 2);
    }
    return total / double(n);
}

// OPQ: on data whose variance falls off steeply across dimensions (as embeddings' does across
// their principal directions), plain PQ spends most sub-spaces on dimensions with little variance;
// the learned rotation is orthogonal, spreads the variance and lowers the reconstruction error;
// training stays deterministic.
TEST(QuantizerTraining, RotationIsOrthogonalAndLowersThePqError) {
    constexpr int kDim = 32, kN = 3000;
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> data(size_t(kN) * kDim);
    for (size_t i = 0; i < size_t(kN); ++i)
        for (int d = 0; d < kDim; ++d) data[i * kDim + d] = normal(rng) * std::exp(-d / 5.0f);
    const Quantizer plain = train_quantizer(data.data(), kN, kDim, 4, 8, 10, 9);
    const Quantizer opq = train_quantizer(data.data(), kN, kDim, 4, 8, 10, 9, 4);
    ASSERT_TRUE(opq.rotated());
    ASSERT_EQ(opq.rotation.size(), size_t(kDim) * kDim);
    EXPECT_LT(orthogonality_error(opq.rotation.data(), kDim), 1e-4f);
    EXPECT_EQ(plain.coarse_centroids, opq.coarse_centroids);  // the rotation acts after IVF
    const double plain_error = mean_squared_error(plain, data);
    const double opq_error = mean_squared_error(opq, data);
    EXPECT_LT(opq_error, 0.7 * plain_error) << plain_error << " -> " << opq_error;

    const Quantizer again = train_quantizer(data.data(), kN, kDim, 4, 8, 10, 9, 4);
    EXPECT_EQ(again.rotation, opq.rotation);
    EXPECT_EQ(again.pq_codebooks, opq.pq_codebooks);
}

}  // namespace
}  // namespace earshot
