// Offline embedding of a whole signal at a fixed hop: what the index builder stores per song.
// (The streaming Recognizer computes query embeddings incrementally; both use the same frames.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/embedder.h"
#include "core/frontend.h"
#include "core/model.h"
#include "core/music_detector.h"

namespace earshot {

// Embeds pcm (at the model's sample rate) every `hop_frames` frames: embedding j covers frames
// [j*hop_frames, j*hop_frames + context_frames). Returns n x embedding_dim floats, row-major;
// a signal shorter than one context gives none. `frontend` and `embedder` must belong to `model`.
std::vector<float> embed_signal(const ModelInfo& model, Frontend& frontend, Embedder& embedder,
                                const float* pcm, size_t n_samples, int hop_frames);

// Which of a song's windows an index stores (`earshot build --store`). The live listen embeds
// only what its music gate passes (patch_holds_music), so a stored window that the gate would
// never pass can only be matched by what is not music: the silent tails and quiet intros of
// songs were the windows that silence and room tone matched (docs/EVALUATION.md, "Listens").
enum class StoreRule {
    kAll,    // every window
    kLevel,  // not near-silent (mean log-mel >= kSilentPatchLogMel)
    kMusic,  // what the live gate passes: kLevel, then the model's music detector
};

struct GatedEmbeddings {
    size_t n_windows = 0;          // windows of the song (its timeline, one per hop)
    std::vector<float> embedding;  // n_windows x dim; zeros where not stored
    std::vector<uint8_t> stored;   // n_windows: 1 = stored
    size_t n_stored = 0;
    // kMusic only: the detector passed fewer than kMinMusicShare of the song's non-silent
    // windows, so the song was kept under kLevel instead (a song the detector does not take
    // for music, e.g. ambient pieces, stays findable by clips).
    bool level_fallback = false;
};
constexpr double kMinMusicShare = 0.5;

// As embed_signal(), but embeds only the windows `rule` stores. `detector` (kMusic) may be null:
// then kMusic is kLevel.
GatedEmbeddings embed_signal_gated(const ModelInfo& model, Frontend& frontend, Embedder& embedder,
                                   MusicDetector* detector, StoreRule rule, const float* pcm,
                                   size_t n_samples, int hop_frames);

}  // namespace earshot
