// Music detector (core/music_detector.h). The features are summed over frames in frame order,
// as numpy sums a [frames, bands] float32 array along its first axis, so they match the Python
// reference to the last bit or two; the dense layers accumulate in float32.
#include "core/music_detector.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/json_read.h"

namespace earshot {
namespace {

constexpr int kMaxFrames = 4096;
constexpr int kMaxMels = 1024;
constexpr int kMaxLayers = 8;
constexpr int kMaxWidth = 4096;
constexpr const char* kFeatureKind = "band_mean_std_tdiff_fdiff";

// mean, std and tdiff per band, fdiff per pair of adjacent bands.
size_t feature_count(int n_mels) { return 4 * size_t(n_mels) - 1; }
constexpr int kFormatVersion = 1;
constexpr const char* kPrefix = "music_detector.";

Status bad(const std::string& message) {
    return Status::error("music detector parameters: " + message);
}

bool all_finite(const std::vector<float>& v) {
    return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

Status validate(const MusicDetectorParams& p) {
    if (p.context_frames < 2 || p.context_frames > kMaxFrames) {
        return bad("context_frames " + std::to_string(p.context_frames) + " must be in [2, " +
                   std::to_string(kMaxFrames) + "]");
    }
    if (p.n_mels < 1 || p.n_mels > kMaxMels) {
        return bad("n_mels " + std::to_string(p.n_mels) + " must be in [1, " +
                   std::to_string(kMaxMels) + "]");
    }
    const size_t n_features = feature_count(p.n_mels);
    if (p.feature_mean.size() != n_features || p.feature_std.size() != n_features) {
        return bad(
            "feature_mean and feature_std need 4 * n_mels - 1 = " + std::to_string(n_features) +
            " values each, got " + std::to_string(p.feature_mean.size()) + " and " +
            std::to_string(p.feature_std.size()));
    }
    if (!all_finite(p.feature_mean)) return bad("feature_mean holds a non-finite value");
    for (size_t i = 0; i < n_features; ++i) {
        if (!std::isfinite(p.feature_std[i]) || !(p.feature_std[i] > 0.0f)) {
            return bad("feature_std[" + std::to_string(i) +
                       "] = " + std::to_string(p.feature_std[i]) + " must be finite and > 0");
        }
    }
    if (p.layers.empty() || p.layers.size() > size_t(kMaxLayers)) {
        return bad(std::to_string(p.layers.size()) + " dense layers, need 1 to " +
                   std::to_string(kMaxLayers));
    }
    int expected_in = int(n_features);
    for (size_t i = 0; i < p.layers.size(); ++i) {
        const MusicDetectorDense& layer = p.layers[i];
        const std::string name = "dense" + std::to_string(i + 1);
        if (layer.in != expected_in) {
            return bad(name + " takes " + std::to_string(layer.in) + " inputs, expected " +
                       std::to_string(expected_in) +
                       (i == 0 ? " (4 * n_mels - 1)" : " (the previous layer's outputs)"));
        }
        if (layer.out < 1 || layer.out > kMaxWidth) {
            return bad(name + " has " + std::to_string(layer.out) + " outputs, need 1 to " +
                       std::to_string(kMaxWidth));
        }
        if (layer.weight.size() != size_t(layer.out) * layer.in) {
            return bad(
                name + " weight has " + std::to_string(layer.weight.size()) +
                " values, expected out * in = " + std::to_string(size_t(layer.out) * layer.in));
        }
        if (layer.bias.size() != size_t(layer.out)) {
            return bad(name + " bias has " + std::to_string(layer.bias.size()) +
                       " values, expected " + std::to_string(layer.out));
        }
        if (!all_finite(layer.weight) || !all_finite(layer.bias)) {
            return bad(name + " holds a non-finite value");
        }
        expected_in = layer.out;
    }
    if (p.layers.back().out != 1) {
        return bad("the last layer has " + std::to_string(p.layers.back().out) +
                   " outputs, expected 1 (the logit)");
    }
    if (!std::isfinite(p.threshold) || !(p.threshold > 0.0f && p.threshold < 1.0f)) {
        return bad("threshold " + std::to_string(p.threshold) + " must be in (0, 1)");
    }
    return Status::ok();
}

// Copies an f32 section of exactly `shape` into `out`.
Status read_f32(const ContainerView& view, const std::string& name,
                const std::vector<uint32_t>& shape, std::vector<float>* out) {
    auto section = view.require(kPrefix + name, DType::kF32, shape);
    if (!section) return Status::error("music detector: " + section.message());
    out->resize((*section)->element_count());
    if (!out->empty()) std::memcpy(out->data(), (*section)->data, out->size() * sizeof(float));
    return Status::ok();
}

// y[out] = W[out, in] x[in] + b, then ReLU unless this is the last layer.
void dense(const MusicDetectorDense& layer, const float* x, float* y, bool relu) {
    for (int o = 0; o < layer.out; ++o) {
        const float* w = layer.weight.data() + size_t(o) * layer.in;
        float acc = layer.bias[o];
        for (int i = 0; i < layer.in; ++i) acc += w[i] * x[i];
        y[o] = relu ? std::max(acc, 0.0f) : acc;
    }
}

}  // namespace

Result<MusicDetectorParams> music_detector_params_from_container(const ContainerView& view) {
    const std::string where = "music detector metadata";
    const auto it = view.meta.find("music_detector");
    if (it == view.meta.end() || !it->is_object()) {
        return Status::error("the " + view.kind + " container carries no 'music_detector' " +
                             "metadata object: it holds no music detector");
    }
    const nlohmann::json& meta = *it;
    int version = 0;
    if (Status s = json_read_int(meta, "format_version", 1, 1 << 20, where, &version); !s) {
        return s;
    }
    if (version != kFormatVersion) {
        return Status::error(where + ": format_version " + std::to_string(version) +
                             " is not supported (this build reads " +
                             std::to_string(kFormatVersion) + ")");
    }
    const auto kind = meta.find("feature_kind");
    if (kind == meta.end() || !kind->is_string() || kind->get<std::string>() != kFeatureKind) {
        return Status::error(where + ": feature_kind " +
                             (kind == meta.end() ? std::string("missing") : kind->dump()) +
                             ", this build computes \"" + kFeatureKind + "\"");
    }
    MusicDetectorParams p;
    if (Status s = json_read_int(meta, "context_frames", 2, kMaxFrames, where, &p.context_frames);
        !s) {
        return s;
    }
    if (Status s = json_read_int(meta, "n_mels", 1, kMaxMels, where, &p.n_mels); !s) return s;
    if (Status s = json_read_float(meta, "threshold", where, &p.threshold); !s) return s;
    const auto sizes = meta.find("layer_sizes");
    if (sizes == meta.end() || !sizes->is_array() || sizes->size() < 2 ||
        sizes->size() > size_t(kMaxLayers) + 1) {
        return Status::error(where + ": 'layer_sizes' must be an array of 2 to " +
                             std::to_string(kMaxLayers + 1) + " integers");
    }
    std::vector<int> widths;
    for (const auto& v : *sizes) {
        if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > kMaxWidth) {
            return Status::error(where + ": layer_sizes entry " + v.dump() +
                                 " is not an integer in [1, " + std::to_string(kMaxWidth) + "]");
        }
        widths.push_back(int(v.get<int64_t>()));
    }
    const uint32_t n_features = uint32_t(feature_count(p.n_mels));
    if (widths.front() != int(n_features)) {
        return Status::error(where + ": layer_sizes starts with " + std::to_string(widths.front()) +
                             ", expected 4 * n_mels - 1 = " + std::to_string(n_features));
    }
    if (Status s = read_f32(view, "feature_mean", {n_features}, &p.feature_mean); !s) return s;
    if (Status s = read_f32(view, "feature_std", {n_features}, &p.feature_std); !s) return s;
    for (size_t i = 1; i < widths.size(); ++i) {
        MusicDetectorDense layer;
        layer.in = widths[i - 1];
        layer.out = widths[i];
        const std::string name = "dense" + std::to_string(i);
        if (Status s = read_f32(view, name + ".weight", {uint32_t(layer.out), uint32_t(layer.in)},
                                &layer.weight);
            !s) {
            return s;
        }
        if (Status s = read_f32(view, name + ".bias", {uint32_t(layer.out)}, &layer.bias); !s) {
            return s;
        }
        p.layers.push_back(std::move(layer));
    }
    if (Status s = validate(p); !s) return s;
    return p;
}

MusicDetector::MusicDetector(MusicDetectorParams params) : params_(std::move(params)) {
    features_.resize(feature_count(params_.n_mels));
    int widest = 1;
    for (const MusicDetectorDense& layer : params_.layers) widest = std::max(widest, layer.out);
    hidden_a_.resize(widest);
    hidden_b_.resize(widest);
}

Result<std::unique_ptr<MusicDetector>> MusicDetector::create(MusicDetectorParams params) {
    if (Status s = validate(params); !s) return s;
    return std::unique_ptr<MusicDetector>(new MusicDetector(std::move(params)));
}

size_t MusicDetector::n_params() const {
    size_t n = 0;
    for (const MusicDetectorDense& layer : params_.layers) {
        n += layer.weight.size() + layer.bias.size();
    }
    return n;
}

float MusicDetector::logit(const float* patch) {
    const int n_frames = params_.context_frames;
    const int n_mels = params_.n_mels;
    float* mean = features_.data();
    float* deviation = mean + n_mels;
    float* tdiff = deviation + n_mels;
    float* fdiff = tdiff + n_mels;  // n_mels - 1 values
    // Sums over frames, in frame order (the reference's order).
    std::fill(features_.begin(), features_.end(), 0.0f);
    for (int t = 0; t < n_frames; ++t) {
        const float* frame = patch + size_t(t) * n_mels;
        for (int m = 0; m < n_mels; ++m) mean[m] += frame[m];
    }
    for (int m = 0; m < n_mels; ++m) mean[m] /= float(n_frames);
    for (int t = 0; t < n_frames; ++t) {
        const float* frame = patch + size_t(t) * n_mels;
        for (int m = 0; m < n_mels; ++m) {
            const float d = frame[m] - mean[m];
            deviation[m] += d * d;
        }
    }
    for (int m = 0; m < n_mels; ++m) deviation[m] = std::sqrt(deviation[m] / float(n_frames));
    for (int t = 1; t < n_frames; ++t) {
        const float* frame = patch + size_t(t) * n_mels;
        const float* previous = frame - n_mels;
        for (int m = 0; m < n_mels; ++m) tdiff[m] += std::fabs(frame[m] - previous[m]);
    }
    for (int m = 0; m < n_mels; ++m) tdiff[m] /= float(n_frames - 1);
    for (int t = 0; t < n_frames; ++t) {
        const float* frame = patch + size_t(t) * n_mels;
        for (int m = 0; m + 1 < n_mels; ++m) fdiff[m] += std::fabs(frame[m + 1] - frame[m]);
    }
    for (int m = 0; m + 1 < n_mels; ++m) fdiff[m] /= float(n_frames);
    for (size_t i = 0; i < features_.size(); ++i) {
        features_[i] = (features_[i] - params_.feature_mean[i]) / params_.feature_std[i];
    }
    const float* x = features_.data();
    float* y = hidden_a_.data();
    const size_t n_layers = params_.layers.size();
    for (size_t i = 0; i < n_layers; ++i) {
        dense(params_.layers[i], x, y, i + 1 < n_layers);
        x = y;
        y = (y == hidden_a_.data()) ? hidden_b_.data() : hidden_a_.data();
    }
    return x[0];
}

float MusicDetector::probability(const float* patch) {
    return 1.0f / (1.0f + std::exp(-logit(patch)));
}

double patch_mean_log_mel(const float* patch, size_t n_values) {
    if (n_values == 0) return -std::numeric_limits<double>::infinity();
    double sum = 0.0;
    for (size_t i = 0; i < n_values; ++i) sum += patch[i];
    return sum / double(n_values);
}

bool patch_holds_music(const float* patch, size_t n_values, MusicDetector* detector) {
    if (patch_mean_log_mel(patch, n_values) < double(kSilentPatchLogMel)) return false;
    return detector == nullptr || detector->is_music(patch);
}

}  // namespace earshot
