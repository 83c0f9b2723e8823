// Quantizer training: the random stream is fixed on every platform, k-means converges to a
// fixed point of Lloyd's iteration and handles fewer points than centroids, and a trained quantizer
// reconstructs its training data closely, deterministically for a seed; a learned rotation (OPQ)
// is orthogonal and lowers the PQ error where variance is uneven across dimensions; a code over
// groups of neighbouring windows loses less than a code of the same bytes per window when
// neighbours are alike, and its parts agree (encoding, slots' decoding, norms).
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

// Sequences of windows whose neighbours are alike (as a song's are): n_seq runs of `length`
// windows, each the previous one moved a little (correlation ~0.95).
std::vector<float> slow_sequences(size_t n_seq, size_t length, int dim, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> data(n_seq * length * dim), x(dim);
    for (size_t s = 0; s < n_seq; ++s) {
        for (int d = 0; d < dim; ++d) x[d] = normal(rng);
        for (size_t j = 0; j < length; ++j)
            for (int d = 0; d < dim; ++d) {
                x[d] = 0.95f * x[d] + 0.31f * normal(rng);
                data[(s * length + j) * dim + d] = x[d];
            }
    }
    return data;
}

// Mean squared error of groups of `group` consecutive windows coded together.
double grouped_error(const Quantizer& q, const std::vector<float>& data) {
    const size_t n = data.size() / q.dim;
    std::vector<int> lists(q.group);
    std::vector<uint8_t> codes(q.pq_m);
    std::vector<float> rec(q.dim);
    double sum = 0.0;
    for (size_t g = 0; g + q.group <= n; g += q.group) {
        for (int s = 0; s < q.group; ++s) lists[s] = q.assign(&data[(g + s) * q.dim]);
        q.encode_group(&data[g * q.dim], lists.data(), codes.data());
        for (int s = 0; s < q.group; ++s) {
            q.decode(lists[s], codes.data(), rec.data(), s);
            for (int d = 0; d < q.dim; ++d) {
                const double e = rec[d] - data[(g + s) * q.dim + d];
                sum += e * e;
            }
        }
    }
    return sum / double(n / q.group * q.group);
}

// A code over 4 windows in 8 bytes against a code of 2 bytes a window, on windows whose
// neighbours are alike: the grouped code keeps more (what docs/SCALE.md measures on songs).
TEST(QuantizerTraining, GroupedCodeKeepsMoreOfAlikeNeighboursAtTheSameBytes) {
    constexpr int kDim = 32, kGroup = 4;
    // 4 000 windows to train on, 800 others to measure; both coded with 2 bytes a window.
    const std::vector<float> train = slow_sequences(40, 100, kDim, 3);
    const std::vector<float> test = slow_sequences(8, 100, kDim, 4);
    const Quantizer grouped = train_quantizer(train.data(), 4000, kDim, 8, 8, 10, 5, 3, kGroup);
    const Quantizer single = train_quantizer(train.data(), 4000, kDim, 8, 2, 10, 5, 3);
    ASSERT_EQ(grouped.group, kGroup);
    ASSERT_EQ(grouped.sub_dim, 4);
    ASSERT_EQ(grouped.pq_codebooks.size(), size_t(kGroup) * 8 * kPqCodebookSize * 4);
    EXPECT_LT(orthogonality_error(grouped.rotation.data(), kDim), 1e-4f);
    EXPECT_EQ(grouped.coarse_centroids, single.coarse_centroids);  // lists: per window alike
    EXPECT_EQ(grouped.code_name(), "8-g4-opq");
    const double grouped_mse = grouped_error(grouped, test);
    const double single_mse = mean_squared_error(single, test);
    EXPECT_LT(grouped_mse, 0.8 * single_mse) << single_mse << " -> " << grouped_mse;

    // Each code word is the nearest over the group's slots together, and a slot decodes (and
    // its norm) as an ordinary code with that slot's codebooks.
    Quantizer q = grouped;
    q.prepare_norms();
    const float* x = &test[40 * kDim];  // windows 40..43
    int lists[kGroup];
    for (int s = 0; s < kGroup; ++s) lists[s] = q.assign(x + s * kDim);
    std::vector<uint8_t> codes(q.pq_m);
    q.encode_group(x, lists, codes.data());
    std::vector<float> residual(kGroup * kDim), rotated(kGroup * kDim);
    for (int s = 0; s < kGroup; ++s) {
        for (int d = 0; d < kDim; ++d)
            residual[s * kDim + d] = x[s * kDim + d] - q.coarse_centroids[lists[s] * kDim + d];
        q.rotate(&residual[s * kDim], &rotated[s * kDim]);
    }
    for (int m = 0; m < q.pq_m; ++m) {
        auto distance = [&](int c) {
            double sum = 0.0;
            for (int s = 0; s < kGroup; ++s)
                for (int d = 0; d < q.sub_dim; ++d) {
                    const double e = rotated[s * kDim + m * q.sub_dim + d] -
                                     q.codebooks(s)[(m * kPqCodebookSize + c) * q.sub_dim + d];
                    sum += e * e;
                }
            return sum;
        };
        for (int c = 0; c < kPqCodebookSize; ++c)
            ASSERT_LE(distance(codes[m]), distance(c) * (1 + 1e-5) + 1e-9) << m << " " << c;
    }
    std::vector<float> rec(kDim);
    for (int s = 0; s < kGroup; ++s) {
        q.decode(lists[s], codes.data(), rec.data(), s);
        double sq = 0.0;
        for (float v : rec) sq += double(v) * v;
        EXPECT_NEAR(q.reconstruction_sq_norm(lists[s], codes.data(), s), sq, 1e-3 * sq);
    }

    const Quantizer again = train_quantizer(train.data(), 4000, kDim, 8, 8, 10, 5, 3, kGroup);
    EXPECT_EQ(again.rotation, grouped.rotation);
    EXPECT_EQ(again.pq_codebooks, grouped.pq_codebooks);
}

}  // namespace
}  // namespace earshot
