// Front-end tests: against the float64 numpy reference (tests/make_frontend_golden.py), against
// the analytic spectrum of a bin-centred tone, native vs WASM agreement, framing and parameters.
// The same binary runs natively and under node (WASM).
#include "core/frontend.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace earshot {
namespace {

// Tolerances. ln() values vs the float64 reference: the C++ path is float32 throughout
// (window, FFT, power, mel sums), so the error is relative to the frame's energy; 1e-4 on ln
// is a relative mel-power error of 1e-4 (measured max 1.5e-5). Native vs WASM: same KissFFT
// source and float ops, only libm's logf differs (glibc vs musl): 1e-5 absolute.
constexpr double kGoldenLnTolerance = 1e-4;
constexpr double kNativeWasmTolerance = 1e-5;

std::string data_path(const std::string& name) {
    return std::string(EARSHOT_TEST_DATA_DIR) + "/" + name;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) return {};
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(file)),
                                std::istreambuf_iterator<char>());
}

template <typename T>
std::vector<T> read_array(const std::string& path) {
    const auto bytes = read_bytes(path);
    std::vector<T> out(bytes.size() / sizeof(T));
    if (!out.empty()) std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
    return out;
}

struct Golden {
    nlohmann::json meta;
    FrontendParams params;
    std::vector<float> pcm;
    std::vector<float> logmel;  // float64 reference rounded to float32
    size_t n_frames = 0;
};

// Loads tests/data/frontend_golden*; ASSERTs inside, so call through ASSERT_NO_FATAL_FAILURE.
void load_golden(Golden* g) {
    const auto text = read_bytes(data_path("frontend_golden.json"));
    ASSERT_FALSE(text.empty()) << "missing " << data_path("frontend_golden.json");
    g->meta = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
    ASSERT_TRUE(g->meta.is_object());
    const auto params = frontend_params_from_meta(g->meta);
    ASSERT_TRUE(params.is_ok()) << params.message();
    g->params = params.value();
    const auto samples = read_array<int16_t>(data_path(g->meta["signal_file"].get<std::string>()));
    ASSERT_EQ(samples.size(), g->meta["n_samples"].get<size_t>());
    g->pcm.resize(samples.size());
    for (size_t i = 0; i < samples.size(); ++i) g->pcm[i] = samples[i] / 32768.0f;
    g->logmel = read_array<float>(data_path(g->meta["logmel_file"].get<std::string>()));
    g->n_frames = g->meta["n_frames"].get<size_t>();
    ASSERT_EQ(g->logmel.size(), g->n_frames * size_t(g->params.n_mels));
}

std::unique_ptr<Frontend> make_frontend(const FrontendParams& params) {
    auto fe = Frontend::create(params);
    EXPECT_TRUE(fe.is_ok()) << fe.message();
    return fe.is_ok() ? std::move(fe.value()) : nullptr;
}

TEST(Frontend, MatchesFloat64Reference) {
    Golden g;
    ASSERT_NO_FATAL_FAILURE(load_golden(&g));
    auto fe = make_frontend(g.params);
    ASSERT_TRUE(fe);
    const auto out = fe->compute(g.pcm.data(), g.pcm.size());
    ASSERT_EQ(out.size(), g.logmel.size());
    double max_abs = 0.0;
    for (size_t i = 0; i < out.size(); ++i) {
        ASSERT_TRUE(std::isfinite(out[i])) << "value " << i;
        max_abs = std::max(max_abs, std::fabs(double(out[i]) - double(g.logmel[i])));
    }
    EXPECT_LE(max_abs, kGoldenLnTolerance);
    // Max |ln error| == max relative error of the mel power (+ offset) to first order.
    std::printf("[ frontend ] max |ln C++ - ln numpy float64| = %.3g over %zu values\n", max_abs,
                out.size());
}

TEST(Frontend, SilentFramesGiveLnLogOffset) {
    Golden g;
    ASSERT_NO_FATAL_FAILURE(load_golden(&g));
    auto fe = make_frontend(g.params);
    ASSERT_TRUE(fe);
    // The fixture starts with 0.05 s (800 samples) of zeros: frames 0 and 1 are silent.
    std::vector<float> out(g.params.n_mels);
    for (int t = 0; t < 2; ++t) {
        fe->compute_frame(g.pcm.data() + t * g.params.hop_length, out.data());
        for (float v : out) EXPECT_FLOAT_EQ(v, std::log(g.params.log_offset));
    }
}

TEST(Frontend, NativeAndWasmAgree) {
    // The checked-in frontend_golden_native.f32 is the native (x86-64) build's output on the
    // golden signal; the WASM run of this test compares against it. Regenerate it natively with
    // EARSHOT_WRITE_FRONTEND_NATIVE=1 (node never passes the host environment through).
    Golden g;
    ASSERT_NO_FATAL_FAILURE(load_golden(&g));
    auto fe = make_frontend(g.params);
    ASSERT_TRUE(fe);
    const auto out = fe->compute(g.pcm.data(), g.pcm.size());
    const std::string path = data_path(g.meta["native_file"].get<std::string>());
    const char* write = std::getenv("EARSHOT_WRITE_FRONTEND_NATIVE");
    if (write && std::string(write) == "1") {
        std::ofstream file(path, std::ios::binary);
        file.write(reinterpret_cast<const char*>(out.data()), out.size() * sizeof(float));
        ASSERT_TRUE(file.good()) << "could not write " << path;
        std::printf("[ frontend ] wrote %s\n", path.c_str());
    }
    const auto native = read_array<float>(path);
    ASSERT_EQ(native.size(), out.size()) << "missing or stale " << path;
    double max_abs = 0.0;
    for (size_t i = 0; i < out.size(); ++i) {
        max_abs = std::max(max_abs, std::fabs(double(out[i]) - double(native[i])));
    }
    EXPECT_LE(max_abs, kNativeWasmTolerance);
#ifdef __EMSCRIPTEN__
    std::printf("[ frontend ] max |WASM - native| = %.3g\n", max_abs);
#endif
}

TEST(Frontend, MelWeightsMatchReference) {
    Golden g;
    ASSERT_NO_FATAL_FAILURE(load_golden(&g));
    auto fe = make_frontend(g.params);
    ASSERT_TRUE(fe);
    const int n_bins = g.params.n_fft / 2 + 1;
    const auto& w = fe->mel_weights();
    ASSERT_EQ(w.size(), size_t(g.params.n_mels) * n_bins);
    const auto& sums = g.meta["mel_weight_row_sums"];
    ASSERT_EQ(sums.size(), size_t(g.params.n_mels));
    const double bin_hz = double(g.params.sample_rate_hz) / g.params.n_fft;
    for (int j = 0; j < g.params.n_mels; ++j) {
        double sum = 0.0;
        for (int k = 0; k < n_bins; ++k) {
            const float v = w[size_t(j) * n_bins + k];
            EXPECT_GE(v, 0.0f);
            EXPECT_LE(v, 1.0f);
            if (k * bin_hz <= g.params.f_min_hz || k * bin_hz >= g.params.f_max_hz) {
                EXPECT_EQ(v, 0.0f) << "filter " << j << " bin " << k;
            }
            sum += v;
        }
        EXPECT_NEAR(sum, sums[j].get<double>(), 1e-5) << "filter " << j;
    }
}

TEST(Frontend, BinCentredToneMatchesAnalyticSpectrum) {
    // x[n] = A sin(2 pi k0 n / N) with a periodic Hann window has exactly three non-zero bins:
    // |X[k0]| = A N / 4, |X[k0 +- 1]| = A N / 8 (the window's DFT is N/2, -N/4, -N/4).
    FrontendParams p = frontend_default_params();
    auto fe = make_frontend(p);
    ASSERT_TRUE(fe);
    const int n = p.n_fft, n_bins = n / 2 + 1;
    const double amplitude = 0.5;
    for (int k0 : {16, 64, 100, 200}) {
        std::vector<float> frame(n);
        for (int i = 0; i < n; ++i) {
            frame[i] = float(amplitude * std::sin(2.0 * 3.14159265358979323846 * k0 * i / n + 0.7));
        }
        std::vector<float> out(p.n_mels);
        fe->compute_frame(frame.data(), out.data());
        const double peak = std::pow(amplitude * n / 4, 2), side = std::pow(amplitude * n / 8, 2);
        for (int j = 0; j < p.n_mels; ++j) {
            const float* row = fe->mel_weights().data() + size_t(j) * n_bins;
            const double mel = row[k0] * peak + row[k0 - 1] * side + row[k0 + 1] * side;
            // Float32 FFT leakage into the other bins is ~1e-6 of the peak power: compare the
            // powers with an absolute floor of 1e-3 (peak power here is 4096 at k0 = 64).
            const double got = std::exp(double(out[j])) - p.log_offset;
            EXPECT_NEAR(got, mel, 1e-3 + 1e-5 * mel) << "tone bin " << k0 << " filter " << j;
        }
    }
}

TEST(Frontend, FrameCount) {
    FrontendParams p = frontend_default_params();  // n_fft 512, hop 250
    EXPECT_EQ(Frontend::frame_count(p, 0), 0u);
    EXPECT_EQ(Frontend::frame_count(p, 511), 0u);
    EXPECT_EQ(Frontend::frame_count(p, 512), 1u);
    EXPECT_EQ(Frontend::frame_count(p, 761), 1u);
    EXPECT_EQ(Frontend::frame_count(p, 762), 2u);
    EXPECT_EQ(Frontend::frame_count(p, 16000), 62u);  // 1 s = one 62-frame model patch
    EXPECT_EQ(Frontend::frame_count(p, 16000 * 60), 3838u);
    auto fe = make_frontend(p);
    ASSERT_TRUE(fe);
    std::vector<float> pcm(761, 0.1f);
    EXPECT_EQ(fe->compute(pcm.data(), 511).size(), 0u);
    EXPECT_EQ(fe->compute(pcm.data(), 761).size(), size_t(p.n_mels));
}

TEST(Frontend, ComputeEqualsFrameByFrame) {
    Golden g;
    ASSERT_NO_FATAL_FAILURE(load_golden(&g));
    auto fe = make_frontend(g.params);
    ASSERT_TRUE(fe);
    const auto all = fe->compute(g.pcm.data(), g.pcm.size());
    std::vector<float> out(g.params.n_mels);
    for (size_t t = 0; t < g.n_frames; t += 7) {
        fe->compute_frame(g.pcm.data() + t * g.params.hop_length, out.data());
        for (int j = 0; j < g.params.n_mels; ++j) {
            ASSERT_EQ(out[j], all[t * g.params.n_mels + j]) << "frame " << t << " mel " << j;
        }
    }
}

TEST(Frontend, RejectsBadParameters) {
    struct Case {
        const char* what;
        void (*edit)(FrontendParams*);
        const char* needle;
    };
    const Case cases[] = {
        {"rate 0", [](FrontendParams* p) { p->sample_rate_hz = 0; }, "sample_rate_hz"},
        {"odd fft", [](FrontendParams* p) { p->n_fft = 511; }, "n_fft 511 must be even"},
        {"tiny fft", [](FrontendParams* p) { p->n_fft = 2; }, "n_fft 2"},
        {"hop 0", [](FrontendParams* p) { p->hop_length = 0; }, "hop_length 0"},
        {"hop > fft", [](FrontendParams* p) { p->hop_length = 513; }, "hop_length 513"},
        {"mels 0", [](FrontendParams* p) { p->n_mels = 0; }, "n_mels 0"},
        {"mels > bins", [](FrontendParams* p) { p->n_mels = 258; }, "n_mels 258"},
        {"fmin < 0", [](FrontendParams* p) { p->f_min_hz = -1.0f; }, "f_min_hz"},
        {"fmin >= fmax", [](FrontendParams* p) { p->f_min_hz = 7500.0f; }, "f_min_hz"},
        {"fmax > nyquist", [](FrontendParams* p) { p->f_max_hz = 8001.0f; }, "f_max_hz"},
        {"fmax nan", [](FrontendParams* p) { p->f_max_hz = NAN; }, "f_max_hz"},
        {"offset 0", [](FrontendParams* p) { p->log_offset = 0.0f; }, "log_offset"},
        {"offset inf", [](FrontendParams* p) { p->log_offset = INFINITY; }, "log_offset"},
    };
    for (const Case& c : cases) {
        FrontendParams p = frontend_default_params();
        c.edit(&p);
        const auto fe = Frontend::create(p);
        ASSERT_FALSE(fe.is_ok()) << c.what;
        EXPECT_NE(fe.message().find(c.needle), std::string::npos) << c.what << ": " << fe.message();
    }
    EXPECT_TRUE(Frontend::create(frontend_default_params()).is_ok());
}

// The mel table (n_mels x (n_fft/2+1) floats) is sized from model metadata: n_fft is capped at
// 16384 and n_mels at 1024 (32 MiB at most), where 65536 x 32769 would ask for 8 GiB.
TEST(Frontend, CapsWhatMetadataCanMakeItAllocate) {
    nlohmann::json meta = {{"sample_rate_hz", 16000}, {"n_fft", 65536}, {"hop_length", 250},
                           {"n_mels", 32769},         {"f_min_hz", 125.0}, {"f_max_hz", 7500.0},
                           {"log_offset", 1e-6}};
    const auto huge = frontend_params_from_meta(meta);
    ASSERT_FALSE(huge.is_ok());
    EXPECT_NE(huge.message().find("n_fft 65536"), std::string::npos) << huge.message();
    meta["n_fft"] = 16384;  // the largest accepted
    meta["n_mels"] = 4096;  // within n_fft/2+1 = 8193, over the cap
    const auto many_mels = frontend_params_from_meta(meta);
    ASSERT_FALSE(many_mels.is_ok());
    EXPECT_NE(many_mels.message().find("n_mels 4096"), std::string::npos) << many_mels.message();

    FrontendParams p = frontend_default_params();
    p.n_fft = 32768;  // a 1-band table would be small, but the frame is over the cap
    const auto fe = Frontend::create(p);
    ASSERT_FALSE(fe.is_ok());
    EXPECT_NE(fe.message().find("n_fft 32768"), std::string::npos) << fe.message();
    p.n_fft = 16384;
    p.n_mels = 1024;
    const auto largest = Frontend::create(p);
    ASSERT_TRUE(largest.is_ok()) << largest.message();
    EXPECT_EQ(largest.value()->mel_weights().size(), size_t(1024) * 8193);
}

TEST(Frontend, ParamsFromMeta) {
    nlohmann::json meta = {{"sample_rate_hz", 16000}, {"n_fft", 512},
                           {"hop_length", 250},       {"n_mels", 64},
                           {"f_min_hz", 125},         {"f_max_hz", 7500.0},
                           {"log_offset", 1e-6},      {"name", "whatever"}};
    const auto ok = frontend_params_from_meta(meta);
    ASSERT_TRUE(ok.is_ok()) << ok.message();
    EXPECT_EQ(ok->hop_length, 250);
    EXPECT_EQ(ok->f_min_hz, 125.0f);
    EXPECT_EQ(ok->log_offset, 1e-6f);

    auto missing = meta;
    missing.erase("n_mels");
    EXPECT_NE(frontend_params_from_meta(missing).message().find("lacks 'n_mels'"),
              std::string::npos);
    auto wrong_type = meta;
    wrong_type["n_fft"] = "512";
    EXPECT_NE(frontend_params_from_meta(wrong_type).message().find("'n_fft' must be an integer"),
              std::string::npos);
    auto fractional = meta;
    fractional["hop_length"] = 250.5;
    EXPECT_FALSE(frontend_params_from_meta(fractional).is_ok());
    auto huge = meta;
    huge["sample_rate_hz"] = uint64_t(1) << 40;
    EXPECT_NE(frontend_params_from_meta(huge).message().find("out of range"), std::string::npos);
    auto bad_float = meta;
    bad_float["f_max_hz"] = nullptr;
    EXPECT_NE(frontend_params_from_meta(bad_float).message().find("'f_max_hz' must be a number"),
              std::string::npos);
    auto out_of_range = meta;
    out_of_range["f_max_hz"] = 9000;
    EXPECT_FALSE(frontend_params_from_meta(out_of_range).is_ok());
    EXPECT_FALSE(frontend_params_from_meta(nlohmann::json::array()).is_ok());
}

TEST(Frontend, ParamsFromModelFileWhenPresent) {
    // models/random-init-v0.emod's metadata JSON (read without the model loader: the metadata
    // starts at byte 32 and is meta_bytes long, DESIGN.md section 4).
    const auto bytes = read_bytes(std::string(EARSHOT_MODELS_DIR) + "/random-init-v0.emod");
    if (bytes.size() < 64) GTEST_SKIP() << "models/random-init-v0.emod not present";
    uint32_t meta_bytes = 0;
    std::memcpy(&meta_bytes, bytes.data() + 16, 4);
    ASSERT_LE(32u + meta_bytes, bytes.size());
    const auto meta =
        nlohmann::json::parse(bytes.begin() + 32, bytes.begin() + 32 + meta_bytes, nullptr, false);
    ASSERT_TRUE(meta.is_object());
    const auto p = frontend_params_from_meta(meta);
    ASSERT_TRUE(p.is_ok()) << p.message();
    const FrontendParams d = frontend_default_params();  // v1 models use the defaults
    EXPECT_EQ(p->sample_rate_hz, d.sample_rate_hz);
    EXPECT_EQ(p->n_fft, d.n_fft);
    EXPECT_EQ(p->hop_length, d.hop_length);
    EXPECT_EQ(p->n_mels, d.n_mels);
    EXPECT_EQ(p->f_min_hz, d.f_min_hz);
    EXPECT_EQ(p->f_max_hz, d.f_max_hz);
    EXPECT_EQ(p->log_offset, d.log_offset);
}

}  // namespace
}  // namespace earshot
