// Container reader/writer (docs/DESIGN.md section 4). Every count and offset read from the
// buffer is checked in 64-bit arithmetic against the buffer size before use; nothing throws
// (the WASM build has no exceptions), JSON is parsed with nlohmann's non-throwing overload.
#include "core/container.h"

#include <algorithm>
#include <cstring>

#include "core/sha256.h"

namespace earshot {
namespace {

constexpr size_t kHeaderBytes = 32;        // magic .. file_bytes
constexpr size_t kSectionEntryBytes = 72;  // one section table entry
constexpr size_t kSectionNameBytes = 32;
constexpr size_t kMetaAlign = 8;
constexpr uint32_t kMaxDtype = uint32_t(DType::kU64);
constexpr uint64_t kMaxElements = uint64_t(1) << 48;  // sanity cap per section

// Both hosts (x86-64, wasm32) are little-endian, as is the format: memcpy loads are exact.
uint32_t load_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
uint64_t load_u64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}
void store_u32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
void store_u64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }

uint64_t round_up(uint64_t x, uint64_t align) { return (x + align - 1) / align * align; }

Status fail(const std::string& what, const std::string& message) {
    return Status::error(what + ": " + message);
}

std::string printable(const uint8_t* p, size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) {
        if (p[i] >= 0x20 && p[i] < 0x7f) {
            s.push_back(char(p[i]));
        } else {
            static constexpr char kDigits[] = "0123456789abcdef";
            s += "\\x";
            s.push_back(kDigits[p[i] >> 4]);
            s.push_back(kDigits[p[i] & 15]);
        }
    }
    return s;
}

std::string shape_string(const std::vector<uint32_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

const char* dtype_name(DType dtype) {
    switch (dtype) {
        case DType::kF32:
            return "f32";
        case DType::kU8:
            return "u8";
        case DType::kU16:
            return "u16";
        case DType::kU32:
            return "u32";
        case DType::kI8:
            return "i8";
        case DType::kF16:
            return "f16";
        case DType::kU64:
            return "u64";
    }
    return "?";
}

}  // namespace

size_t dtype_size(DType dtype) {
    switch (dtype) {
        case DType::kF32:
            return 4;
        case DType::kU8:
            return 1;
        case DType::kU16:
            return 2;
        case DType::kU32:
            return 4;
        case DType::kI8:
            return 1;
        case DType::kF16:
            return 2;
        case DType::kU64:
            return 8;
    }
    return 0;
}

size_t Section::element_count() const {
    size_t n = 1;
    for (uint32_t d : shape) n *= d;
    return shape.empty() ? 0 : n;
}

const Section* ContainerView::find(const std::string& name) const {
    for (const Section& s : sections) {
        if (s.name == name) return &s;
    }
    return nullptr;
}

Result<const Section*> ContainerView::require(const std::string& name, DType dtype,
                                              const std::vector<uint32_t>& shape) const {
    const Section* s = find(name);
    if (!s) return Status::error("missing section '" + name + "' in " + kind + " container");
    if (s->dtype != dtype) {
        return Status::error("section '" + name + "' has dtype " + dtype_name(s->dtype) +
                             ", expected " + dtype_name(dtype));
    }
    if (s->shape != shape) {
        return Status::error("section '" + name + "' has shape " + shape_string(s->shape) +
                             ", expected " + shape_string(shape));
    }
    return s;
}

Result<ContainerView> parse_container(const uint8_t* bytes, size_t size,
                                      const std::string& expected_kind, const std::string& what) {
    // Fixed header.
    if (bytes == nullptr && size > 0) return fail(what, "null buffer");
    if (size < kHeaderBytes + kSha256Bytes) {
        return fail(what, "truncated: " + std::to_string(size) +
                              " bytes, an earshot container "
                              "has at least " +
                              std::to_string(kHeaderBytes + kSha256Bytes));
    }
    if (std::memcmp(bytes, kContainerMagic, sizeof(kContainerMagic)) != 0) {
        return fail(what, "not an earshot container (bad magic \"" + printable(bytes, 8) + "\")");
    }
    const uint32_t version = load_u32(bytes + 8);
    if (version != kContainerVersion) {
        return fail(what, "unsupported container version " + std::to_string(version) +
                              " (this build reads version " + std::to_string(kContainerVersion) +
                              "; rebuild the file or update earshot)");
    }
    for (int i = 0; i < 4; ++i) {
        if (bytes[12 + i] < 0x20 || bytes[12 + i] >= 0x7f) {
            return fail(what, "invalid kind \"" + printable(bytes + 12, 4) + "\"");
        }
    }
    std::string kind(reinterpret_cast<const char*>(bytes + 12), 4);
    if (!expected_kind.empty() && kind != expected_kind) {
        return fail(what, "wrong kind \"" + kind + "\", expected \"" + expected_kind + "\"");
    }
    const uint64_t meta_bytes = load_u32(bytes + 16);
    const uint64_t n_sections = load_u32(bytes + 20);
    const uint64_t file_bytes = load_u64(bytes + 24);
    if (file_bytes != size) {
        return fail(what, file_bytes > size
                              ? "truncated: header says " + std::to_string(file_bytes) +
                                    " bytes but only " + std::to_string(size) + " are present"
                              : "length mismatch: header says " + std::to_string(file_bytes) +
                                    " bytes but the buffer has " + std::to_string(size));
    }
    if (n_sections > kContainerMaxSections) {
        return fail(what, "too many sections (" + std::to_string(n_sections) + " > " +
                              std::to_string(kContainerMaxSections) + ")");
    }
    // meta_bytes and n_sections are < 2^32, so these sums cannot overflow 64 bits.
    const uint64_t payload_end = file_bytes - kSha256Bytes;
    const uint64_t table_start = kHeaderBytes + round_up(meta_bytes, kMetaAlign);
    const uint64_t header_end = table_start + kSectionEntryBytes * n_sections;
    if (header_end > payload_end) {
        return fail(what, "truncated: metadata (" + std::to_string(meta_bytes) +
                              " bytes) and section table (" + std::to_string(n_sections) +
                              " entries) end at byte " + std::to_string(header_end) +
                              " but the payload area ends at " + std::to_string(payload_end));
    }

    // Checksum before interpreting anything variable: a damaged download gets this message.
    const auto digest = sha256(bytes, size_t(payload_end));
    if (std::memcmp(digest.data(), bytes + payload_end, kSha256Bytes) != 0) {
        return fail(what, "checksum mismatch (SHA-256 of the contents is " +
                              to_hex(digest.data(), digest.size()) + ", file says " +
                              to_hex(bytes + payload_end, kSha256Bytes) +
                              "): the file is corrupt or truncated; re-download or rebuild it");
    }

    ContainerView view;
    view.kind = kind;
    view.sha256_hex = to_hex(bytes + payload_end, kSha256Bytes);

    // Metadata: a UTF-8 JSON object.
    const char* meta_text = reinterpret_cast<const char*>(bytes + kHeaderBytes);
    view.meta = nlohmann::json::parse(meta_text, meta_text + meta_bytes, nullptr, false);
    if (view.meta.is_discarded()) return fail(what, "metadata is not valid JSON");
    if (!view.meta.is_object()) return fail(what, "metadata is not a JSON object");

    // Section table.
    view.sections.reserve(size_t(n_sections));
    for (uint64_t i = 0; i < n_sections; ++i) {
        const uint8_t* e = bytes + table_start + kSectionEntryBytes * i;
        const std::string where = "section " + std::to_string(i);
        size_t name_len = 0;
        while (name_len < kSectionNameBytes && e[name_len] != 0) ++name_len;
        if (name_len == 0) return fail(what, where + " has an empty name");
        for (size_t k = 0; k < kSectionNameBytes; ++k) {
            const bool in_name = k < name_len;
            if (in_name && (e[k] < 0x20 || e[k] >= 0x7f)) {
                return fail(what, where + " name is not printable ASCII (\"" +
                                      printable(e, name_len) + "\")");
            }
            if (!in_name && e[k] != 0) {
                return fail(what, where + " name is not NUL-padded");
            }
        }
        Section s;
        s.name.assign(reinterpret_cast<const char*>(e), name_len);
        const std::string named = "section '" + s.name + "'";
        const uint32_t dtype = load_u32(e + 32);
        if (dtype > kMaxDtype) {
            return fail(what, named + " has unknown dtype " + std::to_string(dtype));
        }
        s.dtype = DType(dtype);
        const uint32_t ndim = load_u32(e + 36);
        if (ndim < 1 || ndim > 4) {
            return fail(what, named + " has ndim " + std::to_string(ndim) + " (must be 1..4)");
        }
        uint64_t elements = 1;
        for (uint32_t d = 0; d < 4; ++d) {
            const uint32_t dim = load_u32(e + 40 + 4 * d);
            if (d >= ndim) {
                if (dim != 0) return fail(what, named + " has a non-zero unused dimension");
                continue;
            }
            s.shape.push_back(dim);
            // Cap at 2^48 elements, checked before multiplying so 64 bits never overflow.
            if (dim != 0 && elements > kMaxElements / dim) {
                return fail(what, named + " shape " + shape_string(s.shape) + " is too large");
            }
            elements *= dim;
        }
        const uint64_t offset = load_u64(e + 56);
        const uint64_t sec_bytes = load_u64(e + 64);
        const uint64_t expected_bytes = elements * dtype_size(s.dtype);
        if (sec_bytes != expected_bytes) {
            return fail(what, named + " has " + std::to_string(sec_bytes) + " bytes but shape " +
                                  shape_string(s.shape) + " of " + dtype_name(s.dtype) + " needs " +
                                  std::to_string(expected_bytes));
        }
        if (offset % kContainerAlign != 0) {
            return fail(what, named + " offset " + std::to_string(offset) +
                                  " is not a multiple of " + std::to_string(kContainerAlign));
        }
        if (offset < header_end || offset > payload_end || sec_bytes > payload_end - offset) {
            return fail(what, named + " [" + std::to_string(offset) + ", +" +
                                  std::to_string(sec_bytes) + ") lies outside the payload area [" +
                                  std::to_string(header_end) + ", " + std::to_string(payload_end) +
                                  ")");
        }
        for (const Section& other : view.sections) {
            if (other.name == s.name) return fail(what, "duplicate " + named);
        }
        s.data = bytes + offset;
        s.bytes = size_t(sec_bytes);
        view.sections.push_back(std::move(s));
    }

    // Overlap: sort payload ranges by start, each must end before the next begins.
    std::vector<size_t> order(view.sections.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return view.sections[a].data < view.sections[b].data; });
    for (size_t i = 1; i < order.size(); ++i) {
        const Section& a = view.sections[order[i - 1]];
        const Section& b = view.sections[order[i]];
        if (a.data + a.bytes > b.data) {
            return fail(what, "sections '" + a.name + "' and '" + b.name + "' overlap");
        }
    }
    return view;
}

ContainerWriter::ContainerWriter(std::string kind, nlohmann::json meta)
    : kind_(std::move(kind)), meta_(std::move(meta)) {
    kind_.resize(4, ' ');
}

void ContainerWriter::add(const std::string& name, DType dtype, std::vector<uint32_t> shape,
                          const void* data, size_t bytes) {
    // The caller guarantees bytes == product(shape) * dtype_size(dtype), 1..4 dims and a name
    // of at most 32 ASCII chars; parse_container rejects a file that breaks these.
    Pending p;
    p.name = name.substr(0, kSectionNameBytes);
    p.dtype = dtype;
    p.shape = std::move(shape);
    const uint8_t* src = static_cast<const uint8_t*>(data);
    p.data.assign(src, src + (src ? bytes : 0));
    sections_.push_back(std::move(p));
}

std::vector<uint8_t> ContainerWriter::finish() const {
    // replace: invalid UTF-8 in a string is replaced instead of throwing.
    const std::string meta_text =
        meta_.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    const uint64_t table_start = kHeaderBytes + round_up(meta_text.size(), kMetaAlign);
    const uint64_t header_end = table_start + kSectionEntryBytes * sections_.size();
    uint64_t cursor = round_up(header_end, kContainerAlign);
    std::vector<uint64_t> offsets;
    for (const Pending& p : sections_) {
        offsets.push_back(cursor);
        cursor = round_up(cursor + p.data.size(), kContainerAlign);
    }
    // The last payload needs no trailing padding: the checksum follows its end directly.
    uint64_t payload_end = header_end;
    if (!sections_.empty()) payload_end = offsets.back() + sections_.back().data.size();
    const uint64_t file_bytes = payload_end + kSha256Bytes;

    std::vector<uint8_t> out(size_t(file_bytes), 0);
    std::memcpy(out.data(), kContainerMagic, sizeof(kContainerMagic));
    store_u32(&out[8], kContainerVersion);
    std::memcpy(&out[12], kind_.data(), 4);
    store_u32(&out[16], uint32_t(meta_text.size()));
    store_u32(&out[20], uint32_t(sections_.size()));
    store_u64(&out[24], file_bytes);
    std::memcpy(&out[kHeaderBytes], meta_text.data(), meta_text.size());
    for (size_t i = 0; i < sections_.size(); ++i) {
        const Pending& p = sections_[i];
        uint8_t* e = &out[size_t(table_start + kSectionEntryBytes * i)];
        std::memcpy(e, p.name.data(), p.name.size());
        store_u32(e + 32, uint32_t(p.dtype));
        store_u32(e + 36, uint32_t(p.shape.size()));
        for (size_t d = 0; d < p.shape.size() && d < 4; ++d) store_u32(e + 40 + 4 * d, p.shape[d]);
        store_u64(e + 56, offsets[i]);
        store_u64(e + 64, p.data.size());
        if (!p.data.empty()) std::memcpy(&out[size_t(offsets[i])], p.data.data(), p.data.size());
    }
    const auto digest = sha256(out.data(), size_t(payload_end));
    std::memcpy(&out[size_t(payload_end)], digest.data(), kSha256Bytes);
    return out;
}

}  // namespace earshot
