// Fuzz target: audio decoding from memory (libsndfile: WAV, FLAC, Ogg Vorbis, Opus, MP3, ...;
// downmix; libsoxr resampling to 16 kHz) with a 1-minute cap.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "core/native/audio.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto audio = earshot::decode_audio(data, size, 16000, "fuzz", 1);
    if (!audio) return 0;
    if (audio->sample_rate_hz != 16000 || audio->samples.size() > size_t(16000) * 61) std::abort();
    for (float v : audio->samples) {
        if (!std::isfinite(v)) std::abort();  // the decoder promises finite samples
    }
    return 0;
}
