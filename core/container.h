// The one versioned binary container of earshot (model files, quantizer, index shards).
// Layout: docs/DESIGN.md section 4. Readers validate every length against the buffer they were
// given and never trust a count from the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace earshot {

constexpr char kContainerMagic[8] = {'E', 'A', 'R', 'S', 'H', 'O', 'T', '\x1a'};
constexpr uint32_t kContainerVersion = 1;
constexpr size_t kContainerAlign = 64;     // payload alignment, bytes
constexpr size_t kContainerMaxSections = 4096;
constexpr size_t kSha256Bytes = 32;

// kF16: IEEE 754 binary16 (model weights stored at half size; widened to f32 when loaded).
// kU64: byte offsets into index files larger than 4 GB (index format v2 directories).
enum class DType : uint32_t { kF32 = 0, kU8 = 1, kU16 = 2, kU32 = 3, kI8 = 4, kF16 = 5, kU64 = 6 };
size_t dtype_size(DType dtype);

struct Section {
    std::string name;
    DType dtype = DType::kF32;
    std::vector<uint32_t> shape;  // 1..4 dims
    const uint8_t* data = nullptr;  // points into the parsed buffer (not owned)
    size_t bytes = 0;
    size_t element_count() const;
};

// A parsed view over a buffer the caller keeps alive.
struct ContainerView {
    std::string kind;          // "MODL", "QUAN", "SHRD"
    nlohmann::json meta;       // the metadata object
    std::vector<Section> sections;
    std::string sha256_hex;    // the trailing checksum, lowercase hex

    const Section* find(const std::string& name) const;
    // Finds `name` and checks dtype and exact shape; error names the section and the mismatch.
    Result<const Section*> require(const std::string& name, DType dtype,
                                   const std::vector<uint32_t>& shape) const;
};

// Parses and validates `bytes` (magic, version, kind == expected_kind unless empty, bounds,
// alignment, overlap, JSON, checksum). `what` names the input in messages (e.g. a file name).
Result<ContainerView> parse_container(const uint8_t* bytes, size_t size,
                                      const std::string& expected_kind, const std::string& what);

// Builds a container in memory. Sections are written in the order added.
class ContainerWriter {
public:
    ContainerWriter(std::string kind, nlohmann::json meta);
    void add(const std::string& name, DType dtype, std::vector<uint32_t> shape,
             const void* data, size_t bytes);
    std::vector<uint8_t> finish() const;  // with the trailing SHA-256

private:
    struct Pending {
        std::string name;
        DType dtype;
        std::vector<uint32_t> shape;
        std::vector<uint8_t> data;
    };
    std::string kind_;
    nlohmann::json meta_;
    std::vector<Pending> sections_;
};

}  // namespace earshot
