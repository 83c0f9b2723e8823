// Log-mel front-end (docs/DESIGN.md section 2). Per frame: window (n_fft floats) -> kiss_fftr
// (n_fft/2+1 complex bins, unnormalised) -> power -> sparse mel sums -> ln(. + log_offset).
// All buffers are sized in create(); compute_frame() does not allocate.
#include "core/frontend.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "core/json_read.h"
#include "kiss_fftr.h"

namespace earshot {
namespace {

constexpr double kPi = 3.14159265358979323846;
// Caps on what model metadata may ask for: the mel table is n_mels x (n_fft/2+1) floats, at most
// 1024 x 8193 (32 MiB), and a frame at the highest rate stays longer than 40 ms.
constexpr int kMinFft = 16;
constexpr int kMaxFft = 1 << 14;
constexpr int kMaxMels = 1024;
constexpr int kMinSampleRateHz = 1000;
constexpr int kMaxSampleRateHz = 384000;

double hz_to_mel(double hz) { return 2595.0 * std::log10(1.0 + hz / 700.0); }
double mel_to_hz(double mel) { return 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0); }

Status validate(const FrontendParams& p) {
    auto bad = [](const std::string& m) { return Status::error("front-end parameters: " + m); };
    if (p.sample_rate_hz < kMinSampleRateHz || p.sample_rate_hz > kMaxSampleRateHz) {
        return bad("sample_rate_hz " + std::to_string(p.sample_rate_hz) + " is outside [" +
                   std::to_string(kMinSampleRateHz) + ", " + std::to_string(kMaxSampleRateHz) +
                   "]");
    }
    // kiss_fftr needs an even size; the bounds keep tables small and frames meaningful.
    if (p.n_fft < kMinFft || p.n_fft > kMaxFft || p.n_fft % 2 != 0) {
        return bad("n_fft " + std::to_string(p.n_fft) + " must be even and in [" +
                   std::to_string(kMinFft) + ", " + std::to_string(kMaxFft) + "]");
    }
    // A hop longer than the frame would silently skip audio.
    if (p.hop_length < 1 || p.hop_length > p.n_fft) {
        return bad("hop_length " + std::to_string(p.hop_length) +
                   " must be in [1, n_fft=" + std::to_string(p.n_fft) + "]");
    }
    const int n_bins = p.n_fft / 2 + 1;
    if (p.n_mels < 1 || p.n_mels > n_bins || p.n_mels > kMaxMels) {
        return bad("n_mels " + std::to_string(p.n_mels) + " must be in [1, min(n_fft/2+1=" +
                   std::to_string(n_bins) + ", " + std::to_string(kMaxMels) + ")]");
    }
    const double nyquist_hz = p.sample_rate_hz / 2.0;
    if (!std::isfinite(p.f_min_hz) || !std::isfinite(p.f_max_hz) || p.f_min_hz < 0.0f ||
        p.f_min_hz >= p.f_max_hz || p.f_max_hz > nyquist_hz) {
        return bad("need 0 <= f_min_hz < f_max_hz <= sample_rate_hz/2, got f_min_hz " +
                   std::to_string(p.f_min_hz) + ", f_max_hz " + std::to_string(p.f_max_hz) +
                   ", sample_rate_hz/2 " + std::to_string(nyquist_hz));
    }
    // ln(0) = -inf on silent frames without a positive offset.
    if (!std::isfinite(p.log_offset) || !(p.log_offset > 0.0f)) {
        return bad("log_offset must be finite and > 0, got " + std::to_string(p.log_offset));
    }
    return Status::ok();
}

}  // namespace

struct Frontend::Impl {
    kiss_fftr_cfg fft = nullptr;
    std::vector<float> window;            // n_fft, periodic Hann
    std::vector<float> windowed;          // n_fft, FFT input
    std::vector<kiss_fft_cpx> spectrum;   // n_fft/2+1 complex bins
    std::vector<float> power;             // n_fft/2+1, re^2 + im^2
    std::vector<int> mel_begin, mel_end;  // per filter: bins [begin, end) with non-zero weight

    ~Impl() {
        if (fft) kiss_fftr_free(fft);
    }
};

FrontendParams frontend_default_params() { return FrontendParams(); }

Result<FrontendParams> frontend_params_from_meta(const nlohmann::json& meta) {
    if (!meta.is_object()) return Status::error("model metadata is not a JSON object");
    FrontendParams p;
    // Any int is read here; validate() then checks each against its own range.
    const int lo = std::numeric_limits<int>::min(), hi = std::numeric_limits<int>::max();
    const std::string where = "model metadata";
    Status s;
    if (!(s = json_read_int(meta, "sample_rate_hz", lo, hi, where, &p.sample_rate_hz)) ||
        !(s = json_read_int(meta, "n_fft", lo, hi, where, &p.n_fft)) ||
        !(s = json_read_int(meta, "hop_length", lo, hi, where, &p.hop_length)) ||
        !(s = json_read_int(meta, "n_mels", lo, hi, where, &p.n_mels)) ||
        !(s = json_read_float(meta, "f_min_hz", where, &p.f_min_hz)) ||
        !(s = json_read_float(meta, "f_max_hz", where, &p.f_max_hz)) ||
        !(s = json_read_float(meta, "log_offset", where, &p.log_offset))) {
        return s;
    }
    if (!(s = validate(p))) return s;
    return p;
}

Result<std::unique_ptr<Frontend>> Frontend::create(const FrontendParams& params) {
    Status s = validate(params);
    if (!s) return s;
    std::unique_ptr<Frontend> fe(new Frontend());
    fe->params_ = params;
    fe->impl_.reset(new Impl());
    Impl& impl = *fe->impl_;
    const int n_fft = params.n_fft;
    const int n_bins = n_fft / 2 + 1;
    impl.fft = kiss_fftr_alloc(n_fft, 0, nullptr, nullptr);
    if (!impl.fft)
        return Status::error("KissFFT could not allocate an FFT of size " + std::to_string(n_fft));
    impl.window.resize(n_fft);
    for (int n = 0; n < n_fft; ++n)
        impl.window[n] = float(0.5 - 0.5 * std::cos(2.0 * kPi * n / n_fft));
    impl.windowed.assign(n_fft, 0.0f);
    impl.spectrum.resize(n_bins);
    impl.power.assign(n_bins, 0.0f);

    // HTK mel filterbank in double, stored as float (n_mels x n_bins, row-major).
    const int n_mels = params.n_mels;
    const double mel_lo = hz_to_mel(params.f_min_hz);
    const double mel_hi = hz_to_mel(params.f_max_hz);
    std::vector<double> edges_hz(n_mels + 2);
    for (int i = 0; i < n_mels + 2; ++i) {
        edges_hz[i] = mel_to_hz(mel_lo + (mel_hi - mel_lo) * i / (n_mels + 1));
    }
    fe->mel_weights_.assign(size_t(n_mels) * n_bins, 0.0f);
    impl.mel_begin.assign(n_mels, 0);
    impl.mel_end.assign(n_mels, 0);
    for (int j = 0; j < n_mels; ++j) {
        const double lo = edges_hz[j], c = edges_hz[j + 1], hi = edges_hz[j + 2];
        int begin = n_bins, end = 0;
        for (int k = 0; k < n_bins; ++k) {
            const double f = double(k) * params.sample_rate_hz / n_fft;
            const double w = std::max(0.0, std::min((f - lo) / (c - lo), (hi - f) / (hi - c)));
            const float wf = float(w);
            fe->mel_weights_[size_t(j) * n_bins + k] = wf;
            if (wf != 0.0f) {
                begin = std::min(begin, k);
                end = k + 1;
            }
        }
        // A filter narrower than one bin has no weights: its output is ln(log_offset).
        impl.mel_begin[j] = begin < end ? begin : 0;
        impl.mel_end[j] = begin < end ? end : 0;
    }
    return fe;
}

Frontend::~Frontend() = default;

void Frontend::compute_frame(const float* frame, float* out) {
    Impl& impl = *impl_;
    const int n_fft = params_.n_fft;
    const int n_bins = n_fft / 2 + 1;
    for (int n = 0; n < n_fft; ++n) impl.windowed[n] = frame[n] * impl.window[n];
    kiss_fftr(impl.fft, impl.windowed.data(), impl.spectrum.data());
    for (int k = 0; k < n_bins; ++k) {
        const float re = impl.spectrum[k].r, im = impl.spectrum[k].i;
        impl.power[k] = re * re + im * im;
    }
    const float* weights = mel_weights_.data();
    for (int j = 0; j < params_.n_mels; ++j) {
        const float* row = weights + size_t(j) * n_bins;
        float sum = 0.0f;
        for (int k = impl.mel_begin[j]; k < impl.mel_end[j]; ++k) sum += row[k] * impl.power[k];
        out[j] = std::log(sum + params_.log_offset);
    }
}

size_t Frontend::frame_count(const FrontendParams& params, size_t n_samples) {
    if (params.n_fft <= 0 || params.hop_length <= 0 || n_samples < size_t(params.n_fft)) return 0;
    return 1 + (n_samples - size_t(params.n_fft)) / size_t(params.hop_length);
}

std::vector<float> Frontend::compute(const float* pcm, size_t n_samples) {
    const size_t n_frames = frame_count(params_, n_samples);
    std::vector<float> out(n_frames * size_t(params_.n_mels));
    for (size_t t = 0; t < n_frames; ++t) {
        compute_frame(pcm + t * size_t(params_.hop_length), out.data() + t * params_.n_mels);
    }
    return out;
}

}  // namespace earshot
