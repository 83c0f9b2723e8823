#include "core/json_read.h"

#include <algorithm>
#include <cstdint>

namespace earshot {

Status json_read_int(const nlohmann::json& obj, const char* key, int lo, int hi,
                     const std::string& where, int* out) {
    const auto it = obj.find(key);
    if (it == obj.end()) return Status::error(where + " lacks '" + key + "'");
    if (!it->is_number_integer()) {
        return Status::error(where + ": '" + key + "' must be an integer, got " + it->dump());
    }
    // Unsigned values above INT64_MAX would wrap to negative through get<int64_t>().
    const int64_t v = it->is_number_unsigned()
                          ? int64_t(std::min<uint64_t>(it->get<uint64_t>(), uint64_t(INT64_MAX)))
                          : it->get<int64_t>();
    if (v < lo || v > hi) {
        return Status::error(where + ": '" + key + "' = " + it->dump() + " is out of range [" +
                             std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    *out = int(v);
    return Status::ok();
}

Status json_read_float(const nlohmann::json& obj, const char* key, const std::string& where,
                       float* out) {
    const auto it = obj.find(key);
    if (it == obj.end()) return Status::error(where + " lacks '" + key + "'");
    if (!it->is_number()) {
        return Status::error(where + ": '" + key + "' must be a number, got " + it->dump());
    }
    *out = float(it->get<double>());
    return Status::ok();
}

}  // namespace earshot
