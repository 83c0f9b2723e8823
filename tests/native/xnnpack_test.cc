// XNNPACK backend (core/native/xnnpack_embedder.cc) against the scalar reference:
// cosine >= 0.99999 per embedding (docs/DESIGN.md section 3) on odd-shaped small models, on the
// v1 random-init model with random and log-mel patches; plus the native factory.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/native/xnnpack_embedder.h"
#include "tests/model_test_util.h"
#include "tests/native/allocation_counter.h"

namespace earshot {
namespace {

using namespace test;  // NOLINT: test helpers

std::shared_ptr<const Model> load_or_fail(const ModelSpec& spec) {
    const std::vector<uint8_t> bytes = spec.build();
    auto model = Model::load(bytes.data(), bytes.size(), "test.emod");
    EXPECT_TRUE(model.is_ok()) << model.message();
    return model.is_ok() ? *model : nullptr;
}

// Every backend against scalar on `patches`.
void expect_parity(const std::shared_ptr<const Model>& model,
                   const std::vector<std::vector<float>>& patches) {
    const int dim = model->info().embedding_dim;
    auto scalar = create_embedder_any(model, Backend::kScalar);
    ASSERT_TRUE(scalar.is_ok()) << scalar.message();
    for (Backend backend : {Backend::kSimd, Backend::kXnnpack}) {
        auto embedder = create_embedder_any(model, backend);
        ASSERT_TRUE(embedder.is_ok()) << embedder.message();
        EXPECT_EQ((*embedder)->backend(), backend);
        std::vector<float> ref(dim), got(dim);
        for (size_t k = 0; k < patches.size(); ++k) {
            (*scalar)->embed(patches[k].data(), ref.data());
            (*embedder)->embed(patches[k].data(), got.data());
            EXPECT_GE(cosine(ref, got), kMinCosine) << backend_name(backend) << " patch " << k;
        }
    }
}

TEST(Xnnpack, TinyModelMatchesScalar) {
    auto model = load_or_fail(tiny_model());
    ASSERT_TRUE(model);
    std::mt19937 rng(21);
    std::vector<std::vector<float>> patches;
    for (int k = 0; k < 10; ++k) patches.push_back(random_values(5 * 64, rng, 2.0f));
    expect_parity(model, patches);
}

TEST(Xnnpack, PointwiseConvWithoutReluAndWithoutInputNorm) {
    // 4x64 -> 1x1 conv (1->7, no relu) -> conv 2x5 stride 2x3 (7->9, relu) -> dense -> l2norm.
    std::mt19937 rng(22);
    ModelSpec spec;
    spec.meta = base_meta(4, 11);
    spec.meta["input_norm"] = "none";
    spec.meta["layers"] = {
        conv_layer("pw", 1, 7, 1, 1, 1, 1, 0, 0, false),
        conv_layer("c2", 7, 9, 2, 5, 2, 3, 0, 2, true),
        {{"type", "dense"}, {"name", "fc"}, {"in", 2 * 22 * 9}, {"out", 11}, {"relu", true}},
        {{"type", "l2norm"}}};
    spec.tensors = {{"pw.weight", DType::kF32, {7, 1, 1, 1}, random_values(7, rng, 1.0f)},
                    {"pw.bias", DType::kF32, {7}, random_values(7, rng, 0.1f)},
                    {"c2.weight", DType::kF32, {9, 2, 5, 7}, random_values(630, rng, 0.3f)},
                    {"c2.bias", DType::kF32, {9}, random_values(9, rng, 0.1f)},
                    {"fc.weight", DType::kF32, {11, 396}, random_values(11 * 396, rng, 0.1f)},
                    {"fc.bias", DType::kF32, {11}, random_values(11, rng, 0.5f)}};
    auto model = load_or_fail(spec);
    ASSERT_TRUE(model);
    std::vector<std::vector<float>> patches;
    for (int k = 0; k < 10; ++k) patches.push_back(random_values(4 * 64, rng, 1.0f));
    expect_parity(model, patches);
}

TEST(Xnnpack, RandomInitModelMatchesScalarOnRandomAndLogMelPatches) {
    auto model = load_random_init();
    ASSERT_TRUE(model);
    const ModelInfo& info = model->info();
    std::vector<std::vector<float>> patches = log_mel_patches(info, 8);
    ASSERT_EQ(patches.size(), 8u);
    std::mt19937 rng(23);
    for (int k = 0; k < 8; ++k) {
        patches.push_back(
            random_values(size_t(info.context_frames) * info.frontend.n_mels, rng, 3.0f));
    }
    expect_parity(model, patches);
}

TEST(Xnnpack, EmbedIsRepeatableAcrossEmbedders) {
    auto model = load_random_init();
    ASSERT_TRUE(model);
    auto a = create_xnnpack_embedder(model);
    auto b = create_xnnpack_embedder(model);
    ASSERT_TRUE(a.is_ok() && b.is_ok());
    std::mt19937 rng(24);
    const auto patch = random_values(62 * 64, rng, 1.0f);
    const auto other = random_values(62 * 64, rng, 1.0f);
    std::vector<float> first(128), second(128), third(128);
    (*a)->embed(patch.data(), first.data());
    (*a)->embed(other.data(), second.data());
    (*b)->embed(patch.data(), third.data());
    (*a)->embed(patch.data(), second.data());
    EXPECT_EQ(first, second);  // no state carried between calls
    EXPECT_EQ(first, third);   // operators of two embedders do not share buffers
}

TEST(Embedders, EmbedDoesNotAllocate) {
    auto model = load_random_init();
    ASSERT_TRUE(model);
    std::mt19937 rng(25);
    const auto patch = random_values(62 * 64, rng, 1.0f);
    std::vector<float> out(128);
    for (Backend backend : {Backend::kScalar, Backend::kSimd, Backend::kXnnpack}) {
        const size_t at_create = g_allocation_count.load();
        auto embedder = create_embedder_any(model, backend);
        ASSERT_TRUE(embedder.is_ok()) << embedder.message();
        EXPECT_GT(g_allocation_count.load(), at_create);  // the counter sees the buffers
        (*embedder)->embed(patch.data(), out.data());     // warm-up
        const size_t before = g_allocation_count.load();
        for (int i = 0; i < 5; ++i) (*embedder)->embed(patch.data(), out.data());
        EXPECT_EQ(g_allocation_count.load(), before) << backend_name(backend);
    }
}

TEST(Xnnpack, FactoryRejectsNoModel) {
    EXPECT_FALSE(create_xnnpack_embedder(nullptr).is_ok());
    EXPECT_FALSE(create_embedder_any(nullptr, Backend::kXnnpack).is_ok());
}

}  // namespace
}  // namespace earshot
