#include "core/quantizer.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace earshot {

namespace {

int argmin(const float* v, int n) {
    int best = 0;
    for (int i = 1; i < n; ++i)
        if (v[i] < v[best]) best = i;
    return best;
}

// Calls f(list, squared L2 distance of x to its centroid) for every list in order, the
// distances computed 64 centroids at a time: the scan assign() and nearest() share.
template <class F>
void each_centroid_distance(const Quantizer& q, const float* x, F f) {
    float dist[64];
    for (int base = 0; base < q.n_lists; base += 64) {
        const int count = std::min(64, q.n_lists - base);
        l2_sqr_many__vec128(size_t(count), size_t(q.dim), x,
                            &q.coarse_centroids[size_t(base) * q.dim], dist);
        for (int c = 0; c < count; ++c) f(base + c, dist[c]);
    }
}

}  // namespace

float orthogonality_error(const float* r, int dim) {
    for (size_t e = 0; e < size_t(dim) * dim; ++e)
        if (!std::isfinite(r[e])) return std::numeric_limits<float>::infinity();
    double worst = 0.0;
    for (int i = 0; i < dim; ++i)
        for (int j = i; j < dim; ++j) {
            double dot = 0.0;
            for (int k = 0; k < dim; ++k) dot += double(r[size_t(k) * dim + i]) * r[size_t(k) * dim + j];
            worst = std::max(worst, std::fabs(dot - (i == j ? 1.0 : 0.0)));
        }
    return float(worst);
}

int Quantizer::assign(const float* x) const {
    float best = std::numeric_limits<float>::infinity();
    int best_list = 0;
    each_centroid_distance(*this, x, [&](int list, float d) {
        if (d < best) best = d, best_list = list;
    });
    return best_list;
}

void Quantizer::nearest(const float* x, int k, uint32_t* lists, float* sq_dists) const {
    // The k best so far, nearest first: an insertion into k slots (k is a few lists), the
    // lower list first on equal distances as lists come in order.
    int held = 0;
    each_centroid_distance(*this, x, [&](int list, float d) {
        if (held == k && !(d < sq_dists[k - 1])) return;
        int at = held < k ? held++ : k - 1;
        for (; at > 0 && d < sq_dists[at - 1]; --at) {
            sq_dists[at] = sq_dists[at - 1];
            lists[at] = lists[at - 1];
        }
        sq_dists[at] = d;
        lists[at] = uint32_t(list);
    });
}

std::string code_name(int pq_m, bool rotated, bool unit_norm, int group) {
    return std::to_string(pq_m) + (group > 1 ? "-g" + std::to_string(group) : "") +
           (rotated ? "-opq" : "") + (unit_norm ? "-unit" : "");
}

bool parse_code_name(const std::string& name, int dim, int* pq_m, bool* rotated, bool* unit_norm,
                     int* group) {
    const size_t n_digits = std::min(name.find_first_not_of("0123456789"), name.size());
    if (n_digits == 0 || n_digits > 3 || name[0] == '0') return false;
    const int m = std::stoi(name.substr(0, n_digits));
    if (m > dim || dim % m != 0) return false;
    for (int g = 1; g <= kMaxCodeGroup; ++g) {
        for (const bool opq : {false, true}) {
            for (const bool unit : {false, true}) {
                if (code_name(m, opq, unit, g) != name) continue;
                *pq_m = m;
                *rotated = opq;
                *unit_norm = unit;
                if (group) *group = g;
                return true;
            }
        }
    }
    return false;
}

void Quantizer::rotate(const float* x, float* out) const {
    if (!rotated()) {
        std::copy(x, x + dim, out);
        return;
    }
    // out = sum over d of x[d] * row d of R: contiguous rows, vectorized by the compiler.
    std::fill(out, out + dim, 0.0f);
    for (int d = 0; d < dim; ++d) {
        const float* row = &rotation[size_t(d) * dim];
        const float xd = x[d];
        for (int k = 0; k < dim; ++k) out[k] += xd * row[k];
    }
}

void Quantizer::encode_group(const float* x, const int* lists, uint8_t* codes) const {
    // group * dim <= kMaxCodeGroup * kMaxQuantizerDim (checked where quantizers are made)
    std::vector<float> residuals(size_t(group) * dim);
    float difference[kMaxQuantizerDim];
    for (int s = 0; s < group; ++s) {
        const float* c = &coarse_centroids[size_t(lists[s]) * dim];
        for (int d = 0; d < dim; ++d) difference[d] = x[size_t(s) * dim + d] - c[d];
        rotate(difference, &residuals[size_t(s) * dim]);
    }
    float dist[kPqCodebookSize], total[kPqCodebookSize];
    for (int m = 0; m < pq_m; ++m) {
        std::fill(total, total + kPqCodebookSize, 0.0f);
        for (int s = 0; s < group; ++s) {
            l2_sqr_many__vec128(kPqCodebookSize, size_t(sub_dim),
                                &residuals[size_t(s) * dim + m * sub_dim],
                                codebooks(s) + size_t(m) * kPqCodebookSize * sub_dim, dist);
            for (int c = 0; c < kPqCodebookSize; ++c) total[c] += dist[c];
        }
        codes[m] = uint8_t(argmin(total, kPqCodebookSize));
    }
}

void Quantizer::encode(const float* x, int list, uint8_t* codes) const {
    // dim <= kMaxQuantizerDim (checked where quantizers are made)
    float difference[kMaxQuantizerDim], residual[kMaxQuantizerDim];
    const float* c = &coarse_centroids[size_t(list) * dim];
    for (int d = 0; d < dim; ++d) difference[d] = x[d] - c[d];
    rotate(difference, residual);
    float dist[kPqCodebookSize];
    for (int m = 0; m < pq_m; ++m) {
        l2_sqr_many__vec128(kPqCodebookSize, size_t(sub_dim), residual + m * sub_dim,
                            &pq_codebooks[size_t(m) * kPqCodebookSize * sub_dim], dist);
        codes[m] = uint8_t(argmin(dist, kPqCodebookSize));
    }
}

void Quantizer::decode(int list, const uint8_t* codes, float* out, int slot) const {
    const float* c = &coarse_centroids[size_t(list) * dim];
    const float* books = codebooks(slot);
    float y[kMaxQuantizerDim];
    for (int m = 0; m < pq_m; ++m) {
        const float* cw = &books[(size_t(m) * kPqCodebookSize + codes[m]) * sub_dim];
        std::copy(cw, cw + sub_dim, y + m * sub_dim);
    }
    if (!rotated()) {
        for (int d = 0; d < dim; ++d) out[d] = c[d] + y[d];
        return;
    }
    // y R^T: out[d] = c[d] + <row d of R, y>.
    for (int d = 0; d < dim; ++d) {
        const float* row = &rotation[size_t(d) * dim];
        float acc = 0.0f;
        for (int k = 0; k < dim; ++k) acc += row[k] * y[k];
        out[d] = c[d] + acc;
    }
}

void Quantizer::prepare_norms() {
    centroid_sq_norms.resize(n_lists);
    for (int l = 0; l < n_lists; ++l) {
        const float* c = &coarse_centroids[size_t(l) * dim];
        centroid_sq_norms[l] = inner_product__vec128(size_t(dim), c, c);
    }
    codeword_sq_norms.resize(size_t(group) * pq_m * kPqCodebookSize);
    for (size_t w = 0; w < codeword_sq_norms.size(); ++w) {
        const float* cw = &pq_codebooks[w * sub_dim];
        codeword_sq_norms[w] = inner_product__vec128(size_t(sub_dim), cw, cw);
    }
    rotated_centroids.clear();
    if (rotated()) {
        rotated_centroids.resize(size_t(n_lists) * dim);
        for (int l = 0; l < n_lists; ++l)
            rotate(&coarse_centroids[size_t(l) * dim], &rotated_centroids[size_t(l) * dim]);
    }
}

float Quantizer::reconstruction_sq_norm(int list, const uint8_t* codes, int slot) const {
    const float* c = rotated() ? &rotated_centroids[size_t(list) * dim]
                               : &coarse_centroids[size_t(list) * dim];
    const float* books = codebooks(slot);
    const float* sq_norms = &codeword_sq_norms[size_t(slot) * pq_m * kPqCodebookSize];
    float own = 0.0f;
    for (int m = 0; m < pq_m; ++m) own += sq_norms[size_t(m) * kPqCodebookSize + codes[m]];
    const float cross = pq_score_direct__vec128(size_t(pq_m), size_t(sub_dim), c, books, codes);
    return centroid_sq_norms[list] + 2.0f * cross + own;
}

}  // namespace earshot
