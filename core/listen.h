// The live listen's decision rule (docs/DESIGN.md, "Listens"): one rule for the page, the web
// component and `earshot query --live`. A *listen* is what the app hears between Listen and its
// answer. The recognizer matches its sliding window after every query embedding; each such
// match is a *look*. A listen makes up to ~30 looks, each a chance of a false positive, so the
// per-look test of the clip matcher (threshold_by_n, calibrated for one decision per clip) would
// answer a song for a third of the listens whose music is not in the index. ListenDecider is a
// sequential test over the looks instead: a look *passes* when its confidence reaches the listen
// table threshold(n), fitted on train-set listens so that the false-positive rate of a *whole*
// listen (all its looks together) stays under a target; the listen commits when `confirm_looks`
// consecutive passing looks name the same song.
//
//   ListenDecider decider(listen_default_params(model));
//   for every look:  if (decider.on_look(match, query_start_s, stream_time_s, &event)) show(event);
//   music gate off:  if (decider.on_music_stopped(stream_time_s, &event)) show(event);
//   audio consumed:  if (decider.on_audio(stream_time_s, &event)) show(event);  // listen over
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/matcher.h"
#include "core/status.h"

namespace earshot {

struct ModelInfo;

struct ListenParams {
    // Threshold on MatchResult::confidence for a window of n query embeddings:
    // threshold_by_n[min(n, size) - 1]. Calibrated for a whole listen (model metadata
    // `listen_threshold_by_n`, models/calibrate_listen.py); must not be empty.
    std::vector<float> threshold_by_n;
    int confirm_looks = 1;       // consecutive passing looks naming the same song to commit
    double max_listen_s = 15.0;  // one-shot listens end with no match after this much audio
    bool continuous = false;     // keep listening: report each new song, music stops, returns
    // Continuous: the music gate closing only starts a stop; kMusicStopped is reported once no
    // look has named the current song again for this long. The music detector misses a quiet
    // passage inside a song now and then (seen in the soak test: dropouts of 2-3 s in the
    // middle of a song), and the song coming straight back must not read as "stopped" and
    // "returned". A look naming another song reports the stop at once, before that song.
    double stop_confirm_s = 5.0;
};
// The model's calibrated listen rule; without one (older model files), the clip table raised
// by kListenFallbackMargin with confirm_looks 2 (uncalibrated: docs/EVALUATION.md).
ListenParams listen_default_params(const ModelInfo& model);
// The same for an index with this code (Quantizer::code_name): the model's rule for that code
// (metadata `listen_rule_by_code`: {"16-opq-unit": {"threshold_by_n": [...], "confirm_looks":
// 1}}) when it has one, else its main rule.
ListenParams listen_default_params(const ModelInfo& model, const std::string& code);
Status check_listen_params(const ListenParams& params);
constexpr float kListenFallbackMargin = 0.05f;

struct ListenEvent {
    enum class Type { kMatch, kNoMatch, kMusicStopped };
    Type type = Type::kNoMatch;
    MatchCandidate song;        // kMatch: the song (offset_s: song time of the window start)
    double song_time_s = 0.0;   // kMatch: song time at stream_time_s
    double stream_time_s = 0.0; // seconds of audio consumed when the event was decided
    float confidence = 0.0f;    // kMatch: the committing look's confidence and threshold
    float threshold = 0.0f;
    size_t n_query = 0;         // kMatch: embeddings in the committing window
    bool returned = false;      // kMatch in continuous mode: the song was reported earlier
};
const char* listen_event_name(ListenEvent::Type type);

class ListenDecider {
public:
    explicit ListenDecider(const ListenParams& params);
    const ListenParams& params() const { return params_; }

    // One look: the match of the window whose first embedding is at stream time query_start_s,
    // computed with stream_time_s seconds of audio consumed. Returns true (and fills *event)
    // when the listen commits to a song here (continuous: a song other than the current one).
    bool on_look(const MatchResult& match, double query_start_s, double stream_time_s,
                 ListenEvent* event);
    // After on_look() returned true in continuous mode: the kMusicStopped of the song before,
    // when the new song's match also confirmed that stop (report it first). False otherwise.
    bool take_stop_before(ListenEvent* event);
    // The music gate closed (no music heard for a while). Continuous mode starts a stop after a
    // song (reported by on_audio() once stop_confirm_s passed without the song coming back);
    // a one-shot listen only forgets its pending looks.
    bool on_music_stopped(double stream_time_s, ListenEvent* event);
    // Audio consumed so far: a one-shot listen that has not committed by max_listen_s ends here
    // with kNoMatch; a continuous one reports a stop confirmed by now.
    bool on_audio(double stream_time_s, ListenEvent* event);
    // The audio ended (the clip is over): a one-shot listen that has not committed ends here
    // with kNoMatch; a continuous one reports a stop it had started.
    bool on_end(double stream_time_s, ListenEvent* event);
    // A one-shot listen has answered (kMatch or kNoMatch): later calls report nothing.
    bool done() const { return done_; }
    float threshold(size_t n_query) const;
    void reset();

private:
    ListenParams params_;
    bool done_ = false;
    int streak_ = 0;                     // consecutive passing looks naming streak_song_
    size_t streak_song_ = 0;
    bool has_current_ = false;           // continuous: a song is being reported
    size_t current_song_ = 0;
    std::vector<size_t> reported_;       // continuous: songs reported in this session
    bool stop_pending_ = false;          // continuous: the gate closed after current_song_
    double stop_since_s_ = 0.0;
    bool stop_before_ = false;           // continuous: take_stop_before() has an event
    ListenEvent stop_before_event_;
};

}  // namespace earshot
