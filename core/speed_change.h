// Playback-speed change of a clip (pitch and tempo together, as a turntable or a radio
// station's faster playout does): the clip's samples read at another rate. The offline clip
// mode's speed search (core/recognizer.h, RecognizerParams::speed) plays a clip that finds no
// song again a little slower and faster, so a song played 1-2 % fast or slow meets its indexed
// windows at their own speed.
//
//   std::vector<float> slower = change_speed(pcm, n, SpeedRatio{51, 50});  // 2 % longer
#pragma once

#include <cstddef>
#include <vector>

#include "core/status.h"

namespace earshot {

// out_samples : in_samples, a reduced fraction: {51, 50} stretches a clip by 2 % (it plays
// 2 % slower: a clip played 2 % fast comes back to the song's own speed).
struct SpeedRatio {
    int out = 1;
    int in = 1;
    double stretch() const { return double(out) / double(in); }
};
// The ratio nearest `stretch` in thousandths ({1020, 1000} -> {51, 50}); an error unless
// 0.9 <= stretch <= 1.1 and stretch is a whole number of thousandths (to 1e-6).
Result<SpeedRatio> speed_ratio(double stretch);

// `pcm` (n_samples) stretched by `ratio`: ceil(n_samples * out / in) samples; sample m is the
// band-limited interpolation of the input at m * in / out (a windowed-sinc filter with its
// cut-off at the lower of the two Nyquist rates). Written
// here rather than taken from libsoxr (which the native CLI uses to read files) because the
// same numbers are needed in the WASM build, where Debian offers no soxr.
std::vector<float> change_speed(const float* pcm, size_t n_samples, SpeedRatio ratio);

}  // namespace earshot
