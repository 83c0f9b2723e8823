// Native audio input: decode (libsndfile: WAV, FLAC, Ogg Vorbis, Opus, MP3, ...), downmix to
// mono, resample (libsoxr, high quality) to the model's rate. Native only: in the browser the
// AudioContext decodes and resamples.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace earshot {

struct AudioBuffer {
    std::vector<float> samples;  // mono, nominally in [-1, 1], at sample_rate_hz
    int sample_rate_hz = 0;
    int source_sample_rate_hz = 0;  // the file's rate before resampling
    int source_channels = 0;
    double duration_s() const {
        return sample_rate_hz > 0 ? double(samples.size()) / sample_rate_hz : 0.0;
    }
};

// Longest audio load_audio() decodes by default: 2 hours (460 MB of mono floats at 16 kHz).
constexpr int kMaxAudioMinutes = 120;

// Decodes `path`, averages its channels and resamples to `target_rate_hz` (no resampling when
// the file already has that rate). Errors name the file and the problem: missing, empty,
// unreadable/unsupported format, truncated or corrupt data, no samples, longer than
// `max_minutes` (by its header or as decoded). The frame count a header claims is never trusted
// for more than a few minutes of memory reserved up front.
Result<AudioBuffer> load_audio(const std::string& path, int target_rate_hz,
                               int max_minutes = kMaxAudioMinutes);

// The same from a file's bytes held in memory (e.g. an upload); `what` names it in messages.
Result<AudioBuffer> decode_audio(const uint8_t* bytes, size_t size, int target_rate_hz,
                                 const std::string& what, int max_minutes = kMaxAudioMinutes);

// Resamples mono float PCM from `input_rate_hz` to `output_rate_hz` with libsoxr (SOXR_HQ).
// Output length is round(n_samples * output_rate_hz / input_rate_hz), delay-compensated.
Result<std::vector<float>> resample_mono(const float* pcm, size_t n_samples, int input_rate_hz,
                                         int output_rate_hz);

}  // namespace earshot
