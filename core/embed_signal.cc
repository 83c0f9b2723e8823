#include "core/embed_signal.h"

namespace earshot {

std::vector<float> embed_signal(const ModelInfo& model, Frontend& frontend, Embedder& embedder,
                                const float* pcm, size_t n_samples, int hop_frames) {
    return embed_signal_gated(model, frontend, embedder, nullptr, StoreRule::kAll, pcm, n_samples,
                              hop_frames)
        .embedding;
}

GatedEmbeddings embed_signal_gated(const ModelInfo& model, Frontend& frontend, Embedder& embedder,
                                   MusicDetector* detector, StoreRule rule, const float* pcm,
                                   size_t n_samples, int hop_frames) {
    GatedEmbeddings out;
    const std::vector<float> frames = frontend.compute(pcm, n_samples);
    const size_t n_mels = size_t(model.frontend.n_mels);
    const size_t n_frames = frames.size() / n_mels;
    const size_t context = size_t(model.context_frames);
    const size_t dim = size_t(model.embedding_dim);
    if (n_frames < context || hop_frames <= 0) return out;
    out.n_windows = (n_frames - context) / size_t(hop_frames) + 1;
    auto patch = [&](size_t j) { return &frames[j * size_t(hop_frames) * n_mels]; };

    out.stored.assign(out.n_windows, 1);
    if (rule != StoreRule::kAll) {
        MusicDetector* gate_detector = rule == StoreRule::kMusic ? detector : nullptr;
        size_t n_loud = 0, n_music = 0;
        std::vector<uint8_t> loud(out.n_windows);
        for (size_t j = 0; j < out.n_windows; ++j) {
            loud[j] = patch_mean_log_mel(patch(j), context * n_mels) >= kStoreSilentLogMel;
            n_loud += loud[j];
            out.stored[j] = loud[j] && (!gate_detector || gate_detector->is_music(patch(j)));
            n_music += out.stored[j];
        }
        if (gate_detector && double(n_music) < kMinMusicShare * double(n_loud)) {
            out.stored = loud;
            out.level_fallback = true;
        }
    }
    out.embedding.assign(out.n_windows * dim, 0.0f);
    for (size_t j = 0; j < out.n_windows; ++j) {
        if (!out.stored[j]) continue;
        embedder.embed(patch(j), &out.embedding[j * dim]);
        ++out.n_stored;
    }
    return out;
}

}  // namespace earshot
