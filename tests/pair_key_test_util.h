// Test helper: a finished pair-key index laid out as its three files, with the header parsed.
#pragma once

#include <gtest/gtest.h>

#include "core/pair_key_layout.h"

namespace earshot::testing {

struct PairKeyLaidOut {
    PairKeyFiles files;
    PairKeyHeader header;
};

inline PairKeyLaidOut lay_out_pair_keys(const PairKeyIndex& index, uint32_t keys_per_page) {
    PairKeyLaidOut out;
    out.files = write_pair_key_files(index, keys_per_page).value();
    Result<PairKeyHeader> header =
        parse_pair_key_header(out.files.header.data(), out.files.header.size(), "pairs.ekh");
    EXPECT_TRUE(header.is_ok()) << header.message();
    if (header) out.header = header.value();
    return out;
}

}  // namespace earshot::testing
