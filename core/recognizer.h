// Streaming recognizer (docs/DESIGN.md section 7): PCM at the model's sample rate in, any block
// size; log-mel frames computed incrementally, one embedding every query_hop_frames once
// context_frames are available, and the matcher re-run on the sliding window of the last
// max_query_embeddings. Offline recognition = push everything, then finish(): the same code
// path, so streaming and offline results are identical.
//
//   auto rec = Recognizer::create(model, index, std::move(embedder),
//                                 recognizer_default_params(info, *index));
//   rec->push(pcm, n);  // any n, as often as wanted
//   if (rec->best().match.matched) show(rec->best());  // the decision so far
//   RecognizerResult final_result = rec->finish();     // the decision at the end of the stream
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/embedder.h"
#include "core/frontend.h"
#include "core/index.h"
#include "core/listen.h"
#include "core/matcher.h"
#include "core/model.h"
#include "core/music_detector.h"
#include "core/status.h"

namespace earshot {

// The offline clip mode's speed search (docs/DESIGN.md section 6): a clip that finds no song as
// played is played again at each stretch (core/speed_change.h: 1.02 plays it 2 % slower, which
// brings a song played 2 % fast back to its own speed) and the stretch whose match clears its
// threshold by the most answers. Each stretch is one more chance for an out-of-catalog clip to
// meet some song, so the best stretch needs its own, higher table (metadata `speed_search`,
// models/calibrate_threshold.py --speed), fitted on the negatives that the clip table rejects.
struct SpeedSearchParams {
    std::vector<float> stretches;       // empty: no speed search
    std::vector<float> threshold_by_n;  // threshold_by_n[min(n, size) - 1] for the best stretch
    // The confidence the table is in: score - background_weight * background + prior (the
    // model's weight, kept when a calibration run overrides the clip thresholds).
    float background_weight = 0.0f;
    // Play every stretch even when the clip as played matched, and keep the best one's result
    // (Recognizer::speed_result(); to calibrate the table with the clip thresholds off).
    bool always = false;
};

// Obtain one from recognizer_default_params() and edit it (apply_recognizer_overrides in
// core/recognizer_json.h applies JSON overrides); create() rejects invalid values, so a
// value-initialized RecognizerParams (zero counts) is refused.
struct RecognizerParams {
    int query_hop_frames = 0;        // frames between query embeddings
    int max_query_embeddings = 0;    // sliding window matched each time
    int min_query_embeddings = 0;    // no matching before this many embeddings
    int match_every_embeddings = 0;  // re-run the matcher every this many new embeddings
    MatchParams match;
    // The live listen (core/listen.h). Off (the offline clip mode): every patch is embedded and
    // finish() takes one decision on the clip. On: a music gate runs before the network (only
    // patches that hold music are embedded: not near-silent, and music to the model's music
    // detector when it carries one; the window restarts when the music does), the
    // listen rule decides over every look and reports ListenEvents (poll_event()).
    bool live = false;
    // Live only: false = the level gate alone, without the model's music detector (to measure
    // what the detector adds, and what the listen rule holds if the detector lets noise by).
    bool music_detector = true;
    ListenParams listen;
    // Clip mode only (live false): the speed search run by finish(). Off without stretches.
    SpeedSearchParams speed;
    // Query hops without music that close an open gate (and clear the window): short drops
    // inside music keep the window, so its embeddings stay evenly spaced in time.
    int gate_close_hops = 0;
};
// The defaults, in one place: the model's query hop, a 10 s window at that hop, matching after
// every embedding from the first one on, and match_default_params() with the model's
// calibrated thresholds.
RecognizerParams recognizer_default_params(const ModelInfo& model);
// The same, with the thresholds calibrated for this index's code: the model's
// threshold_by_n_for_code table for the quantizer's code_name() when it has one, else its main
// table (calibrated for the model's index_code_name()); the same for the listen rule
// (listen_default_params).
RecognizerParams recognizer_default_params(const ModelInfo& model, const Index& index);
// OK, or what is wrong with `params` (the match parameters included).
Status check_recognizer_params(const RecognizerParams& params);

struct RecognizerResult {
    MatchResult match;           // match.best.offset_s is the song time of query_start_s
    double query_start_s = 0.0;  // stream time of the window's first embedding
    double stream_time_s = 0.0;  // stream time (samples pushed / rate) when this was computed
    size_t n_embeddings = 0;     // embeddings computed since reset()
    bool valid = false;          // false until the matcher has run at least once
    // Clip mode: the stretch the clip was played at for this result (1: as it came; 1.02: 2 %
    // slower, the clip itself being 2 % fast, at rate 1.02 in match.best.rate). Times are the
    // clip's own: song_time_at(result, 0) is the song time at the clip's first sample.
    float stretch = 1.0f;
};

// Where candidate `c` of `result` is in its song when the stream is at `stream_time_s`
// (seconds since reset()): c.offset_s is the song time of the window start, query_start_s.
// With stream_time_s = 0 this is the song time at the start of the stream (of a clip).
double song_time_at(const RecognizerResult& result, const MatchCandidate& c,
                    double stream_time_s);
// The same for the best candidate.
double song_time_at(const RecognizerResult& result, double stream_time_s);

class Recognizer {
public:
    // The Index may keep receiving shards (the caller owns it non-const); matching starts once
    // it has a quantizer (until then embeddings are computed but no result is produced).
    // Checks that the index was built with this model (hash and embedding_dim) and the
    // parameters (check_recognizer_params); `embedder` must have been created for `model`.
    static Result<std::unique_ptr<Recognizer>> create(std::shared_ptr<const Model> model,
                                                      std::shared_ptr<const Index> index,
                                                      std::unique_ptr<Embedder> embedder,
                                                      const RecognizerParams& params);
    ~Recognizer();

    // Any block size, including 0. Buffers are sized at create(); nothing allocates here
    // except the strings of a new result. All samples are consumed even on error; the error
    // (a matcher failure) is the first one met.
    Status push(const float* pcm, size_t n_samples);

    // True when the matcher ran since the last poll(); copies the latest result to *out.
    bool poll(RecognizerResult* out);
    const RecognizerResult& latest() const { return latest_; }
    // The decision so far: the matched result with the largest margin confidence -
    // threshold(n) since reset() (windows of different lengths have different thresholds); if
    // none matched yet, latest(). It covers every window matched (poll() and latest() only the
    // last one of a push), so it does not depend on the block sizes pushed.
    const RecognizerResult& best() const;

    // End of stream: matches embeddings not matched yet (match_every_embeddings > 1), then
    // returns best() (the decision for an offline clip). In clip mode with speed stretches,
    // when that finds no song (or always), the last window's audio is played again at each
    // stretch and best() becomes the best stretch's result if it clears the speed table (the
    // window's embeddings, query_embeddings(), are then gone: a caller that needs them turns
    // the search off). Does not reset otherwise. A clip shorter than one context (0.985 s for v1)
    // gives valid == false.
    RecognizerResult finish();
    // After finish(): the best stretch's result when the speed search ran (matched or not:
    // match.threshold is the speed table's), else nullptr.
    const RecognizerResult* speed_result() const {
        return has_speed_result_ ? &speed_result_ : nullptr;
    }
    // Forget all audio and results; keeps the buffers.
    void reset();

    // Live mode: the next listen event (a committed song, the end of a one-shot listen without
    // one, the music stopping); false when there is none. Events queue up between calls.
    bool poll_event(ListenEvent* out);
    // Live mode: the one-shot listen's answer so far (kMatch), or nullptr.
    const ListenEvent* answer() const { return has_answer_ ? &answer_ : nullptr; }
    // Live mode: whether the gate lets patches through to the network now.
    bool hears_music() const { return gate_open_; }
    size_t n_patches_gated() const { return n_patches_gated_; }

    // The current window of query embeddings (n x dim, oldest first) and its size.
    const float* query_embeddings() const { return query_.data(); }
    size_t n_query_embeddings() const { return n_window_; }
    size_t n_embeddings_total() const { return n_embeddings_; }
    // Stream time (seconds since reset()) of the current window's first embedding: the
    // query_start_s a match of query_embeddings() now would carry (0 when the window is empty).
    double window_start_s() const;
    // `match` (of query_embeddings() now) as a result of the current window: query_start_s,
    // stream_time_s and n_embeddings are now's. The recognizer's own matches are made so, and
    // so are a lazy page's looks, which match the window elsewhere (core/lazy_index.h).
    RecognizerResult window_result(MatchResult match) const;
    size_t n_frames_total() const { return n_frames_; }
    // Seconds of audio pushed since reset().
    double stream_time_s() const { return double(n_samples_total_) / sample_rate_hz_; }
    const RecognizerParams& params() const { return params_; }

private:
    Recognizer() = default;
    Status on_frame();
    Status on_patch();
    Status on_embedding();
    Status run_match();
    void search_speeds();
    void keep_clip_pcm(const float* pcm, size_t n_samples);
    bool patch_holds_music();
    void emit(const ListenEvent& event);

    std::shared_ptr<const Model> model_;
    std::shared_ptr<const Index> index_;
    std::unique_ptr<Embedder> embedder_;
    std::unique_ptr<Frontend> frontend_;
    std::unique_ptr<Matcher> matcher_;
    RecognizerParams params_;

    int n_fft_ = 0, hop_length_ = 0, n_mels_ = 0, context_frames_ = 0, dim_ = 0;
    double sample_rate_hz_ = 0.0;
    std::vector<float> samples_;  // [n_fft]: the next frame's samples
    size_t n_samples_filled_ = 0;
    size_t n_samples_skip_ = 0;  // only when hop_length > n_fft
    size_t n_samples_total_ = 0;
    std::vector<float> frame_ring_;      // [context_frames, n_mels]: the latest frames
    size_t n_frames_ = 0;                // frames computed since reset
    std::vector<float> patch_;           // [context_frames, n_mels]
    std::vector<float> embedding_ring_;  // [max_query_embeddings, dim]
    std::vector<float> query_;           // [max_query_embeddings, dim], oldest first
    std::vector<uint64_t> window_ids_;   // stream numbers of the window's embeddings
    size_t n_embeddings_ = 0;
    size_t n_window_ = 0;
    size_t embeddings_since_match_ = 0;
    size_t n_hops_ = 0;                 // patches (query hops) since reset, embedded or not
    std::vector<uint64_t> embedding_hop_;  // [max_query_embeddings]: hop of each ring slot
    size_t window_start_ = 0;           // embedding number where the current window starts

    RecognizerResult latest_, best_;
    bool has_new_ = false;

    // Clip mode's speed search: the audio of the last window (and its context), from stream
    // sample clip_pcm_start_ on, kept only when params_.speed has stretches.
    std::vector<float> clip_pcm_;
    size_t clip_pcm_start_ = 0;
    size_t clip_pcm_keep_ = 0;  // samples that cover the last window
    bool in_speed_pass_ = false;
    RecognizerResult speed_result_;
    bool has_speed_result_ = false;

    // Live mode.
    std::unique_ptr<MusicDetector> music_detector_;  // the model's, when it carries one
    ListenDecider decider_{ListenParams()};
    bool gate_open_ = false;
    int hops_without_music_ = 0;
    size_t n_patches_gated_ = 0;        // patches the gate kept from the network
    std::vector<ListenEvent> events_;   // not yet polled, oldest first
    size_t events_read_ = 0;
    ListenEvent answer_;
    bool has_answer_ = false;
};

// Convenience: offline recognition of a whole clip (push + finish with a fresh recognizer).
Result<RecognizerResult> recognize_clip(std::shared_ptr<const Model> model,
                                        std::shared_ptr<const Index> index,
                                        std::unique_ptr<Embedder> embedder, const float* pcm,
                                        size_t n_samples, const RecognizerParams& params);

}  // namespace earshot
