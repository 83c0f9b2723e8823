#include "core/quantizer_training.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

#include "core/kernels.h"

namespace earshot {

void kmeans(const float* data, size_t n, int dim, int k, int iterations, SplitMix64& rng,
            float* centroids) {
    if (n == 0) {
        std::fill(centroids, centroids + size_t(k) * dim, 0.0f);
        return;
    }
    if (n <= size_t(k)) {
        for (int c = 0; c < k; ++c)
            std::memcpy(centroids + size_t(c) * dim, data + (c % n) * dim, dim * sizeof(float));
        return;
    }
    // Init: k distinct points by partial Fisher-Yates.
    std::vector<uint32_t> perm(n);
    std::iota(perm.begin(), perm.end(), 0u);
    for (int c = 0; c < k; ++c) {
        size_t j = c + rng.below(n - c);
        std::swap(perm[c], perm[j]);
        std::memcpy(centroids + size_t(c) * dim, data + size_t(perm[c]) * dim, dim * sizeof(float));
    }
    std::vector<uint32_t> assign(n);
    std::vector<double> sums(size_t(k) * dim);
    std::vector<size_t> counts(k);
    std::vector<float> packed(packed_centroids_size(size_t(k), size_t(dim)));
    std::vector<float> sq_norms(packed_centroids_norms_size(size_t(k)));
    for (int it = 0; it < iterations; ++it) {
        size_t changed = 0;
        pack_centroids(size_t(k), size_t(dim), centroids, packed.data(), sq_norms.data());
        for (size_t i = 0; i < n; ++i) {
            const uint32_t a = uint32_t(nearest_centroid__vec128(
                size_t(k), size_t(dim), data + i * dim, packed.data(), sq_norms.data()));
            changed += (it == 0 || a != assign[i]);
            assign[i] = a;
        }
        // Converged: fewer than 1 in 1000 points changed cluster.
        if (it > 0 && changed * 1000 < n) break;
        std::fill(sums.begin(), sums.end(), 0.0);
        std::fill(counts.begin(), counts.end(), 0);
        for (size_t i = 0; i < n; ++i) {
            double* s = &sums[size_t(assign[i]) * dim];
            const float* x = data + i * dim;
            for (int d = 0; d < dim; ++d) s[d] += x[d];
            counts[assign[i]]++;
        }
        for (int c = 0; c < k; ++c) {
            if (counts[c] == 0) continue;
            for (int d = 0; d < dim; ++d)
                centroids[size_t(c) * dim + d] = float(sums[size_t(c) * dim + d] / counts[c]);
        }
        // Empty clusters: split a cluster chosen with probability ~ its size (faiss).
        for (int c = 0; c < k; ++c) {
            if (counts[c] != 0) continue;
            size_t big = 0;
            for (;;) {
                big = rng.below(k);
                float p = float(counts[big] - 1 + 1e-9) / float(n - k);
                if (counts[big] > 1 && rng.uniform() < p) break;
                if (counts[big] > 1 && rng.uniform() < 0.01f) break;  // cap the loop
            }
            float* dst = centroids + size_t(c) * dim;
            float* src = centroids + big * dim;
            for (int d = 0; d < dim; ++d) {
                const float eps = 1.0f / 1024;
                dst[d] = src[d] * ((d % 2) ? 1 + eps : 1 - eps);
                src[d] = src[d] * ((d % 2) ? 1 - eps : 1 + eps);
            }
            counts[c] = counts[big] / 2;
            counts[big] -= counts[c];
        }
    }
}

Quantizer train_quantizer(const float* vectors, size_t n, int dim, int n_lists, int pq_m,
                          int iterations, uint64_t seed) {
    Quantizer q;
    q.dim = dim;
    q.n_lists = n_lists;
    q.pq_m = pq_m;
    q.sub_dim = dim / pq_m;
    q.coarse_centroids.resize(size_t(q.n_lists) * dim);
    q.pq_codebooks.resize(size_t(q.pq_m) * kPqCodebookSize * q.sub_dim);

    SplitMix64 rng(seed);
    kmeans(vectors, n, dim, q.n_lists, iterations, rng, q.coarse_centroids.data());

    // Residuals to the assigned centroid, then one k-means per PQ sub-space.
    std::vector<float> residuals(n * dim);
    for (size_t i = 0; i < n; ++i) {
        const float* x = vectors + i * dim;
        const float* c = &q.coarse_centroids[size_t(q.assign(x)) * dim];
        for (int d = 0; d < dim; ++d) residuals[i * dim + d] = x[d] - c[d];
    }
    std::vector<float> sub(n * q.sub_dim);
    for (int m = 0; m < q.pq_m; ++m) {
        for (size_t i = 0; i < n; ++i)
            std::memcpy(&sub[i * q.sub_dim], &residuals[i * dim + m * q.sub_dim],
                        q.sub_dim * sizeof(float));
        kmeans(sub.data(), n, q.sub_dim, kPqCodebookSize, iterations, rng,
               &q.pq_codebooks[size_t(m) * kPqCodebookSize * q.sub_dim]);
    }
    return q;
}

}  // namespace earshot
