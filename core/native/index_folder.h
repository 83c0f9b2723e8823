// Loading an index folder from disk (native only: the page's Worker fetches the same files over
// HTTP, web/index-loader.js). Shared by the CLI and the benchmark tools.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/index.h"
#include "core/model.h"
#include "core/status.h"

namespace earshot {

// Loads manifest.json, the quantizer, and every shard (format 1) or the directory and then
// every block of songs.esb, read block by block, never the whole file (format 2), checking each
// file and block against the manifest or the directory (size, SHA-256) and the model (hash).
// Any failure names the file or block.
Result<std::shared_ptr<Index>> load_index_folder(const std::string& dir, const ModelInfo& model);

// Loads manifest.json and the quantizer only, each checked as above: what coding songs with
// another index's quantizer needs (`earshot build --quantizer-from`), whatever that index's size.
Result<std::shared_ptr<Index>> load_index_quantizer(const std::string& dir, const ModelInfo& model);

// A whole file's bytes, or an error naming the file and the reason.
Result<std::vector<uint8_t>> read_file_bytes(const std::string& path);

}  // namespace earshot
