// File helpers for the CLI: whole-file reads and the atomic write of an index folder.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"

namespace earshot::cli {

Result<std::vector<uint8_t>> read_file(const std::string& path);

// Writes every file into a fresh sibling folder, fsyncs it, then renames it over `out_dir`
// (the previous folder, if any, is moved aside and removed only after the rename). A crash at
// any point leaves either the old index or the new one, never a half-written one.
Status write_folder_atomically(const std::string& out_dir,
                               const std::map<std::string, std::vector<uint8_t>>& files);

}  // namespace earshot::cli
