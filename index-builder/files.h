// File helpers for the CLI: whole-file reads and the atomic write of an index folder.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"

namespace earshot::cli {

Result<std::vector<uint8_t>> read_file(const std::string& path);

// Writes every file into a sibling staging folder (`<out>.earshot-partial.<pid>`), fsyncs the
// files and the folder, then swaps it with `out_dir` in one rename (RENAME_EXCHANGE) and fsyncs
// the parent; the old index is deleted after. A process killed at any point leaves `out_dir`
// holding the complete old index or the complete new one, plus leftovers the next build
// removes. Where the file system has no exchange rename, the old folder is moved aside
// (`<out>.earshot-old.<pid>`) and the new one moved in: killed between the two, `out_dir` is
// missing until the next build puts the old index back (recover_interrupted_write).
Status write_folder_atomically(const std::string& out_dir,
                               const std::map<std::string, std::vector<uint8_t>>& files);

// What a killed write_folder_atomically left next to `out_dir`: an old index moved aside goes
// back into place if `out_dir` is missing, staging folders are removed. Runs at the start of a
// build, so even a build that then fails restores the previous index.
void recover_interrupted_write(const std::string& out_dir);

}  // namespace earshot::cli
