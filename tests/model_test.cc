// Model loader (core/model.cc): metadata/tensor validation with corrupt-input tests, shapes,
// n_params and FLOPs, f16 weights, and models/random-init-v0.emod.
#include "core/model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "core/container.h"
#include "core/embed_signal.h"
#include "core/embedder.h"
#include "core/frontend.h"
#include "core/index.h"
#include "core/recognizer.h"
#include "tests/model_test_util.h"

namespace earshot {
namespace {

using namespace test;  // NOLINT: test helpers

std::string hex(const uint8_t* p, size_t n) {
    std::string s;
    char buf[3];
    for (size_t i = 0; i < n; ++i) {
        std::snprintf(buf, sizeof(buf), "%02x", p[i]);
        s += buf;
    }
    return s;
}

TEST(ModelLoad, TinyModelShapesParamsFlopsHash) {
    const ModelSpec spec = tiny_model();
    const std::vector<uint8_t> bytes = spec.build();
    auto model = Model::load(bytes.data(), bytes.size(), "tiny.emod");
    ASSERT_TRUE(model.is_ok()) << model.message();
    const ModelInfo& info = (*model)->info();
    EXPECT_EQ(info.name, "tiny-test");
    EXPECT_EQ(info.hash_hex, hex(bytes.data() + bytes.size() - 32, 32));
    EXPECT_EQ(info.context_frames, 5);
    EXPECT_EQ(info.embedding_dim, 6);
    EXPECT_EQ(info.frontend.n_mels, 64);
    EXPECT_TRUE(info.input_patch_mean);
    EXPECT_EQ(info.n_params, 27u + 3 + 90 + 5 + 1440 + 6);
    // conv1 3*32 px * 3 out * 9 MAC; conv2 3*16 px * 5 out * 18 MAC; fc 240*6 MAC.
    EXPECT_DOUBLE_EQ(info.flops_per_embedding, 2.0 * (96 * 3 * 9 + 48 * 5 * 18 + 240 * 6));
    const auto& layers = (*model)->layers();
    ASSERT_EQ(layers.size(), 4u);
    EXPECT_EQ(layers[0].out_h, 3);
    EXPECT_EQ(layers[0].out_w, 32);
    EXPECT_EQ(layers[1].in_h, 3);
    EXPECT_EQ(layers[1].out_h, 3);
    EXPECT_EQ(layers[1].out_w, 16);
    EXPECT_EQ(layers[2].type, Layer::Type::kDense);
    EXPECT_EQ(layers[3].type, Layer::Type::kL2Norm);
    EXPECT_EQ(layers[3].out, 6);
}

TEST(ModelLoad, CopiesTheBuffer) {
    std::vector<uint8_t> bytes = tiny_model().build();
    auto model = Model::load(bytes.data(), bytes.size(), "tiny.emod");
    ASSERT_TRUE(model.is_ok()) << model.message();
    std::fill(bytes.begin(), bytes.end(), 0xff);
    bytes.clear();
    bytes.shrink_to_fit();
    auto embedder = create_embedder(*model, Backend::kScalar);
    ASSERT_TRUE(embedder.is_ok());
    std::vector<float> patch(5 * 64, 1.0f), out(6);
    patch[17] = 3.0f;
    (*embedder)->embed(patch.data(), out.data());
    double norm = 0;
    for (float v : out) norm += double(v) * v;
    EXPECT_NEAR(norm, 1.0, 1e-5);
}

TEST(ModelLoad, RejectsTruncatedFiles) {
    const std::vector<uint8_t> bytes = tiny_model().build();
    for (size_t size : {size_t(0), size_t(7), size_t(31), size_t(64), bytes.size() / 2,
                        bytes.size() - 33, bytes.size() - 1}) {
        auto model = Model::load(bytes.data(), size, "tiny.emod");
        EXPECT_FALSE(model.is_ok()) << "accepted a " << size << "-byte prefix";
        EXPECT_NE(model.message().find("tiny.emod"), std::string::npos) << model.message();
    }
}

TEST(ModelLoad, RejectsWrongMagicAndKind) {
    std::vector<uint8_t> bytes = tiny_model().build();
    bytes[0] = 'X';
    expect_error(Model::load(bytes.data(), bytes.size(), "tiny.emod"), {"tiny.emod", "magic"});
    const std::vector<uint8_t> quan = tiny_model().build("QUAN");
    auto model = Model::load(quan.data(), quan.size(), "tiny.emod");
    expect_error(model, {"QUAN"});
}

TEST(ModelLoad, RejectsBitFlips) {
    const std::vector<uint8_t> good = tiny_model().build();
    std::mt19937 rng(11);
    std::uniform_int_distribution<size_t> byte(0, good.size() - 1);
    for (int trial = 0; trial < 200; ++trial) {
        std::vector<uint8_t> bytes = good;
        const size_t at = byte(rng);
        bytes[at] ^= uint8_t(1u << (trial % 8));
        auto model = Model::load(bytes.data(), bytes.size(), "tiny.emod");
        EXPECT_FALSE(model.is_ok()) << "bit flip at byte " << at << " accepted";
    }
}

TEST(ModelLoad, RejectsWrongVersionWithAdvice) {
    ModelSpec spec = tiny_model();
    spec.meta["model_version"] = 3;
    expect_error(load_spec(spec), {"model_version 3", "reads model_version 1 to 2"});
    spec.meta["model_version"] = 0;
    expect_error(load_spec(spec), {"model_version 0", "reads model_version 1 to 2"});
    spec.meta.erase("model_version");
    expect_error(load_spec(spec), {"model_version"});
    spec.meta["model_version"] = "1";
    expect_error(load_spec(spec), {"model_version"});
}

TEST(ModelLoad, RejectsWrongFormat) {
    ModelSpec spec = tiny_model();
    spec.meta["format"] = "earshot-index";
    expect_error(load_spec(spec), {"format", "earshot-model"});
}

TEST(ModelLoad, RejectsWrongShape) {
    ModelSpec spec = tiny_model();
    spec.find("conv2.weight")->shape = {5, 2, 3, 3};  // HW swapped, same element count
    expect_error(load_spec(spec), {"conv2", "shape"});
    spec = tiny_model();
    spec.find("fc.bias")->shape = {2, 3};
    expect_error(load_spec(spec), {"fc.bias", "shape"});
}

TEST(ModelLoad, RejectsMissingTensor) {
    ModelSpec spec = tiny_model();
    spec.tensors.erase(spec.tensors.begin() + 3);  // conv2.bias
    expect_error(load_spec(spec), {"conv2.bias", "missing"});
}

TEST(ModelLoad, RejectsWrongDtype) {
    ModelSpec spec = tiny_model();
    spec.find("conv1.bias")->dtype = DType::kU32;  // same byte size as f32
    expect_error(load_spec(spec), {"conv1.bias", "dtype"});
}

// Stores every weight tensor of `spec` as binary16 (biases stay f32): `halves` gives each
// weight's bit pattern, and the f32 values are replaced by what those bits mean.
ModelSpec with_f16_weights(ModelSpec spec, const std::vector<std::pair<uint16_t, float>>& table) {
    spec.meta["model_version"] = 2;
    size_t next = 0;
    for (ModelSpec::Tensor& t : spec.tensors) {
        if (t.name.size() < 7 || t.name.compare(t.name.size() - 7, 7, ".weight") != 0) continue;
        std::vector<uint16_t> bits(t.values.size());
        for (size_t i = 0; i < bits.size(); ++i, ++next) {
            bits[i] = table[next % table.size()].first;
            t.values[i] = table[next % table.size()].second;
        }
        t.dtype = DType::kF16;
        std::vector<float> packed((bits.size() + 1) / 2, 0.0f);
        std::memcpy(packed.data(), bits.data(), bits.size() * sizeof(uint16_t));
        t.values.swap(packed);
    }
    return spec;
}

// binary16 bit patterns and their exact values (hex float literals, values checked with numpy):
// signed zeros, the smallest subnormal, the largest subnormal, the smallest normal, fractions
// that rounding would change, the largest finite value.
const std::vector<std::pair<uint16_t, float>> kHalves = {
    {0x0000, 0.0f},         {0x8000, -0.0f},        {0x3c00, 1.0f},        {0xc000, -2.0f},
    {0x0001, 0x1p-24f},     {0x03ff, 0x1.ff8p-15f}, {0x0400, 0x1p-14f},    {0x3555, 0x1.554p-2f},
    {0xb0cd, -0x1.334p-3f}, {0x7bff, 65504.0f},     {0x2e66, 0x1.998p-4f}, {0x1d1a, 0x1.468p-8f}};

TEST(ModelLoad, WidensF16WeightsExactly) {
    const ModelSpec f16 = with_f16_weights(tiny_model(), kHalves);
    auto model = load_spec(f16);
    ASSERT_TRUE(model.is_ok()) << model.message();
    EXPECT_EQ((*model)->info().model_version, 2);
    EXPECT_TRUE((*model)->info().f16_weights);
    size_t next = 0;
    for (const Layer& layer : (*model)->layers()) {
        for (float w : layer.weight) {
            const float want = kHalves[next++ % kHalves.size()].second;
            EXPECT_EQ(w, want) << layer.name;
            EXPECT_EQ(std::signbit(w), std::signbit(want)) << layer.name;
        }
    }
    EXPECT_EQ(next, 27u + 90 + 1440);
    EXPECT_EQ((*model)->info().n_params, 27u + 3 + 90 + 5 + 1440 + 6);
    // Infinity and NaN widen as such (the loader stores what the file says).
    auto special =
        load_spec(with_f16_weights(tiny_model(), {{0x7c00, INFINITY}, {0xfc00, -INFINITY}}));
    ASSERT_TRUE(special.is_ok()) << special.message();
    EXPECT_EQ((*special)->layers()[0].weight[0], INFINITY);
    EXPECT_EQ((*special)->layers()[0].weight[1], -INFINITY);
    auto nan = load_spec(with_f16_weights(tiny_model(), {{0x7e00, 0.0f}}));
    ASSERT_TRUE(nan.is_ok()) << nan.message();
    EXPECT_TRUE(std::isnan((*nan)->layers()[0].weight[0]));
}

TEST(ModelLoad, F16WeightsEmbedLikeTheSameF32Weights) {
    // The f32 file holds exactly the values the f16 bits mean, so each backend must give
    // bit-identical embeddings from both files (65504 left out: activations stay finite).
    std::vector<std::pair<uint16_t, float>> moderate;
    for (const auto& half : kHalves) {
        if (std::fabs(half.second) <= 2.0f) moderate.push_back(half);
    }
    auto from_f16 = load_spec(with_f16_weights(tiny_model(), moderate));
    ASSERT_TRUE(from_f16.is_ok()) << from_f16.message();
    ModelSpec f32 = tiny_model();
    size_t next = 0;
    for (ModelSpec::Tensor& t : f32.tensors) {
        if (t.name.find(".weight") == std::string::npos) continue;
        for (float& v : t.values) v = moderate[next++ % moderate.size()].second;
    }
    auto from_f32 = load_spec(f32);
    ASSERT_TRUE(from_f32.is_ok()) << from_f32.message();
    EXPECT_FALSE((*from_f32)->info().f16_weights);
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> patch(5 * 64);
    for (float& v : patch) v = normal(rng);
    for (Backend backend : {Backend::kScalar, Backend::kSimd}) {
        auto a = create_embedder(*from_f16, backend);
        auto b = create_embedder(*from_f32, backend);
        ASSERT_TRUE(a.is_ok() && b.is_ok());
        std::vector<float> out_a(6), out_b(6);
        (*a)->embed(patch.data(), out_a.data());
        (*b)->embed(patch.data(), out_b.data());
        EXPECT_EQ(out_a, out_b) << backend_name(backend);
        EXPECT_TRUE(std::isfinite(out_a[0])) << backend_name(backend);
    }
}

TEST(ModelLoad, RejectsF16WeightsInVersion1AndMixedStorage) {
    ModelSpec spec = with_f16_weights(tiny_model(), kHalves);
    spec.meta["model_version"] = 1;
    expect_error(load_spec(spec), {"conv1.weight", "dtype f16", "expected f32"});
    spec = with_f16_weights(tiny_model(), kHalves);
    ModelSpec plain = tiny_model();
    *spec.find("fc.weight") = *plain.find("fc.weight");  // one layer back to f32
    expect_error(load_spec(spec), {"fc", "mix f16 and f32"});
    spec = with_f16_weights(tiny_model(), kHalves);
    spec.find("conv2.bias")->dtype = DType::kF16;  // biases stay f32
    spec.find("conv2.bias")->values.resize(3);
    expect_error(load_spec(spec), {"conv2.bias", "dtype"});
}

TEST(ModelLoad, RejectsUnexpectedTensor) {
    ModelSpec spec = tiny_model();
    spec.tensors.push_back({"conv9.weight", DType::kF32, {2}, {1.0f, 2.0f}});
    expect_error(load_spec(spec), {"conv9.weight", "unexpected"});
}

TEST(ModelLoad, RejectsUnknownLayerType) {
    ModelSpec spec = tiny_model();
    spec.meta["layers"][1]["type"] = "batchnorm";
    expect_error(load_spec(spec), {"layer 1", "unknown type 'batchnorm'", "conv2d, dense, l2norm"});
    spec.meta["layers"][1].erase("type");
    expect_error(load_spec(spec), {"layer 1", "type"});
}

TEST(ModelLoad, RejectsInconsistentChannels) {
    ModelSpec spec = tiny_model();
    spec.meta["layers"][1]["in"] = 4;  // conv1 produces 3 channels
    expect_error(load_spec(spec), {"conv2", "'in' = 4", "has 3"});
    spec = tiny_model();
    spec.meta["layers"][2]["in"] = 241;  // conv2 produces 3x16x5 = 240
    expect_error(load_spec(spec), {"fc", "241", "240"});
    spec = tiny_model();
    spec.meta["embedding_dim"] = 7;
    expect_error(load_spec(spec), {"embedding_dim"});
    spec = tiny_model();
    spec.meta["layers"][0]["in"] = 2;  // the input patch has one channel
    expect_error(load_spec(spec), {"conv1", "has 1"});
}

TEST(ModelLoad, RejectsBadLayerFields) {
    ModelSpec spec = tiny_model();
    spec.meta["layers"][0]["kernel_h"] = 2.5;
    expect_error(load_spec(spec), {"conv1", "kernel_h", "integer"});
    spec = tiny_model();
    spec.meta["layers"][0]["stride_w"] = 0;
    expect_error(load_spec(spec), {"conv1", "stride_w", "out of range"});
    spec = tiny_model();
    spec.meta["layers"][0].erase("relu");
    expect_error(load_spec(spec), {"conv1", "relu"});
    spec = tiny_model();
    spec.meta["layers"][0]["kernel_h"] = 9;  // 5 frames + 2*1 padding < 9
    spec.find("conv1.weight")->shape = {3, 9, 3, 1};
    spec.find("conv1.weight")->values.resize(81);
    expect_error(load_spec(spec), {"conv1", "larger than"});
    spec = tiny_model();
    spec.meta["layers"][2]["name"] = "conv1";
    expect_error(load_spec(spec), {"duplicate", "conv1"});
}

TEST(ModelLoad, RejectsBadNetworkAndMetadata) {
    ModelSpec spec = tiny_model();
    spec.meta["layers"].erase(3);  // no final l2norm
    spec.meta["embedding_dim"] = 6;
    expect_error(load_spec(spec), {"last layer", "l2norm"});
    spec = tiny_model();
    spec.meta["layers"] = nlohmann::json::array();
    expect_error(load_spec(spec), {"layers"});
    spec = tiny_model();
    spec.meta["input_norm"] = "batch";
    expect_error(load_spec(spec), {"input_norm"});
    spec = tiny_model();
    spec.meta.erase("context_frames");
    expect_error(load_spec(spec), {"context_frames"});
    spec = tiny_model();
    spec.meta["n_params"] = 12;
    expect_error(load_spec(spec), {"n_params"});
    spec = tiny_model();
    spec.meta.erase("n_mels");
    EXPECT_FALSE(load_spec(spec).is_ok());
    for (const char* bad : {R"("0.7")", "[]", R"([0.8, "x"])", "[0.8, 3.0]", "{}"}) {
        spec = tiny_model();
        spec.meta["threshold_by_n"] = nlohmann::json::parse(bad);
        expect_error(load_spec(spec), {"threshold_by_n"});
    }
}

TEST(ModelLoad, ReadsCalibratedThresholds) {
    ModelSpec spec = tiny_model();
    spec.meta["threshold_by_n"] = {0.82, 0.75, 0.7};
    auto model = load_spec(spec);
    ASSERT_TRUE(model.is_ok()) << model.message();
    EXPECT_EQ((*model)->info().threshold_by_n, (std::vector<float>{0.82f, 0.75f, 0.7f}));
}

TEST(ModelLoad, ReadsIndexPqBytes) {
    ModelSpec spec = tiny_model();  // embedding_dim 6
    auto model = load_spec(spec);
    ASSERT_TRUE(model.is_ok()) << model.message();
    EXPECT_EQ((*model)->info().index_pq_m, 16);  // no index_pq_m key: the value before it existed
    spec.meta["index_pq_m"] = 3;
    model = load_spec(spec);
    ASSERT_TRUE(model.is_ok()) << model.message();
    EXPECT_EQ((*model)->info().index_pq_m, 3);
    for (const char* bad : {"4", "0", "7", "2.5", R"("3")"}) {  // must divide 6
        spec.meta["index_pq_m"] = nlohmann::json::parse(bad);
        expect_error(load_spec(spec), {"index_pq_m"});
    }
    // The rest of the default code: a rotation's rounds and unit-length scores.
    spec.meta["index_pq_m"] = 3;
    EXPECT_EQ((*model)->info().index_code_name(), "3");
    spec.meta["index_opq_rounds"] = 10;
    spec.meta["index_unit_norm"] = true;
    model = load_spec(spec);
    ASSERT_TRUE(model.is_ok()) << model.message();
    EXPECT_EQ((*model)->info().index_opq_rounds, 10);
    EXPECT_TRUE((*model)->info().index_unit_norm);
    EXPECT_EQ((*model)->info().index_code_name(), "3-opq-unit");
    for (const char* bad : {"-1", "101", "2.5", R"("10")"}) {
        spec.meta["index_opq_rounds"] = nlohmann::json::parse(bad);
        expect_error(load_spec(spec), {"index_opq_rounds"});
    }
    spec.meta["index_opq_rounds"] = 10;
    spec.meta["index_unit_norm"] = 1;
    expect_error(load_spec(spec), {"index_unit_norm"});
    // A code over groups of consecutive windows (core/quantizer.h).
    spec.meta["index_unit_norm"] = true;
    spec.meta["index_code_group"] = 5;
    model = load_spec(spec);
    ASSERT_TRUE(model.is_ok()) << model.message();
    EXPECT_EQ((*model)->info().index_code_group, 5);
    EXPECT_EQ((*model)->info().index_code_name(), "3-g5-opq-unit");
    for (const char* bad : {"0", "17", "2.5", R"("5")"}) {
        spec.meta["index_code_group"] = nlohmann::json::parse(bad);
        expect_error(load_spec(spec), {"index_code_group"});
    }
}

TEST(ModelLoad, ReadsThresholdTablesPerCode) {
    ModelSpec spec = tiny_model();  // embedding_dim 6
    spec.meta["threshold_by_n"] = {0.8, 0.7};
    spec.meta["threshold_by_n_by_code"] = {
        {"3", {0.6, 0.5}}, {"6-opq", {0.4}}, {"2-unit", {0.3}}, {"3-opq-unit", {0.2}}};
    auto model = load_spec(spec);
    ASSERT_TRUE(model.is_ok()) << model.message();
    const auto& tables = (*model)->info().threshold_by_n_for_code;
    ASSERT_EQ(tables.size(), 4u);
    EXPECT_EQ(tables.at("3"), (std::vector<float>{0.6f, 0.5f}));
    EXPECT_EQ(tables.at("6-opq"), (std::vector<float>{0.4f}));
    EXPECT_EQ(tables.at("2-unit"), (std::vector<float>{0.3f}));
    EXPECT_EQ(tables.at("3-opq-unit"), (std::vector<float>{0.2f}));
    EXPECT_EQ((*model)->info().threshold_by_n, (std::vector<float>{0.8f, 0.7f}));
    for (const char* bad :
         {R"([0.5])", R"({"4": [0.5]})", R"({"x": [0.5]})", R"({"3x": [0.5]})", R"({" 3": [0.5]})",
          R"({"+3": [0.5]})", R"({"0": [0.5]})", R"({"03": [0.5]})", R"({"": [0.5]})",
          R"({"-opq": [0.5]})", R"({"3-unit-opq": [0.5]})", R"({"3-opq-": [0.5]})", R"({"3": []})",
          R"({"3": [1.5]})", R"({"3": "0.5"})"}) {
        spec.meta["threshold_by_n_by_code"] = nlohmann::json::parse(bad);
        expect_error(load_spec(spec), {"threshold_by_n_by_code"});
    }
    // The tables' former key is refused with a clear error rather than ignored.
    spec.meta.erase("threshold_by_n_by_code");
    spec.meta["threshold_by_n_by_pq_m"] = {{"3", {0.6}}};
    expect_error(load_spec(spec), {"threshold_by_n_by_pq_m", "threshold_by_n_by_code"});
}

TEST(ModelLoad, ReadsTheSpeedSearch) {
    ModelSpec spec = tiny_model();  // embedding_dim 6
    EXPECT_TRUE((*load_spec(spec))->info().speed_stretches.empty());
    spec.meta["speed_search"] = {{"stretches", {1.02, 0.98}},
                                 {"threshold_by_n", {0.6, 0.5}},
                                 {"threshold_by_n_by_code", {{"3-opq-unit", {0.4}}}},
                                 {"calibration", {{"target_fp", 0.0005}}}};
    auto model = load_spec(spec);
    ASSERT_TRUE(model.is_ok()) << model.message();
    const ModelInfo& info = (*model)->info();
    EXPECT_EQ(info.speed_stretches, (std::vector<float>{1.02f, 0.98f}));
    EXPECT_EQ(info.speed_threshold_by_n, (std::vector<float>{0.6f, 0.5f}));
    EXPECT_EQ(info.speed_threshold_by_n_for_code.at("3-opq-unit"), std::vector<float>{0.4f});
    for (
        const char* bad : {
            R"([1.02])",
            R"({"threshold_by_n": [0.5]})",
            R"({"stretches": [1.02]})",
            R"({"stretches": [], "threshold_by_n": [0.5]})",
            R"({"stretches": [1.5], "threshold_by_n": [0.5]})",
            R"({"stretches": [1.0205], "threshold_by_n": [0.5]})",
            R"({"stretches": ["1.02"], "threshold_by_n": [0.5]})",
            R"({"stretches": [1.02], "threshold_by_n": [1.5]})",
            R"({"stretches": [1.02], "threshold_by_n": [0.5], "threshold_by_n_by_code": {"4": [0.5]}})",
        }) {
        spec.meta["speed_search"] = nlohmann::json::parse(bad);
        expect_error(load_spec(spec), {"speed_search"});
    }
}

// Every layer field and top-level size replaced by hostile values: load either fails with a
// message or yields a model whose embedders run (no crash, no huge allocation).
TEST(ModelLoad, SurvivesHostileMetadataValues) {
    const nlohmann::json hostile[] = {
        0, -1, 1, 7, 1 << 20, int64_t(1) << 40, 2.5, "3", nullptr, nlohmann::json::array(), true};
    const ModelSpec base = tiny_model();
    std::vector<float> patch(5 * 64, 0.5f), out(64);
    int accepted = 0, rejected = 0;
    auto try_spec = [&](const ModelSpec& spec) {
        auto model = load_spec(spec);
        if (!model) {
            EXPECT_FALSE(model.message().empty());
            ++rejected;
            return;
        }
        ++accepted;
        const ModelInfo& info = (*model)->info();
        ASSERT_LE(size_t(info.embedding_dim), out.size());
        patch.resize(size_t(info.context_frames) * info.frontend.n_mels, 0.5f);
        for (Backend backend : {Backend::kScalar, Backend::kSimd}) {
            auto embedder = create_embedder(*model, backend);
            ASSERT_TRUE(embedder.is_ok());
            (*embedder)->embed(patch.data(), out.data());
        }
    };
    for (size_t i = 0; i < base.meta["layers"].size(); ++i) {
        for (const auto& field : base.meta["layers"][i].items()) {
            for (const auto& value : hostile) {
                ModelSpec spec = base;
                spec.meta["layers"][i][field.key()] = value;
                try_spec(spec);
            }
        }
    }
    for (const char* key : {"context_frames", "embedding_dim", "hop_frames", "query_hop_frames",
                            "index_pq_m", "n_mels"}) {
        for (const auto& value : hostile) {
            ModelSpec spec = base;
            spec.meta[key] = value;
            try_spec(spec);
        }
    }
    EXPECT_GT(rejected, 100);
    EXPECT_GE(accepted, 1);  // e.g. relu flipped to true
}

// A valid network whose first conv (64x64 kernel, stride 1, one channel: 4096 weights) slides
// over a 4096 x 1024 patch: its im2col scratch would be 4033 x 961 x 4096 = 1.6e10 floats (and
// wraps to a small size in wasm32). Load must refuse it, naming the layer.
TEST(ModelLoad, RejectsConvWhoseIm2colScratchIsHuge) {
    ModelSpec spec;
    spec.meta = base_meta(4096, 945);
    spec.meta["n_fft"] = 2048;
    spec.meta["n_mels"] = 1024;
    spec.meta["layers"] = {conv_layer("wide", 1, 1, 64, 64, 1, 1, 0, 0, true),
                           conv_layer("pool", 1, 1, 64, 64, 64, 64, 0, 0, false),  // 63 x 15
                           {{"type", "l2norm"}}};
    std::mt19937 rng(3);
    spec.tensors = {{"wide.weight", DType::kF32, {1, 64, 64, 1}, random_values(4096, rng, 0.1f)},
                    {"wide.bias", DType::kF32, {1}, {0.0f}},
                    {"pool.weight", DType::kF32, {1, 64, 64, 1}, random_values(4096, rng, 0.1f)},
                    {"pool.bias", DType::kF32, {1}, {0.0f}}};
    expect_error(load_spec(spec), {"'wide'", "im2col", "cap"});
    // The same shapes on a patch of 64 x 1024 fit (the scratch stays under its cap).
    spec.meta["context_frames"] = 64;
    spec.meta["layers"][1]["kernel_h"] = 1;
    spec.meta["layers"][1]["stride_h"] = 1;
    spec.meta["embedding_dim"] = 15;
    spec.find("pool.weight")->shape = {1, 1, 64, 1};
    spec.find("pool.weight")->values.resize(64);
    auto model = load_spec(spec);
    ASSERT_TRUE(model.is_ok()) << model.message();
}

// Sizes taken from metadata are capped before any product is formed: a patch of 65536 frames
// (a leading l2norm over it would overflow an int product of 65536 x 32768) or an FFT of 65536.
TEST(ModelLoad, CapsPatchSizesFromMetadata) {
    ModelSpec spec = tiny_model();
    spec.meta["context_frames"] = 65536;
    spec.meta["layers"] = {{{"type", "l2norm"}}};
    spec.meta["embedding_dim"] = 64;
    spec.tensors.clear();
    expect_error(load_spec(spec), {"context_frames", "out of range"});
    spec.meta["context_frames"] = 1;
    spec.meta["n_fft"] = 65536;
    spec.meta["n_mels"] = 32768;
    expect_error(load_spec(spec), {"n_fft 65536"});
    spec.meta["n_fft"] = 512;
    spec.meta["n_mels"] = 64;
    auto model = load_spec(spec);  // a leading l2norm over a 1 x 64 patch is fine
    ASSERT_TRUE(model.is_ok()) << model.message();
    EXPECT_EQ((*model)->layers()[0].out, 64);
}

TEST(ModelLoad, RejectsThresholdsOutOfRange) {
    ModelSpec spec = tiny_model();
    spec.meta["threshold"] = 0.25;
    spec.meta["threshold_scale"] = 0.3;
    auto model = load_spec(spec);
    ASSERT_TRUE(model.is_ok()) << model.message();
    EXPECT_FLOAT_EQ((*model)->info().threshold, 0.25f);
    EXPECT_FLOAT_EQ((*model)->info().threshold_scale, 0.3f);
    for (const char* bad : {"1e300", "-1e300", "1.5", "-2", R"("0.3")", "null", "[]"}) {
        spec = tiny_model();
        spec.meta["threshold"] = nlohmann::json::parse(bad);
        expect_error(load_spec(spec), {"'threshold'"});
    }
    for (const char* bad : {"1e300", "-1e300", "11", R"("x")", "null"}) {
        spec = tiny_model();
        spec.meta["threshold_scale"] = nlohmann::json::parse(bad);
        expect_error(load_spec(spec), {"'threshold_scale'"});
    }
}

TEST(ModelLoad, MatchMaxDriftReachesTheRecognizer) {
    ModelSpec spec = tiny_model();
    auto model = load_spec(spec);
    ASSERT_TRUE(model.is_ok()) << model.message();
    EXPECT_FLOAT_EQ(recognizer_default_params((*model)->info()).match.max_drift, 0.0f);
    spec.meta["match_max_drift"] = 0.02;
    model = load_spec(spec);
    ASSERT_TRUE(model.is_ok()) << model.message();
    EXPECT_FLOAT_EQ((*model)->info().match_max_drift, 0.02f);
    EXPECT_FLOAT_EQ(recognizer_default_params((*model)->info()).match.max_drift, 0.02f);
    for (const char* bad : {"-0.01", "0.2", "1e300", R"("0.02")", "null"}) {
        spec = tiny_model();
        spec.meta["match_max_drift"] = nlohmann::json::parse(bad);
        expect_error(load_spec(spec), {"'match_max_drift'"});
    }
}

TEST(ModelLoad, PopularityPriorReachesTheRecognizer) {
    ModelSpec spec = tiny_model();
    spec.meta["threshold_prior_weight"] = 0.25;
    spec.meta["threshold_prior_offset"] = -0.02;
    auto model = load_spec(spec);
    ASSERT_TRUE(model.is_ok()) << model.message();
    const RecognizerParams params = recognizer_default_params((*model)->info());
    EXPECT_FLOAT_EQ(params.match.prior_weight, 0.25f);
    EXPECT_FLOAT_EQ(params.match.prior_offset, -0.02f);
    for (const auto& [key, bad] :
         {std::pair{"threshold_prior_weight", "-0.1"}, std::pair{"threshold_prior_weight", "1.5"},
          std::pair{"threshold_prior_offset", "0.7"},
          std::pair{"threshold_prior_offset", R"("x")"}}) {
        spec = tiny_model();
        spec.meta[key] = nlohmann::json::parse(bad);
        const std::string quoted = std::string("'") + key + "'";
        expect_error(load_spec(spec), {quoted.c_str()});
    }
}

// ---- models/random-init-v0.emod (the v1 architecture) --------------------------------------

TEST(ModelRandomInit, LoadsWithV1Architecture) {
    auto model = load_random_init();
    ASSERT_TRUE(model);
    const ModelInfo& info = model->info();
    EXPECT_EQ(info.name, "random-init-v0");
    EXPECT_EQ(info.context_frames, 62);
    EXPECT_EQ(info.hop_frames, 32);
    EXPECT_EQ(info.query_hop_frames, 32);  // no query_hop_frames key: the index hop
    EXPECT_EQ(info.embedding_dim, 128);
    EXPECT_EQ(info.frontend.n_mels, 64);
    EXPECT_EQ(info.hash_hex.size(), 64u);
    // The exporter's own figures (metadata n_params / flops_per_embedding).
    EXPECT_EQ(info.n_params, info.meta.at("n_params").get<size_t>());
    EXPECT_DOUBLE_EQ(info.flops_per_embedding, info.meta.at("flops_per_embedding").get<double>());
    EXPECT_LE(info.n_params, 1500000u);  // design budget
    EXPECT_LE(info.flops_per_embedding, 30e6);
}

}  // namespace
}  // namespace earshot

namespace earshot {
namespace {

// The shipped model carries its music detector (the live listen's gate) and the listen rule.
TEST(ModelLoad, ShippedModelCarriesTheMusicDetectorAndListenRule) {
    const std::string path = EARSHOT_SHIPPED_MODEL;
    const std::vector<uint8_t> bytes = test::read_file(path);
    auto model = Model::load(bytes.data(), bytes.size(), path);
    ASSERT_TRUE(model.is_ok()) << model.message();
    const MusicDetectorParams* detector = (*model)->music_detector();
    ASSERT_NE(detector, nullptr);
    EXPECT_EQ(detector->context_frames, (*model)->info().context_frames);
    EXPECT_EQ(detector->n_mels, (*model)->info().frontend.n_mels);
    auto created = MusicDetector::create(*detector);
    ASSERT_TRUE(created.is_ok()) << created.message();
    EXPECT_LT((*created)->n_params(), 10000u);  // tiny, as Now Playing's
    EXPECT_TRUE((*model)->info().meta.contains("listen_threshold_by_n"));
    // A patch of digital silence is not music.
    std::vector<float> silence(size_t(detector->context_frames) * detector->n_mels,
                               std::log(1e-6f));
    EXPECT_FALSE((*created)->is_music(silence.data()));
}

TEST(ModelLoad, ModelsWithoutADetectorHaveNone) {
    auto model = test::load_random_init();
    ASSERT_NE(model, nullptr);
    EXPECT_EQ(model->music_detector(), nullptr);
}

// The index builder stores what the live gate passes (core/embed_signal.h, `earshot build
// --store`): 2 s of digital silence, 9 s of a synthetic piece, 3 s of white noise.
TEST(ModelLoad, IndexStoresWhatTheLiveGatePasses) {
    const std::string path = EARSHOT_SHIPPED_MODEL;
    const std::vector<uint8_t> bytes = test::read_file(path);
    auto loaded = Model::load(bytes.data(), bytes.size(), path);
    ASSERT_TRUE(loaded.is_ok()) << loaded.message();
    std::shared_ptr<const Model> model = std::move(loaded.value());
    const ModelInfo& info = model->info();
    auto frontend = Frontend::create(info.frontend);
    auto embedder = create_embedder(model, Backend::kSimd);
    auto detector = MusicDetector::create(*model->music_detector());
    ASSERT_TRUE(frontend && embedder && detector);
    const int rate = info.frontend.sample_rate_hz;
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> pcm(size_t(14 * rate), 0.0f);  // 2 s of digital silence first
    // The piece: a seeded random melody of decaying harmonic notes, a bass note every 0.5 s and
    // a hi-hat (a short noise burst) every 0.25 s.
    std::uniform_real_distribution<double> pitch(48.0, 84.0), note_s(0.12, 0.4);
    std::uniform_int_distribution<int> bass_step(0, 11);
    const size_t begin = size_t(2 * rate), end = size_t(11 * rate);
    for (size_t at = begin; at < end;) {
        const double f0 = 440.0 * std::pow(2.0, (std::round(pitch(rng)) - 69.0) / 12.0);
        const size_t len = size_t(note_s(rng) * rate);
        for (size_t i = 0; i < len && at + i < end; ++i) {
            const double t = double(i) / rate;
            double x = 0.0;
            for (int h = 1; h <= 4; ++h) x += std::sin(2.0 * M_PI * f0 * h * t) / (h * h);
            pcm[at + i] += float(0.3 * std::exp(-t / 0.2) * x);
        }
        at += len;
    }
    for (size_t at = begin; at < end; at += size_t(rate / 2)) {
        const double f = 55.0 * std::pow(2.0, bass_step(rng) / 12.0);
        for (size_t i = 0; i < size_t(rate / 2) && at + i < end; ++i) {
            const double t = double(i) / rate;
            pcm[at + i] += float(0.3 * std::exp(-t / 0.3) * std::sin(2.0 * M_PI * f * t));
        }
    }
    for (size_t at = begin; at < end; at += size_t(rate / 4))
        for (size_t i = 0; i < size_t(0.03 * rate); ++i)
            pcm[at + i] += float(0.1 * normal(rng) * std::exp(-double(i) / (0.008 * rate)));
    for (size_t i = end; i < pcm.size(); ++i) pcm[i] = 0.03f * normal(rng);

    auto run = [&](StoreRule rule, const std::vector<float>& signal) {
        return embed_signal_gated(info, **frontend, **embedder, detector->get(), rule,
                                  signal.data(), signal.size(), info.hop_frames);
    };
    const GatedEmbeddings all = run(StoreRule::kAll, pcm);
    const GatedEmbeddings level = run(StoreRule::kLevel, pcm);
    const GatedEmbeddings music = run(StoreRule::kMusic, pcm);
    const std::vector<float> plain =
        embed_signal(info, **frontend, **embedder, pcm.data(), pcm.size(), info.hop_frames);
    const size_t n = all.n_windows, dim = size_t(info.embedding_dim);
    const double hop_s = model_hop_s(info);  // the index hop
    const double window_s = double((info.context_frames - 1) * info.frontend.hop_length +
                                   info.frontend.n_fft) / rate;
    ASSERT_EQ(n, size_t((14.0 - window_s) / hop_s) + 1);
    EXPECT_EQ(all.n_stored, n);
    EXPECT_EQ(all.embedding, plain);
    size_t silent = 0, tones = 0, noisy = 0, silent_stored = 0, noise_stored = 0, tones_stored = 0;
    for (size_t j = 0; j < n; ++j) {
        const double start = j * hop_s, end = start + window_s;
        silent += end <= 2.0;
        tones += start >= 2.0 && end <= 11.0;
        noisy += start >= 11.0;
        EXPECT_LE(music.stored[j], level.stored[j]) << j;  // the detector only removes
        if (end <= 2.0) silent_stored += level.stored[j];
        if (start >= 2.0 && end <= 11.0) tones_stored += music.stored[j];
        if (start >= 11.0) noise_stored += music.stored[j];
        // Stored rows are the plain embeddings; the others are zeros.
        const float* row = &music.embedding[j * dim];
        if (music.stored[j]) {
            EXPECT_EQ(std::vector<float>(row, row + dim),
                      std::vector<float>(&plain[j * dim], &plain[(j + 1) * dim])) << j;
        } else {
            EXPECT_EQ(std::vector<float>(row, row + dim), std::vector<float>(dim, 0.0f)) << j;
        }
    }
    ASSERT_GT(silent * tones * noisy, 0u);
    EXPECT_EQ(silent_stored, 0u);      // digital silence: below the level gate
    // Most of the piece is music to the detector (a synthetic piece is not all music to it).
    EXPECT_GE(double(tones_stored), 0.6 * double(tones)) << tones_stored << " of " << tones;
    EXPECT_EQ(noise_stored, 0u);       // white noise is not music
    EXPECT_FALSE(music.level_fallback);

    // A piece the detector rejects mostly (noise alone) keeps its level-gated windows.
    const std::vector<float> noise(pcm.begin() + 11 * rate, pcm.end());
    const GatedEmbeddings kept = run(StoreRule::kMusic, noise);
    EXPECT_TRUE(kept.level_fallback);
    EXPECT_EQ(kept.stored, run(StoreRule::kLevel, noise).stored);
    EXPECT_EQ(kept.n_stored, kept.n_windows);
}

}  // namespace
}  // namespace earshot
