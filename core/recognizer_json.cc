// The recognizer's JSON forms: parameter overrides in, results out.
#include "core/recognizer_json.h"

#include <cmath>
#include <cstdint>
#include <limits>

namespace earshot {

namespace {

template <typename T>
T* find_key(const std::pair<const char*, T*>* keys, size_t n, const std::string& key) {
    for (size_t i = 0; i < n; ++i) {
        if (key == keys[i].first) return keys[i].second;
    }
    return nullptr;
}

nlohmann::json candidate_json(const RecognizerResult& result, const MatchCandidate& c) {
    return {{"id", c.id},
            {"title", c.title},
            {"album", c.album},
            {"offset_s", song_time_at(result, c, 0.0)},
            {"score", c.score}};
}

}  // namespace

Status apply_recognizer_overrides(const nlohmann::json& overrides, RecognizerParams* params) {
    if (!overrides.is_object()) {
        return Status::error("recognizer parameters must be a JSON object, got " +
                             json_text(overrides));
    }
    RecognizerParams p = *params;
    bool speed_search = true;  // false: no speed search (the clip mode's), whatever the model has
    const std::pair<const char*, int*> int_keys[] = {
        {"query_hop_frames", &p.query_hop_frames},
        {"max_query_embeddings", &p.max_query_embeddings},
        {"min_query_embeddings", &p.min_query_embeddings},
        {"match_every_embeddings", &p.match_every_embeddings},
        {"nprobe", &p.match.nprobe},
        {"k_per_query", &p.match.k_per_query},
        {"max_candidates", &p.match.max_candidates},
        {"n_results", &p.match.n_results},
        {"confirm_looks", &p.listen.confirm_looks},
        {"gate_close_hops", &p.gate_close_hops},
    };
    const double nan = std::numeric_limits<double>::quiet_NaN();
    double threshold_base = nan, threshold_scale = nan, max_drift = nan, prior_weight = nan,
           prior_offset = nan;
    const std::pair<const char*, double*> number_keys[] = {
        {"threshold_base", &threshold_base},
        {"threshold_scale", &threshold_scale},
        {"max_drift", &max_drift},
        {"prior_weight", &prior_weight},
        {"prior_offset", &prior_offset},
        {"max_listen_s", &p.listen.max_listen_s},
        {"stop_confirm_s", &p.listen.stop_confirm_s},
    };
    const std::pair<const char*, bool*> bool_keys[] = {
        {"live", &p.live},
        {"continuous", &p.listen.continuous},
        {"music_detector", &p.music_detector},
        {"speed_search", &speed_search},
    };
    const size_t n_int_keys = sizeof(int_keys) / sizeof(int_keys[0]);
    const size_t n_number_keys = sizeof(number_keys) / sizeof(number_keys[0]);
    const size_t n_bool_keys = sizeof(bool_keys) / sizeof(bool_keys[0]);

    for (const auto& item : overrides.items()) {
        const std::string& key = item.key();
        const nlohmann::json& value = item.value();
        const std::string what = "recognizer parameter '" + key + "'";
        if (int* target = find_key(int_keys, n_int_keys, key)) {
            if (!value.is_number_integer())
                return Status::error(what + " must be an integer, got " + json_text(value));
            const bool fits =
                value.is_number_unsigned()
                    ? value.get<uint64_t>() <= uint64_t(std::numeric_limits<int>::max())
                    : value.get<int64_t>() >= std::numeric_limits<int>::min() &&
                          value.get<int64_t>() <= std::numeric_limits<int>::max();
            if (!fits) return Status::error(what + " is out of range: " + json_text(value));
            *target = int(value.get<int64_t>());
        } else if (double* target = find_key(number_keys, n_number_keys, key)) {
            if (!value.is_number())
                return Status::error(what + " must be a number, got " + json_text(value));
            const double v = value.get<double>();
            if (!std::isfinite(v) || std::fabs(v) > std::numeric_limits<float>::max())
                return Status::error(what + " is out of range: " + json_text(value));
            *target = v;
        } else if (bool* target = find_key(bool_keys, n_bool_keys, key)) {
            if (!value.is_boolean())
                return Status::error(what + " must be true or false, got " + json_text(value));
            *target = value.get<bool>();
        } else {
            std::string known;
            for (const auto& k : int_keys) known += std::string(k.first) + ", ";
            for (const auto& k : number_keys) known += std::string(k.first) + ", ";
            for (const auto& k : bool_keys) known += std::string(k.first) + ", ";
            known.resize(known.size() - 2);
            return Status::error("unknown recognizer parameter '" + key + "' (known: " + known +
                                 ")");
        }
    }
    override_threshold(&p.match, float(threshold_base), float(threshold_scale));
    if (!std::isnan(max_drift)) p.match.max_drift = float(max_drift);
    if (!std::isnan(prior_weight)) p.match.prior_weight = float(prior_weight);
    if (!std::isnan(prior_offset)) p.match.prior_offset = float(prior_offset);
    if (!speed_search) p.speed.stretches.clear();
    *params = p;
    return Status::ok();
}

nlohmann::json listen_event_json(const ListenEvent& event) {
    nlohmann::json j;
    j["type"] = listen_event_name(event.type);
    j["answer_s"] = event.stream_time_s;
    if (event.type == ListenEvent::Type::kMatch) {
        j["song"] = event.song.id;
        j["title"] = event.song.title;
        j["album"] = event.song.album;
        j["offset_s"] = event.song_time_s - event.stream_time_s;
        j["song_time_s"] = event.song_time_s;
        j["score"] = double(event.confidence);
        j["threshold"] = double(event.threshold);
        j["n_query"] = event.n_query;
        j["returned"] = event.returned;
    }
    return j;
}

nlohmann::json live_result_json(const ListenEvent* answer) {
    nlohmann::json j;
    const bool matched = answer != nullptr && answer->type == ListenEvent::Type::kMatch;
    j["song"] = matched ? nlohmann::json(answer->song.id) : nlohmann::json(nullptr);
    j["offset_s"] = matched ? nlohmann::json(answer->song_time_s - answer->stream_time_s)
                            : nlohmann::json(nullptr);
    j["score"] = matched ? double(answer->confidence) : 0.0;
    j["answer_s"] = matched ? nlohmann::json(answer->stream_time_s) : nlohmann::json(nullptr);
    return j;
}

namespace {
// A stretch is a whole number of thousandths (speed_ratio): 1.02, not 1.0199999809.
double stretch_json(float stretch) { return std::round(double(stretch) * 1000.0) / 1000.0; }
}  // namespace

nlohmann::json result_json(const RecognizerResult& result) {
    const MatchResult& m = result.match;
    const bool matched = result.valid && m.matched;
    nlohmann::json j;
    j["song"] = matched ? nlohmann::json(m.best.id) : nlohmann::json(nullptr);
    j["offset_s"] = matched ? nlohmann::json(song_time_at(result, 0.0)) : nlohmann::json(nullptr);
    j["score"] = m.has_candidates() ? double(m.confidence) : 0.0;
    j["similarity"] = m.has_candidates() ? double(m.best.score) : 0.0;
    j["background"] = double(m.background);
    if (m.prior != 0.0f) j["prior"] = double(m.prior);
    if (!m.runner_ups.empty()) {
        j["runner_up"] = {{"song", m.runner_ups[0].id}, {"score", double(m.runner_ups[0].score)}};
    }
    if (matched && result.stretch != 1.0f) j["stretch"] = stretch_json(result.stretch);
    return j;
}

nlohmann::json speed_search_json(const RecognizerResult& result) {
    const MatchResult& m = result.match;
    return {{"stretch", stretch_json(result.stretch)},
            {"song", m.best.id},
            {"offset_s", song_time_at(result, 0.0)},
            {"score", double(m.confidence)},
            {"similarity", double(m.best.score)},
            {"background", double(m.background)},
            {"prior", double(m.prior)},
            {"threshold", double(m.threshold)},
            {"n_query", m.n_query},
            {"matched", m.matched}};
}

nlohmann::json result_json_with_details(const RecognizerResult& result, double stream_time_s) {
    const MatchResult& m = result.match;
    nlohmann::json j = result_json(result);
    j["valid"] = result.valid;
    j["matched"] = result.valid && m.matched;
    j["threshold"] = m.threshold;
    j["n_query"] = m.n_query;
    j["n_embeddings"] = result.n_embeddings;
    j["query_start_s"] = result.query_start_s;
    j["stream_time_s"] = stream_time_s;
    if (m.has_candidates()) {
        j["best"] = candidate_json(result, m.best);
        nlohmann::json runner_ups = nlohmann::json::array();
        for (const MatchCandidate& c : m.runner_ups)
            runner_ups.push_back(candidate_json(result, c));
        j["runner_ups"] = std::move(runner_ups);
        j["song_time_s"] = song_time_at(result, stream_time_s);
    }
    return j;
}

std::string json_text(const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace earshot
