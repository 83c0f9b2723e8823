// Streaming recognizer (docs/DESIGN.md section 7).
#include "core/recognizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/speed_change.h"

namespace earshot {

constexpr int kMaxQueryEmbeddings = 4096;  // sanity bound on the sliding window
constexpr double kDefaultWindowS = 10.0;   // default sliding window, seconds
constexpr double kGateCloseS = 2.0;        // default: 2 s without music closes the gate

RecognizerParams recognizer_default_params(const ModelInfo& model) {
    RecognizerParams params;
    params.query_hop_frames = model.query_hop_frames;
    // A 10 s sliding window at the query hop (20 embeddings at 0.5 s, 40 at 0.25 s).
    params.max_query_embeddings = 20;
    const double hop_s = model_query_hop_s(model);
    if (hop_s > 0.0) {
        params.max_query_embeddings =
            std::max(1, std::min(kMaxQueryEmbeddings, int(std::lround(kDefaultWindowS / hop_s))));
    }
    params.min_query_embeddings = 1;
    params.match_every_embeddings = 1;
    params.match = match_default_params();
    if (model.threshold > 0.0f) params.match.threshold_base = model.threshold;
    if (model.threshold_scale >= 0.0f) params.match.threshold_scale = model.threshold_scale;
    params.match.threshold_by_n = model.threshold_by_n;
    params.match.background_weight = model.threshold_background_weight;
    params.match.max_drift = model.match_max_drift;
    params.match.prior_weight = model.threshold_prior_weight;
    params.match.prior_offset = model.threshold_prior_offset;
    params.live = false;
    params.listen = listen_default_params(model);
    params.speed.stretches = model.speed_stretches;
    params.speed.threshold_by_n = model.speed_threshold_by_n;
    params.speed.background_weight = model.threshold_background_weight;
    if (params.speed.threshold_by_n.empty()) params.speed.stretches.clear();
    params.gate_close_hops = 4;
    if (hop_s > 0.0) params.gate_close_hops = std::max(1, int(std::lround(kGateCloseS / hop_s)));
    return params;
}

RecognizerParams recognizer_default_params(const ModelInfo& model, const Index& index) {
    RecognizerParams params = recognizer_default_params(model);
    const std::string code = index.quantizer().code_name();
    const auto table = model.threshold_by_n_for_code.find(code);
    if (code != model.index_code_name() && table != model.threshold_by_n_for_code.end())
        params.match.threshold_by_n = table->second;
    params.listen = listen_default_params(model, code);
    if (code != model.index_code_name()) {
        // The speed table of another code, or no speed search: the main one is fitted to the
        // default code's scores.
        const auto speed = model.speed_threshold_by_n_for_code.find(code);
        params.speed.threshold_by_n.clear();
        if (speed != model.speed_threshold_by_n_for_code.end())
            params.speed.threshold_by_n = speed->second;
        if (params.speed.threshold_by_n.empty()) params.speed.stretches.clear();
    }
    return params;
}

Status check_recognizer_params(const RecognizerParams& params) {
    if (params.query_hop_frames < 1)
        return Status::error(
            "query_hop_frames must be >= 1 (start from recognizer_default_params())");
    if (params.max_query_embeddings < 1 || params.max_query_embeddings > kMaxQueryEmbeddings)
        return Status::error("max_query_embeddings must be in [1, " +
                             std::to_string(kMaxQueryEmbeddings) + "]");
    if (params.min_query_embeddings < 1 ||
        params.min_query_embeddings > params.max_query_embeddings)
        return Status::error("min_query_embeddings must be in [1, max_query_embeddings]");
    if (params.match_every_embeddings < 1)
        return Status::error("match_every_embeddings must be >= 1");
    for (float stretch : params.speed.stretches)
        if (Result<SpeedRatio> ratio = speed_ratio(stretch); !ratio)
            return Status::error("speed.stretches: " + ratio.message());
    if (!params.speed.stretches.empty()) {
        if (params.speed.threshold_by_n.empty())
            return Status::error("speed.threshold_by_n must not be empty when there are stretches");
        for (float t : params.speed.threshold_by_n)
            if (!(std::fabs(t) <= 1.0f))
                return Status::error("speed.threshold_by_n holds a value outside [-1, 1]");
        if (!(params.speed.background_weight >= 0.0f) ||
            !std::isfinite(params.speed.background_weight))
            return Status::error("speed.background_weight must be a finite number >= 0");
    }
    if (params.live) {
        if (params.gate_close_hops < 1) return Status::error("gate_close_hops must be >= 1");
        if (Status st = check_listen_params(params.listen); !st) return st;
    }
    return check_match_params(params.match);
}

double song_time_at(const RecognizerResult& result, const MatchCandidate& c,
                    double stream_time_s) {
    return c.offset_s + stream_time_s - result.query_start_s;
}

double song_time_at(const RecognizerResult& result, double stream_time_s) {
    return song_time_at(result, result.match.best, stream_time_s);
}

Result<std::unique_ptr<Recognizer>> Recognizer::create(std::shared_ptr<const Model> model,
                                                       std::shared_ptr<const Index> index,
                                                       std::unique_ptr<Embedder> embedder,
                                                       const RecognizerParams& params) {
    if (!model || !index || !embedder)
        return Status::error("Recognizer::create: model, index and embedder are all required");
    const ModelInfo& info = model->info();
    if (index->model_hash() != info.hash_hex)
        return Status::error("Recognizer::create: the index was built for model " +
                             index->model_hash() + " but the model is " + info.hash_hex);
    if (index->dim() != info.embedding_dim)
        return Status::error("Recognizer::create: index dim " + std::to_string(index->dim()) +
                             " != model embedding_dim " + std::to_string(info.embedding_dim));
    if (Status st = check_recognizer_params(params); !st)
        return Status::error("Recognizer::create: " + st.message());
    const RecognizerParams& p = params;
    if (info.context_frames < 1 || info.frontend.hop_length < 1 || info.frontend.n_fft < 1)
        return Status::error("Recognizer::create: model has invalid context/hop/n_fft");
    Result<std::unique_ptr<Frontend>> frontend = Frontend::create(info.frontend);
    if (!frontend) return frontend.status();

    std::unique_ptr<Recognizer> r(new Recognizer());
    r->model_ = std::move(model);
    r->index_ = std::move(index);
    r->embedder_ = std::move(embedder);
    r->frontend_ = std::move(frontend.value());
    r->params_ = p;
    r->matcher_ = std::make_unique<Matcher>(*r->index_, p.match);
    r->n_fft_ = info.frontend.n_fft;
    r->hop_length_ = info.frontend.hop_length;
    r->n_mels_ = info.frontend.n_mels;
    r->context_frames_ = info.context_frames;
    r->dim_ = info.embedding_dim;
    r->sample_rate_hz_ = double(info.frontend.sample_rate_hz);
    r->samples_.assign(r->n_fft_, 0.0f);
    r->frame_ring_.assign(size_t(r->context_frames_) * r->n_mels_, 0.0f);
    r->patch_.assign(size_t(r->context_frames_) * r->n_mels_, 0.0f);
    r->embedding_ring_.assign(size_t(p.max_query_embeddings) * r->dim_, 0.0f);
    r->query_.assign(size_t(p.max_query_embeddings) * r->dim_, 0.0f);
    r->window_ids_.assign(size_t(p.max_query_embeddings), 0);
    r->embedding_hop_.assign(size_t(p.max_query_embeddings), 0);
    r->decider_ = ListenDecider(p.listen);
    if (p.live && p.music_detector && r->model_->music_detector()) {
        Result<std::unique_ptr<MusicDetector>> detector =
            MusicDetector::create(*r->model_->music_detector());
        if (!detector) return Status::error("Recognizer::create: " + detector.message());
        r->music_detector_ = std::move(detector.value());
    }
    r->events_.reserve(16);
    if (!p.live && !p.speed.stretches.empty()) {
        // The last window's embeddings and the context of the first, plus one frame.
        r->clip_pcm_keep_ =
            (size_t(p.max_query_embeddings) * p.query_hop_frames + info.context_frames + 1) *
                size_t(info.frontend.hop_length) +
            size_t(info.frontend.n_fft);
        r->clip_pcm_.reserve(2 * r->clip_pcm_keep_);
    }
    return r;
}

Recognizer::~Recognizer() = default;

Status Recognizer::push(const float* pcm, size_t n_samples) {
    if (n_samples > 0 && pcm == nullptr) return Status::error("push: pcm is null");
    if (clip_pcm_keep_ > 0 && !in_speed_pass_) keep_clip_pcm(pcm, n_samples);
    Status status;
    while (n_samples > 0) {
        if (n_samples_skip_ > 0) {  // hop_length > n_fft: samples between frames
            const size_t skip = std::min(n_samples_skip_, n_samples);
            n_samples_skip_ -= skip;
            pcm += skip;
            n_samples -= skip;
            n_samples_total_ += skip;
            continue;
        }
        const size_t take = std::min(size_t(n_fft_) - n_samples_filled_, n_samples);
        std::memcpy(&samples_[n_samples_filled_], pcm, take * sizeof(float));
        n_samples_filled_ += take;
        pcm += take;
        n_samples -= take;
        n_samples_total_ += take;
        if (n_samples_filled_ < size_t(n_fft_)) break;
        Status st = on_frame();
        if (!st && status) status = st;  // keep consuming audio; report the first error
        // Slide to the next frame start.
        if (hop_length_ < n_fft_) {
            std::memmove(samples_.data(), samples_.data() + hop_length_,
                         size_t(n_fft_ - hop_length_) * sizeof(float));
            n_samples_filled_ = size_t(n_fft_ - hop_length_);
        } else {
            n_samples_filled_ = 0;
            n_samples_skip_ = size_t(hop_length_ - n_fft_);
        }
    }
    return status;
}

Status Recognizer::on_frame() {
    const size_t slot = n_frames_ % size_t(context_frames_);
    frontend_->compute_frame(samples_.data(), &frame_ring_[slot * n_mels_]);
    ++n_frames_;
    if (n_frames_ < size_t(context_frames_)) return Status::ok();
    if ((n_frames_ - context_frames_) % size_t(params_.query_hop_frames) != 0) return Status::ok();
    return on_patch();
}

bool Recognizer::patch_holds_music() {
    return earshot::patch_holds_music(patch_.data(), size_t(context_frames_) * n_mels_,
                                      music_detector_.get());
}

void Recognizer::emit(const ListenEvent& event) {
    if (events_read_ == events_.size()) {  // all read: reuse the storage
        events_.clear();
        events_read_ = 0;
    }
    events_.push_back(event);
    if (event.type == ListenEvent::Type::kMatch && !params_.listen.continuous) {
        answer_ = event;
        has_answer_ = true;
    }
}

Status Recognizer::on_patch() {
    // Patch = the last context_frames frames, oldest first.
    const size_t oldest = n_frames_ - context_frames_;
    const size_t row = size_t(n_mels_) * sizeof(float);
    for (int t = 0; t < context_frames_; ++t) {
        const size_t slot = (oldest + t) % size_t(context_frames_);
        std::memcpy(&patch_[size_t(t) * n_mels_], &frame_ring_[slot * n_mels_], row);
    }
    ++n_hops_;
    if (!params_.live) return on_embedding();

    const double stream_time_s = double(n_samples_total_) / sample_rate_hz_;
    ListenEvent event;
    if (decider_.on_audio(stream_time_s, &event)) emit(event);
    if (decider_.done()) return Status::ok();  // the one-shot listen has its answer
    if (patch_holds_music()) {
        hops_without_music_ = 0;
        if (!gate_open_) {  // the music (re)starts: a new window
            gate_open_ = true;
            window_start_ = n_embeddings_;
        }
    } else {
        ++n_patches_gated_;
        if (!gate_open_) return Status::ok();
        if (++hops_without_music_ >= params_.gate_close_hops) {
            gate_open_ = false;
            n_window_ = 0;
            if (decider_.on_music_stopped(stream_time_s, &event)) emit(event);
            return Status::ok();
        }
        // A short drop inside music: keep embedding, so the window stays evenly spaced.
    }
    return on_embedding();
}

Status Recognizer::on_embedding() {
    const size_t max_n = size_t(params_.max_query_embeddings);
    embedding_hop_[n_embeddings_ % max_n] = n_hops_ - 1;
    embedder_->embed(patch_.data(), &embedding_ring_[(n_embeddings_ % max_n) * dim_]);
    ++n_embeddings_;
    ++embeddings_since_match_;
    n_window_ = std::min(n_embeddings_ - window_start_, max_n);
    const size_t first = n_embeddings_ - n_window_;
    for (size_t i = 0; i < n_window_; ++i)
        std::memcpy(&query_[i * dim_], &embedding_ring_[((first + i) % max_n) * dim_],
                    size_t(dim_) * sizeof(float));
    if (in_speed_pass_) return Status::ok();  // search_speeds() matches the last window once
    if (n_window_ >= size_t(params_.min_query_embeddings) &&
        embeddings_since_match_ >= size_t(params_.match_every_embeddings))
        return run_match();
    return Status::ok();
}

double Recognizer::window_start_s() const {
    if (n_window_ == 0) return 0.0;
    const double query_hop_s = double(params_.query_hop_frames) * hop_length_ / sample_rate_hz_;
    const size_t first = n_embeddings_ - n_window_;
    return double(embedding_hop_[first % size_t(params_.max_query_embeddings)]) * query_hop_s;
}

RecognizerResult Recognizer::window_result(MatchResult match) const {
    RecognizerResult result;
    result.match = std::move(match);
    result.query_start_s = window_start_s();
    result.stream_time_s = stream_time_s();
    result.n_embeddings = n_embeddings_;
    result.valid = true;
    return result;
}

Status Recognizer::run_match() {
    embeddings_since_match_ = 0;
    if (!index_->has_quantizer()) return Status::ok();  // the index is still downloading
    const double query_hop_s = double(params_.query_hop_frames) * hop_length_ / sample_rate_hz_;
    const size_t first = n_embeddings_ - n_window_;
    for (size_t i = 0; i < n_window_; ++i) window_ids_[i] = first + i;
    Result<MatchResult> match =
        matcher_->match(query_.data(), window_ids_.data(), n_window_, query_hop_s);
    if (!match) return match.status();
    latest_ = window_result(std::move(match.value()));
    has_new_ = true;
    // Windows of different lengths have different thresholds: compare margins over them.
    auto margin = [](const RecognizerResult& r) {
        return r.match.confidence - r.match.threshold;
    };
    if (latest_.match.matched && (!best_.valid || margin(latest_) > margin(best_)))
        best_ = latest_;
    if (params_.live) {
        ListenEvent event;
        if (decider_.on_look(latest_.match, latest_.query_start_s, latest_.stream_time_s, &event)) {
            ListenEvent stop;
            if (decider_.take_stop_before(&stop)) emit(stop);
            emit(event);
        }
    }
    return Status::ok();
}

bool Recognizer::poll_event(ListenEvent* out) {
    if (events_read_ >= events_.size()) return false;
    if (out) *out = events_[events_read_];
    ++events_read_;
    return true;
}

bool Recognizer::poll(RecognizerResult* out) {
    if (!has_new_) return false;
    has_new_ = false;
    if (out) *out = latest_;
    return true;
}

const RecognizerResult& Recognizer::best() const { return best_.valid ? best_ : latest_; }

RecognizerResult Recognizer::finish() {
    // Embeddings not matched yet (match_every_embeddings > 1 or below min_query_embeddings).
    if (embeddings_since_match_ > 0 && n_window_ > 0) {
        Status st = run_match();
        (void)st;  // a failed final match leaves the earlier results
    }
    ListenEvent event;  // the clip ended before a one-shot listen answered: no song
    if (params_.live && decider_.on_end(stream_time_s(), &event)) emit(event);
    if (clip_pcm_keep_ > 0 && !in_speed_pass_ && best().valid &&
        (params_.speed.always || !best().match.matched))
        search_speeds();
    return best();
}

void Recognizer::keep_clip_pcm(const float* pcm, size_t n_samples) {
    clip_pcm_.insert(clip_pcm_.end(), pcm, pcm + n_samples);
    if (clip_pcm_.size() > 2 * clip_pcm_keep_) {  // drop what no window reaches any more
        const size_t drop = clip_pcm_.size() - clip_pcm_keep_;
        clip_pcm_.erase(clip_pcm_.begin(), clip_pcm_.begin() + ptrdiff_t(drop));
        clip_pcm_start_ += drop;
    }
}

void Recognizer::search_speeds() {
    const RecognizerResult plain = best();
    std::vector<float> pcm = std::move(clip_pcm_);
    const size_t pcm_start = clip_pcm_start_;
    const size_t n_total = n_samples_total_;
    const double start_s = double(pcm_start) / sample_rate_hz_;
    const std::vector<float>& table = params_.speed.threshold_by_n;
    bool found = false;
    float found_margin = 0.0f;
    RecognizerResult chosen;
    in_speed_pass_ = true;
    for (float stretch : params_.speed.stretches) {
        const SpeedRatio ratio = speed_ratio(stretch).value();  // checked at create()
        const std::vector<float> changed = change_speed(pcm.data(), pcm.size(), ratio);
        reset();
        Status st = push(changed.data(), changed.size());
        if (st && embeddings_since_match_ > 0 && n_window_ > 0) st = run_match();
        if (!st || !latest_.valid || !latest_.match.has_candidates()) continue;
        RecognizerResult r = latest_;
        MatchResult& m = r.match;
        m.confidence = m.best.score - params_.speed.background_weight * m.background + m.prior;
        m.threshold = table[std::min(m.n_query, table.size()) - 1];
        m.matched = m.confidence >= m.threshold;
        const float margin = m.confidence - m.threshold;
        if (found && margin <= found_margin) continue;
        // Back to the clip's own times: stretched time tv is clip time start_s + tv / stretch,
        // and the song runs `stretch` times as fast as the clip plays it; offsets are set so
        // that song_time_at(r, 0), the song time at the clip's first sample, is exact.
        const double s = ratio.stretch();
        const double window_v = r.query_start_s;
        r.query_start_s = start_s + window_v / s;
        auto to_clip = [&](MatchCandidate* c) {
            c->offset_s = c->offset_s - start_s * s - window_v + r.query_start_s;
            c->rate *= s;
        };
        to_clip(&m.best);
        for (MatchCandidate& c : m.runner_ups) to_clip(&c);
        r.stream_time_s = double(n_total) / sample_rate_hz_;
        r.stretch = stretch;
        chosen = std::move(r);
        found = true;
        found_margin = margin;
    }
    in_speed_pass_ = false;
    clip_pcm_ = std::move(pcm);  // its capacity, for the next clip
    reset();  // the stretched audio's state; the clip's decision stays below
    n_samples_total_ = n_total;
    speed_result_ = chosen;
    has_speed_result_ = found;
    const RecognizerResult& answer =
        plain.match.matched || !found || !chosen.match.matched ? plain : chosen;
    latest_ = answer;
    if (answer.match.matched) best_ = answer;
}

void Recognizer::reset() {
    std::fill(samples_.begin(), samples_.end(), 0.0f);
    n_samples_filled_ = 0;
    n_samples_skip_ = 0;
    n_samples_total_ = 0;
    n_frames_ = 0;
    n_embeddings_ = 0;
    n_window_ = 0;
    embeddings_since_match_ = 0;
    latest_ = RecognizerResult();
    best_ = RecognizerResult();
    has_new_ = false;
    matcher_->clear_cache();  // embedding ids restart at 0
    n_hops_ = 0;
    window_start_ = 0;
    decider_.reset();
    gate_open_ = false;
    hops_without_music_ = 0;
    n_patches_gated_ = 0;
    events_.clear();
    events_read_ = 0;
    has_answer_ = false;
    if (!in_speed_pass_) {
        clip_pcm_.clear();
        clip_pcm_start_ = 0;
        has_speed_result_ = false;
    }
}

Result<RecognizerResult> recognize_clip(std::shared_ptr<const Model> model,
                                        std::shared_ptr<const Index> index,
                                        std::unique_ptr<Embedder> embedder, const float* pcm,
                                        size_t n_samples, const RecognizerParams& params) {
    Result<std::unique_ptr<Recognizer>> rec =
        Recognizer::create(std::move(model), std::move(index), std::move(embedder), params);
    if (!rec) return rec.status();
    Status st = rec.value()->push(pcm, n_samples);
    if (!st) return st;
    return rec.value()->finish();
}

}  // namespace earshot
