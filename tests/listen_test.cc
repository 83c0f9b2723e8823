// The live listen's decision rule (core/listen.h) on hand-made sequences of looks.
#include "core/listen.h"

#include <gtest/gtest.h>

#include "core/model.h"

namespace earshot {
namespace {

// A look: best song `song` with confidence `confidence` over n embeddings, the window starting
// at song time `offset_s`.
MatchResult look(size_t song, float confidence, size_t n, double offset_s = 10.0) {
    MatchResult m;
    m.n_query = n;
    m.n_candidates = 1;
    m.best.song_index = song;
    m.best.id = "song-" + std::to_string(song);
    m.best.offset_s = offset_s;
    m.best.score = confidence;
    m.confidence = confidence;
    return m;
}

ListenParams params(int confirm, bool continuous = false) {
    ListenParams p;
    p.threshold_by_n = {0.6f, 0.5f, 0.4f};  // 1, 2, >= 3 embeddings
    p.confirm_looks = confirm;
    p.max_listen_s = 15.0;
    p.continuous = continuous;
    p.stop_confirm_s = 3.0;
    return p;
}

TEST(Listen, ThresholdByWindowLength) {
    ListenDecider d(params(1));
    EXPECT_FLOAT_EQ(d.threshold(0), 0.6f);
    EXPECT_FLOAT_EQ(d.threshold(1), 0.6f);
    EXPECT_FLOAT_EQ(d.threshold(2), 0.5f);
    EXPECT_FLOAT_EQ(d.threshold(3), 0.4f);
    EXPECT_FLOAT_EQ(d.threshold(40), 0.4f);
}

TEST(Listen, CommitsOnFirstPassingLookAndReportsSongTimeAtDecision) {
    ListenDecider d(params(1));
    ListenEvent e;
    EXPECT_FALSE(d.on_look(look(3, 0.55f, 1), 2.0, 3.0, &e));  // below 0.6 at n = 1
    ASSERT_TRUE(d.on_look(look(3, 0.55f, 2, 40.0), 2.0, 3.5, &e));
    EXPECT_EQ(e.type, ListenEvent::Type::kMatch);
    EXPECT_EQ(e.song.song_index, 3u);
    EXPECT_DOUBLE_EQ(e.stream_time_s, 3.5);
    EXPECT_DOUBLE_EQ(e.song_time_s, 41.5);  // 40 s at stream time 2.0, 1.5 s later
    EXPECT_FLOAT_EQ(e.threshold, 0.5f);
    EXPECT_EQ(e.n_query, 2u);
    EXPECT_TRUE(d.done());
    EXPECT_FALSE(d.on_look(look(3, 0.9f, 3), 2.0, 4.0, &e));  // one answer per listen
    EXPECT_FALSE(d.on_audio(20.0, &e));
}

TEST(Listen, ConfirmationNeedsConsecutiveLooksOnTheSameSong) {
    ListenDecider d(params(2));
    ListenEvent e;
    EXPECT_FALSE(d.on_look(look(1, 0.7f, 3), 0.0, 1.0, &e));
    EXPECT_FALSE(d.on_look(look(2, 0.7f, 3), 0.0, 1.5, &e));  // another song: streak restarts
    EXPECT_FALSE(d.on_look(look(2, 0.3f, 3), 0.0, 2.0, &e));  // fails: streak restarts
    EXPECT_FALSE(d.on_look(look(2, 0.7f, 3), 0.0, 2.5, &e));
    ASSERT_TRUE(d.on_look(look(2, 0.45f, 3), 0.0, 3.0, &e));
    EXPECT_EQ(e.song.song_index, 2u);
    EXPECT_DOUBLE_EQ(e.stream_time_s, 3.0);
}

TEST(Listen, LooksWithoutCandidatesNeverPass) {
    ListenDecider d(params(1));
    MatchResult empty;
    empty.n_query = 3;
    empty.confidence = 1.0f;  // no candidates: nothing to name
    ListenEvent e;
    EXPECT_FALSE(d.on_look(empty, 0.0, 1.0, &e));
}

TEST(Listen, OneShotListenEndsWithNoMatchAtMaxListen) {
    ListenDecider d(params(1));
    ListenEvent e;
    EXPECT_FALSE(d.on_audio(14.9, &e));
    ASSERT_TRUE(d.on_audio(15.0, &e));
    EXPECT_EQ(e.type, ListenEvent::Type::kNoMatch);
    EXPECT_DOUBLE_EQ(e.stream_time_s, 15.0);
    EXPECT_TRUE(d.done());
    EXPECT_FALSE(d.on_look(look(1, 0.9f, 3), 0.0, 15.5, &e));
    d.reset();
    EXPECT_FALSE(d.done());
    EXPECT_TRUE(d.on_look(look(1, 0.9f, 3), 0.0, 1.0, &e));
}

TEST(Listen, TheEndOfTheAudioEndsAOneShotListen) {
    ListenDecider d(params(1));
    ListenEvent e;
    ASSERT_TRUE(d.on_end(7.0, &e));
    EXPECT_EQ(e.type, ListenEvent::Type::kNoMatch);
    EXPECT_DOUBLE_EQ(e.stream_time_s, 7.0);
    EXPECT_FALSE(d.on_end(8.0, &e));  // once
    ListenDecider answered(params(1));
    ASSERT_TRUE(answered.on_look(look(1, 0.9f, 3), 0.0, 1.0, &e));
    EXPECT_FALSE(answered.on_end(8.0, &e));  // it has its answer
    ListenDecider continuous(params(1, /*continuous=*/true));
    EXPECT_FALSE(continuous.on_end(8.0, &e));
}

// The music detector drops a quiet passage inside a song now and then: the gate closes, and
// the song is matched again right after. That is no stop and no return.
TEST(Listen, ContinuousSongBackBeforeTheStopIsConfirmedIsNoEvent) {
    ListenDecider d(params(1, /*continuous=*/true));
    ListenEvent e;
    ASSERT_TRUE(d.on_look(look(1, 0.7f, 3), 0.0, 1.0, &e));
    EXPECT_FALSE(d.on_music_stopped(11.5, &e));
    EXPECT_FALSE(d.on_audio(13.0, &e));
    EXPECT_FALSE(d.on_look(look(1, 0.7f, 3), 13.0, 14.0, &e));  // song 1 again, 2.5 s later
    EXPECT_FALSE(d.on_audio(20.0, &e));                         // the stop was dropped
    EXPECT_FALSE(d.take_stop_before(&e));
    // A real stop later on is still reported once confirmed.
    EXPECT_FALSE(d.on_music_stopped(30.0, &e));
    ASSERT_TRUE(d.on_audio(33.0, &e));
    EXPECT_EQ(e.type, ListenEvent::Type::kMusicStopped);
}

// Another song matched while a stop waits for confirmation: the stop first, then the song; the
// end of the audio reports a stop that was still waiting.
TEST(Listen, ContinuousAnotherSongConfirmsThePendingStop) {
    ListenDecider d(params(1, /*continuous=*/true));
    ListenEvent e, stop;
    ASSERT_TRUE(d.on_look(look(1, 0.7f, 3), 0.0, 1.0, &e));
    EXPECT_FALSE(d.take_stop_before(&stop));  // no stop before the first song
    EXPECT_FALSE(d.on_music_stopped(10.0, &e));
    ASSERT_TRUE(d.on_look(look(2, 0.7f, 3), 11.0, 12.0, &e));
    EXPECT_EQ(e.song.song_index, 2u);
    ASSERT_TRUE(d.take_stop_before(&stop));
    EXPECT_EQ(stop.type, ListenEvent::Type::kMusicStopped);
    EXPECT_DOUBLE_EQ(stop.stream_time_s, 12.0);
    EXPECT_FALSE(d.take_stop_before(&stop));  // once
    EXPECT_FALSE(d.on_music_stopped(20.0, &e));
    ASSERT_TRUE(d.on_end(21.0, &e));
    EXPECT_EQ(e.type, ListenEvent::Type::kMusicStopped);
    EXPECT_FALSE(d.on_end(22.0, &e));
}

TEST(Listen, MusicStoppedForgetsPendingLooks) {
    ListenDecider d(params(2));
    ListenEvent e;
    EXPECT_FALSE(d.on_look(look(1, 0.7f, 3), 0.0, 1.0, &e));
    EXPECT_FALSE(d.on_music_stopped(1.5, &e));  // one-shot: no event
    EXPECT_FALSE(d.on_look(look(1, 0.7f, 3), 0.0, 2.0, &e));
    EXPECT_TRUE(d.on_look(look(1, 0.7f, 3), 0.0, 2.5, &e));
}

TEST(Listen, ContinuousReportsNewSongsMusicStopsAndReturns) {
    ListenDecider d(params(1, /*continuous=*/true));
    ListenEvent e;
    ASSERT_TRUE(d.on_look(look(1, 0.7f, 3), 0.0, 1.0, &e));
    EXPECT_FALSE(e.returned);
    EXPECT_FALSE(d.on_look(look(1, 0.8f, 3), 0.0, 1.5, &e));  // the same song: reported once
    ASSERT_TRUE(d.on_look(look(2, 0.7f, 3), 0.0, 2.0, &e));   // a new song
    EXPECT_EQ(e.song.song_index, 2u);
    EXPECT_FALSE(e.returned);
    EXPECT_FALSE(d.on_music_stopped(3.0, &e));  // a stop starts...
    EXPECT_FALSE(d.on_audio(5.5, &e));
    ASSERT_TRUE(d.on_audio(6.0, &e));           // ...and is reported stop_confirm_s later
    EXPECT_EQ(e.type, ListenEvent::Type::kMusicStopped);
    EXPECT_DOUBLE_EQ(e.stream_time_s, 6.0);
    EXPECT_FALSE(d.on_music_stopped(6.5, &e));  // once
    EXPECT_FALSE(d.on_audio(100.0, &e));        // continuous listens never time out
    ASSERT_TRUE(d.on_look(look(1, 0.7f, 3), 50.0, 60.0, &e));  // back to song 1
    EXPECT_EQ(e.song.song_index, 1u);
    EXPECT_TRUE(e.returned);
    EXPECT_FALSE(d.done());
}

TEST(Listen, ParamsAreChecked) {
    ListenParams p = params(1);
    EXPECT_TRUE(check_listen_params(p));
    p.confirm_looks = 0;
    EXPECT_FALSE(check_listen_params(p));
    p = params(1);
    p.threshold_by_n.clear();
    EXPECT_FALSE(check_listen_params(p));
    p = params(1);
    p.max_listen_s = -1.0;
    EXPECT_FALSE(check_listen_params(p));
}

TEST(Listen, DefaultsComeFromTheModel) {
    ModelInfo info;
    info.threshold_by_n = {0.45f, 0.40f};
    ListenParams fallback = listen_default_params(info);
    ASSERT_EQ(fallback.threshold_by_n.size(), 2u);
    EXPECT_FLOAT_EQ(fallback.threshold_by_n[0], 0.45f + kListenFallbackMargin);
    EXPECT_EQ(fallback.confirm_looks, 2);
    info.meta["listen_threshold_by_n"] = {0.7, 0.6, 0.5};
    info.meta["listen_confirm_looks"] = 3;
    ListenParams calibrated = listen_default_params(info);
    ASSERT_EQ(calibrated.threshold_by_n.size(), 3u);
    EXPECT_FLOAT_EQ(calibrated.threshold_by_n[2], 0.5f);
    EXPECT_EQ(calibrated.confirm_looks, 3);
    EXPECT_TRUE(check_listen_params(calibrated));

    // A rule of its own for another code; the default code and codes without one: the main rule.
    info.index_pq_m = 32;
    info.meta["listen_rule_by_code"] = {
        {"16-opq-unit", {{"threshold_by_n", {0.65, 0.55}}, {"confirm_looks", 1}}},
        {"32", {{"threshold_by_n", {0.9}}, {"confirm_looks", 1}}},
        {"8", {{"threshold_by_n", "0.5"}}}};
    ListenParams own = listen_default_params(info, "16-opq-unit");
    EXPECT_EQ(own.threshold_by_n, (std::vector<float>{0.65f, 0.55f}));
    EXPECT_EQ(own.confirm_looks, 1);
    for (const char* code : {"32", "16", "8"}) {  // the default; no rule; not a rule
        ListenParams main = listen_default_params(info, code);
        EXPECT_EQ(main.threshold_by_n, calibrated.threshold_by_n) << code;
        EXPECT_EQ(main.confirm_looks, 3) << code;
    }
    EXPECT_EQ(listen_default_params(info).threshold_by_n, calibrated.threshold_by_n);
}

}  // namespace
}  // namespace earshot
