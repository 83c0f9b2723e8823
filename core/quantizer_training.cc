#include "core/quantizer_training.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include <Eigen/Dense>  // eigen-decomposition and SVD of the dim x dim rotation problems

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

namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// One k-means per sub-space of `data` [n, q.dim] into q.pq_codebooks.
void train_codebooks(const float* data, size_t n, int iterations, SplitMix64& rng, Quantizer& q) {
    std::vector<float> sub(n * q.sub_dim);
    for (int m = 0; m < q.pq_m; ++m) {
        for (size_t i = 0; i < n; ++i)
            std::memcpy(&sub[i * q.sub_dim], data + i * q.dim + m * q.sub_dim,
                        q.sub_dim * sizeof(float));
        kmeans(sub.data(), n, q.sub_dim, kPqCodebookSize, iterations, rng,
               &q.pq_codebooks[size_t(m) * kPqCodebookSize * q.sub_dim]);
    }
}

// Groups of `group` windows [n / group, group, dim] as rows whose m-th sub-space holds the m-th
// piece of every window ([n / group, pq_m, group, sub_dim]): a grouped code's sub-quantizers
// are ordinary ones on these rows. deinterleave() undoes it.
std::vector<float> interleave(const float* windows, size_t n, int dim, int pq_m, int group) {
    const int sub_dim = dim / pq_m;
    std::vector<float> out(n * dim);
    for (size_t g = 0; g < n / group; ++g)
        for (int s = 0; s < group; ++s)
            for (int m = 0; m < pq_m; ++m)
                std::memcpy(&out[(g * group * pq_m + size_t(m) * group + s) * sub_dim],
                            windows + (g * group + s) * dim + size_t(m) * sub_dim,
                            sub_dim * sizeof(float));
    return out;
}

void deinterleave(const float* rows, size_t n, int dim, int pq_m, int group, float* windows) {
    const int sub_dim = dim / pq_m;
    for (size_t g = 0; g < n / group; ++g)
        for (int s = 0; s < group; ++s)
            for (int m = 0; m < pq_m; ++m)
                std::memcpy(windows + (g * group + s) * dim + size_t(m) * sub_dim,
                            &rows[(g * group * pq_m + size_t(m) * group + s) * sub_dim],
                            sub_dim * sizeof(float));
}

// The quantizer the sub-space k-means of a grouped code run on: code words of group * sub_dim
// floats over rows of group * dim (interleave()).
Quantizer group_rows_quantizer(int dim, int pq_m, int group) {
    Quantizer rows;
    rows.dim = dim * group;
    rows.pq_m = pq_m;
    rows.sub_dim = dim / pq_m * group;
    rows.pq_codebooks.resize(size_t(pq_m) * kPqCodebookSize * rows.sub_dim);
    return rows;
}

// Code words [pq_m, 256, group, sub_dim] as the slots' codebooks [group, pq_m, 256, sub_dim].
void split_slots(const Quantizer& rows, int group, Quantizer& q) {
    for (int m = 0; m < q.pq_m; ++m)
        for (int c = 0; c < kPqCodebookSize; ++c)
            for (int s = 0; s < group; ++s)
                std::memcpy(
                    &q.pq_codebooks[((size_t(s) * q.pq_m + m) * kPqCodebookSize + c) * q.sub_dim],
                    &rows.pq_codebooks[((size_t(m) * kPqCodebookSize + c) * group + s) * q.sub_dim],
                    q.sub_dim * sizeof(float));
}

// Rows of `data` [n, q.dim] replaced by their PQ reconstructions under q's codebooks.
void pq_reconstruct(const float* data, size_t n, const Quantizer& q, float* out) {
    float dist[kPqCodebookSize];
    for (size_t i = 0; i < n; ++i)
        for (int m = 0; m < q.pq_m; ++m) {
            const float* book = &q.pq_codebooks[size_t(m) * kPqCodebookSize * q.sub_dim];
            l2_sqr_many__vec128(kPqCodebookSize, size_t(q.sub_dim), data + i * q.dim + m * q.sub_dim,
                                book, dist);
            int best = 0;
            for (int c = 1; c < kPqCodebookSize; ++c)
                if (dist[c] < dist[best]) best = c;
            std::memcpy(out + i * q.dim + m * q.sub_dim, book + size_t(best) * q.sub_dim,
                        q.sub_dim * sizeof(float));
        }
}

}  // namespace

std::vector<float> train_rotation(const float* residuals, size_t n, int dim, int pq_m, int rounds,
                                  SplitMix64& rng, int group) {
    const Eigen::Map<const RowMatrix> x(residuals, Eigen::Index(n), dim);
    // Eigenvalue allocation: principal directions by decreasing variance, each to the sub-space
    // (with room left) whose product of variances is the smallest so far.
    const Eigen::MatrixXd cov = (x.transpose() * x).cast<double>();
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(cov);  // ascending eigenvalues
    const int sub_dim = dim / pq_m;
    std::vector<std::vector<int>> buckets(pq_m);
    std::vector<double> log_product(pq_m, 0.0);
    for (int e = dim - 1; e >= 0; --e) {
        int best = -1;
        for (int b = 0; b < pq_m; ++b)
            if (int(buckets[b].size()) < sub_dim && (best < 0 || log_product[b] < log_product[best]))
                best = b;
        buckets[best].push_back(e);
        log_product[best] += std::log(std::max(eig.eigenvalues()(e), 1e-12));
    }
    RowMatrix r(dim, dim);
    int column = 0;
    for (const std::vector<int>& bucket : buckets)
        for (int e : bucket) r.col(column++) = eig.eigenvectors().col(e).cast<float>();

    // The sub-space k-means run on rows of `group` windows (interleave(); one window a row
    // without groups).
    Quantizer q = group_rows_quantizer(dim, pq_m, group);
    const size_t n_rows = n / group;
    RowMatrix rotated(Eigen::Index(n), dim), rebuilt(Eigen::Index(n), dim);
    std::vector<float> rebuilt_rows(n * dim);
    for (int round = 0; round < rounds; ++round) {
        rotated.noalias() = x * r;
        const std::vector<float> rows = interleave(rotated.data(), n, dim, pq_m, group);
        train_codebooks(rows.data(), n_rows, 4, rng, q);
        pq_reconstruct(rows.data(), n_rows, q, rebuilt_rows.data());
        deinterleave(rebuilt_rows.data(), n, dim, pq_m, group, rebuilt.data());
        // Orthogonal Procrustes: the orthogonal R minimizing |x R - rebuilt| is U V^T, where
        // x^T rebuilt = U S V^T.
        const Eigen::MatrixXd m = (x.transpose() * rebuilt).cast<double>();
        const Eigen::JacobiSVD<Eigen::MatrixXd> svd(m, Eigen::ComputeFullU | Eigen::ComputeFullV);
        r = (svd.matrixU() * svd.matrixV().transpose()).cast<float>();
    }
    return std::vector<float>(r.data(), r.data() + size_t(dim) * dim);
}

Quantizer train_quantizer(const float* vectors, size_t n, int dim, int n_lists, int pq_m,
                          int iterations, uint64_t seed, int opq_rounds, int group) {
    Quantizer q;
    q.dim = dim;
    q.n_lists = n_lists;
    q.pq_m = pq_m;
    q.sub_dim = dim / pq_m;
    q.group = group;
    q.coarse_centroids.resize(size_t(q.n_lists) * dim);
    q.pq_codebooks.resize(size_t(group) * q.pq_m * kPqCodebookSize * q.sub_dim);

    SplitMix64 rng(seed);
    kmeans(vectors, n, dim, q.n_lists, iterations, rng, q.coarse_centroids.data());

    // Residuals to the assigned centroid (rotated when a rotation is learned), then one k-means
    // per PQ sub-space.
    std::vector<float> residuals(n * dim);
    for (size_t i = 0; i < n; ++i) {
        const float* x = vectors + i * dim;
        const float* c = &q.coarse_centroids[size_t(q.assign(x)) * dim];
        for (int d = 0; d < dim; ++d) residuals[i * dim + d] = x[d] - c[d];
    }
    if (opq_rounds > 0 && n > 0) {
        q.rotation = train_rotation(residuals.data(), n, dim, pq_m, opq_rounds, rng, group);
        std::vector<float> rotated(dim);
        for (size_t i = 0; i < n; ++i) {
            q.rotate(&residuals[i * dim], rotated.data());
            std::copy(rotated.begin(), rotated.end(), &residuals[i * dim]);
        }
    }
    if (group == 1) {
        train_codebooks(residuals.data(), n, iterations, rng, q);
        return q;
    }
    Quantizer rows = group_rows_quantizer(dim, pq_m, group);
    const std::vector<float> grouped = interleave(residuals.data(), n, dim, pq_m, group);
    train_codebooks(grouped.data(), n / group, iterations, rng, rows);
    split_slots(rows, group, q);
    return q;
}

}  // namespace earshot
