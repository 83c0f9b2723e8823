// Test helper shared by tests/native/audio_test.cc and tests/native/cli_test.cc: a FLAC file
// whose header lies about its length.
#pragma once

#include <gtest/gtest.h>
#include <sndfile.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace earshot {
namespace test {

// Writes `pcm` (mono) as a 16-bit FLAC at `rate_hz`, then sets its STREAMINFO total frame count
// (a 36-bit field) to `claimed_frames`.
inline void write_flac_claiming(const std::string& path, const std::vector<float>& pcm,
                                int rate_hz, uint64_t claimed_frames) {
    SF_INFO info{};
    info.samplerate = rate_hz;
    info.channels = 1;
    info.format = SF_FORMAT_FLAC | SF_FORMAT_PCM_16;
    SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &info);
    ASSERT_NE(f, nullptr) << sf_strerror(nullptr);
    sf_writef_float(f, pcm.data(), sf_count_t(pcm.size()));
    sf_close(f);
    // "fLaC", a 4-byte block header, then STREAMINFO; its bytes 10..17 hold, big-endian,
    // rate (20 bits), channels - 1 (3), bits - 1 (5) and the total frame count (36).
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    uint8_t bytes[8];
    file.seekg(8 + 10);
    file.read(reinterpret_cast<char*>(bytes), 8);
    uint64_t packed = 0;
    for (uint8_t b : bytes) packed = packed << 8 | b;
    const uint64_t low36 = (uint64_t(1) << 36) - 1;
    ASSERT_EQ(packed & low36, pcm.size()) << "not the STREAMINFO layout this helper expects";
    packed = (packed & ~low36) | (claimed_frames & low36);
    for (int i = 7; i >= 0; --i, packed >>= 8) bytes[i] = uint8_t(packed & 0xff);
    file.seekp(8 + 10);
    file.write(reinterpret_cast<const char*>(bytes), 8);
}

}  // namespace test
}  // namespace earshot
