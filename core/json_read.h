// Typed reads of JSON fields for the model, front-end and index loaders, with messages that name
// the object and the key. nlohmann::json's own get<int>() throws and silently truncates doubles,
// and neither checks a range; the loaders must turn bad files into a Status, never a crash.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace earshot {

// obj[key] as an integer in [lo, hi]; `where` names obj in messages ("model metadata").
Status json_read_int(const nlohmann::json& obj, const char* key, int lo, int hi,
                     const std::string& where, int* out);
// obj[key] as a number (integer or floating point).
Status json_read_float(const nlohmann::json& obj, const char* key, const std::string& where,
                       float* out);
// obj[key] as an integer in [0, hi] (counts and sizes beyond int's range).
Status json_read_uint64(const nlohmann::json& obj, const char* key, uint64_t hi,
                        const std::string& where, uint64_t* out);
// obj[key] as a number (integer or floating point), in double precision.
Status json_read_double(const nlohmann::json& obj, const char* key, const std::string& where,
                        double* out);
// obj[key] as a string.
Status json_read_string(const nlohmann::json& obj, const char* key, const std::string& where,
                        std::string* out);
// obj[key] as a JSON object / array; *out points into obj.
Status json_read_object(const nlohmann::json& obj, const char* key, const std::string& where,
                        const nlohmann::json** out);
Status json_read_array(const nlohmann::json& obj, const char* key, const std::string& where,
                       const nlohmann::json** out);
// Optional fields: a missing key leaves *out unchanged and is ok; a present key of the wrong
// type is an error like above.
Status json_read_optional_string(const nlohmann::json& obj, const char* key,
                                 const std::string& where, std::string* out);
Status json_read_optional_double(const nlohmann::json& obj, const char* key,
                                 const std::string& where, double* out);
Status json_read_optional_bool(const nlohmann::json& obj, const char* key,
                               const std::string& where, bool* out);

// obj[key] as an index file's entry: an object with "file", a plain name that may sit next to
// the manifest (is_index_file_name in core/index.h), and "bytes" (at most 2^52).
Status json_read_file_entry(const nlohmann::json& obj, const char* key, const std::string& where,
                            std::string* file, uint64_t* bytes);

}  // namespace earshot
