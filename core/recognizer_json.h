// The recognizer's JSON forms, shared by the command line (`earshot query`) and the browser
// bindings (wasm/bindings.cc): parameter overrides in, results out.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/recognizer.h"
#include "core/status.h"

namespace earshot {

// Applies `overrides`, a JSON object such as {"nprobe": 16, "threshold_base": 0.4}, to *params.
// Integer keys: query_hop_frames, max_query_embeddings, min_query_embeddings,
// match_every_embeddings, nprobe, k_per_query, max_candidates, n_results, confirm_looks (listen
// rule), gate_close_hops. Number keys: threshold_base, threshold_scale (either one replaces the
// model's calibrated decision by the plain curve: override_threshold in core/matcher.h),
// max_drift, prior_weight, prior_offset (MatchParams), max_listen_s (seconds; 0: no limit). Boolean
// keys: live, continuous (the live listen, core/listen.h), music_detector, speed_search (false:
// no speed search in clip mode). An unknown key, a value of the wrong
// type or an integer outside int's range is an error naming the key, and leaves *params unchanged.
// Ranges are checked where the parameters are used (check_recognizer_params).
Status apply_recognizer_overrides(const nlohmann::json& overrides, RecognizerParams* params);

// A decision in the results contract that `earshot query` prints, one object per clip:
//   song        the matched song's id, or null when nothing matched
//   offset_s    song time (s) at the start of the stream (the clip), or null
//   score       the decision statistic compared with the threshold (MatchResult::confidence);
//               0 when there was no candidate at all
//   similarity  the best candidate's aligned mean cosine similarity (0 without candidates)
//   background  MatchResult::background
//   prior       MatchResult::prior, when the popularity-weighted decision added one
//   runner_up   {song, score} of the best other song, when there is one
nlohmann::json result_json(const RecognizerResult& result);
// The speed search's best stretch (Recognizer::speed_result()), matched or not: {"stretch",
// "song", "offset_s", "score" (confidence), "similarity", "background", "threshold",
// "n_query", "matched"}.
nlohmann::json speed_search_json(const RecognizerResult& result);

// result_json() plus what a live display needs, for the stream at `stream_time_s` (seconds
// since reset(), e.g. Recognizer::stream_time_s()):
//   valid, matched, threshold, n_query, n_embeddings, query_start_s, stream_time_s
//   best, runner_ups  candidates {id, title, album, offset_s, score} (offset_s as above),
//                     when there are candidates
//   song_time_s       where the best candidate's song is at stream_time_s
nlohmann::json result_json_with_details(const RecognizerResult& result, double stream_time_s);

// A listen event (core/listen.h), for the page and `earshot query --live`:
//   type           "match", "nomatch" or "music-stopped"
//   answer_s       seconds of audio consumed when it was decided (the ruler's answer_s)
//   match only:    song, title, album, offset_s (song time at the start of the stream),
//                  song_time_s (song time at answer_s), score (confidence), threshold, n_query,
//                  returned (continuous mode: the song was reported before)
nlohmann::json listen_event_json(const ListenEvent& event);

// The results-contract line of a live (one-shot) listen: song, offset_s, score and answer_s of
// its answer (`answer`, a kMatch event), or nulls (score 0) when it ended without one.
nlohmann::json live_result_json(const ListenEvent* answer);

// j.dump() that never throws: invalid UTF-8 (titles come from tags) is replaced, not an error.
std::string json_text(const nlohmann::json& j);

}  // namespace earshot
