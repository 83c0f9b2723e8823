// SHA-256 against the FIPS 180-4 / NIST CSRC example vectors.
#include "core/sha256.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace earshot {
namespace {

std::string hex_of(const std::string& message) {
    const auto digest = sha256(message.data(), message.size());
    return to_hex(digest.data(), digest.size());
}

TEST(Sha256, Empty) {
    EXPECT_EQ(hex_of(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256, Abc) {
    EXPECT_EQ(hex_of("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, TwoBlockMessage448Bits) {
    EXPECT_EQ(hex_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, OneMillionA) {
    EXPECT_EQ(hex_of(std::string(1000000, 'a')),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, StreamingMatchesOneShotForEverySplit) {
    // Splitting the input anywhere (including across the 56/64-byte padding boundary) must not
    // change the digest.
    std::string message;
    for (int i = 0; i < 200; ++i) message.push_back(char('a' + (i * 7) % 26));
    for (size_t length : {0u, 1u, 55u, 56u, 57u, 63u, 64u, 65u, 119u, 120u, 128u, 200u}) {
        const auto expected = sha256(message.data(), length);
        for (size_t split = 0; split <= length; split += 13) {
            Sha256 hasher;
            hasher.update(message.data(), split);
            hasher.update(message.data() + split, length - split);
            EXPECT_EQ(hasher.finish(), expected) << "length " << length << " split " << split;
        }
    }
}

TEST(Sha256, MillionAInOddChunks) {
    Sha256 hasher;
    const std::string chunk(997, 'a');
    size_t left = 1000000;
    while (left > 0) {
        const size_t n = left < chunk.size() ? left : chunk.size();
        hasher.update(chunk.data(), n);
        left -= n;
    }
    const auto digest = hasher.finish();
    EXPECT_EQ(to_hex(digest.data(), digest.size()),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, ToHex) {
    const uint8_t bytes[] = {0x00, 0x0f, 0xa0, 0xff};
    EXPECT_EQ(to_hex(bytes, 4), "000fa0ff");
    EXPECT_EQ(to_hex(bytes, 0), "");
}

}  // namespace
}  // namespace earshot
