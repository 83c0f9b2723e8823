// Portable embedders (core/embedder.cc): the scalar reference against a hand-computed network;
// the simd backend against scalar (cosine >= 0.99999 per embedding, docs/DESIGN.md section 3)
// on random and on realistic log-mel patches with models/random-init-v0.emod; backend names.
#include "core/embedder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "tests/model_test_util.h"

namespace earshot {
namespace {

using namespace test;  // NOLINT: test helpers

TEST(Embedder, ScalarMatchesHandComputedNetwork) {
    // 5x64 patch -> 1x1 conv (w=2, b=-1, relu) -> dense 320->2 -> l2norm, no input norm.
    ModelSpec spec;
    spec.meta = base_meta(5, 2);
    spec.meta["input_norm"] = "none";
    spec.meta["layers"] = {
        conv_layer("pw", 1, 1, 1, 1, 1, 1, 0, 0, true),
        {{"type", "dense"}, {"name", "fc"}, {"in", 320}, {"out", 2}, {"relu", false}},
        {{"type", "l2norm"}}};
    std::vector<float> fc_w(2 * 320, 0.0f);
    for (int i = 0; i < 320; ++i) fc_w[i] = 1.0f;  // row 0 sums, row 1 picks element 5
    fc_w[320 + 5] = 1.0f;
    spec.tensors = {{"pw.weight", DType::kF32, {1, 1, 1, 1}, {2.0f}},
                    {"pw.bias", DType::kF32, {1}, {-1.0f}},
                    {"fc.weight", DType::kF32, {2, 320}, fc_w},
                    {"fc.bias", DType::kF32, {2}, {0.0f, 1.0f}}};
    auto model = load_spec(spec);
    ASSERT_TRUE(model.is_ok()) << model.message();
    std::vector<float> patch(320, 0.0f);
    for (int i = 0; i < 320; ++i) patch[i] = (i % 2) ? 1.0f : 0.0f;  // relu(2x-1) = x
    patch[5] = 3.0f;                                                 // relu(2*3-1) = 5
    // fc: row0 = 159 (odd ones except index 5) + 5 = 164; row1 = 5 + 1 = 6.
    const double norm = std::sqrt(164.0 * 164.0 + 6.0 * 6.0);
    for (Backend backend : {Backend::kScalar, Backend::kSimd}) {
        auto embedder = create_embedder(*model, backend);
        ASSERT_TRUE(embedder.is_ok()) << embedder.message();
        EXPECT_EQ((*embedder)->backend(), backend);
        float out[2];
        (*embedder)->embed(patch.data(), out);
        EXPECT_NEAR(out[0], 164.0 / norm, 1e-6) << backend_name(backend);
        EXPECT_NEAR(out[1], 6.0 / norm, 1e-6) << backend_name(backend);
    }
}

TEST(Embedder, XnnpackIsNativeOnly) {
    auto model = load_spec(tiny_model());
    ASSERT_TRUE(model.is_ok());
    auto embedder = create_embedder(*model, Backend::kXnnpack);
    expect_error(embedder, {"native only", "create_xnnpack_embedder"});
    EXPECT_STREQ(backend_name(Backend::kSimd), "simd");
}

TEST(Embedder, TinyModelSimdMatchesScalarAndPatchMeanIsGainInvariant) {
    auto model = load_spec(tiny_model());
    ASSERT_TRUE(model.is_ok()) << model.message();
    auto scalar = create_embedder(*model, Backend::kScalar);
    auto simd = create_embedder(*model, Backend::kSimd);
    ASSERT_TRUE(scalar.is_ok() && simd.is_ok());
    std::mt19937 rng(5);
    for (int trial = 0; trial < 20; ++trial) {
        std::vector<float> patch = random_values(5 * 64, rng, 2.0f);
        std::vector<float> a(6), b(6), shifted(6);
        (*scalar)->embed(patch.data(), a.data());
        (*simd)->embed(patch.data(), b.data());
        EXPECT_GE(cosine(a, b), kMinCosine) << "trial " << trial;
        for (float& v : patch) v += 4.5f;  // a gain change is an offset in log-mel
        (*scalar)->embed(patch.data(), shifted.data());
        EXPECT_GE(cosine(a, shifted), kMinCosine) << "trial " << trial;
    }
}

TEST(Embedder, RandomInitModelSimdMatchesScalarOnRandomAndLogMelPatches) {
    auto model = load_random_init();
    ASSERT_TRUE(model);
    const ModelInfo& info = model->info();
    auto scalar = create_embedder(model, Backend::kScalar);
    auto simd = create_embedder(model, Backend::kSimd);
    ASSERT_TRUE(scalar.is_ok() && simd.is_ok());
    const size_t patch_floats = size_t(info.context_frames) * info.frontend.n_mels;
    std::vector<std::vector<float>> patches = log_mel_patches(info, 8);
    ASSERT_EQ(patches.size(), 8u);
    std::mt19937 rng(6);
    for (int k = 0; k < 8; ++k) patches.push_back(random_values(patch_floats, rng, 3.0f));
    std::vector<float> a(info.embedding_dim), b(info.embedding_dim);
    for (size_t k = 0; k < patches.size(); ++k) {
        ASSERT_EQ(patches[k].size(), patch_floats);
        (*scalar)->embed(patches[k].data(), a.data());
        (*simd)->embed(patches[k].data(), b.data());
        EXPECT_GE(cosine(a, b), kMinCosine) << "patch " << k;
        double norm = 0;
        for (float v : b) norm += double(v) * v;
        EXPECT_NEAR(norm, 1.0, 1e-4) << "patch " << k;
    }
    // Different inputs give different embeddings (the network is not degenerate).
    (*simd)->embed(patches[0].data(), a.data());
    (*simd)->embed(patches[9].data(), b.data());
    EXPECT_LT(cosine(a, b), 0.999);
}

TEST(Embedder, BackendNamesRoundTrip) {
    for (Backend backend : {Backend::kScalar, Backend::kSimd, Backend::kXnnpack}) {
        auto parsed = backend_from_name(backend_name(backend));
        ASSERT_TRUE(parsed.is_ok());
        EXPECT_EQ(parsed.value(), backend);
    }
    auto bad = backend_from_name("gpu");
    ASSERT_FALSE(bad.is_ok());
    EXPECT_NE(bad.message().find("scalar, simd or xnnpack"), std::string::npos) << bad.message();
}

}  // namespace
}  // namespace earshot
