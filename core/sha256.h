// SHA-256 (FIPS 180-4). Written by hand because the core needs the same digest natively and in
// WASM, and no Debian library builds for WASM (OpenSSL/libgcrypt are native-only); tested
// against the FIPS test vectors.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace earshot {

class Sha256 {
public:
    Sha256();
    void update(const void* data, size_t size);
    std::array<uint8_t, 32> finish();

private:
    void compress(const uint8_t block[64]);
    uint32_t state_[8];
    uint8_t buffer_[64];
    size_t buffer_used_ = 0;
    uint64_t total_bytes_ = 0;
};

std::array<uint8_t, 32> sha256(const void* data, size_t size);
std::string to_hex(const uint8_t* bytes, size_t size);

}  // namespace earshot
