#include "core/quantizer.h"

#include <algorithm>
#include <limits>

namespace earshot {

namespace {

int argmin(const float* v, int n) {
    int best = 0;
    for (int i = 1; i < n; ++i)
        if (v[i] < v[best]) best = i;
    return best;
}

}  // namespace

int Quantizer::assign(const float* x) const {
    float best = std::numeric_limits<float>::infinity();
    int best_list = 0;
    float dist[64];
    for (int base = 0; base < n_lists; base += 64) {
        const int count = std::min(64, n_lists - base);
        l2_sqr_many__vec128(size_t(count), size_t(dim), x, &coarse_centroids[size_t(base) * dim],
                            dist);
        for (int c = 0; c < count; ++c)
            if (dist[c] < best) best = dist[c], best_list = base + c;
    }
    return best_list;
}

void Quantizer::encode(const float* x, int list, uint8_t* codes) const {
    float
        residual[kMaxQuantizerDim];  // dim <= kMaxQuantizerDim (checked where quantizers are made)
    const float* c = &coarse_centroids[size_t(list) * dim];
    for (int d = 0; d < dim; ++d) residual[d] = x[d] - c[d];
    float dist[kPqCodebookSize];
    for (int m = 0; m < pq_m; ++m) {
        l2_sqr_many__vec128(kPqCodebookSize, size_t(sub_dim), residual + m * sub_dim,
                            &pq_codebooks[size_t(m) * kPqCodebookSize * sub_dim], dist);
        codes[m] = uint8_t(argmin(dist, kPqCodebookSize));
    }
}

void Quantizer::decode(int list, const uint8_t* codes, float* out) const {
    const float* c = &coarse_centroids[size_t(list) * dim];
    for (int m = 0; m < pq_m; ++m) {
        const float* cw = &pq_codebooks[(size_t(m) * kPqCodebookSize + codes[m]) * sub_dim];
        for (int d = 0; d < sub_dim; ++d) out[m * sub_dim + d] = c[m * sub_dim + d] + cw[d];
    }
}

}  // namespace earshot
