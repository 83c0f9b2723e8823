#include "core/native/index_folder.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

namespace earshot {
namespace fs = std::filesystem;

Result<std::vector<uint8_t>> read_file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::error("cannot open " + path + ": " + std::strerror(errno));
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
    if (in.bad()) return Status::error("cannot read " + path);
    return bytes;
}

Result<std::shared_ptr<Index>> load_index_quantizer(const std::string& dir,
                                                    const ModelInfo& model) {
    const fs::path root(dir);
    auto manifest_bytes = read_file_bytes((root / "manifest.json").string());
    if (!manifest_bytes) {
        return Status::error("no index at " + dir + ": " + manifest_bytes.message() +
                             " (build one with `earshot build`)");
    }
    const std::string manifest_text(manifest_bytes->begin(), manifest_bytes->end());
    auto index = std::make_shared<Index>(model);
    // load_manifest() checks the manifest's shape and that every file name is a plain name
    // (is_index_file_name), so the files read below all sit in `dir`.
    Status st = index->load_manifest(manifest_text);
    if (!st) return st;
    const std::string& quantizer_file = index->manifest_quantizer_file();
    auto quantizer = read_file_bytes((root / quantizer_file).string());
    if (!quantizer) return quantizer.status();
    st = index->add_quantizer(quantizer->data(), quantizer->size(), quantizer_file);
    if (!st) return st;
    return index;
}

Result<std::shared_ptr<Index>> load_index_folder(const std::string& dir, const ModelInfo& model) {
    auto loaded = load_index_quantizer(dir, model);
    if (!loaded) return loaded.status();
    const std::shared_ptr<Index>& index = *loaded;
    const fs::path root(dir);
    Status st;
    if (index->version() == kIndexVersion2) {
        const std::string& directory_file = index->manifest_directory_file();
        auto directory = read_file_bytes((root / directory_file).string());
        if (!directory) return directory.status();
        st = index->add_directory(directory->data(), directory->size(), directory_file);
        if (!st) return st;
        // Block by block, as a page fetches them (never the whole file in memory); each is
        // checked against the directory's range and hash by add_shard().
        const std::string& blocks_file = index->manifest_blocks_file();
        const fs::path blocks_path = root / blocks_file;
        std::error_code ec;
        const uint64_t size = fs::file_size(blocks_path, ec);
        if (ec) return Status::error("cannot read " + blocks_path.string() + ": " + ec.message());
        if (size != index->manifest_blocks_bytes())
            return Status::error(
                blocks_file + ": " + std::to_string(size) + " bytes, the manifest says " +
                std::to_string(index->manifest_blocks_bytes()) + " (truncated or stale?)");
        std::ifstream in(blocks_path, std::ios::binary);
        std::vector<uint8_t> block;
        for (size_t b = 0; b < index->n_shards_expected(); ++b) {
            const Index::FileRange range = index->shard_range(b);
            block.resize(range.bytes);
            in.seekg(std::streamoff(range.offset));
            in.read(reinterpret_cast<char*>(block.data()), std::streamsize(range.bytes));
            if (!in) return Status::error("cannot read " + blocks_path.string());
            st = index->add_shard(block.data(), block.size(),
                                  blocks_file + " block " + std::to_string(b));
            if (!st) return st;
        }
        return index;
    }
    for (size_t i = 0; i < index->n_shards_expected(); ++i) {
        const std::string& file = index->manifest_shard_file(i);
        auto bytes = read_file_bytes((root / file).string());
        if (!bytes) return bytes.status();
        st = index->add_shard(bytes->data(), bytes->size(), file);
        if (!st) return st;
    }
    return index;
}

}  // namespace earshot
