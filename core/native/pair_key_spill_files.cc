#include "core/native/pair_key_spill_files.h"

#include <cstdio>
#include <filesystem>
#include <random>
#include <system_error>

namespace earshot {

namespace fs = std::filesystem;

Result<std::shared_ptr<TempFilePairKeySpill>> TempFilePairKeySpill::create(
    const std::string& parent) {
    std::error_code ec;
    const fs::path base = parent.empty() ? fs::temp_directory_path(ec) : fs::path(parent);
    if (ec) return Status::error("no temporary folder for the pair-key build: " + ec.message());
    std::random_device random;
    for (int attempt = 0; attempt < 16; ++attempt) {
        const fs::path folder =
            base / ("earshot-pair-spill-" + std::to_string(random()) + std::to_string(attempt));
        if (fs::create_directories(folder, ec))
            return std::shared_ptr<TempFilePairKeySpill>(new TempFilePairKeySpill(folder.string()));
        if (ec)
            return Status::error("cannot create a temporary folder for the pair-key build in " +
                                 base.string() + ": " + ec.message());
    }
    return Status::error("cannot make a new temporary folder in " + base.string());
}

TempFilePairKeySpill::~TempFilePairKeySpill() {
    std::error_code ec;
    fs::remove_all(folder_, ec);  // nothing to report from a destructor; the files are scratch
}

std::string TempFilePairKeySpill::bucket_path(uint32_t bucket) const {
    return (fs::path(folder_) / ("bucket-" + std::to_string(bucket))).string();
}

Status TempFilePairKeySpill::append(uint32_t bucket, const uint64_t* records, size_t n) {
    const std::string path = bucket_path(bucket);
    std::FILE* f = std::fopen(path.c_str(), "ab");
    if (!f) return Status::error("cannot open " + path + " to append the pair-key build's records");
    // Records are written in the machine's byte order: the file is read back by this process.
    const size_t written = std::fwrite(records, sizeof(uint64_t), n, f);
    const bool closed = std::fclose(f) == 0;
    if (written != n || !closed)
        return Status::error("cannot write " + path + " (is the disk full?)");
    bytes_written_ += n * sizeof(uint64_t);
    return Status::ok();
}

Result<std::vector<uint64_t>> TempFilePairKeySpill::take(uint32_t bucket) {
    const std::string path = bucket_path(bucket);
    std::vector<uint64_t> out;
    std::error_code ec;
    if (!fs::exists(path, ec)) return out;  // nothing was appended
    const uintmax_t size = fs::file_size(path, ec);
    if (ec || size % sizeof(uint64_t))
        return Status::error(path + ": the pair-key build's records are cut off");
    out.resize(size / sizeof(uint64_t));
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return Status::error("cannot read " + path);
    const size_t read = std::fread(out.data(), sizeof(uint64_t), out.size(), f);
    std::fclose(f);
    if (read != out.size()) return Status::error("cannot read " + path);
    fs::remove(path, ec);
    return out;
}

}  // namespace earshot
