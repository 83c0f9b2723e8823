#include "core/json_read.h"

#include <algorithm>
#include <cstdint>

#include "core/index.h"

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
    double value = 0.0;
    Status st = json_read_double(obj, key, where, &value);
    if (st) *out = float(value);
    return st;
}

Status json_read_uint64(const nlohmann::json& obj, const char* key, uint64_t hi,
                        const std::string& where, uint64_t* out) {
    const auto it = obj.find(key);
    if (it == obj.end()) return Status::error(where + " lacks '" + key + "'");
    if (!it->is_number_integer()) {
        return Status::error(where + ": '" + key + "' must be an integer, got " + it->dump());
    }
    const bool negative = !it->is_number_unsigned() && it->get<int64_t>() < 0;
    if (negative || it->get<uint64_t>() > hi) {
        return Status::error(where + ": '" + key + "' = " + it->dump() + " is out of range [0, " +
                             std::to_string(hi) + "]");
    }
    *out = it->get<uint64_t>();
    return Status::ok();
}

Status json_read_double(const nlohmann::json& obj, const char* key, const std::string& where,
                        double* out) {
    const auto it = obj.find(key);
    if (it == obj.end()) return Status::error(where + " lacks '" + key + "'");
    if (!it->is_number()) {
        return Status::error(where + ": '" + key + "' must be a number, got " + it->dump());
    }
    *out = it->get<double>();
    return Status::ok();
}

Status json_read_string(const nlohmann::json& obj, const char* key, const std::string& where,
                        std::string* out) {
    const auto it = obj.find(key);
    if (it == obj.end()) return Status::error(where + " lacks '" + key + "'");
    if (!it->is_string()) {
        return Status::error(where + ": '" + key + "' must be a string, got " + it->dump());
    }
    *out = it->get<std::string>();
    return Status::ok();
}

namespace {

Status json_read_kind(const nlohmann::json& obj, const char* key, const std::string& where,
                      bool object, const nlohmann::json** out) {
    const auto it = obj.find(key);
    if (it == obj.end()) return Status::error(where + " lacks '" + key + "'");
    if (object ? !it->is_object() : !it->is_array()) {
        return Status::error(where + ": '" + key + "' must be " +
                             (object ? "an object" : "an array") + ", got " +
                             it->dump().substr(0, 40));
    }
    *out = &*it;
    return Status::ok();
}

}  // namespace

Status json_read_object(const nlohmann::json& obj, const char* key, const std::string& where,
                        const nlohmann::json** out) {
    return json_read_kind(obj, key, where, /*object=*/true, out);
}

Status json_read_array(const nlohmann::json& obj, const char* key, const std::string& where,
                       const nlohmann::json** out) {
    return json_read_kind(obj, key, where, /*object=*/false, out);
}

Status json_read_optional_string(const nlohmann::json& obj, const char* key,
                                 const std::string& where, std::string* out) {
    if (!obj.contains(key)) return Status::ok();
    return json_read_string(obj, key, where, out);
}

Status json_read_optional_double(const nlohmann::json& obj, const char* key,
                                 const std::string& where, double* out) {
    if (!obj.contains(key)) return Status::ok();
    return json_read_double(obj, key, where, out);
}

Status json_read_optional_bool(const nlohmann::json& obj, const char* key,
                               const std::string& where, bool* out) {
    if (!obj.is_object() || !obj.contains(key)) return Status::ok();
    const nlohmann::json& v = obj[key];
    if (!v.is_boolean()) return Status::error(where + ": '" + key + "' must be true or false");
    *out = v.get<bool>();
    return Status::ok();
}

Status json_read_file_entry(const nlohmann::json& obj, const char* key, const std::string& where,
                            std::string* file, uint64_t* bytes) {
    const nlohmann::json* entry = nullptr;
    const std::string at = where + " " + key;
    if (Status s = json_read_object(obj, key, where, &entry); !s) return s;
    for (Status s : {json_read_string(*entry, "file", at, file),
                     json_read_uint64(*entry, "bytes", uint64_t(1) << 52, at, bytes)})
        if (!s) return s;
    if (!is_index_file_name(*file))
        return Status::error(at + ": \"" + *file +
                             "\" is not a plain file name: index files sit next to the manifest");
    return Status::ok();
}

}  // namespace earshot
