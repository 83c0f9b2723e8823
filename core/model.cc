// Model file loader (docs/DESIGN.md sections 3-4).
#include "core/model.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

#include "core/checked_size.h"
#include "core/container.h"
#include "core/json_read.h"
#include "core/quantizer.h"
#include "core/speed_change.h"

namespace earshot {

namespace {

// Sanity caps on what metadata may ask for, so that a hostile file cannot make us allocate
// gigabytes for activations or scratch (tensor sizes are already bounded by the file's length).
// Every size below is formed in 64 bits and checked against its cap (core/checked_size.h), so
// none wraps in wasm32's 32-bit size_t.
constexpr int kMaxDim = 1 << 16;                            // channels, embedding size
constexpr int kMaxContextFrames = 4096;                     // log-mel frames per patch
constexpr int kMaxKernel = 64;                              // kernel / stride, per axis
constexpr uint64_t kMaxActivationFloats = uint64_t(1) << 24;  // 64 MiB per activation tensor
constexpr uint64_t kMaxIm2colFloats = uint64_t(1) << 24;      // 64 MiB of im2col scratch per conv
// Calibrated no-match thresholds are similarities; their 1/sqrt(n) scale is at most this.
constexpr double kMaxThresholdScale = 10.0;

Status fail(const std::string& what, const std::string& message) {
    return Status::error(what + ": " + message);
}

// Copies a validated f32 section (little-endian on every target we build for).
std::vector<float> copy_f32(const Section& s) {
    std::vector<float> v(s.element_count());
    std::memcpy(v.data(), s.data, v.size() * sizeof(float));
    return v;
}

// IEEE 754 binary16 -> binary32, exact for every input (subnormals, infinities, NaN).
// Written by hand: it runs once per weight at load time, and C++17, Emscripten and the
// libraries we already use have no portable half type (F16C intrinsics are x86-only).
float half_to_float(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1fu;
    const uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
        const float magnitude = std::ldexp(float(mantissa), -24);
        return sign ? -magnitude : magnitude;
    }
    const uint32_t bits = exponent == 31 ? sign | 0x7f800000u | (mantissa << 13)  // inf, NaN
                                         : sign | ((exponent + 112u) << 23) | (mantissa << 13);
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
}

// Widens a validated f16 section to f32.
std::vector<float> copy_f16(const Section& s) {
    std::vector<float> v(s.element_count());
    for (size_t i = 0; i < v.size(); ++i) {
        uint16_t h;
        std::memcpy(&h, s.data + 2 * i, sizeof(h));
        v[i] = half_to_float(h);
    }
    return v;
}

// Parses one entry of meta.layers, checks it against the running shape (h, w, c) and fills
// the layer's shapes; tensors are attached later.
Status parse_layer(const nlohmann::json& j, size_t index, int* h, int* w, int* c, Layer* layer) {
    std::string where = "layer " + std::to_string(index);
    if (!j.is_object()) return Status::error(where + " is not a JSON object");
    const auto type_it = j.find("type");
    if (type_it == j.end() || !type_it->is_string()) {
        return Status::error(where + " has no string 'type'");
    }
    const std::string type = type_it->get<std::string>();
    layer->in_h = *h;
    layer->in_w = *w;
    if (type == "l2norm") {
        layer->type = Layer::Type::kL2Norm;
        layer->name = "l2norm";
        uint64_t n = 0;
        if (!checked_product_u64({uint64_t(*h), uint64_t(*w), uint64_t(*c)},
                                 kMaxActivationFloats, &n)) {
            return Status::error(where + " (l2norm): its input " + std::to_string(*h) + "x" +
                                 std::to_string(*w) + "x" + std::to_string(*c) +
                                 " exceeds the cap of " + std::to_string(kMaxActivationFloats) +
                                 " values");
        }
        layer->in = layer->out = int(n);
        *h = *w = 1;
        *c = layer->out;
        layer->out_h = layer->out_w = 1;
        return Status::ok();
    }
    if (type != "conv2d" && type != "dense") {
        return Status::error(where + " has unknown type '" + type +
                             "' (supported: conv2d, dense, l2norm)");
    }
    const auto name_it = j.find("name");
    if (name_it == j.end() || !name_it->is_string() || name_it->get<std::string>().empty()) {
        return Status::error(where + " (" + type + ") has no non-empty string 'name'");
    }
    layer->name = name_it->get<std::string>();
    where += " ('" + layer->name + "')";
    const auto relu_it = j.find("relu");
    if (relu_it == j.end() || !relu_it->is_boolean()) {
        return Status::error(where + " needs a boolean 'relu'");
    }
    layer->relu = relu_it->get<bool>();
    Status st;
    if (!(st = json_read_int(j, "in", 1, kMaxDim, where, &layer->in))) return st;
    if (!(st = json_read_int(j, "out", 1, kMaxDim, where, &layer->out))) return st;

    if (type == "dense") {
        layer->type = Layer::Type::kDense;
        const int64_t flat = int64_t(*h) * *w * *c;
        if (layer->in != flat) {
            return Status::error(where + ": 'in' = " + std::to_string(layer->in) +
                                 " but the previous layer produces " + std::to_string(*h) + "x" +
                                 std::to_string(*w) + "x" + std::to_string(*c) + " = " +
                                 std::to_string(flat) + " values");
        }
        *h = *w = 1;
        *c = layer->out;
        layer->out_h = layer->out_w = 1;
        return Status::ok();
    }

    layer->type = Layer::Type::kConv2d;
    if (!(st = json_read_int(j, "kernel_h", 1, kMaxKernel, where, &layer->kernel_h))) return st;
    if (!(st = json_read_int(j, "kernel_w", 1, kMaxKernel, where, &layer->kernel_w))) return st;
    if (!(st = json_read_int(j, "stride_h", 1, kMaxKernel, where, &layer->stride_h))) return st;
    if (!(st = json_read_int(j, "stride_w", 1, kMaxKernel, where, &layer->stride_w))) return st;
    // Padding of a whole kernel or more would only add all-zero windows.
    if (!(st = json_read_int(j, "pad_h", 0, layer->kernel_h - 1, where, &layer->pad_h))) return st;
    if (!(st = json_read_int(j, "pad_w", 0, layer->kernel_w - 1, where, &layer->pad_w))) return st;
    if (layer->in != *c) {
        return Status::error(where + ": 'in' = " + std::to_string(layer->in) +
                             " channels but its input has " + std::to_string(*c));
    }
    const int span_h = *h + 2 * layer->pad_h, span_w = *w + 2 * layer->pad_w;
    if (span_h < layer->kernel_h || span_w < layer->kernel_w) {
        return Status::error(where + ": kernel " + std::to_string(layer->kernel_h) + "x" +
                             std::to_string(layer->kernel_w) + " is larger than its padded input " +
                             std::to_string(span_h) + "x" + std::to_string(span_w));
    }
    layer->out_h = (span_h - layer->kernel_h) / layer->stride_h + 1;
    layer->out_w = (span_w - layer->kernel_w) / layer->stride_w + 1;
    uint64_t n = 0;
    if (!checked_product_u64({uint64_t(layer->out_h), uint64_t(layer->out_w), uint64_t(layer->out)},
                             kMaxActivationFloats, &n)) {
        return Status::error(where + ": output " + std::to_string(layer->out_h) + "x" +
                             std::to_string(layer->out_w) + "x" + std::to_string(layer->out) +
                             " exceeds the cap of " + std::to_string(kMaxActivationFloats) +
                             " values");
    }
    // im2col scratch (core/kernels.h Conv2dShape): out_pixels() x patch_size() floats.
    if (!checked_product_u64({uint64_t(layer->out_h), uint64_t(layer->out_w),
                              uint64_t(layer->kernel_h), uint64_t(layer->kernel_w),
                              uint64_t(layer->in)},
                             kMaxIm2colFloats, &n)) {
        return Status::error(where + ": im2col scratch of " + std::to_string(layer->out_h) + "x" +
                             std::to_string(layer->out_w) + " output pixels x " +
                             std::to_string(layer->kernel_h) + "x" +
                             std::to_string(layer->kernel_w) + "x" + std::to_string(layer->in) +
                             " patch values exceeds the cap of " +
                             std::to_string(kMaxIm2colFloats) + " floats");
    }
    *h = layer->out_h;
    *w = layer->out_w;
    *c = layer->out;
    return Status::ok();
}

}  // namespace

std::string ModelInfo::index_code_name() const {
    return code_name(index_pq_m, index_opq_rounds > 0, index_unit_norm, index_code_group);
}

Result<std::shared_ptr<const Model>> Model::load(const uint8_t* bytes, size_t size,
                                                 const std::string& what) {
    auto parsed = parse_container(bytes, size, "MODL", what);
    if (!parsed) return parsed.status();
    const ContainerView& view = parsed.value();
    const nlohmann::json& meta = view.meta;
    if (!meta.is_object()) return fail(what, "model metadata is not a JSON object");

    const auto format_it = meta.find("format");
    if (format_it == meta.end() || !format_it->is_string() ||
        format_it->get<std::string>() != "earshot-model") {
        return fail(what,
                    "metadata 'format' must be \"earshot-model\", got " +
                        (format_it == meta.end() ? std::string("nothing") : format_it->dump()));
    }
    const auto version_it = meta.find("model_version");
    if (version_it == meta.end() || !version_it->is_number_integer() ||
        version_it->get<int64_t>() < int64_t(kOldestModelVersion) ||
        version_it->get<int64_t>() > int64_t(kModelVersion)) {
        return fail(what,
                    "model_version " +
                        (version_it == meta.end() ? std::string("(missing)") : version_it->dump()) +
                        " is not supported: this build of earshot reads model_version " +
                        std::to_string(kOldestModelVersion) + " to " +
                        std::to_string(kModelVersion) +
                        "; use a model exported for one of them or update earshot to a release "
                        "that reads it");
    }

    auto model = std::make_shared<Model>();
    ModelInfo& info = model->info_;
    info.meta = meta;
    info.model_version = int(version_it->get<int64_t>());
    info.hash_hex = view.sha256_hex;
    const auto name_it = meta.find("name");
    if (name_it == meta.end() || !name_it->is_string()) {
        return fail(what, "metadata has no string 'name'");
    }
    info.name = name_it->get<std::string>();

    auto frontend = frontend_params_from_meta(meta);
    if (!frontend) return fail(what, frontend.message());
    info.frontend = frontend.value();

    Status st;
    if (!(st = json_read_int(meta, "context_frames", 1, kMaxContextFrames, "metadata",
                             &info.context_frames)) ||
        !(st = json_read_int(meta, "hop_frames", 1, kMaxDim, "metadata", &info.hop_frames)) ||
        !(st = json_read_int(meta, "embedding_dim", 1, kMaxDim, "metadata", &info.embedding_dim))) {
        return fail(what, st.message());
    }
    // Optional: the query embedding hop (default: the index hop). Thresholds are per number of
    // query embeddings at this hop.
    info.query_hop_frames = info.hop_frames;
    if (meta.contains("query_hop_frames") && !(st = json_read_int(meta, "query_hop_frames", 1, kMaxDim,
                                                             "metadata", &info.query_hop_frames))) {
        return fail(what, st.message());
    }
    if (meta.contains("index_pq_m")) {
        if (!(st = json_read_int(meta, "index_pq_m", 1, info.embedding_dim, "metadata",
                                 &info.index_pq_m))) {
            return fail(what, st.message());
        }
        if (info.embedding_dim % info.index_pq_m != 0) {
            return fail(what, "metadata 'index_pq_m' (" + std::to_string(info.index_pq_m) +
                                  ") must divide embedding_dim (" +
                                  std::to_string(info.embedding_dim) + ")");
        }
    }
    if (meta.contains("index_opq_rounds") &&
        !(st = json_read_int(meta, "index_opq_rounds", 0, kMaxOpqRounds, "metadata",
                             &info.index_opq_rounds))) {
        return fail(what, st.message());
    }
    if (!(st = json_read_optional_bool(meta, "index_unit_norm", "metadata",
                                       &info.index_unit_norm))) {
        return fail(what, st.message());
    }
    if (meta.contains("index_code_group") &&
        !(st = json_read_int(meta, "index_code_group", 1, kMaxCodeGroup, "metadata",
                             &info.index_code_group))) {
        return fail(what, st.message());
    }
    const auto norm_it = meta.find("input_norm");
    if (norm_it == meta.end() || !norm_it->is_string() ||
        (norm_it->get<std::string>() != "patch_mean" && norm_it->get<std::string>() != "none")) {
        return fail(what, "metadata 'input_norm' must be \"patch_mean\" or \"none\", got " +
                              (norm_it == meta.end() ? std::string("nothing") : norm_it->dump()));
    }
    info.input_patch_mean = norm_it->get<std::string>() == "patch_mean";
    // Optional: the default no-match threshold, a similarity in [-1, 1] (0: none given).
    const auto threshold_it = meta.find("threshold");
    if (threshold_it != meta.end()) {
        if (!threshold_it->is_number() || !std::isfinite(threshold_it->get<double>()) ||
            std::fabs(threshold_it->get<double>()) > 1.0) {
            return fail(what, "metadata 'threshold' holds " + threshold_it->dump() +
                                  ": it must be a similarity in [-1, 1]");
        }
        info.threshold = threshold_it->get<float>();
    }
    // A calibrated no-match table: 1 to 4096 similarities in [-1, 1].
    auto read_table = [&](const nlohmann::json& value, const std::string& key,
                          std::vector<float>* out) -> Status {
        constexpr size_t kMaxThresholds = 4096;
        if (!value.is_array() || value.empty() || value.size() > kMaxThresholds) {
            return Status::error("metadata '" + key + "' must be an array of 1 to 4096 numbers");
        }
        for (const auto& t : value) {
            if (!t.is_number() || !std::isfinite(t.get<double>()) || std::fabs(t.get<double>()) > 1.0) {
                return Status::error("metadata '" + key + "' holds " + t.dump() +
                                     ": thresholds are similarities in [-1, 1]");
            }
            out->push_back(t.get<float>());
        }
        return Status();
    };
    const auto threshold_by_n_it = meta.find("threshold_by_n");
    if (threshold_by_n_it != meta.end() &&
        !(st = read_table(*threshold_by_n_it, "threshold_by_n", &info.threshold_by_n))) {
        return fail(what, st.message());
    }
    if (meta.contains("threshold_by_n_by_pq_m")) {
        return fail(what,
                    "metadata 'threshold_by_n_by_pq_m' is no longer read: rewrite its tables "
                    "as 'threshold_by_n_by_code' (models/calibrate_threshold.py --for-code)");
    }
    // {"<code name>": table, ...}: tables for indexes built with other codes.
    auto read_tables_by_code = [&](const nlohmann::json& value, const std::string& key,
                                   std::map<std::string, std::vector<float>>* out) -> Status {
        if (!value.is_object()) {
            return Status::error("metadata '" + key +
                                 "' must be an object {\"<code name>\": [thresholds...]}");
        }
        for (const auto& item : value.items()) {
            const std::string item_key = key + "." + item.key();
            int pq_m = 0;
            bool rotated = false, unit_norm = false;
            if (!parse_code_name(item.key(), info.embedding_dim, &pq_m, &rotated, &unit_norm)) {
                return Status::error("metadata '" + item_key +
                                     "': the key must be a code name, PQ bytes "
                                     "that divide embedding_dim (" +
                                     std::to_string(info.embedding_dim) +
                                     ") then -opq and/or -unit, as in 8-opq-unit");
            }
            if (Status st = read_table(item.value(), item_key, &(*out)[item.key()]); !st) return st;
        }
        return Status();
    };
    const auto by_code_it = meta.find("threshold_by_n_by_code");
    if (by_code_it != meta.end() &&
        !(st = read_tables_by_code(*by_code_it, "threshold_by_n_by_code",
                                   &info.threshold_by_n_for_code))) {
        return fail(what, st.message());
    }
    // Optional: the clip mode's speed search, its stretches and tables.
    const auto speed_it = meta.find("speed_search");
    if (speed_it != meta.end()) {
        const nlohmann::json& speed = *speed_it;
        const auto stretches = speed.is_object() ? speed.find("stretches") : speed.end();
        const auto table = speed.is_object() ? speed.find("threshold_by_n") : speed.end();
        if (!speed.is_object() || stretches == speed.end() || !stretches->is_array() ||
            stretches->empty() || stretches->size() > 16 || table == speed.end()) {
            return fail(what,
                        "metadata 'speed_search' must be an object with 'stretches' (1 to 16 "
                        "numbers) and 'threshold_by_n'");
        }
        for (const auto& value : *stretches) {
            Result<SpeedRatio> ratio = value.is_number() ? speed_ratio(value.get<double>())
                                                         : Status::error("not a number");
            if (!ratio) return fail(what, "metadata 'speed_search.stretches': " + ratio.message());
            info.speed_stretches.push_back(value.get<float>());
        }
        if (!(st = read_table(*table, "speed_search.threshold_by_n", &info.speed_threshold_by_n)))
            return fail(what, st.message());
        const auto speed_by_code = speed.find("threshold_by_n_by_code");
        if (speed_by_code != speed.end() &&
            !(st = read_tables_by_code(*speed_by_code, "speed_search.threshold_by_n_by_code",
                                       &info.speed_threshold_by_n_for_code))) {
            return fail(what, st.message());
        }
    }
    // Optional numbers of the decision, each within its range: the background weight, the
    // playback-rate drift phase 2 aligns for (which the thresholds were fitted with) and the
    // popularity-weighted decision (MatchParams).
    struct Bounded {
        const char* key;
        double lo, hi;
        float* out;
    };
    for (const Bounded& b :
         {Bounded{"threshold_background_weight", 0.0, 10.0, &info.threshold_background_weight},
          Bounded{"match_max_drift", 0.0, 0.1, &info.match_max_drift},
          Bounded{"threshold_prior_weight", 0.0, 1.0, &info.threshold_prior_weight},
          Bounded{"threshold_prior_offset", -0.5, 0.5, &info.threshold_prior_offset}}) {
        const auto it = meta.find(b.key);
        if (it == meta.end()) continue;
        if (!it->is_number() || !(it->get<double>() >= b.lo) || !(it->get<double>() <= b.hi)) {
            char range[64];
            std::snprintf(range, sizeof(range), " must be a number in [%g, %g]", b.lo, b.hi);
            return fail(what, "metadata '" + std::string(b.key) + "'" + range);
        }
        *b.out = it->get<float>();
    }
    // Optional: the threshold's 1/sqrt(n) scale (< 0: none given).
    const auto threshold_scale_it = meta.find("threshold_scale");
    if (threshold_scale_it != meta.end()) {
        if (!threshold_scale_it->is_number() || !std::isfinite(threshold_scale_it->get<double>()) ||
            std::fabs(threshold_scale_it->get<double>()) > kMaxThresholdScale) {
            return fail(what, "metadata 'threshold_scale' holds " + threshold_scale_it->dump() +
                                  ": it must be a number in [-10, 10]");
        }
        info.threshold_scale = threshold_scale_it->get<float>();
    }

    // Layers: shapes through the network.
    const auto layers_it = meta.find("layers");
    if (layers_it == meta.end() || !layers_it->is_array() || layers_it->empty()) {
        return fail(what, "metadata 'layers' must be a non-empty array");
    }
    // The input patch (the first activation buffer): context_frames x n_mels floats.
    uint64_t patch_floats = 0;
    if (!checked_product_u64({uint64_t(info.context_frames), uint64_t(info.frontend.n_mels)},
                             kMaxActivationFloats, &patch_floats)) {
        return fail(what, "metadata: the input patch of context_frames " +
                              std::to_string(info.context_frames) + " x n_mels " +
                              std::to_string(info.frontend.n_mels) + " exceeds the cap of " +
                              std::to_string(kMaxActivationFloats) + " values");
    }
    int h = info.context_frames, w = info.frontend.n_mels, c = 1;
    std::set<std::string> names;
    std::set<std::string> used_sections;
    int weighted_layers = 0;
    for (size_t i = 0; i < layers_it->size(); ++i) {
        Layer layer;
        if (!(st = parse_layer((*layers_it)[i], i, &h, &w, &c, &layer))) {
            return fail(what, st.message());
        }
        if (layer.type != Layer::Type::kL2Norm) {
            if (!names.insert(layer.name).second) {
                return fail(what,
                            "layer " + std::to_string(i) + ": duplicate name '" + layer.name + "'");
            }
            std::vector<uint32_t> w_shape;
            if (layer.type == Layer::Type::kConv2d) {
                w_shape = {uint32_t(layer.out), uint32_t(layer.kernel_h), uint32_t(layer.kernel_w),
                           uint32_t(layer.in)};
                info.flops_per_embedding += 2.0 * layer.out_h * layer.out_w * layer.out *
                                            layer.kernel_h * layer.kernel_w * layer.in;
            } else {
                w_shape = {uint32_t(layer.out), uint32_t(layer.in)};
                info.flops_per_embedding += 2.0 * layer.in * layer.out;
            }
            const std::string w_name = layer.name + ".weight", b_name = layer.name + ".bias";
            // Version 2 may store weights as f16 (all layers alike); biases are always f32.
            const Section* stored = view.find(w_name);
            const bool f16 = info.model_version >= 2 && stored && stored->dtype == DType::kF16;
            if (weighted_layers++ > 0 && f16 != info.f16_weights) {
                return fail(what, "layer '" + layer.name + "': weights mix f16 and f32 sections");
            }
            info.f16_weights = f16;
            auto weight = view.require(w_name, f16 ? DType::kF16 : DType::kF32, w_shape);
            if (!weight) return fail(what, "layer '" + layer.name + "': " + weight.message());
            auto bias = view.require(b_name, DType::kF32, {uint32_t(layer.out)});
            if (!bias) return fail(what, "layer '" + layer.name + "': " + bias.message());
            layer.weight = f16 ? copy_f16(*weight.value()) : copy_f32(*weight.value());
            layer.bias = copy_f32(*bias.value());
            used_sections.insert(w_name);
            used_sections.insert(b_name);
            info.n_params += layer.weight.size() + layer.bias.size();
        }
        model->layers_.push_back(std::move(layer));
    }
    if (model->layers_.back().type != Layer::Type::kL2Norm) {
        return fail(what, "the last layer must be l2norm (embeddings are unit length)");
    }
    if (c != info.embedding_dim) {
        return fail(what, "the network produces " + std::to_string(c) +
                              " values but embedding_dim is " + std::to_string(info.embedding_dim));
    }
    if (meta.contains("music_detector")) {
        Result<MusicDetectorParams> detector = music_detector_params_from_container(view);
        if (!detector) return fail(what, detector.message());
        if (detector->context_frames != info.context_frames ||
            detector->n_mels != info.frontend.n_mels)
            return fail(what, "the music detector's patch shape differs from the network's");
        if (Result<std::unique_ptr<MusicDetector>> check = MusicDetector::create(*detector); !check)
            return fail(what, check.message());
        for (const Section& s : view.sections)
            if (s.name.rfind("music_detector.", 0) == 0) used_sections.insert(s.name);
        model->music_detector_ = std::move(detector.value());
    }
    for (const Section& s : view.sections) {
        if (!used_sections.count(s.name)) {
            return fail(what, "unexpected section '" + s.name + "' (no layer uses it)");
        }
    }
    // Optional redundant figures written by the exporter must agree with ours.
    const auto n_params_it = meta.find("n_params");
    if (n_params_it != meta.end() && (!n_params_it->is_number_integer() ||
                                      n_params_it->get<int64_t>() != int64_t(info.n_params))) {
        return fail(what, "metadata n_params = " + n_params_it->dump() + " but the tensors hold " +
                              std::to_string(info.n_params));
    }
    return std::shared_ptr<const Model>(std::move(model));
}

}  // namespace earshot
