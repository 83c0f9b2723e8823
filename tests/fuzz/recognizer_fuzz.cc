// Fuzz target: the streaming recognizer (front end, music-detector gate, embedder, matcher,
// listen rule) fed arbitrary PCM in arbitrary blocks, live and offline.
//
// Input: byte 0 = flags (bit 0 live, bit 1 music detector, bits 2-3 sample format: f32 as is
// (NaN, +-Inf, huge values), i16 scaled, u8 scaled, or u8 as a dB level per 16-sample run;
// bit 4 reset halfway, bit 5 continuous listen, bit 6 a 1 s listen length, bit 7 the clip
// mode's speed search at 2 % and 1 %, the clip table refusing everything and the speed table
// little),
// byte 1 = how many
// times the samples repeat (1-16, so short inputs still make seconds of audio), bytes 2-3 = the
// block size (0 = one block), then samples. The stream stops at 1.5 s: the fixture model
// embeds every 0.5 s from 5 frames of context, so that is three looks of the matcher and the
// listen rule, and an execution stays in the milliseconds. So that the gate closing, a
// continuous listen's stop and a one-shot listen's end all happen within that, the gate closes
// after one hop without music and a stop is confirmed 0.5 s later.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <vector>

#include "core/embedder.h"
#include "core/recognizer.h"
#include "tests/fuzz/index_fuzz_util.h"

namespace {

constexpr size_t kMaxStreamSamples = 24000;  // 1.5 s at 16 kHz

std::vector<float> decode_samples(int format, const uint8_t* data, size_t size) {
    std::vector<float> out;
    out.reserve(format == 3 ? size * 16 : size);
    switch (format) {
        case 0:
            out.resize(size / 4);
            if (!out.empty()) std::memcpy(out.data(), data, out.size() * 4);
            break;
        case 1:
            for (size_t i = 0; i + 1 < size; i += 2) {
                int16_t v;
                std::memcpy(&v, data + i, 2);
                out.push_back(float(v) / 32768.0f);
            }
            break;
        case 2:
            for (size_t i = 0; i < size; ++i) out.push_back(float(int(data[i]) - 128) / 128.0f);
            break;
        default:  // level runs: quiet and loud noise-like stretches, cheaply many seconds
            for (size_t i = 0; i < size; ++i) {
                const float amp = std::pow(10.0f, (float(data[i]) - 255.0f) / 40.0f);
                for (int k = 0; k < 16; ++k) {
                    out.push_back(amp * float(((i * 16 + k) * 2654435761u >> 16) % 2001 - 1000) /
                                  1000.0f);
                }
            }
            break;
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace earshot;
    if (size < 4) return 0;
    const fuzz::IndexFixture& fixture = fuzz::index_fixture();
    static const std::shared_ptr<const Index> index = [&] {
        auto idx = std::make_shared<Index>(fixture.model->info());
        if (!earshot::testing::load_all(fixture.files, idx.get())) std::abort();
        return idx;
    }();
    const uint8_t flags = data[0];
    const int repeats = 1 + data[1] % 16;
    const size_t block = size_t(data[2]) | size_t(data[3]) << 8;
    const std::vector<float> samples = decode_samples((flags >> 2) & 3, data + 4, size - 4);

    // One recognizer per combination of the parameter flags, created once and reset() for
    // each input (as the page reuses its recognizer from listen to listen).
    static std::unique_ptr<Recognizer> recognizers[32];
    const int combo = (flags & 3) | (flags >> 3 & 12) | (flags >> 3 & 16);
    if (!recognizers[combo]) {
        RecognizerParams params = recognizer_default_params(fixture.model->info(), *index);
        params.live = flags & 1;
        params.music_detector = flags & 2;
        params.listen.continuous = flags & 32;
        params.gate_close_hops = 1;
        params.listen.stop_confirm_s = 0.5;
        if (flags & 64) params.listen.max_listen_s = 1.0;
        if (flags & 128) {  // nothing matches as played; most stretches clear their table
            params.match.threshold_by_n = {1.0f};
            params.speed.stretches = {1.02f, 0.98f, 1.01f};
            params.speed.threshold_by_n = {0.0f};
        }
        auto embedder = create_embedder(fixture.model, Backend::kSimd);
        if (!embedder) std::abort();
        auto created =
            Recognizer::create(fixture.model, index, std::move(embedder.value()), params);
        if (!created) std::abort();
        recognizers[combo] = std::move(created.value());
    }
    Recognizer& rec = *recognizers[combo];
    rec.reset();

    std::vector<float> stream(std::min(samples.size() * size_t(repeats), kMaxStreamSamples));
    for (size_t i = 0; i < stream.size(); ++i) stream[i] = samples[i % samples.size()];
    RecognizerResult result;
    ListenEvent event;
    for (size_t pos = 0; pos < stream.size();) {
        const size_t n = block == 0 ? stream.size() : std::min(block, stream.size() - pos);
        (void)rec.push(stream.data() + pos, n);
        pos += n;
        while (rec.poll(&result)) {
        }
        while (rec.poll_event(&event)) {
        }
        if ((flags & 16) && pos >= stream.size() / 2 && pos - n < stream.size() / 2) rec.reset();
    }
    (void)rec.best();
    (void)rec.finish();
    while (rec.poll_event(&event)) {
    }
    return 0;
}
