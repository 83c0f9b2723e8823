// Embedding network speed, single-threaded, on the shipped model (EARSHOT_SHIPPED_MODEL: the
// network the recognizer runs) or the file named by $EARSHOT_BENCH_MODEL (for example
// models/random-init-v0.emod, the narrower v1 architecture):
//   BM_Embed/<backend>           embeddings per second and GFLOP/s of the whole network;
//   BM_Conv2dLayer/<layer>/<k>   one conv layer with kernel k = 0 scalar, 1 vec128, 2 XNNPACK;
//   BM_Gemm4x8                   the vec128 micro-kernel alone on the v1 conv2 GEMM shape.
// Counters: `embeddings_per_s`, `GFLOP_per_s` (multiply-add = 2 FLOP).
#include <benchmark/benchmark.h>
#include <xnnpack.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/kernels.h"
#include "core/model.h"
#include "core/native/xnnpack_embedder.h"

namespace earshot {
namespace {

std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// Loaded once; nullptr (with the reason in `error`) if the model file is unusable.
std::shared_ptr<const Model> bench_model(std::string* error) {
    static std::string load_error;
    static std::shared_ptr<const Model> model = [] {
        const char* env = std::getenv("EARSHOT_BENCH_MODEL");
        const std::string path = env && *env ? env : std::string(EARSHOT_SHIPPED_MODEL);
        const std::vector<uint8_t> bytes = read_file(path);
        auto loaded = Model::load(bytes.data(), bytes.size(), path);
        if (!loaded) load_error = loaded.message();
        return loaded ? loaded.value() : nullptr;
    }();
    *error = load_error;
    return model;
}

std::vector<float> random_floats(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

void set_flop_counters(benchmark::State& state, double flops_per_iteration) {
    state.counters["GFLOP_per_s"] = benchmark::Counter(
        flops_per_iteration * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_Embed(benchmark::State& state) {
    std::string error;
    auto model = bench_model(&error);
    if (!model) return state.SkipWithError(error.c_str());
    const Backend backend = Backend(state.range(0));
    auto embedder = create_embedder_any(model, backend);
    if (!embedder) return state.SkipWithError(embedder.message().c_str());
    const ModelInfo& info = model->info();
    const auto patch = random_floats(size_t(info.context_frames) * info.frontend.n_mels, 1);
    std::vector<float> out(size_t(info.embedding_dim));
    for (auto _ : state) {
        (*embedder)->embed(patch.data(), out.data());
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetLabel(backend_name(backend));
    state.counters["embeddings_per_s"] =
        benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
    set_flop_counters(state, info.flops_per_embedding);
}
BENCHMARK(BM_Embed)
    ->ArgName("backend")
    ->Arg(int(Backend::kScalar))
    ->Arg(int(Backend::kSimd))
    ->Arg(int(Backend::kXnnpack))
    ->Unit(benchmark::kMicrosecond);

void BM_Conv2dLayer(benchmark::State& state) {
    std::string error;
    auto model = bench_model(&error);
    if (!model) return state.SkipWithError(error.c_str());
    const size_t index = size_t(state.range(0));
    const int kernel = int(state.range(1));
    if (index >= model->layers().size() || model->layers()[index].type != Layer::Type::kConv2d) {
        return state.SkipWithError("not a conv2d layer of the model");
    }
    const Layer& l = model->layers()[index];
    Conv2dShape s;
    s.in_h = l.in_h, s.in_w = l.in_w, s.in_c = l.in;
    s.out_h = l.out_h, s.out_w = l.out_w, s.out_c = l.out;
    s.kernel_h = l.kernel_h, s.kernel_w = l.kernel_w;
    s.stride_h = l.stride_h, s.stride_w = l.stride_w, s.pad_h = l.pad_h, s.pad_w = l.pad_w;
    // + 4 floats: XNNPACK may read XNN_EXTRA_BYTES past its input.
    const auto in = random_floats(size_t(s.in_h) * s.in_w * s.in_c + 4, 2);
    std::vector<float> out(s.out_pixels() * s.out_c + 4);
    std::vector<float> packed(packed_gemm_weights_size(s.out_c, s.patch_size()));
    pack_gemm_weights(s.out_c, s.patch_size(), l.weight.data(), l.bias.data(), packed.data());
    std::vector<float> cols(s.out_pixels() * s.patch_size());
    xnn_operator_t op = nullptr;
    if (kernel == 2) {
        if (xnn_initialize(nullptr) != xnn_status_success ||
            xnn_create_convolution2d_nhwc_f32(l.pad_h, l.pad_w, l.pad_h, l.pad_w, l.kernel_h,
                                              l.kernel_w, l.stride_h, l.stride_w, 1, 1, 1, l.in,
                                              l.out, l.in, l.out, l.weight.data(), l.bias.data(),
                                              0.0f, INFINITY, 0, &op) != xnn_status_success ||
            xnn_setup_convolution2d_nhwc_f32(op, 1, l.in_h, l.in_w, in.data(), out.data(),
                                             nullptr) != xnn_status_success) {
            if (op) xnn_delete_operator(op);
            return state.SkipWithError("XNNPACK convolution setup failed");
        }
    }
    for (auto _ : state) {
        switch (kernel) {
            case 0:
                conv2d_nhwc__scalar(s, in.data(), l.weight.data(), l.bias.data(), true, out.data());
                break;
            case 1:
                conv2d_nhwc__vec128(s, in.data(), packed.data(), true, cols.data(), out.data());
                break;
            default:
                xnn_run_operator(op, nullptr);
                break;
        }
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    if (op) xnn_delete_operator(op);
    static const char* kKernels[] = {"conv2d_nhwc__scalar", "conv2d_nhwc__vec128", "xnnpack"};
    state.SetLabel(l.name + " " + std::to_string(s.in_h) + "x" + std::to_string(s.in_w) + "x" +
                   std::to_string(s.in_c) + "->" + std::to_string(s.out_c) + " " +
                   kKernels[kernel]);
    set_flop_counters(state, 2.0 * double(s.out_pixels()) * s.out_c * double(s.patch_size()));
}
BENCHMARK(BM_Conv2dLayer)
    ->ArgNames({"layer", "kernel"})
    ->ArgsProduct({{0, 1, 2, 3, 4}, {0, 1, 2}})
    ->Unit(benchmark::kMicrosecond);

// gemm__vec128_4x8 alone on the v1 conv2 GEMM: M = 256 pixels, N = 48, K = 3*3*24 = 216.
void BM_Gemm4x8(benchmark::State& state) {
    const size_t m = 256, n = 48, k = 216;
    const auto a = random_floats(m * k, 3);
    const auto w = random_floats(n * k, 4);
    const auto b = random_floats(n, 5);
    std::vector<float> packed(packed_gemm_weights_size(n, k)), c(m * n);
    pack_gemm_weights(n, k, w.data(), b.data(), packed.data());
    for (auto _ : state) {
        for (size_t m0 = 0; m0 < m; m0 += 4) {
            gemm__vec128_4x8(4, n, k, a.data() + m0 * k, k, packed.data(), c.data() + m0 * n, n,
                             true);
        }
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    set_flop_counters(state, 2.0 * m * n * k);
}
BENCHMARK(BM_Gemm4x8)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace earshot
