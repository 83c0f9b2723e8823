// Streaming recognizer on the random-init model: streaming with any block size equals one push
// (bit for bit), streaming embeddings equal offline ones, and a clip cut from an indexed
// synthetic "song" is found at the right offset (an untrained network still hashes the same
// audio to the same embeddings).
#include "core/recognizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>

#include "core/speed_change.h"
#include "tests/index_test_util.h"

namespace earshot {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int kRate = 16000;
constexpr size_t kHopSamples = 8000;  // 32 frames x 250 samples = 0.5 s

std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// A synthetic "song": notes of 0.15-0.5 s, random pitch 150-2000 Hz with 3 harmonics, attack/
// decay envelope, a little noise. Deterministic for a seed (own LCG: same on every platform).
std::vector<float> synthetic_song(double seconds, uint64_t seed) {
    uint64_t state = seed * 6364136223846793005ull + 1442695040888963407ull;
    auto uniform = [&state]() {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return double(state >> 11) * (1.0 / 9007199254740992.0);
    };
    const size_t n = size_t(seconds * kRate);
    std::vector<float> pcm(n);
    size_t at = 0;
    while (at < n) {
        const size_t len = size_t((0.15 + 0.35 * uniform()) * kRate);
        const double f0 = 150.0 * std::pow(2000.0 / 150.0, uniform());
        const double amp = 0.1 + 0.3 * uniform();
        for (size_t i = 0; i < len && at + i < n; ++i) {
            const double t = double(i) / kRate;
            const double env = std::min(1.0, t / 0.01) * std::exp(-3.0 * t);
            double v = 0;
            for (int h = 1; h <= 3; ++h) v += std::sin(2 * kPi * f0 * h * t) / h;
            pcm[at + i] = float(amp * env * v + 0.01 * (uniform() - 0.5));
        }
        at += len;
    }
    return pcm;
}

class RecognizerTest : public ::testing::Test {
protected:
    static constexpr int kSongs = 6;
    static constexpr double kSongSeconds = 12.0;

    static void SetUpTestSuite() {
        std::vector<uint8_t> bytes =
            read_file(std::string(EARSHOT_MODELS_DIR) + "/random-init-v0.emod");
        ASSERT_FALSE(bytes.empty()) << "models/random-init-v0.emod missing";
        Result<std::shared_ptr<const Model>> model =
            Model::load(bytes.data(), bytes.size(), "random-init-v0.emod");
        ASSERT_TRUE(model) << model.message();
        model_ = model.value();
        const ModelInfo& info = model_->info();

        IndexBuildParams params = index_build_default_params();
        params.n_lists = 16;
        params.kmeans_iterations = 8;
        IndexBuilder builder = testing::new_builder(info, params);
        songs_ = new std::vector<std::vector<float>>();
        for (int s = 0; s < kSongs; ++s) {
            songs_->push_back(synthetic_song(kSongSeconds, 1000 + s));
            std::vector<float> e = offline_embeddings(songs_->back());
            SongInfo song;
            song.id = "synth-" + std::to_string(s);
            song.title = "Synthetic " + std::to_string(s);
            song.duration_s = kSongSeconds;
            ASSERT_TRUE(builder.add_song(song, e.data(), e.size() / info.embedding_dim));
        }
        Result<IndexFiles> files = builder.finish();
        ASSERT_TRUE(files) << files.message();
        auto index = std::make_shared<Index>(info);
        Status st = testing::load_all(files.value(), index.get());
        ASSERT_TRUE(st) << st.message();
        index_ = index;
    }
    static void TearDownTestSuite() {
        delete songs_;
        songs_ = nullptr;
        index_.reset();
        model_.reset();
    }

    // Reference: every frame at once (Frontend::compute), one embedding every hop_frames.
    static std::vector<float> offline_embeddings(const std::vector<float>& pcm) {
        const ModelInfo& info = model_->info();
        auto frontend = Frontend::create(info.frontend);
        EXPECT_TRUE(frontend);
        auto embedder = create_embedder(model_, Backend::kSimd);
        EXPECT_TRUE(embedder);
        std::vector<float> frames = frontend.value()->compute(pcm.data(), pcm.size());
        const size_t n_frames = frames.size() / info.frontend.n_mels;
        std::vector<float> out;
        for (size_t t = 0; t + info.context_frames <= n_frames; t += info.hop_frames) {
            out.resize(out.size() + info.embedding_dim);
            embedder.value()->embed(&frames[t * info.frontend.n_mels],
                                    &out[out.size() - info.embedding_dim]);
        }
        return out;
    }

    static std::unique_ptr<Recognizer> make(const RecognizerParams& params) {
        auto embedder = create_embedder(model_, Backend::kSimd);
        EXPECT_TRUE(embedder);
        auto rec = Recognizer::create(model_, index_, std::move(embedder.value()), params);
        EXPECT_TRUE(rec) << rec.message();
        return std::move(rec.value());
    }
    static RecognizerParams defaults() { return recognizer_default_params(model_->info()); }

    static std::vector<float> clip(int song, double start_s, double seconds) {
        const auto& pcm = (*songs_)[song];
        const size_t begin = size_t(start_s * kRate);
        const size_t end = std::min(pcm.size(), begin + size_t(seconds * kRate));
        return std::vector<float>(pcm.begin() + begin, pcm.begin() + end);
    }

    static std::shared_ptr<const Model> model_;
    static std::shared_ptr<const Index> index_;
    static std::vector<std::vector<float>>* songs_;
};

std::shared_ptr<const Model> RecognizerTest::model_;
std::shared_ptr<const Index> RecognizerTest::index_;
std::vector<std::vector<float>>* RecognizerTest::songs_ = nullptr;

TEST_F(RecognizerTest, DefaultParams) {
    RecognizerParams p = defaults();
    EXPECT_EQ(p.query_hop_frames, model_->info().hop_frames);
    EXPECT_EQ(p.max_query_embeddings, 20);  // 10 s at the test model's 0.5 s hop
    EXPECT_GE(p.min_query_embeddings, 1);

    EXPECT_EQ(p.match_every_embeddings, 1);
    EXPECT_EQ(p.match.nprobe, match_default_params().nprobe);
    EXPECT_TRUE(check_recognizer_params(p));

    ModelInfo quarter = model_->info();  // a 0.25 s query hop gets a 10 s window too
    quarter.query_hop_frames = 16;
    EXPECT_EQ(recognizer_default_params(quarter).query_hop_frames, 16);
    EXPECT_EQ(recognizer_default_params(quarter).max_query_embeddings, 40);
}

// Defaults come only from recognizer_default_params(): a value-initialized struct is refused
// with a message that says where they come from, and so are bad match parameters.
TEST_F(RecognizerTest, CreateRejectsInvalidParams) {
    auto create = [](const RecognizerParams& params) {
        auto embedder = create_embedder(model_, Backend::kSimd);
        EXPECT_TRUE(embedder);
        return Recognizer::create(model_, index_, std::move(embedder.value()), params);
    };
    auto zero = create(RecognizerParams{});
    ASSERT_FALSE(zero);
    EXPECT_NE(zero.message().find("recognizer_default_params"), std::string::npos)
        << zero.message();
    RecognizerParams p = defaults();
    p.min_query_embeddings = p.max_query_embeddings + 1;
    EXPECT_FALSE(create(p));
    p = defaults();
    p.match_every_embeddings = 0;
    EXPECT_FALSE(create(p));
    p = defaults();
    p.match.nprobe = 0;
    auto bad_match = create(p);
    ASSERT_FALSE(bad_match);
    EXPECT_NE(bad_match.message().find("nprobe"), std::string::npos) << bad_match.message();
    p = defaults();
    p.match.threshold_scale = std::numeric_limits<float>::infinity();
    EXPECT_FALSE(create(p));
}

TEST(SongTime, AtStreamTime) {
    RecognizerResult r;
    r.query_start_s = 4.0;  // the window starts 4 s into the stream ...
    r.match.best.offset_s = 30.0;  // ... at 30 s into the song
    MatchCandidate other;
    other.offset_s = 10.0;
    EXPECT_DOUBLE_EQ(song_time_at(r, 0.0), 26.0);  // the stream started at 26 s
    EXPECT_DOUBLE_EQ(song_time_at(r, 6.5), 32.5);
    EXPECT_DOUBLE_EQ(song_time_at(r, other, 4.0), 10.0);
}

TEST_F(RecognizerTest, DefaultThresholdsFollowTheIndexCode) {
    ModelInfo info = model_->info();
    const std::string code = index_->quantizer().code_name();
    ASSERT_EQ(code, std::to_string(index_->pq_m()));  // plain PQ
    info.threshold_by_n = {0.5f, 0.4f};
    info.threshold_by_n_for_code[std::to_string(index_->pq_m() / 2)] = {0.3f};
    info.threshold_by_n_for_code[code + "-opq-unit"] = {0.35f};
    // The index was built with the model's resolution: the main table.
    info.index_pq_m = index_->pq_m();
    EXPECT_EQ(recognizer_default_params(info, *index_).match.threshold_by_n, info.threshold_by_n);
    // Built with another code that has a table of its own: that table.
    info.index_pq_m = index_->pq_m() * 2;
    info.threshold_by_n_for_code[code] = {0.2f, 0.1f};
    EXPECT_EQ(recognizer_default_params(info, *index_).match.threshold_by_n,
              (std::vector<float>{0.2f, 0.1f}));
    // ... and without one: the main table.
    info.threshold_by_n_for_code.erase(code);
    EXPECT_EQ(recognizer_default_params(info, *index_).match.threshold_by_n, info.threshold_by_n);
}

TEST_F(RecognizerTest, StreamingBlockSizesGiveIdenticalResults) {
    const std::vector<float> pcm = clip(2, 3.0, 6.0);
    RecognizerParams params = defaults();
    params.max_query_embeddings = 8;  // the window slides within the clip
    auto whole = make(params);
    ASSERT_TRUE(whole->push(pcm.data(), pcm.size()));
    const RecognizerResult reference = whole->finish();
    ASSERT_TRUE(reference.valid);
    const size_t n_window = whole->n_query_embeddings();
    const size_t dim = size_t(model_->info().embedding_dim);
    ASSERT_EQ(n_window, 8u);
    std::vector<float> window(whole->query_embeddings(),
                              whole->query_embeddings() + n_window * dim);

    std::mt19937 rng(5);
    const std::vector<std::vector<size_t>> patterns = {
        {1}, {7}, {160}, {4096}, {250, 1, 511}, {}};  // {} = random sizes 0..5000
    for (const auto& pattern : patterns) {
        auto rec = make(params);
        size_t at = 0, k = 0;
        while (at < pcm.size()) {
            size_t n = pattern.empty() ? size_t(rng() % 5001) : pattern[k++ % pattern.size()];
            n = std::min(n, pcm.size() - at);
            ASSERT_TRUE(rec->push(pcm.data() + at, n));
            at += n;
        }
        const RecognizerResult r = rec->finish();
        EXPECT_EQ(rec->n_embeddings_total(), whole->n_embeddings_total());
        EXPECT_EQ(rec->n_frames_total(), whole->n_frames_total());
        ASSERT_EQ(rec->n_query_embeddings(), n_window);
        EXPECT_EQ(std::memcmp(rec->query_embeddings(), window.data(), window.size() * 4), 0);
        EXPECT_EQ(r.match.best.song_index, reference.match.best.song_index);
        EXPECT_EQ(r.match.best.offset_s, reference.match.best.offset_s);
        EXPECT_EQ(r.match.best.score, reference.match.best.score);
        EXPECT_EQ(r.query_start_s, reference.query_start_s);
        EXPECT_EQ(r.match.matched, reference.match.matched);
    }
}

// Incremental frames (compute_frame on a sliding buffer) give the offline embeddings.
TEST_F(RecognizerTest, StreamingEmbeddingsEqualOffline) {
    const std::vector<float> pcm = clip(1, 0.0, 7.3);
    const std::vector<float> expected = offline_embeddings(pcm);
    const size_t dim = size_t(model_->info().embedding_dim);
    const size_t n = expected.size() / dim;
    ASSERT_EQ(n, 13u);  // 1 + (frames(7.3 s) - 62) / 32
    RecognizerParams params = defaults();
    params.max_query_embeddings = 64;
    auto rec = make(params);
    for (size_t at = 0; at < pcm.size(); at += 333)
        ASSERT_TRUE(rec->push(pcm.data() + at, std::min<size_t>(333, pcm.size() - at)));
    ASSERT_EQ(rec->n_query_embeddings(), n);
    for (size_t i = 0; i < n * dim; ++i)
        ASSERT_NEAR(rec->query_embeddings()[i], expected[i], 1e-6f) << "value " << i;
}

// A clip cut at a hop boundary has exactly the song's embeddings: right song, right offset.
TEST_F(RecognizerTest, FindsClipAtOffset) {
    for (int song = 0; song < kSongs; ++song) {
        const double start_s = 0.5 * (2 + 3 * song % 11);  // hop-aligned, 1 .. 6.5 s
        const std::vector<float> pcm = clip(song, start_s, 5.0);
        auto embedder = create_embedder(model_, Backend::kSimd);
        ASSERT_TRUE(embedder);
        Result<RecognizerResult> r = recognize_clip(model_, index_, std::move(embedder.value()),
                                                    pcm.data(), pcm.size(), defaults());
        ASSERT_TRUE(r) << r.message();
        ASSERT_TRUE(r->valid);
        EXPECT_EQ(r->match.best.id, "synth-" + std::to_string(song));
        EXPECT_DOUBLE_EQ(song_time_at(*r, 0.0), start_s);
        EXPECT_GT(r->match.best.score, 0.95f);  // same audio; PQ is near-exact on ~140 vectors
        EXPECT_TRUE(r->match.matched);
        if (!r->match.runner_ups.empty())
            std::printf("song %d: best %.4f runner-up %.4f\n", song, r->match.best.score,
                        r->match.runner_ups[0].score);
    }
}

// Off the hop grid (a quarter hop late) the untrained network still ranks the right song first.
TEST_F(RecognizerTest, FindsUnalignedClip) {
    const std::vector<float> pcm = clip(4, 2.125, 6.0);
    auto rec = make(defaults());
    ASSERT_TRUE(rec->push(pcm.data(), pcm.size()));
    RecognizerResult r = rec->finish();
    ASSERT_TRUE(r.valid);
    EXPECT_EQ(r.match.best.id, "synth-4");
    EXPECT_NEAR(song_time_at(r, 0.0), 2.125, 0.5);
}

TEST_F(RecognizerTest, PollResetAndShortClips) {
    auto rec = make(defaults());
    RecognizerResult r;
    EXPECT_FALSE(rec->poll(&r));
    const std::vector<float> pcm = clip(3, 1.0, 3.0);
    // Under one context (62 frames = 15762 samples): no embedding, no result.
    ASSERT_TRUE(rec->push(pcm.data(), 15761));
    EXPECT_EQ(rec->n_embeddings_total(), 0u);
    EXPECT_FALSE(rec->poll(&r));
    EXPECT_FALSE(rec->finish().valid);
    ASSERT_TRUE(rec->push(pcm.data() + 15761, 1));
    EXPECT_EQ(rec->n_embeddings_total(), 1u);
    ASSERT_TRUE(rec->poll(&r));
    EXPECT_TRUE(r.valid);
    EXPECT_FALSE(rec->poll(&r));  // nothing new
    ASSERT_TRUE(rec->push(pcm.data() + 15762, pcm.size() - 15762));
    ASSERT_TRUE(rec->poll(&r));
    EXPECT_EQ(r.n_embeddings, rec->n_embeddings_total());
    // Stream time of the decision: when the last embedding's context was complete.
    EXPECT_NEAR(r.stream_time_s, (15762.0 + (r.n_embeddings - 1) * kHopSamples) / kRate, 1e-9);
    const RecognizerResult first = rec->finish();

    rec->reset();
    EXPECT_EQ(rec->n_embeddings_total(), 0u);
    EXPECT_FALSE(rec->finish().valid);
    ASSERT_TRUE(rec->push(pcm.data(), pcm.size()));
    const RecognizerResult again = rec->finish();
    EXPECT_EQ(again.match.best.song_index, first.match.best.song_index);
    EXPECT_EQ(again.match.best.score, first.match.best.score);
    EXPECT_TRUE(rec->push(nullptr, 0));
    EXPECT_FALSE(rec->push(nullptr, 5));
}

TEST_F(RecognizerTest, MatchEveryAndMinQuery) {
    const std::vector<float> pcm = clip(0, 2.0, 5.0);
    RecognizerParams params = defaults();
    params.min_query_embeddings = 4;
    params.match_every_embeddings = 3;
    auto rec = make(params);
    RecognizerResult r;
    ASSERT_TRUE(rec->push(pcm.data(), kHopSamples * 3 + 15762));  // 4 embeddings
    ASSERT_TRUE(rec->poll(&r));
    EXPECT_EQ(r.match.n_query, 4u);
    ASSERT_TRUE(rec->push(pcm.data() + kHopSamples * 3 + 15762, kHopSamples));  // 5th
    EXPECT_FALSE(rec->poll(&r));
    // The window's result for a match made elsewhere (a lazy look): now's times.
    const RecognizerResult pending = rec->window_result(MatchResult());
    EXPECT_TRUE(pending.valid);
    EXPECT_EQ(pending.n_embeddings, 5u);
    EXPECT_EQ(pending.stream_time_s, rec->stream_time_s());
    EXPECT_EQ(pending.query_start_s, rec->window_start_s());
    const RecognizerResult fin = rec->finish();  // matches the pending embedding
    EXPECT_TRUE(fin.valid);
    EXPECT_EQ(rec->latest().match.n_query, 5u);
    // The recognizer's own match of that window carries the same times.
    EXPECT_EQ(rec->latest().n_embeddings, pending.n_embeddings);
    EXPECT_EQ(rec->latest().stream_time_s, pending.stream_time_s);
    EXPECT_EQ(rec->latest().query_start_s, pending.query_start_s);
}

TEST_F(RecognizerTest, CreateRejectsMismatches) {
    ModelInfo other = model_->info();
    other.hash_hex = std::string(64, 'c');
    auto wrong_index = std::make_shared<Index>(other);
    auto embedder = create_embedder(model_, Backend::kSimd);
    ASSERT_TRUE(embedder);
    auto rec = Recognizer::create(model_, wrong_index, std::move(embedder.value()), defaults());
    ASSERT_FALSE(rec);
    EXPECT_NE(rec.message().find(other.hash_hex), std::string::npos) << rec.message();
    EXPECT_NE(rec.message().find(model_->info().hash_hex), std::string::npos) << rec.message();

    RecognizerParams bad = defaults();
    bad.max_query_embeddings = 0;
    auto embedder2 = create_embedder(model_, Backend::kSimd);
    EXPECT_FALSE(Recognizer::create(model_, index_, std::move(embedder2.value()), bad));
    auto embedder3 = create_embedder(model_, Backend::kSimd);
    EXPECT_FALSE(Recognizer::create(model_, index_, nullptr, defaults()));
    (void)embedder3;

    // An index still without a quantizer: embeddings are computed, no result yet.
    auto empty = std::make_shared<Index>(model_->info());
    auto embedder4 = create_embedder(model_, Backend::kSimd);
    auto waiting = Recognizer::create(model_, empty, std::move(embedder4.value()), defaults());
    ASSERT_TRUE(waiting) << waiting.message();
    const std::vector<float> pcm = clip(0, 0.0, 2.0);
    ASSERT_TRUE(waiting.value()->push(pcm.data(), pcm.size()));
    EXPECT_GT(waiting.value()->n_embeddings_total(), 0u);
    EXPECT_FALSE(waiting.value()->finish().valid);
}

// The clip mode's speed search: a clip played 2 % fast that the clip table refuses is found
// when played 2 % slower, at the right place in the song, with the stretch and rate reported.
TEST_F(RecognizerTest, SpeedSearchFindsAFastClip) {
    const double start_s = 3.0;
    const std::vector<float> as_played = clip(2, start_s, 7.0);
    const std::vector<float> fast = change_speed(as_played.data(), as_played.size(), {50, 51});
    RecognizerParams p = defaults();
    p.match_every_embeddings = std::numeric_limits<int>::max();  // one decision, as the CLI
    p.match.threshold_by_n = {1.0f};                             // nothing passes as played
    p.match.background_weight = 0.0f;
    p.speed.stretches = {0.98f, 1.02f, 1.01f};
    p.speed.threshold_by_n = {0.5f};
    p.speed.background_weight = 0.0f;

    RecognizerParams off = p;
    off.speed.stretches.clear();
    auto plain = make(off);
    ASSERT_TRUE(plain->push(fast.data(), fast.size()));
    const RecognizerResult no = plain->finish();
    ASSERT_TRUE(no.valid);
    EXPECT_FALSE(no.match.matched);
    EXPECT_EQ(plain->speed_result(), nullptr);

    auto rec = make(p);
    ASSERT_TRUE(rec->push(fast.data(), fast.size()));
    const RecognizerResult r = rec->finish();
    ASSERT_TRUE(r.valid);
    ASSERT_TRUE(r.match.matched);
    EXPECT_EQ(r.match.best.id, "synth-2");
    EXPECT_EQ(r.stretch, 1.02f);
    EXPECT_NEAR(r.match.best.rate, 1.02, 1e-6);
    EXPECT_FLOAT_EQ(r.match.threshold, 0.5f);
    EXPECT_GT(r.match.best.score, no.match.best.score);
    EXPECT_NEAR(song_time_at(r, 0.0), start_s, 0.3);
    ASSERT_NE(rec->speed_result(), nullptr);
    EXPECT_EQ(rec->speed_result()->stretch, 1.02f);
    EXPECT_EQ(rec->best().stretch, 1.02f);

    // A stricter speed table: the clip's own (refused) result stands.
    p.speed.threshold_by_n = {0.9999f};
    auto strict = make(p);
    ASSERT_TRUE(strict->push(fast.data(), fast.size()));
    const RecognizerResult refused = strict->finish();
    EXPECT_FALSE(refused.match.matched);
    EXPECT_EQ(refused.stretch, 1.0f);
    ASSERT_NE(strict->speed_result(), nullptr);
    EXPECT_FALSE(strict->speed_result()->match.matched);

    // reset() forgets the clip and the search.
    rec->reset();
    EXPECT_EQ(rec->speed_result(), nullptr);
    EXPECT_FALSE(rec->finish().valid);
}

// The search plays the last window of a long clip (the audio kept is bounded), and its song
// time at the clip's first sample still holds; a clip that matches as played is not stretched
// unless `always`, and the live mode never stretches.
TEST_F(RecognizerTest, SpeedSearchOnALongClipAndAlways) {
    const std::vector<float> song = (*songs_)[5];
    const std::vector<float> fast = change_speed(song.data(), song.size(), {50, 51});
    RecognizerParams p = defaults();
    p.match_every_embeddings = std::numeric_limits<int>::max();
    p.max_query_embeddings = 8;  // a 4 s window at the end of an 11.8 s clip
    p.match.threshold_by_n = {1.0f};
    p.match.background_weight = 0.0f;
    p.speed.stretches = {1.02f};
    p.speed.threshold_by_n = {0.5f};
    auto rec = make(p);
    for (size_t at = 0; at < fast.size(); at += 1000)  // blocks: the kept audio is trimmed
        ASSERT_TRUE(rec->push(fast.data() + at, std::min<size_t>(1000, fast.size() - at)));
    const RecognizerResult r = rec->finish();
    ASSERT_TRUE(r.match.matched);
    EXPECT_EQ(r.match.best.id, "synth-5");
    EXPECT_NEAR(song_time_at(r, 0.0), 0.0, 0.3);
    EXPECT_GT(r.query_start_s, 6.0);  // the window is the clip's end
    EXPECT_DOUBLE_EQ(r.stream_time_s, double(fast.size()) / kRate);

    p.match.threshold_by_n = {0.5f};  // matches as played (an untrained net, 2 % off)
    p.speed.always = true;
    auto always = make(p);
    const std::vector<float> as_played = clip(1, 2.0, 6.0);
    ASSERT_TRUE(always->push(as_played.data(), as_played.size()));
    const RecognizerResult kept = always->finish();
    ASSERT_TRUE(kept.match.matched);
    EXPECT_EQ(kept.stretch, 1.0f);
    EXPECT_DOUBLE_EQ(song_time_at(kept, 0.0), 2.0);
    ASSERT_NE(always->speed_result(), nullptr);
    EXPECT_EQ(always->speed_result()->stretch, 1.02f);
    EXPECT_LT(always->speed_result()->match.best.score, kept.match.best.score);

    p.speed.always = false;
    p.live = true;
    auto live = make(p);
    ASSERT_TRUE(live->push(fast.data(), fast.size()));
    live->finish();
    EXPECT_EQ(live->speed_result(), nullptr);
}

TEST_F(RecognizerTest, SpeedSearchParamsAreChecked) {
    RecognizerParams p = defaults();
    p.speed.stretches = {1.02f};
    EXPECT_FALSE(check_recognizer_params(p));  // no table
    p.speed.threshold_by_n = {0.4f};
    EXPECT_TRUE(check_recognizer_params(p));
    p.speed.stretches = {1.5f};
    EXPECT_FALSE(check_recognizer_params(p));
    p.speed.stretches = {1.0205f};
    EXPECT_FALSE(check_recognizer_params(p));  // not a whole number of thousandths
    p.speed.stretches = {0.98f};
    p.speed.threshold_by_n = {2.0f};
    EXPECT_FALSE(check_recognizer_params(p));

    // The model's speed search, for its default code only unless it has the code's table.
    ModelInfo info = model_->info();
    info.index_pq_m = index_->pq_m();
    info.speed_stretches = {1.02f, 0.98f};
    info.speed_threshold_by_n = {0.6f, 0.5f};
    info.threshold_background_weight = 0.5f;
    RecognizerParams d = recognizer_default_params(info, *index_);
    EXPECT_EQ(d.speed.stretches, info.speed_stretches);
    EXPECT_EQ(d.speed.threshold_by_n, info.speed_threshold_by_n);
    EXPECT_EQ(d.speed.background_weight, 0.5f);
    info.index_pq_m = index_->pq_m() * 2;
    EXPECT_TRUE(recognizer_default_params(info, *index_).speed.stretches.empty());
    info.speed_threshold_by_n_for_code[index_->quantizer().code_name()] = {0.7f};
    d = recognizer_default_params(info, *index_);
    EXPECT_EQ(d.speed.stretches, info.speed_stretches);
    EXPECT_EQ(d.speed.threshold_by_n, std::vector<float>{0.7f});
}

}  // namespace
}  // namespace earshot
