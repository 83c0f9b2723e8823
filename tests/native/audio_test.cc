// load_audio on real files (tests/data/audio, made by tests/make_audio_fixtures.sh): every
// format decodes to the right rate, length and notes; stereo is averaged; 44.1 kHz is resampled;
// broken files give a clean error that names the file; headers that lie about the length and
// files over the duration limit allocate nothing large.
#include "core/native/audio.h"

#include <gtest/gtest.h>
#include <sndfile.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/native/allocation_counter.h"
#include "tests/model_test_util.h"
#include "tests/native/flac_test_util.h"

namespace earshot {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int kRateHz = 16000;
constexpr size_t kFixtureSamples = 4800;                 // 0.3 s at 16 kHz
constexpr double kNotesHz[3] = {440.0, 554.37, 659.26};  // 0.1 s each

std::string fixture(const std::string& name) {
    return std::string(EARSHOT_TEST_DATA_DIR) + "/audio/" + name;
}

// Power of `x[begin, end)` at `freq_hz` (Goertzel), normalised by the length.
double tone_power(const std::vector<float>& x, size_t begin, size_t end, double freq_hz,
                  int rate_hz) {
    const double coeff = 2.0 * std::cos(2.0 * kPi * freq_hz / rate_hz);
    double s1 = 0.0, s2 = 0.0;
    for (size_t i = begin; i < end && i < x.size(); ++i) {
        const double s0 = x[i] + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    const double n = double(end - begin);
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (n * n);
}

// In each 0.1 s note slot, the slot's own note must beat the other two by 10 dB.
void expect_arpeggio(const AudioBuffer& audio, const std::string& what) {
    const size_t slot = size_t(audio.sample_rate_hz / 10);
    for (int note = 0; note < 3; ++note) {
        // Skip the first 10 ms of each slot (codec pre-echo / attack).
        const size_t begin = note * slot + slot / 10, end = (note + 1) * slot;
        const double own =
            tone_power(audio.samples, begin, end, kNotesHz[note], audio.sample_rate_hz);
        for (int other = 0; other < 3; ++other) {
            if (other == note) continue;
            const double p =
                tone_power(audio.samples, begin, end, kNotesHz[other], audio.sample_rate_hz);
            EXPECT_GT(own, 10.0 * p) << what << ": note " << note << " vs " << other;
        }
    }
}

void expect_error(const Result<AudioBuffer>& result, const std::string& path,
                  const std::string& needle) {
    ASSERT_FALSE(result.is_ok()) << path;
    EXPECT_EQ(result.message().rfind(path + ": ", 0), 0u) << result.message();
    EXPECT_NE(result.message().find(needle), std::string::npos) << result.message();
}

TEST(Audio, EveryFormatDecodes) {
    struct Case {
        const char* file;
        size_t slack_samples;  // allowed length difference (lossy codec priming/padding)
    };
    const Case cases[] = {{"arpeggio_16k.wav", 0},
                          {"arpeggio_16k.flac", 0},
                          {"arpeggio_16k.ogg", 0},
                          {"arpeggio_16k.opus", 0},
                          {"arpeggio_16k.mp3", 576}};  // one MPEG-2 layer III frame
    for (const Case& c : cases) {
        const auto audio = load_audio(fixture(c.file), kRateHz);
        ASSERT_TRUE(audio.is_ok()) << audio.message();
        EXPECT_EQ(audio->sample_rate_hz, kRateHz) << c.file;
        EXPECT_EQ(audio->source_sample_rate_hz, kRateHz) << c.file;
        EXPECT_EQ(audio->source_channels, 1) << c.file;
        EXPECT_NEAR(double(audio->samples.size()), double(kFixtureSamples), double(c.slack_samples))
            << c.file;
        EXPECT_NEAR(audio->duration_s(), 0.3, 0.04) << c.file;
        expect_arpeggio(audio.value(), c.file);
    }
}

TEST(Audio, LosslessFormatsAreBitExact) {
    const auto wav = load_audio(fixture("arpeggio_16k.wav"), kRateHz);
    const auto flac = load_audio(fixture("arpeggio_16k.flac"), kRateHz);
    ASSERT_TRUE(wav.is_ok() && flac.is_ok());
    EXPECT_EQ(wav->samples, flac->samples);
    float peak = 0.0f;
    for (float v : wav->samples) peak = std::max(peak, std::fabs(v));
    EXPECT_GT(peak, 0.2f);  // about -6 dBFS: normalised to [-1, 1], not raw int16
    EXPECT_LT(peak, 1.0f);
}

TEST(Audio, StereoIsAveraged) {
    // Left = arpeggio, right = 0.5 * arpeggio (each rounded to int16): mono = 0.75 * arpeggio
    // within 1 LSB of int16.
    const auto mono = load_audio(fixture("arpeggio_16k.wav"), kRateHz);
    const auto stereo = load_audio(fixture("arpeggio_stereo_16k.wav"), kRateHz);
    ASSERT_TRUE(mono.is_ok() && stereo.is_ok()) << stereo.message();
    EXPECT_EQ(stereo->source_channels, 2);
    ASSERT_EQ(stereo->samples.size(), mono->samples.size());
    for (size_t i = 0; i < mono->samples.size(); ++i) {
        ASSERT_NEAR(stereo->samples[i], 0.75f * mono->samples[i], 1.0f / 32768) << i;
    }
}

TEST(Audio, Resamples44100To16000) {
    // The same arpeggio rendered at 44.1 kHz, resampled by libsoxr (HQ), must match the 16 kHz
    // rendering: same length (round(13230 * 16000 / 44100) = 4800) and an error at least
    // 40 dB below the signal.
    const auto ref = load_audio(fixture("arpeggio_16k.wav"), kRateHz);
    const auto audio = load_audio(fixture("arpeggio_44k.flac"), kRateHz);
    ASSERT_TRUE(ref.is_ok() && audio.is_ok()) << audio.message();
    EXPECT_EQ(audio->source_sample_rate_hz, 44100);
    EXPECT_EQ(audio->sample_rate_hz, kRateHz);
    ASSERT_EQ(audio->samples.size(), ref->samples.size());
    double signal = 0.0, error = 0.0;
    for (size_t i = 0; i < ref->samples.size(); ++i) {
        signal += double(ref->samples[i]) * ref->samples[i];
        const double d = double(audio->samples[i]) - ref->samples[i];
        error += d * d;
    }
    const double snr_db = 10.0 * std::log10(signal / error);
    EXPECT_GT(snr_db, 40.0);
    std::printf("[ audio ] 44.1 kHz -> 16 kHz vs native 16 kHz rendering: SNR %.1f dB\n", snr_db);
    expect_arpeggio(audio.value(), "arpeggio_44k.flac");
}

TEST(Audio, DownsamplesToOtherRates) {
    const auto audio = load_audio(fixture("arpeggio_16k.ogg"), 8000);
    ASSERT_TRUE(audio.is_ok()) << audio.message();
    EXPECT_EQ(audio->sample_rate_hz, 8000);
    EXPECT_EQ(audio->samples.size(), kFixtureSamples / 2);
    expect_arpeggio(audio.value(), "ogg at 8 kHz");
}

TEST(Audio, ResampleMonoKeepsToneAmplitude) {
    // 1 kHz sine, amplitude 0.5, 48 kHz -> 16 kHz: amplitude within 0.1 dB, length exact.
    const int in_hz = 48000, out_hz = 16000;
    std::vector<float> x(48000);
    for (size_t i = 0; i < x.size(); ++i)
        x[i] = float(0.5 * std::sin(2 * kPi * 1000.0 * i / in_hz));
    const auto y = resample_mono(x.data(), x.size(), in_hz, out_hz);
    ASSERT_TRUE(y.is_ok()) << y.message();
    ASSERT_EQ(y->size(), 16000u);
    // Goertzel on the steady middle: power of a sine of amplitude A is A^2/4 after /n^2.
    const double p = tone_power(y.value(), 4000, 12000, 1000.0, out_hz);
    const double amplitude = 2.0 * std::sqrt(p);
    EXPECT_NEAR(20.0 * std::log10(amplitude / 0.5), 0.0, 0.1);
    EXPECT_TRUE(resample_mono(x.data(), 0, in_hz, out_hz).is_ok());
    EXPECT_FALSE(resample_mono(x.data(), x.size(), 0, out_hz).is_ok());
}

// 1 s of a quiet 16 kHz tone as FLAC, whose header claims `claimed_frames`.
std::string write_flac_claiming(const std::string& name, uint64_t claimed_frames) {
    const std::string path = (std::filesystem::temp_directory_path() /
                              ("earshot_audio_test_" + std::to_string(::getpid()) + "_" + name))
                                 .string();
    std::vector<float> pcm(static_cast<size_t>(kRateHz));
    for (size_t i = 0; i < pcm.size(); ++i) pcm[i] = 0.1f * float(std::sin(0.05 * double(i)));
    test::write_flac_claiming(path, pcm, kRateHz, claimed_frames);
    return path;
}

// A header claiming 100 minutes (under the limit) for 1 s of audio: the decoder must not
// reserve memory for the claim; the file is reported truncated.
TEST(Audio, HeaderFrameCountDoesNotSizeTheBuffer) {
    const std::string path = write_flac_claiming("claims_100_min.flac", 100ull * 60 * kRateHz);
    test::g_largest_allocation = 0;
    test::g_track_largest_allocation = true;
    const auto audio = load_audio(path, kRateHz);
    test::g_track_largest_allocation = false;
    expect_error(audio, path, "truncated");
    // 100 minutes of floats would be 384 MB; at most 10 minutes (38.4 MB) may be reserved.
    EXPECT_LE(test::g_largest_allocation.load(), size_t(40) << 20);
    std::remove(path.c_str());
}

// A header claiming 2^36 - 1 frames (about 50 days) is over the duration limit: a clean error
// before anything is reserved or decoded.
TEST(Audio, HeaderOverTheDurationLimitIsRejected) {
    const std::string path =
        write_flac_claiming("claims_2e36.flac", (uint64_t(1) << 36) - 1);
    const auto audio = load_audio(path, kRateHz);
    expect_error(audio, path, "longer than the 120-minute limit");
    std::remove(path.c_str());
}

TEST(Audio, DurationLimit) {
    const auto dir = std::filesystem::temp_directory_path();
    auto write_wav = [&](const std::string& name, double seconds) {
        const std::string path =
            (dir / ("earshot_audio_test_" + std::to_string(::getpid()) + "_" + name)).string();
        SF_INFO info{};
        info.samplerate = 8000;
        info.channels = 1;
        info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_U8;
        SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &info);
        EXPECT_NE(f, nullptr) << sf_strerror(nullptr);
        std::vector<float> pcm(size_t(seconds * info.samplerate), 0.25f);
        sf_writef_float(f, pcm.data(), sf_count_t(pcm.size()));
        sf_close(f);
        return path;
    };
    const std::string over = write_wav("61s.wav", 61.0), under = write_wav("59s.wav", 59.0);
    expect_error(load_audio(over, kRateHz, /*max_minutes=*/1), over,
                 "longer than the 1-minute limit");
    const auto ok = load_audio(under, kRateHz, /*max_minutes=*/1);
    ASSERT_TRUE(ok.is_ok()) << ok.message();
    EXPECT_NEAR(ok->duration_s(), 59.0, 0.01);
    std::remove(over.c_str());
    std::remove(under.c_str());
}

TEST(Audio, CleanErrors) {
    expect_error(load_audio(fixture("no_such_file.wav"), kRateHz), fixture("no_such_file.wav"),
                 "not found");
    expect_error(load_audio(fixture("empty.wav"), kRateHz), fixture("empty.wav"), "empty file");
    expect_error(load_audio(fixture("text.wav"), kRateHz), fixture("text.wav"), "cannot decode");
    expect_error(load_audio(fixture("truncated.wav"), kRateHz), fixture("truncated.wav"),
                 "truncated");
    expect_error(load_audio(fixture("garbage.mp3"), kRateHz), fixture("garbage.mp3"), "corrupt");
    const std::string dir = std::string(EARSHOT_TEST_DATA_DIR) + "/audio";
    expect_error(load_audio(dir, kRateHz), dir, "directory");
    expect_error(load_audio(fixture("arpeggio_16k.wav"), 0), fixture("arpeggio_16k.wav"),
                 "target sample rate");
}

// decode_audio reads the bytes of a file held in memory exactly as load_audio reads the file,
// and its errors are the same, named by `what`.
TEST(Audio, DecodesFromMemoryAsFromAFile) {
    for (const char* name : {"arpeggio_16k.wav", "arpeggio_16k.flac", "arpeggio_16k.ogg",
                             "arpeggio_16k.opus", "arpeggio_16k.mp3", "arpeggio_44k.flac",
                             "arpeggio_stereo_16k.wav"}) {
        const auto from_file = load_audio(fixture(name), kRateHz);
        const std::vector<uint8_t> bytes = test::read_file(fixture(name));
        ASSERT_FALSE(bytes.empty()) << name;
        const auto from_memory = decode_audio(bytes.data(), bytes.size(), kRateHz, name);
        ASSERT_TRUE(from_file.is_ok() && from_memory.is_ok()) << from_memory.message();
        EXPECT_EQ(from_memory->samples, from_file->samples) << name;
        EXPECT_EQ(from_memory->source_sample_rate_hz, from_file->source_sample_rate_hz) << name;
        EXPECT_EQ(from_memory->source_channels, from_file->source_channels) << name;
    }
    const std::vector<uint8_t> wav = test::read_file(fixture("arpeggio_16k.wav"));
    expect_error(decode_audio(wav.data(), 0, kRateHz, "upload"), "upload", "empty file");
    expect_error(decode_audio(wav.data(), 100, kRateHz, "upload"), "upload", "truncated");
    for (const char* name : {"text.wav", "truncated.wav", "garbage.mp3"}) {
        const std::vector<uint8_t> bytes = test::read_file(fixture(name));
        const auto from_memory = decode_audio(bytes.data(), bytes.size(), kRateHz, name);
        const auto from_file = load_audio(fixture(name), kRateHz);
        ASSERT_FALSE(from_memory.is_ok()) << name;
        EXPECT_EQ(fixture(name) + from_memory.message().substr(std::string(name).size()),
                  from_file.message());
    }
}

}  // namespace
}  // namespace earshot
