// The live listen's decision rule (core/listen.h).
#include "core/listen.h"

#include <algorithm>
#include <cmath>

#include "core/model.h"

namespace earshot {

namespace {

// A calibrated rule from `table` and `confirm` (metadata values, either may be absent: end());
// false when there is no table. A non-number threshold reads as 1 (never passes).
bool read_listen_rule(const nlohmann::json& table, const nlohmann::json* confirm,
                      ListenParams* params) {
    if (!table.is_array() || table.empty()) return false;
    for (const auto& value : table)
        params->threshold_by_n.push_back(value.is_number() ? value.get<float>() : 1.0f);
    if (confirm != nullptr && confirm->is_number_integer())
        params->confirm_looks = confirm->get<int>();
    return true;
}

}  // namespace

ListenParams listen_default_params(const ModelInfo& model, const std::string& code) {
    ListenParams params;
    const nlohmann::json& meta = model.meta;
    const auto by_code = meta.find("listen_rule_by_code");
    if (code != model.index_code_name() && by_code != meta.end() && by_code->is_object()) {
        const auto rule = by_code->find(code);
        if (rule != by_code->end() && rule->is_object()) {
            const auto table = rule->find("threshold_by_n");
            const auto confirm = rule->find("confirm_looks");
            if (table != rule->end() &&
                read_listen_rule(*table, confirm != rule->end() ? &*confirm : nullptr, &params))
                return params;
        }
    }
    const auto table = meta.find("listen_threshold_by_n");
    const auto confirm = meta.find("listen_confirm_looks");
    if (table != meta.end() &&
        read_listen_rule(*table, confirm != meta.end() ? &*confirm : nullptr, &params))
        return params;
    // No calibrated rule in the file: the clip table, raised, with two confirming looks.
    params.threshold_by_n = model.threshold_by_n;
    if (params.threshold_by_n.empty())
        params.threshold_by_n.push_back(model.threshold > 0.0f ? model.threshold : 0.5f);
    for (float& t : params.threshold_by_n) t += kListenFallbackMargin;
    params.confirm_looks = 2;
    return params;
}

ListenParams listen_default_params(const ModelInfo& model) {
    return listen_default_params(model, model.index_code_name());
}

Status check_listen_params(const ListenParams& params) {
    if (params.threshold_by_n.empty())
        return Status::error("listen parameters: threshold_by_n is empty");
    for (float t : params.threshold_by_n)
        if (!std::isfinite(t))
            return Status::error("listen parameters: threshold_by_n holds a non-finite value");
    if (params.confirm_looks < 1 || params.confirm_looks > 16)
        return Status::error("listen parameters: confirm_looks must be in [1, 16]");
    if (!(params.max_listen_s >= 0.0) || !std::isfinite(params.max_listen_s))
        return Status::error("listen parameters: max_listen_s must be >= 0 (0: no limit)");
    if (!(params.stop_confirm_s >= 0.0 && params.stop_confirm_s <= 60.0))
        return Status::error("listen parameters: stop_confirm_s must be in [0, 60]");
    return Status::ok();
}

namespace {
// An event that names no song: nomatch, music-stopped.
ListenEvent bare_event(ListenEvent::Type type, double stream_time_s) {
    ListenEvent e;
    e.type = type;
    e.stream_time_s = stream_time_s;
    return e;
}
}  // namespace

const char* listen_event_name(ListenEvent::Type type) {
    switch (type) {
        case ListenEvent::Type::kMatch: return "match";
        case ListenEvent::Type::kNoMatch: return "nomatch";
        case ListenEvent::Type::kMusicStopped: return "music-stopped";
    }
    return "unknown";
}

ListenDecider::ListenDecider(const ListenParams& params) : params_(params) {
    if (params_.threshold_by_n.empty()) params_.threshold_by_n.push_back(1.0f);
    params_.confirm_looks = std::max(1, params_.confirm_looks);
}

float ListenDecider::threshold(size_t n_query) const {
    const size_t i = std::min(std::max<size_t>(n_query, 1), params_.threshold_by_n.size()) - 1;
    return params_.threshold_by_n[i];
}

bool ListenDecider::on_look(const MatchResult& match, double query_start_s, double stream_time_s,
                            ListenEvent* event) {
    if (done_) return false;
    const bool passes = match.has_candidates() && match.n_query > 0 &&
                        match.confidence >= threshold(match.n_query);
    if (!passes) {
        streak_ = 0;
        return false;
    }
    const size_t song = match.best.song_index;
    streak_ = (streak_ > 0 && streak_song_ == song) ? streak_ + 1 : 1;
    streak_song_ = song;
    if (streak_ < params_.confirm_looks) return false;
    if (params_.continuous && has_current_ && current_song_ == song) {
        stop_pending_ = false;  // the song came back before its stop was confirmed
        return false;
    }
    if (params_.continuous && stop_pending_) {  // another song: the stop is confirmed
        stop_pending_ = false;
        stop_before_ = true;
        stop_before_event_ = bare_event(ListenEvent::Type::kMusicStopped, stream_time_s);
    }

    ListenEvent e;
    e.type = ListenEvent::Type::kMatch;
    e.song = match.best;
    e.song_time_s = match.best.offset_s + (stream_time_s - query_start_s);
    e.stream_time_s = stream_time_s;
    e.confidence = match.confidence;
    e.threshold = threshold(match.n_query);
    e.n_query = match.n_query;
    if (params_.continuous) {
        e.returned = std::find(reported_.begin(), reported_.end(), song) != reported_.end();
        if (!e.returned) reported_.push_back(song);
        has_current_ = true;
        current_song_ = song;
    } else {
        done_ = true;
    }
    if (event) *event = e;
    return true;
}

bool ListenDecider::take_stop_before(ListenEvent* event) {
    if (!stop_before_) return false;
    stop_before_ = false;
    if (event) *event = stop_before_event_;
    return true;
}

bool ListenDecider::on_music_stopped(double stream_time_s, ListenEvent* event) {
    streak_ = 0;
    if (done_ || !params_.continuous || !has_current_ || stop_pending_) return false;
    if (params_.stop_confirm_s > 0.0) {
        stop_pending_ = true;
        stop_since_s_ = stream_time_s;
        return false;
    }
    has_current_ = false;
    if (event) *event = bare_event(ListenEvent::Type::kMusicStopped, stream_time_s);
    return true;
}

bool ListenDecider::on_audio(double stream_time_s, ListenEvent* event) {
    if (params_.continuous) {
        if (!stop_pending_ || stream_time_s - stop_since_s_ < params_.stop_confirm_s) return false;
        stop_pending_ = false;
        has_current_ = false;
        if (event) *event = bare_event(ListenEvent::Type::kMusicStopped, stream_time_s);
        return true;
    }
    if (done_ || params_.max_listen_s <= 0.0 || stream_time_s < params_.max_listen_s)
        return false;
    return on_end(stream_time_s, event);
}

bool ListenDecider::on_end(double stream_time_s, ListenEvent* event) {
    if (params_.continuous) {
        if (!stop_pending_) return false;
        stop_pending_ = false;
        has_current_ = false;
        if (event) *event = bare_event(ListenEvent::Type::kMusicStopped, stream_time_s);
        return true;
    }
    if (done_) return false;
    done_ = true;
    if (event) *event = bare_event(ListenEvent::Type::kNoMatch, stream_time_s);
    return true;
}

void ListenDecider::reset() {
    done_ = false;
    streak_ = 0;
    streak_song_ = 0;
    has_current_ = false;
    current_song_ = 0;
    reported_.clear();
    stop_pending_ = false;
    stop_before_ = false;
}

}  // namespace earshot
