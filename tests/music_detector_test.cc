// Music detector tests: against the Python reference on fixture patches
// (tests/data/music_detector_golden.mdet, written by models/music-detector-recipe.sh: the
// trained detector, a held-out music patch, a speech patch and a room patch near the
// threshold), and rejection of wrong sizes, values and containers with messages that name the
// problem.
#include "core/music_detector.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/container.h"

namespace earshot {
namespace {

// Tolerances against the float64 reference (features in float32 on both sides, summed in the
// same order; dense layers float32 here, float64 there). Logits: the float32 rounding of
// 255-term dot products of standardised features; measured max 6e-6 on the fixture (|logit|
// up to 14). Probabilities: sigmoid'(x) <= 1/4 shrinks the logit error (measured max 6e-8).
constexpr float kLogitTolerance = 1e-4f;
constexpr float kProbabilityTolerance = 2.5e-5f;

std::vector<uint8_t> read_bytes(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) return {};
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(file)),
                                std::istreambuf_iterator<char>());
}

std::vector<float> f32_section(const ContainerView& view, const std::string& name) {
    const Section* s = view.find(name);
    if (!s || s->dtype != DType::kF32) return {};
    std::vector<float> v(s->element_count());
    std::memcpy(v.data(), s->data, v.size() * sizeof(float));
    return v;
}

class MusicDetectorGolden : public ::testing::Test {
protected:
    void SetUp() override {
        const std::string path = std::string(EARSHOT_TEST_DATA_DIR) + "/music_detector_golden.mdet";
        bytes_ = read_bytes(path);
        ASSERT_FALSE(bytes_.empty()) << "missing " << path;
        auto view = parse_container(bytes_.data(), bytes_.size(), "MDET", path);
        ASSERT_TRUE(view.is_ok()) << view.message();
        view_ = std::move(*view);
        auto params = music_detector_params_from_container(view_);
        ASSERT_TRUE(params.is_ok()) << params.message();
        params_ = *params;
    }

    std::vector<uint8_t> bytes_;
    ContainerView view_;
    MusicDetectorParams params_;
};

TEST_F(MusicDetectorGolden, MatchesPythonReference) {
    auto detector = MusicDetector::create(params_);
    ASSERT_TRUE(detector.is_ok()) << detector.message();
    const std::vector<float> patches = f32_section(view_, "patches");
    const std::vector<float> logits = f32_section(view_, "logits");
    const std::vector<float> probabilities = f32_section(view_, "probability");
    const size_t patch_floats = size_t(params_.context_frames) * params_.n_mels;
    ASSERT_GT(logits.size(), 0u);
    ASSERT_EQ(patches.size(), logits.size() * patch_floats);
    ASSERT_EQ(probabilities.size(), logits.size());
    int music = 0;
    for (size_t i = 0; i < logits.size(); ++i) {
        const float* patch = patches.data() + i * patch_floats;
        EXPECT_NEAR((*detector)->logit(patch), logits[i], kLogitTolerance) << "patch " << i;
        const float p = (*detector)->probability(patch);
        EXPECT_NEAR(p, probabilities[i], kProbabilityTolerance) << "patch " << i;
        // The same decision, unless the reference sits within the tolerance of the threshold.
        if (std::fabs(probabilities[i] - params_.threshold) > kProbabilityTolerance) {
            EXPECT_EQ((*detector)->is_music(patch), probabilities[i] >= params_.threshold)
                << "patch " << i;
        }
        music += (*detector)->is_music(patch);
        // Repeated calls give the same bits (no state carried between patches).
        EXPECT_EQ((*detector)->probability(patch), p);
    }
    EXPECT_GT(music, 0) << "the fixture should hold music and non-music patches";
    EXPECT_LT(music, int(logits.size()));

    // Digital silence: every log-mel value ln(log_offset); the detector must not call it music.
    const std::vector<float> silence_logit = f32_section(view_, "silence_logit");
    ASSERT_EQ(silence_logit.size(), 1u);
    const std::vector<float> silence(patch_floats, std::log(1e-6f));
    EXPECT_NEAR((*detector)->logit(silence.data()), silence_logit[0], kLogitTolerance);
    EXPECT_FALSE((*detector)->is_music(silence.data()));
}

TEST_F(MusicDetectorGolden, ReportsItsSize) {
    auto detector = MusicDetector::create(params_);
    ASSERT_TRUE(detector.is_ok()) << detector.message();
    size_t expected = 0;
    for (const auto& layer : params_.layers) expected += size_t(layer.out) * (layer.in + 1);
    EXPECT_EQ((*detector)->n_params(), expected);
    EXPECT_EQ(params_.context_frames, 62);
    EXPECT_EQ(params_.n_mels, 64);
}

// create() must fail with a message containing `expected`.
void expect_rejected(const MusicDetectorParams& params, const std::string& expected) {
    auto detector = MusicDetector::create(params);
    ASSERT_FALSE(detector.is_ok()) << "accepted; expected an error about " << expected;
    EXPECT_NE(detector.message().find(expected), std::string::npos) << detector.message();
}

TEST_F(MusicDetectorGolden, RejectsWrongSizesAndValues) {
    MusicDetectorParams p = params_;
    p.context_frames = 1;
    expect_rejected(p, "context_frames 1");
    p = params_;
    p.n_mels = 0;
    expect_rejected(p, "n_mels 0");
    p = params_;
    p.n_mels = 40;  // the features no longer fit the stored statistics
    expect_rejected(p, "feature_mean and feature_std need 4 * n_mels - 1 = 159");
    p = params_;
    p.feature_std.pop_back();
    expect_rejected(p, "feature_mean and feature_std need");
    p = params_;
    p.feature_std[7] = 0.0f;
    expect_rejected(p, "feature_std[7]");
    p = params_;
    p.feature_mean[3] = NAN;
    expect_rejected(p, "feature_mean holds a non-finite value");
    p = params_;
    p.layers.clear();
    expect_rejected(p, "0 dense layers");
    p = params_;
    p.layers[0].in += 1;
    expect_rejected(p, "dense1 takes");
    p = params_;
    p.layers[1].weight.pop_back();
    expect_rejected(p, "dense2 weight has");
    p = params_;
    p.layers[1].bias.push_back(0.0f);
    expect_rejected(p, "dense2 bias has");
    p = params_;
    p.layers.back().weight.resize(p.layers.back().weight.size() * 2);
    p.layers.back().bias.resize(2);
    p.layers.back().out = 2;
    expect_rejected(p, "the last layer has 2 outputs");
    p = params_;
    p.layers[0].weight[5] = INFINITY;
    expect_rejected(p, "dense1 holds a non-finite value");
    p = params_;
    p.threshold = 1.0f;
    expect_rejected(p, "threshold");
}

// Rebuilds the fixture's container with the section `drop` left out and `reshape` given
// another shape; returns the bytes.
std::vector<uint8_t> rewrite(const ContainerView& view, const nlohmann::json& meta,
                             const std::string& drop, const std::string& reshape = "") {
    ContainerWriter writer(view.kind, meta);
    for (const Section& s : view.sections) {
        if (s.name == drop) continue;
        std::vector<uint32_t> shape = s.shape;
        if (s.name == reshape) shape = {uint32_t(s.element_count())};  // flattened
        writer.add(s.name, s.dtype, shape, s.data, s.bytes);
    }
    return writer.finish();
}

void expect_container_rejected(const std::vector<uint8_t>& bytes, const std::string& expected) {
    auto view = parse_container(bytes.data(), bytes.size(), "MDET", "test");
    ASSERT_TRUE(view.is_ok()) << view.message();
    auto params = music_detector_params_from_container(*view);
    ASSERT_FALSE(params.is_ok()) << "accepted; expected an error about " << expected;
    EXPECT_NE(params.message().find(expected), std::string::npos) << params.message();
}

TEST_F(MusicDetectorGolden, RejectsBadContainers) {
    expect_container_rejected(rewrite(view_, view_.meta, "music_detector.dense2.bias"),
                              "missing section 'music_detector.dense2.bias'");
    expect_container_rejected(rewrite(view_, view_.meta, "", "music_detector.dense1.weight"),
                              "section 'music_detector.dense1.weight' has shape");
    expect_container_rejected(rewrite(view_, nlohmann::json::object(), ""),
                              "no 'music_detector' metadata");
    nlohmann::json meta = view_.meta;
    meta["music_detector"]["feature_kind"] = "something_else";
    expect_container_rejected(rewrite(view_, meta, ""), "feature_kind \"something_else\"");
    meta = view_.meta;
    meta["music_detector"]["layer_sizes"][0] = 100;
    expect_container_rejected(rewrite(view_, meta, ""), "layer_sizes starts with 100");
    meta = view_.meta;
    meta["music_detector"]["layer_sizes"][1] = 0;
    expect_container_rejected(rewrite(view_, meta, ""), "layer_sizes entry 0");
    meta = view_.meta;
    meta["music_detector"]["format_version"] = 2;
    expect_container_rejected(rewrite(view_, meta, ""), "format_version 2");
    meta = view_.meta;
    meta["music_detector"]["threshold"] = -0.5;
    expect_container_rejected(rewrite(view_, meta, ""), "threshold");
}

}  // namespace
}  // namespace earshot
