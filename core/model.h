// Model file format and loader (docs/DESIGN.md sections 3 and 4). A Model holds immutable
// weights and shapes (shareable between threads); the embedders that run it are in
// core/embedder.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/frontend.h"
#include "core/music_detector.h"
#include "core/status.h"

namespace earshot {

// Model files this build reads: version 1 (f32 weights) and version 2 (weights f16 or f32;
// biases f32). The exporter writes version 2 with f16 weights, half the download.
constexpr uint32_t kModelVersion = 2;
constexpr uint32_t kOldestModelVersion = 1;

struct Layer {
    enum class Type { kConv2d, kDense, kL2Norm } type;
    std::string name;
    int in = 0, out = 0;
    int kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
    bool relu = false;
    std::vector<float> weight;  // conv: [out, kh, kw, in] (OHWI); dense: [out, in]
    std::vector<float> bias;    // [out]
    // Input and output tensor shapes (NHWC without N; dense/l2norm use h = w = 1, c = size).
    int in_h = 0, in_w = 0, out_h = 0, out_w = 0;
};

struct ModelInfo {
    std::string name;
    std::string hash_hex;  // SHA-256 of the model file, lowercase hex
    FrontendParams frontend;
    int context_frames = 62;
    int hop_frames = 32;   // index embedding hop, in frames
    // Query embedding hop (metadata `query_hop_frames`; default: hop_frames).
    int query_hop_frames = 32;
    int embedding_dim = 128;
    // The index code the main thresholds were calibrated with, which `earshot build` uses unless
    // told otherwise (coarser codes lower every score, finer ones raise the impostors'): PQ bytes
    // per index embedding (metadata `index_pq_m`; 16 when the metadata has none), the rounds of
    // the rotation learnt before PQ (`index_opq_rounds`; 0: none), unit-length scores
    // (`index_unit_norm`) and the consecutive windows one code covers (`index_code_group`; 1:
    // one window, core/quantizer.h). Its name (Quantizer::code_name): index_code_name().
    int index_pq_m = 16;
    int index_opq_rounds = 0;
    bool index_unit_norm = false;
    int index_code_group = 1;
    std::string index_code_name() const;
    bool input_patch_mean = true;
    // Calibrated no-match threshold from metadata: threshold + threshold_scale / sqrt(n) for n
    // query embeddings (models/calibrate_threshold.py). threshold 0 / scale < 0: none given.
    float threshold = 0.0f;
    float threshold_scale = -1.0f;
    std::vector<float> threshold_by_n;  // per query length in embeddings (empty: none given)
    // Tables for indexes built with other codes than the default one (index_code_name()), by
    // Quantizer::code_name (metadata `threshold_by_n_by_code`, {"8-opq-unit": [...]}): tables
    // like threshold_by_n.
    std::map<std::string, std::vector<float>> threshold_by_n_for_code;
    // The clip mode's speed search (metadata `speed_search`: {"stretches": [...],
    // "threshold_by_n": [...], "threshold_by_n_by_code": {"<code>": [...]}}; SpeedSearchParams
    // in core/recognizer.h): empty without one.
    std::vector<float> speed_stretches;
    std::vector<float> speed_threshold_by_n;
    std::map<std::string, std::vector<float>> speed_threshold_by_n_for_code;
    float threshold_background_weight = 0.0f;  // MatchParams::background_weight
    float match_max_drift = 0.0f;              // MatchParams::max_drift (metadata, [0, 0.1])
    float threshold_prior_weight = 0.0f;       // MatchParams::prior_weight (metadata, [0, 1])
    float threshold_prior_offset = 0.0f;       // MatchParams::prior_offset (metadata, +-0.5)
    int model_version = 0;
    bool f16_weights = false;  // weights stored as binary16 in the file (f32 in memory)
    size_t n_params = 0;
    double flops_per_embedding = 0.0;  // multiply-add = 2 FLOP
    nlohmann::json meta;
};

class Model {
public:
    // Parses and validates a model file held in `bytes` (copied; the caller may free it).
    // Rejects wrong magic/version/kind/checksum, unknown layer types, and any tensor whose
    // name, dtype, shape or size does not match the metadata, with a message naming it.
    static Result<std::shared_ptr<const Model>> load(const uint8_t* bytes, size_t size,
                                                     const std::string& what);
    const ModelInfo& info() const { return info_; }
    const std::vector<Layer>& layers() const { return layers_; }
    // The music detector the file carries (metadata "music_detector" and its sections, read by
    // core/music_detector.h), or nullptr.
    const MusicDetectorParams* music_detector() const {
        return music_detector_ ? &*music_detector_ : nullptr;
    }

private:
    ModelInfo info_;
    std::vector<Layer> layers_;
    std::optional<MusicDetectorParams> music_detector_;
};

}  // namespace earshot
