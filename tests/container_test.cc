// Container round trip and corrupt-input tests: every malformed buffer must give a clean error
// (no crash, no exception, no read outside the buffer; run once under -fsanitize=address).
#include "core/container.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "core/sha256.h"

namespace earshot {
namespace {

constexpr size_t kTableStartNoMeta = 32;
constexpr size_t kEntryBytes = 72;

std::vector<uint8_t> sample_container() {
    nlohmann::json meta = {{"format", "earshot-test"}, {"n", 3}, {"names", {"a", "b"}}};
    ContainerWriter writer("MODL", meta);
    const float weights[6] = {1.5f, -2.0f, 0.25f, 3.0f, 4.0f, -0.5f};
    const uint8_t codes[5] = {1, 2, 3, 4, 5};
    const uint16_t ids[3] = {7, 65535, 0};
    writer.add("conv1.weight", DType::kF32, {2, 3}, weights, sizeof(weights));
    writer.add("codes", DType::kU8, {5}, codes, sizeof(codes));
    writer.add("ids", DType::kU16, {1, 1, 1, 3}, ids, sizeof(ids));
    return writer.finish();
}

uint32_t get_u32(const std::vector<uint8_t>& b, size_t at) {
    uint32_t v;
    std::memcpy(&v, &b[at], 4);
    return v;
}
void put_u32(std::vector<uint8_t>& b, size_t at, uint32_t v) { std::memcpy(&b[at], &v, 4); }
void put_u64(std::vector<uint8_t>& b, size_t at, uint64_t v) { std::memcpy(&b[at], &v, 8); }
uint64_t get_u64(const std::vector<uint8_t>& b, size_t at) {
    uint64_t v;
    std::memcpy(&v, &b[at], 8);
    return v;
}

size_t table_start(const std::vector<uint8_t>& b) {
    return kTableStartNoMeta + (get_u32(b, 16) + 7) / 8 * 8;
}
size_t entry_at(const std::vector<uint8_t>& b, size_t i) {
    return table_start(b) + kEntryBytes * i;
}

// Recomputes the trailing checksum so a test reaches the check after it.
void reseal(std::vector<uint8_t>& b) {
    if (b.size() < 32) return;
    const auto digest = sha256(b.data(), b.size() - 32);
    std::memcpy(&b[b.size() - 32], digest.data(), 32);
}

Result<ContainerView> parse(const std::vector<uint8_t>& b, const std::string& kind = "MODL") {
    return parse_container(b.data(), b.size(), kind, "test.emod");
}

// Expects a parse error whose message contains `needle`.
void expect_error(const std::vector<uint8_t>& b, const std::string& needle,
                  const std::string& kind = "MODL") {
    const auto result = parse(b, kind);
    ASSERT_FALSE(result.is_ok()) << "expected an error containing '" << needle << "'";
    EXPECT_NE(result.message().find(needle), std::string::npos) << result.message();
    EXPECT_EQ(result.message().rfind("test.emod: ", 0), 0u) << result.message();
}

TEST(Container, RoundTrip) {
    const auto bytes = sample_container();
    const auto result = parse(bytes);
    ASSERT_TRUE(result.is_ok()) << result.message();
    const ContainerView& view = result.value();
    EXPECT_EQ(view.kind, "MODL");
    EXPECT_EQ(view.meta["format"], "earshot-test");
    EXPECT_EQ(view.meta["n"], 3);
    ASSERT_EQ(view.sections.size(), 3u);
    const auto digest = sha256(bytes.data(), bytes.size() - 32);
    EXPECT_EQ(view.sha256_hex, to_hex(digest.data(), 32));

    const auto conv = view.require("conv1.weight", DType::kF32, {2, 3});
    ASSERT_TRUE(conv.is_ok()) << conv.message();
    EXPECT_EQ(conv.value()->element_count(), 6u);
    EXPECT_EQ(conv.value()->bytes, 24u);
    EXPECT_EQ(size_t(conv.value()->data - bytes.data()) % kContainerAlign, 0u);
    float w[6];
    std::memcpy(w, conv.value()->data, sizeof(w));
    EXPECT_EQ(w[0], 1.5f);
    EXPECT_EQ(w[5], -0.5f);

    const Section* ids = view.find("ids");
    ASSERT_NE(ids, nullptr);
    EXPECT_EQ(ids->shape, (std::vector<uint32_t>{1, 1, 1, 3}));
    uint16_t id[3];
    std::memcpy(id, ids->data, sizeof(id));
    EXPECT_EQ(id[1], 65535);
    EXPECT_EQ(view.find("codes")->data[4], 5);
    EXPECT_EQ(view.find("nope"), nullptr);
}

TEST(Container, RequireReportsMismatch) {
    const auto bytes = sample_container();
    const auto view = parse(bytes);
    ASSERT_TRUE(view.is_ok());
    const auto missing = view->require("fc.weight", DType::kF32, {2});
    ASSERT_FALSE(missing.is_ok());
    EXPECT_NE(missing.message().find("missing section 'fc.weight'"), std::string::npos);
    const auto dtype = view->require("codes", DType::kU16, {5});
    ASSERT_FALSE(dtype.is_ok());
    EXPECT_NE(dtype.message().find("dtype u8, expected u16"), std::string::npos);
    const auto shape = view->require("conv1.weight", DType::kF32, {3, 2});
    ASSERT_FALSE(shape.is_ok());
    EXPECT_NE(shape.message().find("shape [2, 3], expected [3, 2]"), std::string::npos);
}

TEST(Container, EmptyAndZeroSizedSections) {
    ContainerWriter empty("SHRD", nlohmann::json::object());
    const auto a = empty.finish();
    const auto view_a = parse(a, "SHRD");
    ASSERT_TRUE(view_a.is_ok()) << view_a.message();
    EXPECT_TRUE(view_a->sections.empty());

    ContainerWriter zero("SHRD", {{"n_frames", 0}});
    zero.add("list_ids", DType::kU8, {0}, nullptr, 0);
    const uint32_t offsets[1] = {0};
    zero.add("song_offsets", DType::kU32, {1}, offsets, 4);
    const auto b = zero.finish();
    const auto view_b = parse(b, "");  // any kind
    ASSERT_TRUE(view_b.is_ok()) << view_b.message();
    EXPECT_EQ(view_b->find("list_ids")->bytes, 0u);
    EXPECT_EQ(view_b->find("song_offsets")->bytes, 4u);
}

TEST(Container, SectionCountLimit) {
    // 4096 sections is the most a reader accepts; one more is refused before anything is read.
    std::vector<uint8_t> one(1, 7);
    for (size_t n : {kContainerMaxSections, kContainerMaxSections + 1}) {
        ContainerWriter writer("QUAN", nlohmann::json::object());
        for (size_t i = 0; i < n; ++i) {
            writer.add("s" + std::to_string(i), DType::kU8, {1}, one.data(), 1);
        }
        const auto bytes = writer.finish();
        const auto result = parse(bytes, "QUAN");
        if (n == kContainerMaxSections) {
            ASSERT_TRUE(result.is_ok()) << result.message();
            EXPECT_EQ(result->sections.size(), n);
            EXPECT_EQ(result->sections.back().data[0], 7);
        } else {
            expect_error(bytes, "too many sections (4097 > 4096)", "QUAN");
        }
    }
}

TEST(Container, TruncatedAtEveryLength) {
    const auto bytes = sample_container();
    for (size_t n = 0; n < bytes.size(); ++n) {
        std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + n);
        const auto result = parse_container(cut.data(), cut.size(), "MODL", "cut");
        EXPECT_FALSE(result.is_ok()) << "length " << n;
        EXPECT_NE(result.message().find("truncated"), std::string::npos)
            << "length " << n << ": " << result.message();
    }
    EXPECT_FALSE(parse_container(nullptr, 0, "MODL", "null").is_ok());
}

TEST(Container, TrailingBytes) {
    auto bytes = sample_container();
    bytes.push_back(0);
    expect_error(bytes, "length mismatch");
}

TEST(Container, WrongMagic) {
    auto bytes = sample_container();
    bytes[0] = 'X';
    expect_error(bytes, "bad magic \"XARSHOT\\x1a\"");
    auto text = std::vector<uint8_t>(100, ' ');
    expect_error(text, "not an earshot container");
}

TEST(Container, WrongVersion) {
    auto bytes = sample_container();
    put_u32(bytes, 8, 2);
    reseal(bytes);
    expect_error(bytes, "unsupported container version 2");
}

TEST(Container, WrongKind) {
    const auto bytes = sample_container();
    expect_error(bytes, "wrong kind \"MODL\", expected \"SHRD\"", "SHRD");
    auto bad = bytes;
    bad[13] = 0x01;
    reseal(bad);
    expect_error(bad, "invalid kind");
}

TEST(Container, BitFlipAnywhereIsDetected) {
    const auto bytes = sample_container();
    for (size_t i = 0; i < bytes.size(); ++i) {
        for (int bit = 0; bit < 8; ++bit) {
            auto flipped = bytes;
            flipped[i] ^= uint8_t(1u << bit);
            const auto result = parse(flipped);
            ASSERT_FALSE(result.is_ok()) << "flip of byte " << i << " bit " << bit;
        }
    }
    // A flip in a payload (past the header checks) reports the checksum specifically.
    auto flipped = bytes;
    flipped[bytes.size() - 40] ^= 0x10;
    expect_error(flipped, "checksum mismatch");
}

TEST(Container, HugeCounts) {
    const auto bytes = sample_container();
    auto a = bytes;
    put_u32(a, 20, 0xffffffffu);  // n_sections
    reseal(a);
    expect_error(a, "too many sections");
    auto b = bytes;
    put_u32(b, 20, 4096);  // allowed count, but the table does not fit
    reseal(b);
    expect_error(b, "truncated");
    auto c = bytes;
    put_u32(c, 16, 0xffffffffu);  // meta_bytes
    reseal(c);
    expect_error(c, "truncated");
    auto d = bytes;
    put_u64(d, 24, ~uint64_t(0));  // file_bytes
    expect_error(d, "truncated");
    auto e = bytes;
    const size_t entry = entry_at(e, 0);
    for (int k = 0; k < 2; ++k) put_u32(e, entry + 40 + 4 * k, 0xffffffffu);
    reseal(e);
    expect_error(e, "too large");
    auto f = bytes;
    put_u32(f, entry + 36, 4);
    for (int k = 0; k < 4; ++k) put_u32(f, entry + 40 + 4 * k, 0xffffffffu);
    reseal(f);
    expect_error(f, "too large");
}

TEST(Container, SectionOffsetOutOfRange) {
    const auto bytes = sample_container();
    const size_t entry = entry_at(bytes, 2);
    auto a = bytes;
    put_u64(a, entry + 56, uint64_t(bytes.size()) / 64 * 64 + 64);  // past the end
    reseal(a);
    expect_error(a, "lies outside the payload area");
    auto b = bytes;
    put_u64(b, entry + 56, 0);  // inside the header
    reseal(b);
    expect_error(b, "lies outside the payload area");
    auto c = bytes;
    put_u64(c, entry + 56, ~uint64_t(63));  // offset + bytes would overflow
    reseal(c);
    expect_error(c, "lies outside the payload area");
}

TEST(Container, SectionOffsetMisaligned) {
    auto bytes = sample_container();
    const size_t entry = entry_at(bytes, 1);
    put_u64(bytes, entry + 56, get_u64(bytes, entry + 56) + 4);
    reseal(bytes);
    expect_error(bytes, "is not a multiple of 64");
}

TEST(Container, SectionsOverlap) {
    auto bytes = sample_container();
    // "codes" (5 bytes) moved onto "conv1.weight" (24 bytes).
    put_u64(bytes, entry_at(bytes, 1) + 56, get_u64(bytes, entry_at(bytes, 0) + 56));
    reseal(bytes);
    expect_error(bytes, "overlap");
}

TEST(Container, BytesMustMatchShape) {
    auto a = sample_container();
    put_u64(a, entry_at(a, 0) + 64, 20);
    reseal(a);
    expect_error(a, "'conv1.weight' has 20 bytes but shape [2, 3] of f32 needs 24");
    auto b = sample_container();
    put_u32(b, entry_at(b, 0) + 32, 1);  // dtype u8: 6 bytes, not 24
    reseal(b);
    expect_error(b, "needs 6");
}

TEST(Container, BadSectionFields) {
    const auto bytes = sample_container();
    const size_t entry = entry_at(bytes, 0);
    auto a = bytes;
    put_u32(a, entry + 32, 9);
    reseal(a);
    expect_error(a, "unknown dtype 9");
    auto b = bytes;
    put_u32(b, entry + 36, 0);
    reseal(b);
    expect_error(b, "ndim 0");
    auto c = bytes;
    put_u32(c, entry + 36, 5);
    reseal(c);
    expect_error(c, "ndim 5");
    auto d = bytes;
    put_u32(d, entry + 48, 1);  // shape[2] of a 2-d section
    reseal(d);
    expect_error(d, "non-zero unused dimension");
    auto e = bytes;
    e[entry] = 0;  // empty name
    reseal(e);
    expect_error(e, "empty name");
    auto f = bytes;
    f[entry + 31] = 'x';  // junk after the NUL
    reseal(f);
    expect_error(f, "not NUL-padded");
    auto g = bytes;
    g[entry + 2] = 0x07;
    reseal(g);
    expect_error(g, "not printable ASCII");
    auto h = bytes;  // section 1 renamed to section 0's name
    std::memcpy(&h[entry_at(h, 1)], &h[entry], 32);
    reseal(h);
    expect_error(h, "duplicate section 'conv1.weight'");
}

TEST(Container, InvalidJson) {
    const auto bytes = sample_container();
    auto a = bytes;
    a[32] = '[';  // {"format"... -> ["format"...
    reseal(a);
    expect_error(a, "metadata is not valid JSON");
    auto b = bytes;
    b[32 + get_u32(bytes, 16) - 1] = ' ';  // drop the closing brace
    reseal(b);
    expect_error(b, "metadata is not valid JSON");
    ContainerWriter array_writer("MODL", nlohmann::json::array({1, 2}));
    expect_error(array_writer.finish(), "not a JSON object");
    ContainerWriter number_writer("MODL", 5);
    expect_error(number_writer.finish(), "not a JSON object");
    auto c = bytes;
    c[40] = 0xff;  // invalid UTF-8 inside a string
    reseal(c);
    expect_error(c, "not valid JSON");
    auto d = bytes;
    put_u32(d, 16, 0);  // empty metadata
    reseal(d);
    EXPECT_FALSE(parse(d).is_ok());
}

TEST(Container, RandomMutationsNeverCrash) {
    // Seeded fuzzing of header and table bytes, resealed so the deep checks run.
    const auto bytes = sample_container();
    const size_t header_end = entry_at(bytes, 3);
    std::mt19937 rng(1234);
    int accepted = 0;
    for (int trial = 0; trial < 20000; ++trial) {
        auto m = bytes;
        const int n_edits = 1 + int(rng() % 4);
        for (int k = 0; k < n_edits; ++k) m[rng() % header_end] = uint8_t(rng());
        if (rng() % 4 == 0) m.resize(rng() % m.size());
        reseal(m);
        const auto result = parse(m);
        if (result.is_ok()) {
            ++accepted;  // e.g. an edit inside a JSON string: views must still be in bounds
            for (const Section& s : result->sections) {
                ASSERT_GE(s.data, m.data());
                ASSERT_LE(s.data + s.bytes, m.data() + m.size() - 32);
            }
        } else {
            EXPECT_FALSE(result.message().empty());
        }
    }
    EXPECT_LT(accepted, 20000);
}

TEST(Container, ParsesPythonWrittenModelWhenPresent) {
    const std::string path = std::string(EARSHOT_MODELS_DIR) + "/random-init-v0.emod";
    std::ifstream file(path, std::ios::binary);
    if (!file) GTEST_SKIP() << path << " not present yet";
    const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(file)),
                                     std::istreambuf_iterator<char>());
    const auto result = parse_container(bytes.data(), bytes.size(), "MODL", path);
    ASSERT_TRUE(result.is_ok()) << result.message();
    EXPECT_EQ(result->meta.value("format", ""), "earshot-model");
    EXPECT_FALSE(result->sections.empty());
    const auto digest = sha256(bytes.data(), bytes.size() - 32);
    EXPECT_EQ(result->sha256_hex, to_hex(digest.data(), 32));
}

}  // namespace
}  // namespace earshot
