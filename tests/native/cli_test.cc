// End-to-end tests of the `earshot` CLI on real files: synthetic "songs" written as WAV/FLAC with
// libsndfile, a corrupt file among them, then build / verify / query / info as a user runs them.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sndfile.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/native/flac_test_util.h"

namespace {
namespace fs = std::filesystem;

const char* kModel = EARSHOT_MODELS_DIR "/random-init-v0.emod";

struct CliRun {
    int exit_code = -1;
    std::string out, err;
};

std::string slurp(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

CliRun run_cli(const std::string& args, const fs::path& dir) {
    const fs::path out = dir / "stdout.txt", err = dir / "stderr.txt";
    const std::string cmd = std::string(EARSHOT_CLI_PATH) + " " + args + " >" + out.string() +
                            " 2>" + err.string();
    const int status = std::system(cmd.c_str());
    CliRun run;
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    run.out = slurp(out);
    run.err = slurp(err);
    return run;
}

// Starts the CLI without a shell (its pid is the CLI's own), output discarded, with `env`
// (NAME=value) added to this process's environment.
pid_t spawn_cli(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
    std::vector<std::string> all = {EARSHOT_CLI_PATH};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_strings;
    for (const std::string& e : env) {
        if (!e.empty()) env_strings.push_back(e);
    }
    for (char** e = environ; *e; ++e) env_strings.push_back(*e);
    std::vector<char*> envp;
    for (std::string& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = -1;
    const int err = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    return err == 0 ? pid : -1;
}

// The wait status of `pid`.
int wait_for(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

// A 12 s synthetic piece: a seeded random melody of decaying harmonic notes over soft noise.
std::vector<float> make_song(uint32_t seed, int rate_hz, double seconds) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> pitch(48.0, 84.0), note_len(0.12, 0.4);
    std::normal_distribution<double> noise(0.0, 0.01);
    std::vector<float> pcm(size_t(seconds * rate_hz));
    size_t start = 0;
    while (start < pcm.size()) {
        const double f0 = 440.0 * std::pow(2.0, (std::round(pitch(rng)) - 69.0) / 12.0);
        const size_t len = size_t(note_len(rng) * rate_hz);
        for (size_t i = 0; i < len && start + i < pcm.size(); ++i) {
            const double t = double(i) / rate_hz;
            double x = 0.0;
            for (int h = 1; h <= 4; ++h) x += std::sin(2 * M_PI * f0 * h * t) / (h * h);
            pcm[start + i] += float(0.3 * std::exp(-t / 0.2) * x);
        }
        start += len;
    }
    for (float& v : pcm) v += float(noise(rng));
    return pcm;
}

void write_audio(const fs::path& path, const std::vector<float>& pcm, int rate_hz, int format) {
    SF_INFO info{};
    info.samplerate = rate_hz;
    info.channels = 1;
    info.format = format;
    SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &info);
    ASSERT_NE(f, nullptr) << sf_strerror(nullptr);
    ASSERT_EQ(sf_writef_float(f, pcm.data(), sf_count_t(pcm.size())), sf_count_t(pcm.size()));
    sf_close(f);
}

class CliTest : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               ("earshot_cli_test_" + std::to_string(::getpid()) + "_" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_ / "music" / "album-a");
        write_audio(dir_ / "music" / "album-a" / "first_song.wav", make_song(1, 16000, 12.0),
                    16000, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
        // 44.1 kHz FLAC: exercises resampling to the model rate.
        song2_44k_ = make_song(2, 44100, 12.0);
        write_audio(dir_ / "music" / "album-a" / "second_song.flac", song2_44k_, 44100,
                    SF_FORMAT_FLAC | SF_FORMAT_PCM_16);
        write_audio(dir_ / "music" / "third_song.wav", make_song(3, 16000, 12.0), 16000,
                    SF_FORMAT_WAV | SF_FORMAT_FLOAT);
        std::ofstream(dir_ / "music" / "broken.ogg") << "this is not an Ogg Vorbis file";
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string model_arg() const { return std::string("--model ") + kModel; }
    // The indexed second song from from_s for seconds, written to dir_/clip.wav (44.1 kHz).
    void write_song2_clip(double from_s, double seconds) const {
        const auto start = song2_44k_.begin() + size_t(from_s * 44100);
        const std::vector<float> clip(start, start + size_t(seconds * 44100));
        write_audio(dir_ / "clip.wav", clip, 44100, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
    }

    fs::path dir_;
    std::vector<float> song2_44k_;
};

TEST_F(CliTest, HelpOnEveryCommand) {
    for (const char* cmd : {"--help", "build --help", "query --help", "info --help",
                            "verify --help"}) {
        const CliRun run = run_cli(cmd, dir_);
        EXPECT_EQ(run.exit_code, 0) << cmd;
        EXPECT_NE(run.out.find("Usage"), std::string::npos) << cmd << ": " << run.out;
    }
    EXPECT_EQ(run_cli("", dir_).exit_code, 2);  // a subcommand is required
}

TEST_F(CliTest, BuildSkipsCorruptFileThenVerifyAndQuery) {
    const fs::path index = dir_ / "index";
    CliRun build = run_cli("build -q " + model_arg() + " --out " + index.string() + " " +
                            (dir_ / "music").string(),
                        dir_);
    ASSERT_EQ(build.exit_code, 3) << build.err;  // built, but one input was skipped
    EXPECT_NE(build.err.find("broken.ogg"), std::string::npos) << build.err;
    EXPECT_NE(build.err.find("3 songs"), std::string::npos) << build.err;
    ASSERT_TRUE(fs::exists(index / "manifest.json"));
    // Nothing of the staging folders is left behind.
    for (const auto& entry : fs::directory_iterator(dir_)) {
        EXPECT_EQ(entry.path().filename().string().find(".partial"), std::string::npos);
    }

    const CliRun verify = run_cli("verify " + index.string() + " " + model_arg(), dir_);
    EXPECT_EQ(verify.exit_code, 0) << verify.err;
    EXPECT_NE(verify.out.find("3 songs"), std::string::npos) << verify.out;

    const CliRun info = run_cli("info " + index.string(), dir_);
    ASSERT_EQ(info.exit_code, 0) << info.err;
    const auto manifest = nlohmann::json::parse(info.out);
    EXPECT_EQ(manifest["songs"], 3);
    EXPECT_EQ(manifest["quantizer"]["n_lists"], 256);  // by catalogue size: a small one
    EXPECT_EQ(manifest["quantizer"]["pq_m"], 16);      // random-init-v0 has no index_pq_m: 16

    // Query: an exact 4 s excerpt of the second song starting at 3.0 s (44.1 kHz, resampled),
    // and the corrupt file (reported, answered null).
    write_song2_clip(3.0, 4.0);
    const CliRun query = run_cli("query -q " + model_arg() + " --index " + index.string() + " " +
                                  (dir_ / "clip.wav").string() + " " +
                                  (dir_ / "music" / "broken.ogg").string(),
                              dir_);
    EXPECT_EQ(query.exit_code, 3) << query.err;
    std::istringstream lines(query.out);
    std::string line;
    ASSERT_TRUE(std::getline(lines, line));
    const auto hit = nlohmann::json::parse(line);
    EXPECT_EQ(hit["query"], "clip.wav");
    EXPECT_EQ(hit["song"], "album-a/second_song");
    EXPECT_NEAR(hit["offset_s"].get<double>(), 3.0, 0.5);
    EXPECT_TRUE(hit["score"].is_number());
    EXPECT_TRUE(hit["ms"].is_number());
    ASSERT_TRUE(std::getline(lines, line));
    const auto broken = nlohmann::json::parse(line);
    EXPECT_EQ(broken["query"], "broken.ogg");
    EXPECT_TRUE(broken["song"].is_null());
    EXPECT_NE(query.err.find("broken.ogg"), std::string::npos);
}

// Builds stage their files as they go (each shard once full), so a build never takes another
// running build's staging folder for a leftover of a killed one; a dead process's is removed.
TEST_F(CliTest, BuildKeepsARunningBuildsStagingAndRemovesADeadOnes) {
    const fs::path index = dir_ / "index";
    const pid_t other = ::fork();
    ASSERT_GE(other, 0);
    if (other == 0) {  // stands for another build, still running
        ::close(1);    // holds no pipe a test runner waits on
        ::close(2);
        ::pause();
        ::_exit(0);
    }
    struct KillOnExit {
        pid_t pid;
        ~KillOnExit() {
            if (::kill(pid, SIGKILL) == 0) wait_for(pid);
        }
    } kill_on_exit{other};
    const fs::path staging = dir_ / ("index.earshot-partial." + std::to_string(other));
    fs::create_directories(staging);
    std::ofstream(staging / "shard-00000.es") << "being written";
    const std::string build =
        "build -q " + model_arg() + " --out " + index.string() + " " + (dir_ / "music").string();
    ASSERT_EQ(run_cli(build, dir_).exit_code, 3);
    EXPECT_TRUE(fs::exists(staging / "shard-00000.es"));
    EXPECT_EQ(run_cli("verify " + index.string() + " " + model_arg(), dir_).exit_code, 0);

    ::kill(other, SIGKILL);
    wait_for(other);
    ASSERT_EQ(run_cli(build, dir_).exit_code, 3);
    EXPECT_FALSE(fs::exists(staging));
    EXPECT_EQ(run_cli("verify " + index.string() + " " + model_arg(), dir_).exit_code, 0);
}

// Compact indexes: 8 PQ bytes a window after a learned rotation, and 32 bytes for each group of
// 4 windows (--group), both scored against unit-length reconstructions. `info` reports the
// code, `verify` passes, and a clip of an indexed song is found in place.
TEST_F(CliTest, BuildWithRotationAndUnitNormFindsTheSong) {
    struct Case {
        const char* options;
        const char* training;  // what build says it trains
        int pq_m, group;
        const char* code;
    };
    write_song2_clip(3.0, 4.0);
    for (const Case& c :
         {Case{"--pq-m 8 --opq 5 --unit-norm", "OPQ 8 x 8 bits)", 8, 1, "8-opq-unit"},
          Case{"--pq-m 32 --group 4 --opq 5 --unit-norm", "OPQ 32 x 8 bits per 4 windows", 32, 4,
               "32-g4-opq-unit"}}) {
        const fs::path index = dir_ / ("index-" + std::string(c.code));
        const CliRun build = run_cli("build -q " + model_arg() + " " + c.options + " --out " +
                                         index.string() + " " + (dir_ / "music").string(),
                                     dir_);
        ASSERT_EQ(build.exit_code, 3) << build.err;  // broken.ogg skipped
        EXPECT_NE(build.err.find(c.training), std::string::npos) << build.err;
        const CliRun info = run_cli("info " + index.string(), dir_);
        ASSERT_EQ(info.exit_code, 0) << info.err;
        const auto manifest = nlohmann::json::parse(info.out);
        EXPECT_EQ(manifest["quantizer"]["pq_m"], c.pq_m);
        EXPECT_EQ(manifest["quantizer"]["group"], c.group);
        EXPECT_EQ(manifest["quantizer"]["rotation"], true);
        EXPECT_EQ(manifest["quantizer"]["unit_norm"], true);
        EXPECT_EQ(manifest["quantizer"]["code"], c.code);
        EXPECT_EQ(run_cli("verify " + index.string() + " " + model_arg(), dir_).exit_code, 0);

        const CliRun query = run_cli("query -q " + model_arg() + " --index " + index.string() +
                                         " " + (dir_ / "clip.wav").string(),
                                     dir_);
        ASSERT_EQ(query.exit_code, 0) << query.err;
        const auto hit = nlohmann::json::parse(query.out.substr(0, query.out.find('\n')));
        EXPECT_EQ(hit["song"], "album-a/second_song") << c.code;
        EXPECT_NEAR(hit["offset_s"].get<double>(), 3.0, 0.5) << c.code;
    }
}

// `build --quantizer-from`: the songs coded with another index's quantizer (the same bytes, no
// training), found by a query; the code options are refused with it, and so is a folder that
// is not an index.
TEST_F(CliTest, BuildWithAnotherIndexesQuantizerFindsTheSong) {
    const fs::path first = dir_ / "first", second = dir_ / "second";
    const std::string music = (dir_ / "music").string();
    const CliRun a = run_cli(
        "build -q " + model_arg() + " --pq-m 8 --opq 3 --out " + first.string() + " " + music,
        dir_);
    ASSERT_EQ(a.exit_code, 3) << a.err;  // broken.ogg skipped
    const CliRun b = run_cli("build -q " + model_arg() + " --quantizer-from " + first.string() +
                                 " --out " + second.string() + " " + music,
                             dir_);
    ASSERT_EQ(b.exit_code, 3) << b.err;
    EXPECT_EQ(b.err.find("training the quantizer"), std::string::npos) << b.err;
    EXPECT_EQ(slurp(first / "quantizer.eq"), slurp(second / "quantizer.eq"));
    const CliRun info = run_cli("info " + second.string(), dir_);
    ASSERT_EQ(info.exit_code, 0) << info.err;
    EXPECT_EQ(nlohmann::json::parse(info.out)["quantizer"]["code"], "8-opq");
    EXPECT_EQ(run_cli("verify " + second.string() + " " + model_arg(), dir_).exit_code, 0);

    write_song2_clip(3.0, 4.0);
    const CliRun query = run_cli("query -q " + model_arg() + " --index " + second.string() + " " +
                                     (dir_ / "clip.wav").string(),
                                 dir_);
    ASSERT_EQ(query.exit_code, 0) << query.err;
    const auto hit = nlohmann::json::parse(query.out.substr(0, query.out.find('\n')));
    EXPECT_EQ(hit["song"], "album-a/second_song");

    for (const char* code_option : {"--pq-m 16", "--group 4"}) {
        const CliRun both =
            run_cli("build -q " + model_arg() + " --quantizer-from " + first.string() + " " +
                        code_option + " --out " + (dir_ / "both").string() + " " + music,
                    dir_);
        EXPECT_EQ(both.exit_code, 1);
        EXPECT_NE(both.err.find("leave out"), std::string::npos) << both.err;
        EXPECT_FALSE(fs::exists(dir_ / "both"));
    }
    const CliRun not_index = run_cli("build -q " + model_arg() + " --quantizer-from " + music +
                                         " --out " + (dir_ / "none").string() + " " + music,
                                     dir_);
    EXPECT_EQ(not_index.exit_code, 1);
    EXPECT_NE(not_index.err.find("--quantizer-from: "), std::string::npos) << not_index.err;
}

// A catalogue's popularity column: each song's popularity and log prior go into the index;
// `query --prior-weight` adds the prior to a popular song's score ("prior" in the JSON line);
// `build --top N` indexes the N most popular songs; a popularity that is not a number >= 0 is
// refused with its line, before any audio is read.
TEST_F(CliTest, CatalogPopularityGivesAPrior) {
    const fs::path music = dir_ / "music";
    const fs::path catalog = dir_ / "catalog.tsv";
    std::ofstream(catalog) << "id\tpath\ttitle\talbum\tpopularity\n"
                           << "one\t" << (music / "album-a" / "first_song.wav").string()
                           << "\tOne\tA\t5000\n"
                           << "two\t" << (music / "album-a" / "second_song.flac").string()
                           << "\tTwo\tA\t3\n"
                           << "three\t" << (music / "third_song.wav").string() << "\tThree\tB\t\n";
    const fs::path index = dir_ / "index";
    const CliRun build = run_cli(
        "build -q " + model_arg() + " --format 1 --out " + index.string() + " " + catalog.string(),
        dir_);
    ASSERT_EQ(build.exit_code, 0) << build.err;
    const std::string shard = slurp(index / "shard-00000.es");
    EXPECT_NE(shard.find("\"popularity\":5000.0"), std::string::npos);
    EXPECT_NE(shard.find("\"log_prior\""), std::string::npos);

    std::vector<float> clip;
    {
        const std::vector<float> song = make_song(1, 16000, 12.0);
        clip.assign(song.begin() + 3 * 16000, song.begin() + 8 * 16000);
    }
    write_audio(dir_ / "clip.wav", clip, 16000, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
    const CliRun query = run_cli("query -q " + model_arg() + " --index " + index.string() +
                                     " --prior-weight 0.5 " + (dir_ / "clip.wav").string(),
                                 dir_);
    ASSERT_EQ(query.exit_code, 0) << query.err;
    const auto hit = nlohmann::json::parse(query.out.substr(0, query.out.find('\n')));
    ASSERT_EQ(hit["song"], "one");
    // "one" is far more popular than the typical song of this catalogue: a positive prior.
    ASSERT_TRUE(hit.contains("prior")) << query.out;
    EXPECT_GT(hit["prior"].get<double>(), 0.0);

    // --top: the most popular songs only (a lazy page's hot tier), refused without popularities.
    const fs::path hot = dir_ / "hot";
    const CliRun top = run_cli(
        "build -q " + model_arg() + " --top 2 --out " + hot.string() + " " + catalog.string(),
        dir_);
    ASSERT_EQ(top.exit_code, 0) << top.err;
    const auto hot_manifest = nlohmann::json::parse(slurp(hot / "manifest.json"));
    EXPECT_EQ(hot_manifest["songs"], 2);
    const std::string hot_songs = slurp(hot / "songs.esb");
    EXPECT_NE(hot_songs.find("\"id\":\"one\""), std::string::npos);
    EXPECT_NE(hot_songs.find("\"id\":\"two\""), std::string::npos);
    EXPECT_EQ(hot_songs.find("\"id\":\"three\""), std::string::npos);
    const fs::path plain = dir_ / "plain.tsv";
    std::ofstream(plain) << "id\tpath\n"
                         << "one\t" << (music / "album-a" / "first_song.wav").string() << "\n";
    const CliRun no_popularity = run_cli("build -q " + model_arg() + " --top 1 --out " +
                                             (dir_ / "nohot").string() + " " + plain.string(),
                                         dir_);
    EXPECT_NE(no_popularity.exit_code, 0);
    EXPECT_NE(no_popularity.err.find("--top needs a catalogue with a popularity column"),
              std::string::npos)
        << no_popularity.err;

    std::ofstream(catalog) << "id\tpath\tpopularity\n"
                           << "one\t" << (music / "album-a" / "first_song.wav").string()
                           << "\tmany\n";
    const CliRun bad = run_cli(
        "build -q " + model_arg() + " --out " + (dir_ / "bad").string() + " " + catalog.string(),
        dir_);
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_NE(bad.err.find("line 2: popularity 'many'"), std::string::npos) << bad.err;
}

// Format 2 (hashed blocks in one file, the default): the same answers as format 1 from the
// same catalogue; verify checks every block and names a tampered one; a truncated songs file is
// a clear error. Format 1 stays readable, and verify names its tampered shard file.
TEST_F(CliTest, FormatTwoAnswersAsFormatOneAndVerifiesEveryBlock) {
    const fs::path v1 = dir_ / "v1", v2 = dir_ / "v2";
    ASSERT_EQ(run_cli("build -q " + model_arg() + " --format 1 --out " + v1.string() + " " +
                          (dir_ / "music").string(),
                      dir_)
                  .exit_code,
              3);
    const CliRun build = run_cli("build -q " + model_arg() + " --block-kb 1 --out " + v2.string() +
                                     " " + (dir_ / "music").string(),
                                 dir_);
    ASSERT_EQ(build.exit_code, 3) << build.err;
    for (const char* file : {"manifest.json", "quantizer.eq", "directory.ed", "songs.esb"})
        EXPECT_TRUE(fs::exists(v2 / file)) << file;
    EXPECT_FALSE(fs::exists(v2 / "shard-00000.es"));
    const CliRun info = run_cli("info " + v2.string(), dir_);
    ASSERT_EQ(info.exit_code, 0) << info.err;
    const auto manifest = nlohmann::json::parse(info.out);
    EXPECT_EQ(manifest["version"], 2);
    EXPECT_EQ(manifest["blocks"]["count"], 3);  // 1 KB blocks: one song each
    EXPECT_EQ(manifest["blocks"]["bytes"], fs::file_size(v2 / "songs.esb"));
    const CliRun verify = run_cli("verify " + v2.string() + " " + model_arg(), dir_);
    ASSERT_EQ(verify.exit_code, 0) << verify.err;
    EXPECT_NE(verify.out.find("format 2, 3 block(s), 3 songs"), std::string::npos) << verify.out;

    write_song2_clip(3.0, 4.0);
    nlohmann::json answers[2];
    for (int i = 0; i < 2; ++i) {
        const CliRun query =
            run_cli("query -q " + model_arg() + " --index " + (i == 0 ? v1 : v2).string() + " " +
                        (dir_ / "clip.wav").string(),
                    dir_);
        ASSERT_EQ(query.exit_code, 0) << query.err;
        answers[i] = nlohmann::json::parse(query.out.substr(0, query.out.find('\n')));
        answers[i].erase("ms");  // the time it took
    }
    EXPECT_EQ(answers[1]["song"], "album-a/second_song");
    EXPECT_EQ(answers[0], answers[1]);

    // One byte flipped in the last block: verify names that block.
    const fs::path songs = v2 / "songs.esb";
    const std::string good = slurp(songs);
    std::string bad = good;
    bad[bad.size() - 100] ^= 0x40;
    std::ofstream(songs, std::ios::binary | std::ios::trunc) << bad;
    CliRun tampered = run_cli("verify " + v2.string(), dir_);
    EXPECT_EQ(tampered.exit_code, 1);
    EXPECT_NE(tampered.err.find("songs.esb block 2"), std::string::npos) << tampered.err;
    // Truncated: the size is checked against the manifest before any block.
    std::ofstream(songs, std::ios::binary | std::ios::trunc) << good.substr(0, good.size() / 2);
    tampered = run_cli("verify " + v2.string(), dir_);
    EXPECT_EQ(tampered.exit_code, 1);
    EXPECT_NE(tampered.err.find("truncated"), std::string::npos) << tampered.err;

    const fs::path shard = v1 / "shard-00000.es";
    ASSERT_TRUE(fs::exists(shard));
    std::string bytes = slurp(shard);
    bytes[bytes.size() / 2] ^= 0x40;
    std::ofstream(shard, std::ios::binary | std::ios::trunc) << bytes;
    tampered = run_cli("verify " + v1.string(), dir_);
    EXPECT_EQ(tampered.exit_code, 1);
    EXPECT_NE(tampered.err.find("shard-00000.es"), std::string::npos) << tampered.err;
}

// `build --pair-keys`: the pair-key level a lazy page fetches from (pairs.ek*), named in the
// manifest; verify proves every page and unit against the header's root and names what was
// changed or cut; format 1 refuses the option.
TEST_F(CliTest, PairKeyLevelIsWrittenAndEveryByteVerified) {
    const fs::path index = dir_ / "pairs";
    const CliRun build = run_cli("build -q " + model_arg() + " --pair-keys 2 --out " +
                                     index.string() + " " + (dir_ / "music").string(),
                                 dir_);
    ASSERT_EQ(build.exit_code, 3) << build.err;
    for (const char* file : {"pairs.ekh", "pairs.ekd", "pairs.ekp"})
        EXPECT_TRUE(fs::exists(index / file)) << file;
    const auto manifest = nlohmann::json::parse(slurp(index / "manifest.json"));
    const double hop_s = manifest["hop_s"];  // 2 s in index hops
    EXPECT_EQ(manifest["pair_keys"]["span"], int(std::lround(2.0 / hop_s)));
    EXPECT_EQ(manifest["pair_keys"]["postings"]["bytes"], fs::file_size(index / "pairs.ekp"));
    const CliRun verify = run_cli("verify " + index.string() + " " + model_arg(), dir_);
    ASSERT_EQ(verify.exit_code, 0) << verify.err;
    EXPECT_NE(verify.out.find("pair-key level of"), std::string::npos) << verify.out;

    // `query --lazy` answers as the whole index does, from the ranges it read.
    write_song2_clip(3.0, 6.0);
    const std::string query_args =
        model_arg() + " --index " + index.string() + " " + (dir_ / "clip.wav").string();
    const CliRun full = run_cli("query -q " + query_args, dir_);
    const CliRun lazy = run_cli("query -q --lazy " + query_args, dir_);
    ASSERT_EQ(full.exit_code, 0) << full.err;
    ASSERT_EQ(lazy.exit_code, 0) << lazy.err;
    const auto full_answer = nlohmann::json::parse(full.out.substr(0, full.out.find('\n')));
    const auto lazy_answer = nlohmann::json::parse(lazy.out.substr(0, lazy.out.find('\n')));
    EXPECT_EQ(full_answer["song"], "album-a/second_song");
    EXPECT_EQ(lazy_answer["song"], full_answer["song"]);
    EXPECT_EQ(lazy_answer["offset_s"], full_answer["offset_s"]);
    EXPECT_EQ(lazy_answer["score"], full_answer["score"]);
    // Pair pages, then units; the three songs' blocks are all background blocks, read before
    // the first query, so no third round.
    EXPECT_EQ(lazy_answer["lazy"]["rounds"], 2);
    const CliRun no_background = run_cli("query -q --lazy --lazy-background 0 " + query_args, dir_);
    ASSERT_EQ(no_background.exit_code, 0) << no_background.err;
    const auto candidates_only =
        nlohmann::json::parse(no_background.out.substr(0, no_background.out.find('\n')));
    EXPECT_EQ(candidates_only["song"], full_answer["song"]);
    // Pair pages, units, directory pages, blocks.
    EXPECT_EQ(candidates_only["lazy"]["rounds"], 4);
    EXPECT_GT(lazy_answer["lazy"]["bytes"].get<uint64_t>(), 0u);
    EXPECT_FALSE(full_answer.contains("lazy"));
    // One candidate: the clip's song still comes first; none is refused.
    const CliRun one = run_cli("query -q --lazy --lazy-candidates 1 " + query_args, dir_);
    ASSERT_EQ(one.exit_code, 0) << one.err;
    EXPECT_EQ(nlohmann::json::parse(one.out.substr(0, one.out.find('\n')))["song"],
              full_answer["song"]);
    const CliRun none = run_cli("query -q --lazy --lazy-candidates 0 " + query_args, dir_);
    EXPECT_NE(none.exit_code, 0);
    EXPECT_NE(none.err.find("--lazy-candidates"), std::string::npos) << none.err;
    const CliRun continuous_lazy = run_cli("query -q --lazy --continuous " + query_args, dir_);
    EXPECT_EQ(continuous_lazy.exit_code, 1);
    EXPECT_NE(continuous_lazy.err.find("--lazy"), std::string::npos) << continuous_lazy.err;
    // A clip too short to hold a pair of embeddings names no key: no answer, and the command
    // says why (a 1 s clip is one embedding, with no pair even 1 s apart).
    EXPECT_GT(lazy_answer["lazy"]["keys"].get<int>(), 0);
    write_song2_clip(3.0, 1.0);
    const CliRun keyless = run_cli("query --lazy " + query_args, dir_);
    ASSERT_EQ(keyless.exit_code, 0) << keyless.err;
    const auto keyless_answer =
        nlohmann::json::parse(keyless.out.substr(0, keyless.out.find('\n')));
    EXPECT_TRUE(keyless_answer["song"].is_null());
    EXPECT_EQ(keyless_answer["lazy"]["keys"], 0);
    EXPECT_EQ(keyless_answer["lazy"]["requests"], 0);
    EXPECT_NE(keyless.err.find("1 of 1 clips were too short for a lazy query"), std::string::npos)
        << keyless.err;
    write_song2_clip(3.0, 6.0);
    const CliRun keyed = run_cli("query --lazy " + query_args, dir_);
    ASSERT_EQ(keyed.exit_code, 0) << keyed.err;
    EXPECT_EQ(keyed.err.find("too short"), std::string::npos) << keyed.err;

    // `query --live --lazy` listens as a lazy page: after a second of silence, looks at the
    // music window until one matches; the answer carries when it came and the song time at
    // the listen's first sample.
    std::vector<float> listen(44100, 0.0f);
    const auto from = song2_44k_.begin() + size_t(3.0 * 44100);  // the clip's start
    listen.insert(listen.end(), from, from + size_t(9.0 * 44100));
    write_audio(dir_ / "listen.wav", listen, 44100, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
    const CliRun live_lazy = run_cli("query -q --lazy --live " + model_arg() + " --index " +
                                         index.string() + " " + (dir_ / "listen.wav").string(),
                                     dir_);
    ASSERT_EQ(live_lazy.exit_code, 0) << live_lazy.err;
    const auto listened = nlohmann::json::parse(live_lazy.out.substr(0, live_lazy.out.find('\n')));
    EXPECT_EQ(listened["song"], "album-a/second_song");
    EXPECT_NEAR(listened["offset_s"].get<double>(), 3.0 - 1.0, 0.3);
    // The first look needs a pair of embeddings 2 s apart in the music after the silence (3 s
    // of music); --lazy-short-look 1 looks at the first pair 1 s apart (2 s) on this level,
    // which has short keys (the default with --pair-keys).
    EXPECT_GE(listened["answer_s"].get<double>(), 1.0 + 3.0 - 1e-9);
    const CliRun short_look =
        run_cli("query -q --lazy --live --lazy-short-look 1 " + model_arg() + " --index " +
                    index.string() + " " + (dir_ / "listen.wav").string(),
                dir_);
    ASSERT_EQ(short_look.exit_code, 0) << short_look.err;
    const auto early = nlohmann::json::parse(short_look.out.substr(0, short_look.out.find('\n')));
    EXPECT_EQ(early["song"], "album-a/second_song");
    EXPECT_GE(early["answer_s"].get<double>(), 1.0 + 2.0 - 1e-9);
    EXPECT_LT(early["answer_s"].get<double>(), listened["answer_s"].get<double>());
    EXPECT_LE(listened["answer_s"].get<double>(), 10.0);
    EXPECT_GE(listened["lazy"]["looks"].get<int>(), 1);
    EXPECT_GT(listened["lazy"]["bytes"].get<uint64_t>(), 0u);
    // --trace records every look of the listen, the match and those after it, with its
    // threshold, for the look decision's calibration.
    const CliRun traced =
        run_cli("query -q --lazy --trace " + (dir_ / "looks.jsonl").string() + " " + model_arg() +
                    " --index " + index.string() + " " + (dir_ / "listen.wav").string(),
                dir_);
    ASSERT_EQ(traced.exit_code, 0) << traced.err;
    EXPECT_EQ(nlohmann::json::parse(traced.out.substr(0, traced.out.find('\n')))["answer_s"],
              listened["answer_s"]);
    const auto looks = nlohmann::json::parse(slurp(dir_ / "looks.jsonl"))["looks"];
    ASSERT_GT(looks.size(), listened["lazy"]["looks"].get<size_t>());
    const auto& first_match = looks[listened["lazy"]["looks"].get<size_t>() - 1];
    EXPECT_EQ(first_match[0], listened["answer_s"]);
    EXPECT_EQ(first_match[3], "album-a/second_song");
    EXPECT_GE(first_match[2].get<double>(), first_match[8].get<double>());  // cleared its bar

    struct Case {
        const char* file;
        bool cut;
        const char* says;
    };
    for (const Case& c : {Case{"pairs.ekp", false, "pair key"}, Case{"pairs.ekd", false, "page"},
                          Case{"pairs.ekh", false, "SHA-256"}, Case{"pairs.ekp", true, "cut short"},
                          Case{"directory-pages.edp", false, "directory page"},
                          Case{"directory-pages.edh", false, "SHA-256"},
                          Case{"directory-pages.edp", true, "cut short"}}) {
        const fs::path path = index / c.file;
        const std::string good = slurp(path);
        std::string bad = c.cut ? good.substr(0, good.size() - 1) : good;
        if (!c.cut) bad[bad.size() / 2] ^= 0x20;
        std::ofstream(path, std::ios::binary | std::ios::trunc) << bad;
        const CliRun tampered = run_cli("verify " + index.string(), dir_);
        EXPECT_EQ(tampered.exit_code, 1) << c.file;
        EXPECT_NE(tampered.err.find(c.says), std::string::npos) << c.file << ": " << tampered.err;
        std::ofstream(path, std::ios::binary | std::ios::trunc) << good;
    }
    EXPECT_EQ(run_cli("verify " + index.string(), dir_).exit_code, 0);
    // A lazy query refuses a changed header before any query, and a changed block it reads
    // with that clip's error line.
    for (const char* file : {"pairs.ekh", "songs.esb"}) {
        const fs::path path = index / file;
        const std::string good = slurp(path);
        std::string bad = good;
        bad[bad.size() / 2] ^= 0x20;
        std::ofstream(path, std::ios::binary | std::ios::trunc) << bad;
        // Read before the first query (the header; here every block is a background block).
        const CliRun refused = run_cli("query -q --lazy " + query_args, dir_);
        EXPECT_EQ(refused.exit_code, 1);
        EXPECT_NE(refused.err.find("SHA-256"), std::string::npos) << refused.err;
        if (std::string(file) == "songs.esb") {  // read for the clip: its line says why
            const CliRun clip = run_cli("query -q --lazy --lazy-background 0 " + query_args, dir_);
            EXPECT_EQ(clip.exit_code, 3) << clip.err;
            const auto line = nlohmann::json::parse(clip.out.substr(0, clip.out.find('\n')));
            EXPECT_TRUE(line["song"].is_null());
            EXPECT_NE(line["error"].get<std::string>().find("SHA-256"), std::string::npos) << line;
        }
        std::ofstream(path, std::ios::binary | std::ios::trunc) << good;
    }
    // A manifest whose pair_keys entry lacks its files, or names a file outside the folder.
    const std::string good_manifest = slurp(index / "manifest.json");
    for (const nlohmann::json& entry :
         {nlohmann::json::object(),
          nlohmann::json{{"header", {{"file", "../pairs.ekh"}, {"bytes", 1}, {"sha256", "0"}}}}}) {
        auto bad = manifest;
        bad["pair_keys"] = entry;
        std::ofstream(index / "manifest.json", std::ios::trunc) << bad.dump();
        const CliRun hostile = run_cli("verify " + index.string(), dir_);
        EXPECT_EQ(hostile.exit_code, 1) << entry;
        EXPECT_NE(hostile.err.find("pair_keys"), std::string::npos) << hostile.err;
    }
    std::ofstream(index / "manifest.json", std::ios::trunc) << good_manifest;

    const CliRun v1 = run_cli("build -q " + model_arg() + " --format 1 --pair-keys 2 --out " +
                                  (dir_ / "v1").string() + " " + (dir_ / "music").string(),
                              dir_);
    EXPECT_EQ(v1.exit_code, 1);
    EXPECT_NE(v1.err.find("--pair-keys"), std::string::npos) << v1.err;
    // --pair-lists goes with --pair-keys; with it, the manifest says so and verify accepts it.
    const CliRun lone = run_cli("build -q " + model_arg() + " --pair-lists 2 --out " +
                                    (dir_ / "lone").string() + " " + (dir_ / "music").string(),
                                dir_);
    EXPECT_EQ(lone.exit_code, 1);
    EXPECT_NE(lone.err.find("--pair-lists"), std::string::npos) << lone.err;
    ASSERT_EQ(run_cli("build -q " + model_arg() + " --pair-keys 2 --pair-lists 2 --out " +
                          (dir_ / "two").string() + " " + (dir_ / "music").string(),
                      dir_)
                  .exit_code,
              3);  // broken.ogg skipped
    EXPECT_EQ(nlohmann::json::parse(
                  slurp(dir_ / "two" / "manifest.json"))["pair_keys"]["lists_per_window"],
              2);
    EXPECT_EQ(run_cli("verify " + (dir_ / "two").string(), dir_).exit_code, 0);
    const CliRun weighed =
        run_cli("query -q --lazy --lazy-vote-slack 1 --lazy-key-weight 1000 " + model_arg() +
                    " --index " + (dir_ / "two").string() + " " + (dir_ / "clip.wav").string(),
                dir_);
    ASSERT_EQ(weighed.exit_code, 0) << weighed.err;
    EXPECT_TRUE(nlohmann::json::parse(weighed.out).contains("lazy")) << weighed.out;
    // An index without the level cannot be read lazily.
    ASSERT_EQ(run_cli("build -q " + model_arg() + " --out " + (dir_ / "plain").string() + " " +
                          (dir_ / "music").string(),
                      dir_)
                  .exit_code,
              3);
    const CliRun plain = run_cli("query -q --lazy " + model_arg() + " --index " +
                                     (dir_ / "plain").string() + " " + (dir_ / "clip.wav").string(),
                                 dir_);
    EXPECT_EQ(plain.exit_code, 1);
    EXPECT_NE(plain.err.find("--pair-keys"), std::string::npos) << plain.err;
}

// Index options the model cannot use fail before any audio is decoded or embedded, name the
// option, and write nothing.
TEST_F(CliTest, BuildRejectsInvalidPqMBeforeEmbedding) {
    const fs::path index = dir_ / "index";
    const CliRun build = run_cli("build " + model_arg() + " --pq-m 7 --out " + index.string() +
                                     " " + (dir_ / "music").string(),
                                 dir_);
    EXPECT_EQ(build.exit_code, 1) << build.err;
    EXPECT_NE(build.err.find("--pq-m"), std::string::npos) << build.err;
    EXPECT_NE(build.err.find("pq_m 7 must divide the model's embedding_dim 128"), std::string::npos)
        << build.err;
    // No embedding started (its progress line) and no input was read (broken.ogg unreported).
    EXPECT_EQ(build.err.find("earshot: embedding"), std::string::npos) << build.err;
    EXPECT_EQ(build.err.find("broken.ogg"), std::string::npos) << build.err;
    EXPECT_FALSE(fs::exists(index));
    for (const auto& entry : fs::directory_iterator(dir_)) {
        const std::string name = entry.path().filename().string();
        EXPECT_TRUE(name == "music" || name == "stdout.txt" || name == "stderr.txt") << name;
    }
}

TEST_F(CliTest, VerifyRejectsTamperedShardAndFailedBuildKeepsOldIndex) {
    const fs::path index = dir_ / "index";
    ASSERT_EQ(run_cli("build -q " + model_arg() + " --out " + index.string() + " " +
                          (dir_ / "music").string(),
                      dir_)
                  .exit_code,
              3);
    const std::string manifest_before = slurp(index / "manifest.json");

    // A build where every input is unreadable fails and leaves the existing index untouched.
    fs::create_directories(dir_ / "junk");
    std::ofstream(dir_ / "junk" / "a.wav") << "not audio";
    const CliRun failed = run_cli("build -q " + model_arg() + " --out " + index.string() + " " +
                                   (dir_ / "junk").string(),
                               dir_);
    EXPECT_EQ(failed.exit_code, 1);
    EXPECT_NE(failed.err.find("nothing to index"), std::string::npos) << failed.err;
    EXPECT_EQ(slurp(index / "manifest.json"), manifest_before);

    // Flip one byte in the middle of the songs file: verify names the block and fails.
    const fs::path songs = index / "songs.esb";
    std::string bytes = slurp(songs);
    bytes[bytes.size() / 2] ^= 0x40;
    std::ofstream(songs, std::ios::binary | std::ios::trunc) << bytes;
    const CliRun verify = run_cli("verify " + index.string(), dir_);
    EXPECT_EQ(verify.exit_code, 1);
    EXPECT_NE(verify.err.find("songs.esb block"), std::string::npos) << verify.err;

    // A missing index is a clear error too.
    const CliRun missing = run_cli("verify " + (dir_ / "nowhere").string(), dir_);
    EXPECT_EQ(missing.exit_code, 1);
    EXPECT_NE(missing.err.find("no index at"), std::string::npos) << missing.err;
}

// Hostile inputs end in a clean error and exit code, never a crash: an audio file whose header
// claims 2^36 - 1 frames is skipped with a message (it used to reserve 256 GB inside a build
// worker), and a manifest naming files outside its folder is refused by verify and info.
TEST_F(CliTest, HostileInputsGiveCleanErrors) {
    earshot::test::write_flac_claiming((dir_ / "music" / "lying.flac").string(),
                                       make_song(4, 16000, 2.0), 16000,
                                       (uint64_t(1) << 36) - 1);
    const fs::path index = dir_ / "index";
    const CliRun build = run_cli("build -q -j 2 " + model_arg() + " --out " + index.string() +
                                     " " + (dir_ / "music").string(),
                                 dir_);
    ASSERT_EQ(build.exit_code, 3) << build.err;  // built; broken.ogg and lying.flac skipped
    EXPECT_NE(build.err.find("lying.flac: longer than the 120-minute limit"), std::string::npos)
        << build.err;

    // A manifest next door that reaches into the real index through "../index/".
    nlohmann::json manifest = nlohmann::json::parse(slurp(index / "manifest.json"));
    manifest["quantizer"]["file"] = "../index/" + manifest["quantizer"]["file"].get<std::string>();
    for (auto& shard : manifest["shards"])
        shard["file"] = "../index/" + shard["file"].get<std::string>();
    const fs::path evil = dir_ / "evil";
    fs::create_directories(evil);
    std::ofstream(evil / "manifest.json") << manifest.dump();
    for (const std::string& args : {"verify " + evil.string(),
                                    "verify " + evil.string() + " " + model_arg(),
                                    "info " + evil.string()}) {
        const CliRun run = run_cli(args, dir_);
        EXPECT_EQ(run.exit_code, 1) << args << ": " << run.out << run.err;
        EXPECT_NE(run.err.find("is not a plain file name"), std::string::npos) << args << ": "
                                                                              << run.err;
    }
    // Fields of the wrong type are errors too, not exceptions.
    manifest = nlohmann::json::parse(slurp(index / "manifest.json"));
    manifest["quantizer"]["file"] = 7;
    manifest["model_name"] = 7;
    std::ofstream(evil / "manifest.json", std::ios::trunc) << manifest.dump();
    const CliRun verify = run_cli("verify " + evil.string(), dir_);
    EXPECT_EQ(verify.exit_code, 1) << verify.err;
    EXPECT_NE(verify.err.find("model_name"), std::string::npos) << verify.err;
    const CliRun info = run_cli("info " + evil.string(), dir_);
    EXPECT_EQ(info.exit_code, 0) << info.err;  // describes the manifest, no quantizer shape
}

TEST_F(CliTest, InfoDescribesModel) {
    const CliRun info = run_cli(std::string("info ") + kModel, dir_);
    ASSERT_EQ(info.exit_code, 0) << info.err;
    const auto j = nlohmann::json::parse(info.out);
    EXPECT_EQ(j["sample_rate_hz"], 16000);
    EXPECT_EQ(j["embedding_dim"], 128);
    EXPECT_LE(j["parameters"].get<double>(), 1.5e6);
    EXPECT_LE(j["mflop_per_embedding"].get<double>(), 30.0);
    EXPECT_EQ(j["index_code"], "16");  // no tables: the main one only
    EXPECT_EQ(j["calibrated_codes"], nlohmann::json::array({"16"}));
    EXPECT_FALSE(j.contains("speed_search"));
}

// The shipped model names its default code (what `earshot build` uses) and the other codes it
// has thresholds for; the build options choose another code (given both --unit-norm and
// --no-unit-norm cancel out).
TEST_F(CliTest, ShippedModelsDefaultCodeAndItsOverrides) {
    const std::string shipped = EARSHOT_SHIPPED_MODEL;
    const CliRun info = run_cli("info " + shipped, dir_);
    ASSERT_EQ(info.exit_code, 0) << info.err;
    const auto j = nlohmann::json::parse(info.out);
    EXPECT_EQ(j["index_code"], "32-g5-opq-unit");
    const auto& codes = j["calibrated_codes"];
    for (const char* code : {"16-opq-unit", "32", "8-opq-unit", "32-g4-opq-unit", "32-g5-opq-unit"})
        EXPECT_NE(std::find(codes.begin(), codes.end(), code), codes.end()) << code;
    EXPECT_EQ(j["speed_search"]["stretches"].size(), 4u);
    EXPECT_EQ(j["speed_search"]["codes"],
              nlohmann::json::array({"32-g5-opq-unit", "16-opq-unit", "32", "8-opq-unit"}));

    const fs::path index = dir_ / "index";
    for (const auto& [options, code] :
         {std::pair<std::string, std::string>{"", "32-g5-opq-unit"},
          // A code option names a whole code: the others are the plain code's.
          {"--pq-m 32", "32"},
          {"--group 4", "32-g4"},
          {"--pq-m 16 --opq 10 --unit-norm", "16-opq-unit"},
          {"--pq-m 32 --group 4 --opq 2 --unit-norm", "32-g4-opq-unit"},
          {"--pq-m 8 --unit-norm --opq 3 --no-unit-norm", "8-opq"}}) {
        const CliRun build = run_cli("build -q --model " + shipped + " " + options + " --out " +
                                         index.string() + " " + (dir_ / "music").string(),
                                     dir_);
        ASSERT_EQ(build.exit_code, 3) << build.err;  // broken.ogg skipped
        const CliRun index_info = run_cli("info " + index.string(), dir_);
        ASSERT_EQ(index_info.exit_code, 0) << index_info.err;
        EXPECT_EQ(nlohmann::json::parse(index_info.out)["quantizer"]["code"], code) << options;
    }
    // The last index's code (8-opq) has no speed table: no speed search unless a calibration
    // run asks for every stretch.
    const std::string query = "query --model " + shipped + " --index " + index.string() + " ";
    const std::string clip = (dir_ / "music").string();
    const CliRun always = run_cli(query + "--speed-search always " + clip, dir_);
    EXPECT_NE(always.exit_code, 0);
    EXPECT_NE(always.err.find("--speed-stretches"), std::string::npos) << always.err;
    const CliRun stretches = run_cli(query + "--speed-stretches 1.02 " + clip, dir_);
    EXPECT_NE(stretches.exit_code, 0);
    EXPECT_NE(stretches.err.find("only --speed-search always"), std::string::npos) << stretches.err;
    const CliRun calibration = run_cli(
        query + "--threshold-base -1 --speed-search always --speed-stretches 1.02,0.99 " + clip,
        dir_);
    ASSERT_EQ(calibration.exit_code, 3) << calibration.err;  // broken.ogg skipped
    size_t lines = 0;
    std::istringstream text(calibration.out);
    for (std::string line; std::getline(text, line);) {
        const auto r = nlohmann::json::parse(line);
        if (r.contains("error")) continue;
        ++lines;
        ASSERT_TRUE(r.contains("speed_search")) << line;
        const auto& best = r["speed_search"];
        EXPECT_TRUE(best["stretch"] == 1.02 || best["stretch"] == 0.99) << line;
        EXPECT_FALSE(best["matched"]) << line;        // the stand-in table lets nothing through
        EXPECT_FALSE(r.contains("stretch")) << line;  // the clip's own answer stands
    }
    EXPECT_GT(lines, 0u);
}

// Near-silent windows are not stored by default (--store; the live gate never passes them), so
// the index keeps each song's timeline with gaps; --store all keeps them. Continuous listening
// reports the song, "music stopped" in the silence, and the song's return.
TEST_F(CliTest, BuildLeavesSilenceOutAndContinuousQueryReportsEvents) {
    std::vector<float> song = make_song(4, 16000, 12.0);
    std::vector<float> with_gap(song.begin(), song.begin() + 6 * 16000);
    with_gap.resize(with_gap.size() + 5 * 16000, 0.0f);  // 5 s of digital silence
    with_gap.insert(with_gap.end(), song.begin() + 6 * 16000, song.end());
    fs::create_directories(dir_ / "gap");
    write_audio(dir_ / "gap" / "gap_song.wav", with_gap, 16000, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    write_audio(dir_ / "gap" / "other.wav", make_song(5, 16000, 12.0), 16000,
                SF_FORMAT_WAV | SF_FORMAT_FLOAT);

    const fs::path index = dir_ / "index", index_all = dir_ / "index-all";
    const CliRun build =
        run_cli("build -q " + model_arg() + " --out " + index.string() + " " + (dir_ / "gap").string(), dir_);
    ASSERT_EQ(build.exit_code, 0) << build.err;
    // 17 s + 12 s at a 0.5 s hop: 33 + 23 windows; about 8 of the silence are left out.
    size_t stored = 0, windows = 0;
    ASSERT_EQ(std::sscanf(build.err.substr(build.err.find("storing")).c_str(),
                          "storing %zu of %zu windows", &stored, &windows),
              2)
        << build.err;
    EXPECT_EQ(windows, 33u + 23u);
    EXPECT_GE(windows - stored, 6u) << build.err;
    EXPECT_LE(windows - stored, 10u) << build.err;
    const CliRun verify = run_cli("verify " + index.string() + " " + model_arg(), dir_);
    EXPECT_EQ(verify.exit_code, 0) << verify.err;
    EXPECT_NE(verify.out.find(std::to_string(stored) + " embeddings stored of " +
                              std::to_string(windows) + " windows"),
              std::string::npos)
        << verify.out;
    const CliRun build_all = run_cli("build -q --store all " + model_arg() + " --out " +
                                         index_all.string() + " " + (dir_ / "gap").string(),
                                     dir_);
    ASSERT_EQ(build_all.exit_code, 0) << build_all.err;
    EXPECT_NE(build_all.err.find("storing 56 of 56 windows"), std::string::npos) << build_all.err;
    EXPECT_GT(fs::file_size(index_all / "songs.esb"), fs::file_size(index / "songs.esb"));

    // The song, 9 s of silence, the song again (its start), as one continuous session.
    std::vector<float> session(song.begin(), song.begin() + 8 * 16000);
    session.resize(session.size() + 9 * 16000, 0.0f);
    session.insert(session.end(), song.begin(), song.begin() + 8 * 16000);
    write_audio(dir_ / "session.wav", session, 16000, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
    const CliRun query = run_cli("query -q --continuous " + model_arg() + " --index " +
                                     index.string() + " " + (dir_ / "session.wav").string(),
                                 dir_);
    ASSERT_EQ(query.exit_code, 0) << query.err;
    const auto line = nlohmann::json::parse(query.out);
    EXPECT_NEAR(line["audio_s"].get<double>(), 25.0, 0.01);
    // (This model is random-init: the sequence between the first and last event is not
    // asserted; the real model's continuous mode is tested in Chromium, e2e/web.test.mjs.)
    const auto& events = line["events"];
    ASSERT_GE(events.size(), 3u) << query.out;
    EXPECT_EQ(events.front()["type"], "match");
    EXPECT_EQ(events.front()["song"], "gap_song");
    EXPECT_EQ(events.front()["returned"], false);
    EXPECT_LT(events.front()["answer_s"].get<double>(), 4.0);
    EXPECT_EQ(events.back()["type"], "match");
    EXPECT_EQ(events.back()["song"], "gap_song");
    EXPECT_EQ(events.back()["returned"], true);
    EXPECT_GT(events.back()["answer_s"].get<double>(), 17.0);
    size_t n_stopped = 0;
    for (const auto& e : events) {
        if (e["type"] != "music-stopped") continue;
        ++n_stopped;
        // The music stops at 8 s; the gate closes about 2.5 s later (2 s of patches without
        // music, a patch spans 1 s) and the stop is confirmed stop_confirm_s (5 s) after that,
        // before the song comes back at 17 s.
        EXPECT_GT(e["answer_s"].get<double>(), 8.0);
        EXPECT_LT(e["answer_s"].get<double>(), 17.0);
    }
    EXPECT_EQ(n_stopped, 1u) << query.out;

    // --trace records every look with what models.calibrate_listen needs to weigh the
    // background as the calibrated table will: confidence = score - weight * background + prior.
    const fs::path trace = dir_ / "trace.jsonl";
    const CliRun traced = run_cli(
        "query -q --trace " + trace.string() + " " + model_arg() + " --index " + index.string() +
            " -o " + (dir_ / "live.jsonl").string() + " " + (dir_ / "session.wav").string(),
        dir_);
    ASSERT_EQ(traced.exit_code, 0) << traced.err;
    std::ifstream trace_in(trace);
    std::string trace_line;
    ASSERT_TRUE(std::getline(trace_in, trace_line));
    const auto record = nlohmann::json::parse(trace_line);
    EXPECT_EQ(record["query"], "session.wav");
    const auto& looks = record["looks"];
    ASSERT_GE(looks.size(), 25u);  // one a query hop (0.5 s) of the 16 s of music and more
    // One weight for every look (the model's; 0 when it has none).
    std::vector<double> weights;
    for (const auto& look : looks) {
        ASSERT_EQ(look.size(), 8u) << look;
        if (look[3].is_null()) continue;
        const double confidence = look[2], score = look[5], background = look[6], prior = look[7];
        if (std::fabs(background) > 0.05)
            weights.push_back((score + prior - confidence) / background);
    }
    ASSERT_GT(weights.size(), 10u) << traced.out;
    for (double w : weights) {
        EXPECT_NEAR(w, weights.front(), 1e-3);
        EXPECT_GE(w, -1e-3);
    }
}

// Crash safety: `earshot build` SIGKILLed at any moment (seeded random delays spanning a whole
// build, then at each step of the folder swap) leaves the output folder verifying and holding
// exactly the old index or exactly the new one; the next build succeeds and leaves no staging
// folder behind. Steps: staging (files half written), synced (before the swap), swapped (new in
// place, old not yet deleted) and, where the file system has no exchange rename (forced here),
// moved-aside, the one state with no index at the path: the next build, even a failed one, puts
// the old index back.
TEST_F(CliTest, KilledBuildLeavesOldOrNewIndex) {
    fs::create_directories(dir_ / "catalog-a");
    fs::create_directories(dir_ / "catalog-b");
    for (uint32_t i = 0; i < 2; ++i) {
        write_audio(dir_ / "catalog-a" / ("a" + std::to_string(i) + ".wav"),
                    make_song(10 + i, 16000, 12.0), 16000, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
    }
    for (uint32_t i = 0; i < 3; ++i) {
        write_audio(dir_ / "catalog-b" / ("b" + std::to_string(i) + ".wav"),
                    make_song(20 + i, 16000, 12.0), 16000, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
    }
    fs::create_directories(dir_ / "junk");
    std::ofstream(dir_ / "junk" / "a.wav") << "not audio";
    const fs::path index = dir_ / "index";
    const auto build_args = [&](const char* catalog) {
        return std::vector<std::string>{
            "build", "-q", "--model", kModel, "--out", index.string(), (dir_ / catalog).string()};
    };
    const auto build = [&](const char* catalog) {
        return wait_for(spawn_cli(build_args(catalog)));
    };
    const auto leftovers = [&] {
        std::vector<std::string> names;
        for (const auto& entry : fs::directory_iterator(dir_)) {
            const std::string name = entry.path().filename().string();
            if (name.rfind("index.", 0) == 0) names.push_back(name);
        }
        return names;
    };

    // The kills' delays span the shorter of two builds (most kills land before the end).
    double build_s = 1e9;
    const auto timed_build = [&](const char* catalog) {
        const auto start = std::chrono::steady_clock::now();
        const int status = build(catalog);
        build_s = std::min(
            build_s,
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        return status;
    };
    ASSERT_EQ(timed_build("catalog-b"), 0);
    const std::string manifest_b = slurp(index / "manifest.json");
    ASSERT_EQ(timed_build("catalog-a"), 0);
    const std::string manifest_a = slurp(index / "manifest.json");
    ASSERT_NE(manifest_a, manifest_b);

    // Every kill is a rebuild of the other catalogue over the index of the current one.
    bool holds_a = true;
    const auto check_after_kill = [&](const std::string& what, int status) {
        SCOPED_TRACE(what);
        EXPECT_TRUE(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0));
        ASSERT_TRUE(fs::exists(index / "manifest.json"));
        EXPECT_EQ(run_cli("verify " + index.string() + " " + model_arg(), dir_).exit_code, 0);
        const std::string manifest = slurp(index / "manifest.json");
        EXPECT_TRUE(manifest == manifest_a || manifest == manifest_b);
        holds_a = manifest == manifest_a;
        // The next normal build succeeds and cleans up.
        ASSERT_EQ(build(holds_a ? "catalog-b" : "catalog-a"), 0);
        holds_a = !holds_a;
        EXPECT_EQ(slurp(index / "manifest.json"), holds_a ? manifest_a : manifest_b);
        EXPECT_TRUE(leftovers().empty()) << leftovers().front();
    };

    std::mt19937 rng(24);
    std::uniform_real_distribution<double> delay_s(0.0, build_s);
    int n_killed = 0;
    for (int run = 0; run < 10; ++run) {
        const double delay = delay_s(rng);
        const pid_t pid = spawn_cli(build_args(holds_a ? "catalog-b" : "catalog-a"));
        ASSERT_GT(pid, 0);
        std::this_thread::sleep_for(std::chrono::duration<double>(delay));
        ::kill(pid, SIGKILL);
        const int status = wait_for(pid);
        n_killed += WIFSIGNALED(status);
        check_after_kill("random kill " + std::to_string(run) + " after " + std::to_string(delay) +
                             " s of " + std::to_string(build_s),
                         status);
    }
    EXPECT_GE(n_killed, 3) << "a build took " << build_s << " s";

    for (const char* exchange : {"", "EARSHOT_TEST_NO_EXCHANGE=1"}) {
        for (const char* step : {"staging", "synced", "swapped"}) {
            const std::string what = std::string(step) + " " + exchange;
            const std::string old_manifest = slurp(index / "manifest.json");
            const int status =
                wait_for(spawn_cli(build_args(holds_a ? "catalog-b" : "catalog-a"),
                                   {std::string("EARSHOT_TEST_KILL_AT=") + step, exchange}));
            ASSERT_TRUE(WIFSIGNALED(status)) << what;
            EXPECT_FALSE(leftovers().empty()) << what;  // killed mid-swap: a staging folder
            // Before the swap the old index is in place, after it the new one.
            EXPECT_EQ(slurp(index / "manifest.json") == old_manifest,
                      std::string(step) != "swapped")
                << what;
            check_after_kill(what, status);
        }
    }

    // Moved aside with no exchange rename: no index at the path until the next build, which
    // puts the old one back even when it then fails.
    const std::string before = slurp(index / "manifest.json");
    const int status =
        wait_for(spawn_cli(build_args(holds_a ? "catalog-b" : "catalog-a"),
                           {"EARSHOT_TEST_KILL_AT=moved-aside", "EARSHOT_TEST_NO_EXCHANGE=1"}));
    ASSERT_TRUE(WIFSIGNALED(status));
    EXPECT_FALSE(fs::exists(index));
    ASSERT_EQ(run_cli("build -q " + model_arg() + " --out " + index.string() + " " +
                          (dir_ / "junk").string(),
                      dir_)
                  .exit_code,
              1);
    EXPECT_EQ(slurp(index / "manifest.json"), before);
    EXPECT_EQ(run_cli("verify " + index.string() + " " + model_arg(), dir_).exit_code, 0);
    EXPECT_TRUE(leftovers().empty());
}

}  // namespace
