#include "core/embed_signal.h"

namespace earshot {

std::vector<float> embed_signal(const ModelInfo& model, Frontend& frontend, Embedder& embedder,
                                const float* pcm, size_t n_samples, int hop_frames) {
    const std::vector<float> frames = frontend.compute(pcm, n_samples);
    const size_t n_mels = size_t(model.frontend.n_mels);
    const size_t n_frames = frames.size() / n_mels;
    const size_t context = size_t(model.context_frames);
    const size_t dim = size_t(model.embedding_dim);
    std::vector<float> out;
    if (n_frames < context || hop_frames <= 0) return out;
    const size_t n_embeddings = (n_frames - context) / size_t(hop_frames) + 1;
    out.resize(n_embeddings * dim);
    for (size_t j = 0; j < n_embeddings; ++j) {
        embedder.embed(&frames[j * size_t(hop_frames) * n_mels], &out[j * dim]);
    }
    return out;
}

}  // namespace earshot
