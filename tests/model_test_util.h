// Test helpers shared by tests/model_test.cc, tests/embedder_test.cc and
// tests/native/xnnpack_test.cc: small models written with ContainerWriter, the random-init v1
// model, realistic log-mel patches.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/container.h"
#include "core/frontend.h"
#include "core/model.h"

namespace earshot {
namespace test {

inline constexpr double kMinCosine = 0.99999;  // DESIGN.md section 3 parity floor
inline constexpr double kPi = 3.14159265358979323846;

// A model under construction: metadata plus tensors, written with ContainerWriter.
struct ModelSpec {
    nlohmann::json meta;
    struct Tensor {
        std::string name;
        DType dtype;
        std::vector<uint32_t> shape;
        std::vector<float> values;  // f32 payload (other dtypes: reinterpreted bytes)
    };
    std::vector<Tensor> tensors;

    Tensor* find(const std::string& name) {
        for (Tensor& t : tensors) {
            if (t.name == name) return &t;
        }
        return nullptr;
    }
    std::vector<uint8_t> build(const std::string& kind = "MODL") const {
        ContainerWriter writer(kind, meta);
        for (const Tensor& t : tensors) {
            size_t n = 1;
            for (uint32_t d : t.shape) n *= d;
            writer.add(t.name, t.dtype, t.shape, t.values.data(), n * dtype_size(t.dtype));
        }
        return writer.finish();
    }
};

inline nlohmann::json base_meta(int context_frames, int embedding_dim) {
    nlohmann::json meta = {{"format", "earshot-model"},
                           {"model_version", 1},
                           {"name", "tiny-test"},
                           {"sample_rate_hz", 16000},
                           {"n_fft", 512},
                           {"hop_length", 250},
                           {"n_mels", 64},
                           {"f_min_hz", 125.0},
                           {"f_max_hz", 7500.0},
                           {"log_offset", 1e-6},
                           {"context_frames", context_frames},
                           {"hop_frames", 32},
                           {"embedding_dim", embedding_dim},
                           {"input_norm", "patch_mean"}};
    return meta;
}

inline nlohmann::json conv_layer(const std::string& name, int in, int out, int kh, int kw, int sh,
                                 int sw, int ph, int pw, bool relu) {
    return {{"type", "conv2d"}, {"name", name},   {"in", in},       {"out", out},
            {"kernel_h", kh},   {"kernel_w", kw}, {"stride_h", sh}, {"stride_w", sw},
            {"pad_h", ph},      {"pad_w", pw},    {"relu", relu}};
}

inline std::vector<float> random_values(size_t n, std::mt19937& rng, float scale) {
    std::normal_distribution<float> dist(0.0f, scale);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

// 5 frames x 64 mels -> conv 3x3/2 (1->3) -> 3x32x3 -> conv 3x2 stride 1x2 pad 1x0 (3->5)
// -> 3x16x5 = 240 -> dense 240->6 -> l2norm. Odd channel counts on purpose.
inline ModelSpec tiny_model(uint32_t seed = 7) {
    std::mt19937 rng(seed);
    ModelSpec spec;
    spec.meta = base_meta(5, 6);
    spec.meta["layers"] = {
        conv_layer("conv1", 1, 3, 3, 3, 2, 2, 1, 1, true),
        conv_layer("conv2", 3, 5, 3, 2, 1, 2, 1, 0, true),
        {{"type", "dense"}, {"name", "fc"}, {"in", 240}, {"out", 6}, {"relu", false}},
        {{"type", "l2norm"}}};
    spec.tensors = {
        {"conv1.weight", DType::kF32, {3, 3, 3, 1}, random_values(27, rng, 0.5f)},
        {"conv1.bias", DType::kF32, {3}, random_values(3, rng, 0.1f)},
        {"conv2.weight", DType::kF32, {5, 3, 2, 3}, random_values(90, rng, 0.3f)},
        {"conv2.bias", DType::kF32, {5}, random_values(5, rng, 0.1f)},
        {"fc.weight", DType::kF32, {6, 240}, random_values(1440, rng, 0.1f)},
        {"fc.bias", DType::kF32, {6}, random_values(6, rng, 0.1f)},
    };
    return spec;
}

inline Result<std::shared_ptr<const Model>> load_spec(const ModelSpec& spec) {
    const std::vector<uint8_t> bytes = spec.build();
    return Model::load(bytes.data(), bytes.size(), "tiny.emod");
}

// Expects `result` to be an error whose message contains every one of `parts`.
template <typename T>
void expect_error(const Result<T>& result, std::initializer_list<const char*> parts) {
    ASSERT_FALSE(result.is_ok()) << "expected an error mentioning '" << *parts.begin() << "'";
    for (const char* part : parts) {
        EXPECT_NE(result.message().find(part), std::string::npos)
            << "message \"" << result.message() << "\" lacks \"" << part << "\"";
    }
}

inline double cosine(const std::vector<float>& a, const std::vector<float>& b) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        ab += double(a[i]) * b[i];
        aa += double(a[i]) * a[i];
        bb += double(b[i]) * b[i];
    }
    if (aa == 0 && bb == 0) return 1.0;  // both all-zero (e.g. ReLU before l2norm): equal
    return ab / std::sqrt(aa * bb);
}

inline std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

inline std::shared_ptr<const Model> load_random_init() {
    const std::string path = std::string(EARSHOT_MODELS_DIR) + "/random-init-v0.emod";
    const std::vector<uint8_t> bytes = read_file(path);
    auto model = Model::load(bytes.data(), bytes.size(), path);
    EXPECT_TRUE(model.is_ok()) << model.message();
    return model.is_ok() ? *model : nullptr;
}

// Log-mel patches of synthetic music-like audio (harmonic notes with vibrato over noise),
// through the real front-end: the value range and correlations the network sees in use.
inline std::vector<std::vector<float>> log_mel_patches(const ModelInfo& info, int n_patches) {
    const FrontendParams& p = info.frontend;
    auto frontend = Frontend::create(p);
    EXPECT_TRUE(frontend.is_ok()) << frontend.message();
    if (!frontend.is_ok()) return {};
    const size_t n_samples = size_t(p.sample_rate_hz) * 4;
    std::vector<float> pcm(n_samples);
    std::mt19937 rng(9);
    std::normal_distribution<float> noise(0.0f, 0.01f);
    const double notes_hz[] = {220.0, 277.18, 329.63, 440.0, 392.0, 246.94};
    for (size_t i = 0; i < n_samples; ++i) {
        const double t = double(i) / p.sample_rate_hz;
        const double f0 = notes_hz[size_t(t * 3.0) % 6] * (1.0 + 0.003 * std::sin(2 * kPi * 5 * t));
        double v = 0;
        for (int h = 1; h <= 8; ++h) v += std::sin(2 * kPi * f0 * h * t) / h;
        const double envelope = 0.6 + 0.4 * std::cos(2 * kPi * 3.0 * t);
        pcm[i] = float(0.2 * envelope * v) + noise(rng);
    }
    const std::vector<float> frames = (*frontend)->compute(pcm.data(), pcm.size());
    const size_t n_frames = frames.size() / p.n_mels;
    const size_t patch_floats = size_t(info.context_frames) * p.n_mels;
    std::vector<std::vector<float>> patches;
    for (int k = 0; k < n_patches; ++k) {
        const size_t start = (n_frames - info.context_frames) * k / std::max(1, n_patches - 1);
        patches.emplace_back(frames.begin() + start * p.n_mels,
                             frames.begin() + start * p.n_mels + patch_floats);
    }
    return patches;
}

}  // namespace test
}  // namespace earshot
