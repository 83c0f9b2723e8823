// Offline embedding of a whole signal at a fixed hop: what the index builder stores per song.
// (The streaming Recognizer computes query embeddings incrementally; both use the same frames.)
#pragma once

#include <cstddef>
#include <vector>

#include "core/embedder.h"
#include "core/frontend.h"
#include "core/model.h"

namespace earshot {

// Embeds pcm (at the model's sample rate) every `hop_frames` frames: embedding j covers frames
// [j*hop_frames, j*hop_frames + context_frames). Returns n x embedding_dim floats, row-major;
// a signal shorter than one context gives none. `frontend` and `embedder` must belong to `model`.
std::vector<float> embed_signal(const ModelInfo& model, Frontend& frontend, Embedder& embedder,
                                const float* pcm, size_t n_samples, int hop_frames);

}  // namespace earshot
