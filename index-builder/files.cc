#include "index-builder/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace earshot::cli {
namespace fs = std::filesystem;

Result<std::vector<uint8_t>> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::error("cannot open " + path + ": " + std::strerror(errno));
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
    if (in.bad()) return Status::error("cannot read " + path);
    return bytes;
}

namespace {

Status write_and_sync(const fs::path& path, const std::vector<uint8_t>& bytes) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return Status::error("cannot create " + path.string() + ": " + std::strerror(errno));
    size_t written = 0;
    while (written < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
        if (n < 0) {
            if (errno == EINTR) continue;
            const std::string why = std::strerror(errno);
            ::close(fd);
            return Status::error("cannot write " + path.string() + ": " + why);
        }
        written += size_t(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        return Status::error("cannot flush " + path.string() + ": " + std::strerror(errno));
    }
    return Status::ok();
}

void sync_dir(const fs::path& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

}  // namespace

Status write_folder_atomically(const std::string& out_dir,
                               const std::map<std::string, std::vector<uint8_t>>& files) {
    fs::path out = fs::absolute(out_dir).lexically_normal();
    if (out.filename().empty()) out = out.parent_path();
    const fs::path parent = out.parent_path();
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec) return Status::error("cannot create " + parent.string() + ": " + ec.message());
    const std::string suffix = "." + std::to_string(::getpid());
    const fs::path staging = parent / (out.filename().string() + ".partial" + suffix);
    const fs::path old = parent / (out.filename().string() + ".old" + suffix);
    fs::remove_all(staging, ec);
    fs::create_directory(staging, ec);
    if (ec) return Status::error("cannot create " + staging.string() + ": " + ec.message());
    for (const auto& [name, bytes] : files) {
        Status st = write_and_sync(staging / name, bytes);
        if (!st) {
            fs::remove_all(staging, ec);
            return st;
        }
    }
    sync_dir(staging);
    const bool had_old = fs::exists(out, ec);
    if (had_old) {
        if (!fs::is_directory(out, ec)) {
            fs::remove_all(staging, ec);
            return Status::error(out.string() + " exists and is not a folder: choose another --out");
        }
        fs::rename(out, old, ec);
        if (ec) {
            fs::remove_all(staging, ec);
            return Status::error("cannot move the old index aside: " + ec.message());
        }
    }
    fs::rename(staging, out, ec);
    if (ec) {
        const std::string why = ec.message();
        if (had_old) fs::rename(old, out, ec);
        return Status::error("cannot move the new index into place: " + why);
    }
    sync_dir(parent);
    if (had_old) fs::remove_all(old, ec);
    return Status::ok();
}

}  // namespace earshot::cli
