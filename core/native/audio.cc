// Audio decoding (libsndfile) + downmix + resampling (libsoxr), streamed in blocks so a long
// file never holds more than its mono output in memory.
#include "core/native/audio.h"

#include <sndfile.h>
#include <soxr.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <type_traits>
#include <utility>

namespace earshot {
namespace {

constexpr int kMinRateHz = 1000;
constexpr int kMaxRateHz = 384000;
constexpr sf_count_t kBlockFrames = 8192;  // frames decoded per sf_readf_float call
// MP3 frame counts may be estimates (no Xing/LAME header), and Ogg lengths come from granule
// positions: allow this shortfall before calling the file truncated. Two MPEG-1 layer III
// frames, or 1 % of the declared length.
constexpr sf_count_t kMpegSlackFrames = 2 * 1152;
// Output reserved up front from the header's frame count, at most: a header may lie, and the
// vector grows past this as the audio is really decoded.
constexpr double kMaxReserveS = 10 * 60.0;

struct SndfileCloser {
    void operator()(SNDFILE* f) const { sf_close(f); }
};
struct SoxrDeleter {
    void operator()(soxr_t s) const { soxr_delete(s); }
};
using SndfilePtr = std::unique_ptr<SNDFILE, SndfileCloser>;
using SoxrPtr = std::unique_ptr<std::remove_pointer<soxr_t>::type, SoxrDeleter>;

Status rate_ok(int rate_hz, const char* what) {
    if (rate_hz < kMinRateHz || rate_hz > kMaxRateHz) {
        return Status::error(std::string(what) + " " + std::to_string(rate_hz) +
                             " Hz is outside [" + std::to_string(kMinRateHz) + ", " +
                             std::to_string(kMaxRateHz) + "]");
    }
    return Status::ok();
}

// Streaming mono resampler: push blocks, then flush. Appends to `out`.
class MonoResampler {
public:
    static Result<MonoResampler> create(int input_rate_hz, int output_rate_hz) {
        MonoResampler r;
        r.ratio_ = double(output_rate_hz) / input_rate_hz;
        const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
        const soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, 0);
        soxr_error_t error = nullptr;
        r.soxr_.reset(
            soxr_create(input_rate_hz, output_rate_hz, 1, &error, &io, &quality, nullptr));
        if (error || !r.soxr_) {
            return Status::error(std::string("libsoxr: cannot resample ") +
                                 std::to_string(input_rate_hz) + " Hz -> " +
                                 std::to_string(output_rate_hz) +
                                 " Hz: " + (error ? error : "unknown error"));
        }
        return r;
    }

    // `pcm == nullptr` flushes the resampler's tail.
    Status process(const float* pcm, size_t n_samples, std::vector<float>* out) {
        const bool flush = pcm == nullptr;
        size_t consumed = 0;
        for (;;) {
            const size_t capacity = size_t(std::ceil((n_samples - consumed) * ratio_)) + 1024;
            const size_t start = out->size();
            out->resize(start + capacity);
            size_t in_done = 0, out_done = 0;
            soxr_error_t error = soxr_process(soxr_.get(), flush ? nullptr : pcm + consumed,
                                              flush ? 0 : n_samples - consumed, &in_done,
                                              out->data() + start, capacity, &out_done);
            out->resize(start + out_done);
            if (error) return Status::error(std::string("libsoxr: ") + error);
            consumed += in_done;
            if (flush ? out_done == 0 : consumed >= n_samples) return Status::ok();
        }
    }

private:
    SoxrPtr soxr_;
    double ratio_ = 1.0;
};

bool is_mpeg(int format) { return (format & SF_FORMAT_TYPEMASK) == SF_FORMAT_MPEG; }
bool is_wav_family(int format) {
    const int type = format & SF_FORMAT_TYPEMASK;
    return type == SF_FORMAT_WAV || type == SF_FORMAT_WAVEX || type == SF_FORMAT_RF64;
}

// libsndfile clamps a WAV data chunk that runs past the end of the file to what is there and
// only says so in its log, as "data : 9600 (should be 2956)". A declared size larger than
// the actual one means the file was cut; 0 and 0xffffffff are streaming placeholders.
bool wav_log_says_truncated(SNDFILE* file, std::string* detail) {
    char log[4096] = {0};
    sf_command(file, SFC_GET_LOG_INFO, log, sizeof(log) - 1);
    const char* line = std::strstr(log, "\ndata : ");
    if (!line) return false;
    char* end = nullptr;
    const unsigned long long declared = std::strtoull(line + 8, &end, 10);
    if (!end || std::strncmp(end, " (should be ", 12) != 0) return false;
    const unsigned long long actual = std::strtoull(end + 12, nullptr, 10);
    if (declared == 0 || declared >= 0xffffffffull || declared <= actual) return false;
    *detail = "its data chunk declares " + std::to_string(declared) + " bytes but only " +
              std::to_string(actual) + " are present";
    return true;
}

std::string cannot_decode_message() {
    return std::string("cannot decode (") + sf_strerror(nullptr) +
           "); supported formats: WAV, FLAC, Ogg Vorbis, Opus, MP3 and the other formats of "
           "libsndfile";
}

// libsndfile's virtual I/O over a caller's buffer (read-only).
struct MemoryFile {
    const uint8_t* bytes;
    sf_count_t size;
    sf_count_t pos;
};

SF_VIRTUAL_IO memory_io() {
    SF_VIRTUAL_IO io;
    io.get_filelen = [](void* user) { return static_cast<MemoryFile*>(user)->size; };
    io.seek = [](sf_count_t offset, int whence, void* user) -> sf_count_t {
        auto* m = static_cast<MemoryFile*>(user);
        sf_count_t base = whence == SEEK_CUR ? m->pos : whence == SEEK_END ? m->size : 0;
        if (offset < -base || offset > m->size - base) return -1;  // outside the buffer
        m->pos = base + offset;
        return m->pos;
    };
    io.read = [](void* dst, sf_count_t count, void* user) -> sf_count_t {
        auto* m = static_cast<MemoryFile*>(user);
        const sf_count_t n = std::max<sf_count_t>(0, std::min(count, m->size - m->pos));
        if (n > 0) std::memcpy(dst, m->bytes + m->pos, size_t(n));
        m->pos += n;
        return n;
    };
    io.write = [](const void*, sf_count_t, void*) -> sf_count_t { return 0; };
    io.tell = [](void* user) { return static_cast<MemoryFile*>(user)->pos; };
    return io;
}

// Everything after opening: checks the stream's parameters, decodes in blocks, downmixes,
// resamples. `what` names the input in messages.
Result<AudioBuffer> decode_open_file(SNDFILE* file_ptr, const SF_INFO& info, int target_rate_hz,
                                     int max_minutes, const std::string& what) {
    auto fail = [&](const std::string& message) { return Status::error(what + ": " + message); };
    auto too_long = [&](const std::string& detail) {
        return fail("longer than the " + std::to_string(max_minutes) + "-minute limit (" + detail +
                    "); cut it into shorter files");
    };
    Status s;
    if (info.channels < 1) return fail("file has no audio channels");
    if (info.samplerate <= 0) return fail("file has an invalid sample rate");
    if (!(s = rate_ok(info.samplerate, "file sample rate"))) return fail(s.message());
    std::string detail;
    if (is_wav_family(info.format) && wav_log_says_truncated(file_ptr, &detail)) {
        return fail("truncated or corrupt WAV: " + detail);
    }
    // Integer formats are scaled to [-1, 1) (libsndfile's default normalisation).
    sf_command(file_ptr, SFC_SET_NORM_FLOAT, nullptr, SF_TRUE);

    AudioBuffer audio;
    audio.sample_rate_hz = target_rate_hz;
    audio.source_sample_rate_hz = info.samplerate;
    audio.source_channels = info.channels;
    const bool resample = info.samplerate != target_rate_hz;
    Result<MonoResampler> resampler = Status::error("unused");
    if (resample) {
        resampler = MonoResampler::create(info.samplerate, target_rate_hz);
        if (!resampler) return fail(resampler.message());
    }
    const bool frames_known = info.frames > 0 && info.frames < SF_COUNT_MAX;
    // The most frames decoded at the file's rate (< 2^56: rate <= 384 kHz, minutes < 2^31).
    const sf_count_t max_frames = sf_count_t(max_minutes) * 60 * info.samplerate;
    if (frames_known && info.frames > max_frames) {
        return too_long("its header says " + std::to_string(info.frames / info.samplerate / 60) +
                        " minutes");
    }
    if (frames_known) {
        const double claimed_s = double(info.frames) / info.samplerate;
        audio.samples.reserve(size_t(std::min(claimed_s, kMaxReserveS) * target_rate_hz) + 16);
    }

    const int channels = info.channels;
    std::vector<float> interleaved(static_cast<size_t>(kBlockFrames) * channels);
    std::vector<float> mono(static_cast<size_t>(kBlockFrames));
    sf_count_t decoded = 0;
    for (;;) {
        const sf_count_t n = sf_readf_float(file_ptr, interleaved.data(), kBlockFrames);
        if (n <= 0) break;
        for (sf_count_t i = 0; i < n; ++i) {
            const float* frame = interleaved.data() + size_t(i) * channels;
            float sum = 0.0f;
            for (int c = 0; c < channels; ++c) sum += frame[c];
            const float value = sum / float(channels);
            if (!std::isfinite(value)) {
                return fail("corrupt audio: non-finite sample at frame " +
                            std::to_string(decoded + i));
            }
            mono[size_t(i)] = value;
        }
        decoded += n;
        if (decoded > max_frames) {
            return too_long("decoded " + std::to_string(max_minutes) + " minutes and still going");
        }
        if (resample) {
            if (!(s = resampler->process(mono.data(), size_t(n), &audio.samples))) {
                return fail(s.message());
            }
        } else {
            audio.samples.insert(audio.samples.end(), mono.begin(), mono.begin() + n);
        }
    }
    if (sf_error(file_ptr) != SF_ERR_NO_ERROR) {
        return fail(std::string("corrupt or truncated audio: decode error after ") +
                    std::to_string(decoded) + " frames (libsndfile: " + sf_strerror(file_ptr) +
                    ")");
    }
    if (decoded == 0) return fail("no audio could be decoded (corrupt or empty stream)");
    if (frames_known && decoded < info.frames) {
        // Ogg (Vorbis, Opus) lengths come from granule positions, which encoders sometimes
        // get slightly wrong (seen: 0.06 % short in a Debian game soundtrack): same slack.
        const bool estimated_length =
            is_mpeg(info.format) || (info.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_OGG;
        const sf_count_t slack =
            estimated_length ? std::max(kMpegSlackFrames, info.frames / 100) : 0;
        if (info.frames - decoded > slack) {
            return fail("truncated or corrupt: decoded " + std::to_string(decoded) + " of " +
                        std::to_string(info.frames) + " frames");
        }
    }
    if (resample && !(s = resampler->process(nullptr, 0, &audio.samples))) {
        return fail(s.message());
    }
    return audio;
}

}  // namespace

Result<std::vector<float>> resample_mono(const float* pcm, size_t n_samples, int input_rate_hz,
                                         int output_rate_hz) {
    Status s = rate_ok(input_rate_hz, "input rate");
    if (!s) return s;
    if (!(s = rate_ok(output_rate_hz, "output rate"))) return s;
    if (input_rate_hz == output_rate_hz) return std::vector<float>(pcm, pcm + n_samples);
    auto resampler = MonoResampler::create(input_rate_hz, output_rate_hz);
    if (!resampler) return resampler.status();
    std::vector<float> out;
    out.reserve(size_t(double(n_samples) * output_rate_hz / input_rate_hz) + 16);
    if (n_samples > 0 && !(s = resampler->process(pcm, n_samples, &out))) return s;
    if (!(s = resampler->process(nullptr, 0, &out))) return s;
    return out;
}

Result<AudioBuffer> load_audio(const std::string& path, int target_rate_hz, int max_minutes) {
    auto fail = [&](const std::string& message) { return Status::error(path + ": " + message); };
    Status s = rate_ok(target_rate_hz, "target sample rate");
    if (!s) return fail(s.message());
    if (max_minutes < 1) return fail("the duration limit must be at least 1 minute");

    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return fail("audio file not found");
    if (S_ISDIR(st.st_mode)) return fail("is a directory, not an audio file");
    if (S_ISREG(st.st_mode) && st.st_size == 0) return fail("empty file (0 bytes)");

    SF_INFO info;
    std::memset(&info, 0, sizeof(info));
    // sf_strerror(nullptr) reads libsndfile's global error: in a multi-threaded caller the
    // message may belong to another thread's failure, but the failure itself is ours.
    SndfilePtr file(sf_open(path.c_str(), SFM_READ, &info));
    if (!file) return fail(cannot_decode_message());
    return decode_open_file(file.get(), info, target_rate_hz, max_minutes, path);
}

Result<AudioBuffer> decode_audio(const uint8_t* bytes, size_t size, int target_rate_hz,
                                 const std::string& what, int max_minutes) {
    auto fail = [&](const std::string& message) { return Status::error(what + ": " + message); };
    Status s = rate_ok(target_rate_hz, "target sample rate");
    if (!s) return fail(s.message());
    if (max_minutes < 1) return fail("the duration limit must be at least 1 minute");
    if (size == 0) return fail("empty file (0 bytes)");
    MemoryFile memory{bytes, sf_count_t(size), 0};
    SF_VIRTUAL_IO io = memory_io();
    SF_INFO info;
    std::memset(&info, 0, sizeof(info));
    SndfilePtr file(sf_open_virtual(&io, SFM_READ, &info, &memory));
    if (!file) return fail(cannot_decode_message());
    return decode_open_file(file.get(), info, target_rate_hz, max_minutes, what);
}

}  // namespace earshot
