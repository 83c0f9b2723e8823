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
    kLevel,  // not near-silent (mean log-mel >= kStoreSilentLogMel, below)
    kMusic,  // kLevel, then what the model's music detector (the live gate's) calls music
};

// The index's silence level (mean log-mel of a window: about white noise at -74 dBFS; digital
// silence is -13.8), below the live gate's kSilentPatchLogMel (-8.0): a quiet passage of a song
// can be played loud, and then the live gate passes it, so only what is near-silent at any
// playback level is left out. On train clips, leaving out windows below the live gate's level
// cost 0.8 points of top-1, below this level 0.1 (docs/EVALUATION.md, "Listens").
constexpr double kStoreSilentLogMel = -11.0;

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
