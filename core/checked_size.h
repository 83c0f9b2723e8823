// Overflow-checked sizes from counts read out of files. Every product of file-supplied sizes is
// formed in 64 bits with an overflow check and compared against an explicit cap before it
// becomes a size_t, which is 32 bits in WASM (wasm32), where a wrapped product would size a
// buffer too small for what the kernels then write.
#pragma once

#include <cstdint>
#include <initializer_list>

namespace earshot {

// *out = a * b; false when the product does not fit in 64 bits.
inline bool checked_mul_u64(uint64_t a, uint64_t b, uint64_t* out) {
    return !__builtin_mul_overflow(a, b, out);
}

// *out = the product of `factors` when it is at most `cap` (no overflow on the way); false
// otherwise (*out is then unspecified).
inline bool checked_product_u64(std::initializer_list<uint64_t> factors, uint64_t cap,
                                uint64_t* out) {
    uint64_t product = 1;
    for (uint64_t f : factors) {
        if (!checked_mul_u64(product, f, &product) || product > cap) return false;
    }
    *out = product;
    return product <= cap;
}

}  // namespace earshot
