// Typed reads of JSON fields for the model and front-end loaders, with messages that name the
// object and the key. nlohmann::json's own get<int>() throws and silently truncates doubles,
// and neither checks a range; the loaders must turn bad files into a Status, never a crash.
#pragma once

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

}  // namespace earshot
