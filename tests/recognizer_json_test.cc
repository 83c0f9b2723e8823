// The recognizer's JSON forms (core/recognizer_json.cc): overrides apply every known key,
// reject unknown keys and wrong types without touching the parameters; results serialize to
// the results contract (null for "no match", score 0 without candidates) plus the details the
// browser shows.
#include "core/recognizer_json.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "tests/index_test_util.h"

namespace earshot {
namespace {

RecognizerParams defaults() { return recognizer_default_params(testing::fake_model_info()); }

// Expects `overrides` to be refused with a message holding `part`, leaving the params alone.
void expect_refused(const std::string& overrides, const std::string& part) {
    RecognizerParams params = defaults();
    params.match.threshold_by_n = {0.5f};
    const RecognizerParams before = params;
    Status st = apply_recognizer_overrides(nlohmann::json::parse(overrides), &params);
    ASSERT_FALSE(st) << overrides;
    EXPECT_NE(st.message().find(part), std::string::npos) << st.message();
    EXPECT_EQ(params.max_query_embeddings, before.max_query_embeddings) << overrides;
    EXPECT_EQ(params.match.nprobe, before.match.nprobe) << overrides;
    EXPECT_EQ(params.match.threshold_by_n, before.match.threshold_by_n) << overrides;
    EXPECT_EQ(params.live, before.live) << overrides;
}

TEST(RecognizerOverrides, AppliesEveryKnownKey) {
    RecognizerParams params = defaults();
    params.match.threshold_by_n = {0.5f, 0.4f};
    params.match.background_weight = 0.5f;
    const nlohmann::json overrides = {{"query_hop_frames", 16},
                                      {"max_query_embeddings", 12},
                                      {"min_query_embeddings", 3},
                                      {"match_every_embeddings", 2},
                                      {"nprobe", 16},
                                      {"k_per_query", 20},
                                      {"max_candidates", 8},
                                      {"n_results", 2},
                                      {"threshold_base", 0.25},
                                      {"max_drift", 0.02}};
    ASSERT_TRUE(apply_recognizer_overrides(overrides, &params));
    EXPECT_EQ(params.query_hop_frames, 16);
    EXPECT_EQ(params.max_query_embeddings, 12);
    EXPECT_EQ(params.min_query_embeddings, 3);
    EXPECT_EQ(params.match_every_embeddings, 2);
    EXPECT_EQ(params.match.nprobe, 16);
    EXPECT_EQ(params.match.k_per_query, 20);
    EXPECT_EQ(params.match.max_candidates, 8);
    EXPECT_EQ(params.match.n_results, 2);
    EXPECT_FLOAT_EQ(params.match.max_drift, 0.02f);
    // A threshold replaces the calibrated decision by the plain curve (override_threshold).
    EXPECT_FLOAT_EQ(params.match.threshold_base, 0.25f);
    EXPECT_TRUE(params.match.threshold_by_n.empty());
    EXPECT_FLOAT_EQ(params.match.background_weight, 0.0f);
    // Integers are numbers too; {} changes nothing.
    ASSERT_TRUE(apply_recognizer_overrides({{"threshold_scale", 1}}, &params));
    EXPECT_FLOAT_EQ(params.match.threshold_scale, 1.0f);
    const RecognizerParams before = params;
    ASSERT_TRUE(apply_recognizer_overrides(nlohmann::json::object(), &params));
    EXPECT_EQ(params.max_query_embeddings, before.max_query_embeddings);
    EXPECT_FLOAT_EQ(params.match.threshold_base, before.match.threshold_base);
}

TEST(RecognizerOverrides, AppliesTheLiveListenKeys) {
    RecognizerParams params = defaults();
    const nlohmann::json overrides = {{"live", true},
                                      {"max_listen_s", 8.5},
                                      {"continuous", true},
                                      {"confirm_looks", 3},
                                      {"gate_close_hops", 6},
                                      {"music_detector", false}};
    EXPECT_TRUE(params.music_detector);  // by default the model's detector gates
    ASSERT_TRUE(apply_recognizer_overrides(overrides, &params));
    EXPECT_TRUE(params.live);
    EXPECT_FALSE(params.music_detector);
    EXPECT_DOUBLE_EQ(params.listen.max_listen_s, 8.5);
    EXPECT_TRUE(params.listen.continuous);
    EXPECT_EQ(params.listen.confirm_looks, 3);
    EXPECT_EQ(params.gate_close_hops, 6);
    // An integer is a number of seconds too; false turns both modes off again.
    ASSERT_TRUE(apply_recognizer_overrides(
        {{"max_listen_s", 0}, {"live", false}, {"continuous", false}}, &params));
    EXPECT_DOUBLE_EQ(params.listen.max_listen_s, 0.0);
    EXPECT_FALSE(params.live);
    EXPECT_FALSE(params.listen.continuous);
    // The live keys leave the clip thresholds alone.
    EXPECT_EQ(params.match.threshold_by_n, defaults().match.threshold_by_n);
}

TEST(RecognizerOverrides, SpeedSearchOff) {
    RecognizerParams params = defaults();
    params.speed.stretches = {1.02f, 0.98f};
    params.speed.threshold_by_n = {0.5f};
    ASSERT_TRUE(apply_recognizer_overrides({{"speed_search", true}}, &params));
    EXPECT_EQ(params.speed.stretches.size(), 2u);
    ASSERT_TRUE(apply_recognizer_overrides({{"speed_search", false}}, &params));
    EXPECT_TRUE(params.speed.stretches.empty());
    expect_refused(R"({"speed_search": "no"})", "'speed_search' must be true or false");
}

TEST(RecognizerOverrides, LiveRangesAreCheckedWhereUsed) {
    // apply_recognizer_overrides checks types; check_recognizer_params the ranges (live only).
    RecognizerParams params = defaults();
    ASSERT_TRUE(apply_recognizer_overrides(
        {{"live", true}, {"max_listen_s", -1.0}, {"gate_close_hops", 2}}, &params));
    Status st = check_recognizer_params(params);
    ASSERT_FALSE(st);
    EXPECT_NE(st.message().find("max_listen_s"), std::string::npos) << st.message();
    params = defaults();
    ASSERT_TRUE(apply_recognizer_overrides({{"live", true}, {"confirm_looks", 0}}, &params));
    EXPECT_FALSE(check_recognizer_params(params));
    params = defaults();
    ASSERT_TRUE(apply_recognizer_overrides({{"live", true}, {"gate_close_hops", 0}}, &params));
    EXPECT_FALSE(check_recognizer_params(params));
}

TEST(RecognizerOverrides, RejectsUnknownKeys) {
    expect_refused(R"({"nprobe": 4, "n_probe": 4})", "unknown recognizer parameter 'n_probe'");
    expect_refused(R"({"backend": "simd"})", "unknown recognizer parameter 'backend'");
    // The message lists what is known.
    expect_refused(R"({"window": 3})", "max_query_embeddings");
    expect_refused(R"({"listen": true})", "max_listen_s");
}

TEST(RecognizerOverrides, RejectsWrongTypes) {
    expect_refused(R"({"nprobe": "16"})", "'nprobe' must be an integer, got \"16\"");
    expect_refused(R"({"max_query_embeddings": 12.5})",
                   "'max_query_embeddings' must be an integer");
    expect_refused(R"({"min_query_embeddings": true})", "must be an integer, got true");
    expect_refused(R"({"nprobe": null})", "must be an integer, got null");
    expect_refused(R"({"threshold_base": "0.4"})", "'threshold_base' must be a number");
    expect_refused(R"({"threshold_scale": [0.4]})", "'threshold_scale' must be a number");
    expect_refused(R"({"nprobe": 4294967312})", "'nprobe' is out of range");
    expect_refused(R"({"threshold_base": 1e300})", "'threshold_base' is out of range");
    expect_refused(R"({"live": 1})", "'live' must be true or false, got 1");
    expect_refused(R"({"continuous": "yes"})", "'continuous' must be true or false");
    expect_refused(R"({"continuous": null})", "must be true or false, got null");
    expect_refused(R"({"music_detector": 0})", "'music_detector' must be true or false");
    expect_refused(R"({"max_listen_s": "15"})", "'max_listen_s' must be a number");
    expect_refused(R"({"max_listen_s": true})", "'max_listen_s' must be a number");
    expect_refused(R"({"max_listen_s": 1e300})", "'max_listen_s' is out of range");
    expect_refused(R"({"confirm_looks": 1.5})", "'confirm_looks' must be an integer");
    expect_refused(R"({"gate_close_hops": false})", "'gate_close_hops' must be an integer");
    expect_refused(R"({"live": true, "nprobe": "4"})", "'nprobe' must be an integer");
    expect_refused(R"([1, 2])", "must be a JSON object");
    expect_refused(R"("nprobe=4")", "must be a JSON object");
}

// A result whose window starts 2 s into the stream, at 40 s into song "a".
RecognizerResult sample_result(bool matched) {
    RecognizerResult r;
    r.valid = true;
    r.query_start_s = 2.0;
    r.stream_time_s = 6.0;
    r.n_embeddings = 9;
    MatchResult& m = r.match;
    m.n_candidates = 3;
    m.n_query = 9;
    m.best.id = "a";
    m.best.title = "Song A";
    m.best.album = "Album";
    m.best.offset_s = 40.0;
    m.best.score = 0.75f;
    MatchCandidate other;
    other.id = "b";
    other.offset_s = 12.0;
    other.score = 0.5f;
    m.runner_ups = {other};
    m.background = 0.25f;
    m.confidence = 0.625f;
    m.threshold = matched ? 0.5f : 0.7f;
    m.matched = matched;
    return r;
}

TEST(ResultJson, MatchedGivesSongAndSongTimeAtTheStreamStart) {
    const nlohmann::json j = result_json(sample_result(true));
    EXPECT_EQ(j.at("song"), "a");
    EXPECT_DOUBLE_EQ(j.at("offset_s").get<double>(), 38.0);
    EXPECT_DOUBLE_EQ(j.at("score").get<double>(), 0.625);
    EXPECT_DOUBLE_EQ(j.at("similarity").get<double>(), 0.75);
    EXPECT_DOUBLE_EQ(j.at("background").get<double>(), 0.25);
    EXPECT_EQ(j.at("runner_up"), (nlohmann::json{{"song", "b"}, {"score", 0.5}}));
    EXPECT_EQ(j.size(), 6u);  // the results contract: nothing else
}

// An answer the speed search found says at which stretch; its best stretch, matched or not,
// has the fields calibrate_threshold --speed reads.
TEST(ResultJson, SpeedSearchStretch) {
    RecognizerResult r = sample_result(true);
    r.stretch = 1.02f;
    const nlohmann::json j = result_json(r);
    EXPECT_EQ(j.at("stretch").get<double>(), 1.02);  // thousandths, not 1.0199999809
    EXPECT_FALSE(result_json(sample_result(true)).contains("stretch"));
    RecognizerResult refused = sample_result(false);
    refused.stretch = 0.99f;
    EXPECT_FALSE(result_json(refused).contains("stretch"));  // no answer, no stretch
    const nlohmann::json best = speed_search_json(refused);
    EXPECT_EQ(best.at("stretch").get<double>(), 0.99);
    EXPECT_EQ(best.at("song"), "a");
    EXPECT_DOUBLE_EQ(best.at("offset_s").get<double>(), 38.0);
    EXPECT_DOUBLE_EQ(best.at("similarity").get<double>(), 0.75);
    EXPECT_DOUBLE_EQ(best.at("background").get<double>(), 0.25);
    EXPECT_FLOAT_EQ(float(best.at("threshold").get<double>()), 0.7f);
    EXPECT_FALSE(best.at("matched").get<bool>());
}

TEST(ResultJson, NoMatchIsNullAndNoCandidateScoresZero) {
    const nlohmann::json below = result_json(sample_result(false));
    EXPECT_TRUE(below.at("song").is_null());
    EXPECT_TRUE(below.at("offset_s").is_null());
    EXPECT_DOUBLE_EQ(below.at("score").get<double>(), 0.625);  // the statistic, still reported

    const nlohmann::json nothing = result_json(RecognizerResult{});
    EXPECT_TRUE(nothing.at("song").is_null());
    EXPECT_TRUE(nothing.at("offset_s").is_null());
    EXPECT_EQ(nothing.at("score").get<double>(), 0.0);
    EXPECT_EQ(nothing.at("similarity").get<double>(), 0.0);
    EXPECT_FALSE(nothing.contains("runner_up"));
}

TEST(ResultJson, DetailsAddTheLiveFields) {
    const nlohmann::json j = result_json_with_details(sample_result(true), 7.5);
    EXPECT_EQ(j.at("song"), "a");  // the contract fields are there too
    EXPECT_EQ(j.at("valid"), true);
    EXPECT_EQ(j.at("matched"), true);
    EXPECT_DOUBLE_EQ(j.at("threshold").get<double>(), 0.5);
    EXPECT_EQ(j.at("n_query"), 9);
    EXPECT_EQ(j.at("n_embeddings"), 9);
    EXPECT_DOUBLE_EQ(j.at("query_start_s").get<double>(), 2.0);
    EXPECT_DOUBLE_EQ(j.at("stream_time_s").get<double>(), 7.5);
    EXPECT_DOUBLE_EQ(j.at("song_time_s").get<double>(), 45.5);  // 38 s + 7.5 s heard
    EXPECT_EQ(j.at("best").at("title"), "Song A");
    EXPECT_EQ(j.at("best").at("album"), "Album");
    EXPECT_DOUBLE_EQ(j.at("best").at("offset_s").get<double>(), 38.0);
    ASSERT_EQ(j.at("runner_ups").size(), 1u);
    EXPECT_EQ(j.at("runner_ups")[0].at("id"), "b");
    EXPECT_DOUBLE_EQ(j.at("runner_ups")[0].at("offset_s").get<double>(), 10.0);

    const nlohmann::json none = result_json_with_details(RecognizerResult{}, 0.5);
    EXPECT_EQ(none.at("valid"), false);
    EXPECT_EQ(none.at("matched"), false);
    EXPECT_FALSE(none.contains("best"));
    EXPECT_FALSE(none.contains("song_time_s"));
}

TEST(ResultJson, TextNeverThrowsOnInvalidUtf8) {
    RecognizerResult r = sample_result(true);
    r.match.best.title = "bad \xff byte";
    const std::string text = json_text(result_json_with_details(r, 6.0));
    EXPECT_NE(text.find("\"title\":\"bad \xef\xbf\xbd byte\""), std::string::npos) << text;
}

}  // namespace
}  // namespace earshot
