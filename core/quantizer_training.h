// Quantizer training (docs/DESIGN.md section 5): Lloyd k-means for the coarse centroids (IVF
// lists), then one k-means of 256 centroids per PQ sub-space on the residuals to the assigned
// coarse centroid, optionally after a learned rotation of the residuals (OPQ). Deterministic for
// a given seed and input on every platform.
//
// k-means is hand-written (Lloyd, random init, empty clusters split like faiss): faiss is not in
// Debian for WASM and the training here is small (at most IndexBuildParams::max_training_vectors
// vectors of at most kMaxQuantizerDim floats).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/quantizer.h"

namespace earshot {

// SplitMix64: the same stream on every platform (std:: distributions are implementation-defined).
struct SplitMix64 {
    uint64_t state;
    explicit SplitMix64(uint64_t seed) : state(seed) {}
    uint64_t next() {
        uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    size_t below(size_t n) { return size_t(next() % n); }                   // [0, n), n > 0
    float uniform() { return float(next() >> 40) * (1.0f / 16777216.0f); }  // [0, 1)
};

// Lloyd k-means on data [n, dim] -> centroids [k, dim], at most `iterations` assignment rounds;
// stops early when fewer than 1 in 1000 points change cluster. Random distinct init; an empty
// cluster takes half of a cluster chosen with probability ~ its size (a perturbed copy of its
// centroid). With n <= k the points are the centroids and the rest repeat them (duplicates
// simply stay empty); n == 0 gives zero centroids. Draws from rng.
void kmeans(const float* data, size_t n, int dim, int k, int iterations, SplitMix64& rng,
            float* centroids);

// A quantizer of n_lists coarse centroids and pq_m 8-bit sub-quantizers trained on vectors
// [n, dim] (all of them: the caller samples). Requires quantizer_dim_supported(dim),
// 1 <= n_lists <= kMaxLists, dim % pq_m == 0, iterations >= 0 (IndexBuildParams are checked by
// validate_index_build_params). One SplitMix64(seed) stream drives the coarse k-means, then
// the sub-quantizers in order.
//
// opq_rounds > 0 also learns an orthogonal rotation R of the residuals (OPQ, Ge et al. 2013, the
// non-parametric solution): R starts as the residuals' principal directions, dealt to the
// sub-spaces so that the products of their variances are about equal (eigenvalue allocation),
// then each round trains the sub-quantizers on the rotated residuals (at most 4 Lloyd
// iterations) and sets R to the orthogonal Procrustes solution that best maps the residuals to
// their reconstructions. The final sub-quantizers are trained on the residuals rotated by the
// last R.
//
// group > 1 trains a grouped code (core/quantizer.h): `vectors` are then groups of `group`
// consecutive windows of a song (n a multiple of group), the coarse lists are trained on all
// windows, and each sub-quantizer on the G pieces of its sub-space, one per window, together;
// the rotation is one for every window, its Procrustes step fitted over the windows' residuals
// and their slots' reconstructions.
Quantizer train_quantizer(const float* vectors, size_t n, int dim, int n_lists, int pq_m,
                          int iterations, uint64_t seed, int opq_rounds = 0, int group = 1);

// The rotation alone (see train_quantizer), for residuals [n, dim] (n >= 1; groups of `group`
// windows): [dim, dim] row-major, orthogonal.
std::vector<float> train_rotation(const float* residuals, size_t n, int dim, int pq_m, int rounds,
                                  SplitMix64& rng, int group = 1);

}  // namespace earshot
