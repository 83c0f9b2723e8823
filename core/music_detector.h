// Music detector (docs/MUSIC_DETECTOR.md): does a 1 s log-mel patch hold music? A gate in front
// of the embedder and the matcher, so that silence, room tone and speech make no embeddings.
//
// Input: the embedder's patch, context_frames x n_mels natural-log mel values (frame-major),
// BEFORE any patch-mean normalisation (the absolute level matters: silence is ln(1e-6)).
// Features over the frames (x[t][b]: frame t, band b; T frames, M bands), in float32:
//   mean_b  = sum_t x[t][b] / T,  std_b = sqrt(sum_t (x[t][b] - mean_b)^2 / T),
//   tdiff_b = sum_{t>0} |x[t][b] - x[t-1][b]| / (T - 1)     (change over time),
//   fdiff_b = sum_t |x[t][b+1] - x[t][b]| / T, b < M - 1    (spectral contrast),
// laid out [means, stds, tdiffs, fdiffs] (4 M - 1 values); standardised with stored
// per-feature mean and std; then dense layers with ReLU between them and one output logit;
// probability = sigmoid(logit). models/earshot_model/music_detector.py trains it and holds the
// reference of this arithmetic.
//
// Plain scalar C++: about 8.7 k multiply-adds in the dense layers and 24 k adds for the features
// per patch, once per embedding hop (0.5 s), far below the embedder's cost, so no SIMD path.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "core/container.h"
#include "core/status.h"

namespace earshot {

// One fully connected layer: y = W x + b, W row-major [out, in].
struct MusicDetectorDense {
    int in = 0;
    int out = 0;
    std::vector<float> weight;  // out * in
    std::vector<float> bias;    // out
};

// Everything the detector needs; checked by MusicDetector::create().
struct MusicDetectorParams {
    int context_frames = 62;          // frames per patch (>= 2: the differences need two)
    int n_mels = 64;                  // mel bands per frame
    std::vector<float> feature_mean;  // 4 * n_mels - 1
    std::vector<float> feature_std;   // 4 * n_mels - 1, each finite and > 0
    // layers[0].in == 4 * n_mels - 1, layers[i].in == layers[i-1].out, layers.back().out == 1.
    std::vector<MusicDetectorDense> layers;
    float threshold = 0.5f;  // a patch is music when probability >= threshold, in (0, 1)
};

// Reads a detector from a container: metadata key "music_detector" (feature_kind,
// context_frames, n_mels, layer_sizes, threshold) and f32 sections music_detector.feature_mean,
// .feature_std, .dense{i}.weight [out, in] and .dense{i}.bias [out] for i = 1..n_layers.
// Works on a model file that carries a detector and on a standalone "MDET" container.
Result<MusicDetectorParams> music_detector_params_from_container(const ContainerView& view);

class MusicDetector {
public:
    // Validates every size and value of `params` (message names what is wrong) and sizes the
    // buffers; nothing allocates afterwards.
    static Result<std::unique_ptr<MusicDetector>> create(MusicDetectorParams params);

    // patch: context_frames * n_mels floats, frame-major. No allocation.
    float logit(const float* patch);
    float probability(const float* patch);  // sigmoid(logit), in [0, 1]
    bool is_music(const float* patch) { return probability(patch) >= params_.threshold; }

    const MusicDetectorParams& params() const { return params_; }
    size_t n_params() const;  // weights and biases of the dense layers

private:
    explicit MusicDetector(MusicDetectorParams params);
    MusicDetectorParams params_;
    std::vector<float> features_;  // 4 * n_mels - 1, standardised in place
    std::vector<float> hidden_a_;  // widest layer output
    std::vector<float> hidden_b_;
};

// Level gate, in front of the detector (and alone for models without one): a patch whose mean
// log-mel value is below this is near-silent. White noise at -61 dBFS RMS gives about -8.0
// (digital silence: ln(1e-6) = -13.8); music at the app's levels is far above.
constexpr float kSilentPatchLogMel = -8.0f;

// Mean of a patch's log-mel values (its level: digital silence is ln(1e-6) = -13.8); 0 values
// give -inf, below every level.
double patch_mean_log_mel(const float* patch, size_t n_values);

// The music gate of the live listen and of the index builder (docs/DESIGN.md, "Listens"):
// false for a near-silent patch (mean below kSilentPatchLogMel), else the detector's answer,
// else true. patch: context_frames * n_mels floats; detector may be null.
bool patch_holds_music(const float* patch, size_t n_values, MusicDetector* detector);

}  // namespace earshot
