// Log-mel front-end (docs/DESIGN.md section 2): framing, periodic Hann window, KissFFT real
// FFT, HTK mel filterbank, natural-log compression. The same code runs natively and in WASM.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace earshot {

struct FrontendParams {
    int sample_rate_hz = 16000;
    int n_fft = 512;          // samples per frame (also the FFT size)
    int hop_length = 250;     // samples between frame starts
    int n_mels = 64;
    float f_min_hz = 125.0f;
    float f_max_hz = 7500.0f;
    float log_offset = 1e-6f;  // added to mel power before ln()
};

FrontendParams frontend_default_params();
// Reads the front-end keys of a model file's metadata; rejects missing or out-of-range values.
Result<FrontendParams> frontend_params_from_meta(const nlohmann::json& meta);

class Frontend {
public:
    // Validates params (n_fft even and supported by KissFFT, 0 <= f_min < f_max <= rate/2...).
    static Result<std::unique_ptr<Frontend>> create(const FrontendParams& params);
    ~Frontend();

    const FrontendParams& params() const { return params_; }
    // Mel weights, n_mels x (n_fft/2+1), row-major.
    const std::vector<float>& mel_weights() const { return mel_weights_; }

    // One frame: `frame` holds n_fft samples; writes n_mels log-mel values to `out`.
    // No allocation.
    void compute_frame(const float* frame, float* out);

    // Every frame of a signal (no padding): n_frames x n_mels, row-major.
    std::vector<float> compute(const float* pcm, size_t n_samples);
    static size_t frame_count(const FrontendParams& params, size_t n_samples);

private:
    Frontend() = default;
    struct Impl;
    FrontendParams params_;
    std::vector<float> mel_weights_;
    std::unique_ptr<Impl> impl_;
};

}  // namespace earshot
