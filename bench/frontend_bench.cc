// Front-end throughput: seconds of 16 kHz audio turned into log-mel frames per second of CPU.
// Counter `audio_s_per_cpu_s` is the real-time factor's inverse (higher is faster).
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/frontend.h"

namespace earshot {
namespace {

std::vector<float> test_signal(size_t n_samples, int sample_rate_hz) {
    std::mt19937 rng(7);
    std::normal_distribution<float> noise(0.0f, 0.01f);
    std::vector<float> pcm(n_samples);
    for (size_t i = 0; i < n_samples; ++i) {
        const double t = double(i) / sample_rate_hz;
        pcm[i] = float(0.3 * std::sin(2 * 3.14159265358979 * 440.0 * t)) + noise(rng);
    }
    return pcm;
}

// Whole-signal compute() on state.range(0) seconds (includes the output allocation).
void BM_FrontendCompute(benchmark::State& state) {
    const FrontendParams params = frontend_default_params();
    auto fe = Frontend::create(params);
    if (!fe) {
        state.SkipWithError(fe.message().c_str());
        return;
    }
    const double seconds = double(state.range(0));
    const auto pcm = test_signal(size_t(seconds * params.sample_rate_hz), params.sample_rate_hz);
    for (auto _ : state) {
        auto out = fe.value()->compute(pcm.data(), pcm.size());
        benchmark::DoNotOptimize(out.data());
    }
    state.counters["audio_s_per_cpu_s"] =
        benchmark::Counter(seconds * state.iterations(), benchmark::Counter::kIsRate);
    state.counters["frames"] = double(Frontend::frame_count(params, pcm.size()));
}
BENCHMARK(BM_FrontendCompute)->Arg(1)->Arg(10)->Unit(benchmark::kMillisecond);

// One frame (n_fft 512, 64 mels) on the streaming path: no allocation.
void BM_FrontendFrame(benchmark::State& state) {
    const FrontendParams params = frontend_default_params();
    auto fe = Frontend::create(params);
    if (!fe) {
        state.SkipWithError(fe.message().c_str());
        return;
    }
    const auto pcm = test_signal(size_t(params.n_fft), params.sample_rate_hz);
    std::vector<float> out(size_t(params.n_mels));
    for (auto _ : state) {
        fe.value()->compute_frame(pcm.data(), out.data());
        benchmark::DoNotOptimize(out.data());
    }
    // Each frame advances hop_length samples of audio.
    state.counters["audio_s_per_cpu_s"] =
        benchmark::Counter(double(params.hop_length) / params.sample_rate_hz * state.iterations(),
                           benchmark::Counter::kIsRate);
}
BENCHMARK(BM_FrontendFrame);

}  // namespace
}  // namespace earshot
